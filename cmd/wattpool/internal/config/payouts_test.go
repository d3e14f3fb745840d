package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/wattpool/wattpool/shares/payout"
)

func TestParsePayouts(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       PayoutsConfig
	}{
		{"defaults", minimal, pc(payout.Params{Scheme: payout.PPLNS, FeeBps: 0, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 144}, time.Time{}, 100_000)},
		{"pplns fixed window", minimal + "[payouts]\nscheme = \"pplns\"\nfee_bps = 150\npplns_window = \"5e12\"\n",
			pc(payout.Params{Scheme: payout.PPLNS, FeeBps: 150, Window: payout.WindowSize{Diff: 5e12}, FPPSFeeBlocks: 144}, time.Time{}, 100_000)},
		{"tides", minimal + "[payouts]\nscheme = \"tides\"\nfee_bps = 10000\n", pc(payout.Params{Scheme: payout.TIDES, FeeBps: 10000, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 144}, time.Time{}, 100_000)},
		{"prop", minimal + "[payouts]\nscheme = \"prop\"\n", pc(payout.Params{Scheme: payout.PROP, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 144}, time.Time{}, 100_000)},
		{"fpps from an hour", minimal + "[payouts]\nscheme = \"fpps\"\nfee_bps = 200\nfpps_fee_blocks = 6\npayout_threshold_sats = 546\neffective_from = \"2031-04-01T02:00:00+02:00\"\n",
			pc(payout.Params{Scheme: payout.FPPS, FeeBps: 200, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 6}, time.Date(2031, 4, 1, 0, 0, 0, 0, time.UTC), 546)},
	} {
		c, err := Parse([]byte(tc.file), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		tc.want.Network = c.Network
		if c.Payouts != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, c.Payouts, tc.want)
		}
	}
}

func TestPayoutsErrorsNameEveryField(t *testing.T) {
	_, err := Parse([]byte(minimal+"[payouts]\nscheme = \"solo\"\nfee_bps = 10001\npplns_window = \"2y\"\nfpps_fee_blocks = 0\npayout_threshold_sats = 545\neffective_from = \"2031-04-01T00:30:00Z\"\n"), nil)
	checkErrors(t, err, []string{`payouts.scheme: payout scheme "solo" is not a scheme: solo mining is per port, [[stratum.listener]] solo = true`, "payouts.fee_bps: 10001 is out of range [0, 10000]",
		`payouts.pplns_window: window size "2y" is not a finite decimal number`, "payouts.fpps_fee_blocks: 0 is out of range [1, 10000]",
		"payouts.payout_threshold_sats: 545 is below the dust limit 546 sats", `payouts.effective_from: "2031-04-01T00:30:00Z" is not a whole UTC hour`})
	_, err = Parse([]byte(minimal+"[payouts]\nscheme = \"PPLNS\"\nfee_bps = -1\npplns_window = \"0x\"\nwindow = 3\neffective_from = \"tomorrow\"\n"), nil)
	checkErrors(t, err, []string{`payouts.scheme: payout scheme "PPLNS" is not one of pplns, tides, prop, pps, fpps`, "payouts.fee_bps: -1 is out of range", `payouts.effective_from: "tomorrow" is not an RFC 3339 time`,
		`payouts.pplns_window: window size "0x" must be positive`, "payouts.window: unknown key"})
}

func TestLoadPayouts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// No node, no payout address: only [payouts] is validated.
	c, err := LoadPayouts(write("ok.toml", "[payouts]\nscheme = \"prop\"\nfee_bps = 200\n[bitcoin]\nnetwork = \"regtest\"\n"), nil)
	if err != nil || *c != pc(payout.Params{Scheme: payout.PROP, FeeBps: 200, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 144}, time.Time{}, 100_000, Networks["regtest"]) {
		t.Fatalf("LoadPayouts: %+v %v", c, err)
	}
	env := func(k string) (string, bool) { return "simnet", k == "WATTPOOL_NETWORK" }
	if c, err := LoadPayouts("", env); err != nil || c.Scheme != payout.PPLNS || c.Network != Networks["simnet"] {
		t.Fatalf("no file: %+v %v", c, err)
	}
	_, err = LoadPayouts(write("bad.toml", "[payouts]\nfee_bps = 20000\n[nodes]\nx = 1\n"), nil)
	checkErrors(t, err, []string{"nodes: unknown key"})
	_, err = LoadPayouts(write("bad2.toml", "[payouts]\nfee_bps = 20000\n[bitcoin]\nnetwork = \"moon\"\n"), nil)
	checkErrors(t, err, []string{"payouts.fee_bps: 20000 is out of range", `bitcoin.network: "moon"`})
	if _, err := LoadPayouts(filepath.Join(dir, "missing.toml"), nil); err == nil {
		t.Fatal("missing file accepted")
	}
}

// pc builds the PayoutsConfig a test expects.
func pc(p payout.Params, from time.Time, threshold int64, net ...*chaincfg.Params) PayoutsConfig {
	c := PayoutsConfig{Params: p, EffectiveFrom: from, ThresholdSats: threshold}
	if len(net) > 0 {
		c.Network = net[0]
	}
	return c
}
