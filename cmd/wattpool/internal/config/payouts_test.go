package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/wattpool/wattpool/shares/payout"
)

func TestParsePayouts(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       payout.Params
	}{
		{"defaults", minimal, payout.Params{Scheme: payout.PPLNS, FeeBps: 0, Window: payout.WindowSize{Times: 2}}},
		{"pplns fixed window", minimal + "[payouts]\nscheme = \"pplns\"\nfee_bps = 150\npplns_window = \"5e12\"\n",
			payout.Params{Scheme: payout.PPLNS, FeeBps: 150, Window: payout.WindowSize{Diff: 5e12}}},
		{"tides", minimal + "[payouts]\nscheme = \"tides\"\nfee_bps = 10000\n", payout.Params{Scheme: payout.TIDES, FeeBps: 10000, Window: payout.WindowSize{Times: 2}}},
		{"prop", minimal + "[payouts]\nscheme = \"prop\"\n", payout.Params{Scheme: payout.PROP, Window: payout.WindowSize{Times: 2}}},
	} {
		c, err := Parse([]byte(tc.file), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.Payouts != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, c.Payouts, tc.want)
		}
	}
}

func TestPayoutsErrorsNameEveryField(t *testing.T) {
	_, err := Parse([]byte(minimal+"[payouts]\nscheme = \"pps\"\nfee_bps = 10001\npplns_window = \"2y\"\n"), nil)
	checkErrors(t, err, []string{`payouts.scheme: payout scheme "pps" is not built yet`, "payouts.fee_bps: 10001 is out of range [0, 10000]",
		`payouts.pplns_window: window size "2y" is not a finite decimal number`})
	_, err = Parse([]byte(minimal+"[payouts]\nscheme = \"PPLNS\"\nfee_bps = -1\npplns_window = \"0x\"\nwindow = 3\n"), nil)
	checkErrors(t, err, []string{`payouts.scheme: payout scheme "PPLNS" is not one of pplns, tides, prop`, "payouts.fee_bps: -1 is out of range",
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
	c, err := LoadPayouts(write("ok.toml", "[payouts]\nscheme = \"prop\"\nfee_bps = 200\n"))
	if err != nil || *c != (payout.Params{Scheme: payout.PROP, FeeBps: 200, Window: payout.WindowSize{Times: 2}}) {
		t.Fatalf("LoadPayouts: %+v %v", c, err)
	}
	if c, err := LoadPayouts(""); err != nil || c.Scheme != payout.PPLNS {
		t.Fatalf("no file: %+v %v", c, err)
	}
	_, err = LoadPayouts(write("bad.toml", "[payouts]\nfee_bps = 20000\n[nodes]\nx = 1\n"))
	checkErrors(t, err, []string{"nodes: unknown key"})
	_, err = LoadPayouts(write("bad2.toml", "[payouts]\nfee_bps = 20000\n"))
	checkErrors(t, err, []string{"payouts.fee_bps: 20000 is out of range"})
	if _, err := LoadPayouts(filepath.Join(dir, "missing.toml")); err == nil {
		t.Fatal("missing file accepted")
	}
}
