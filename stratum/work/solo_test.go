package work

import (
	"bytes"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
)

// soloMiner is a mainnet P2PKH script (hash160 of the generator point's
// compressed key), the solo miner's address in these tests.
var soloMiner = mustScript("76a914751e76e8199196d454941c45d1b3a323f1433bd688ac")

func TestBuildForOutputs(t *testing.T) {
	type out struct {
		value  int64
		script []byte
	}
	tests := []struct {
		name    string
		value   int64
		feeBps  int64
		witness bool
		want    []out // before the witness commitment
	}{
		// 312,500,000 × 150 / 10000 = 4,687,500 exactly.
		{"1.5% of 3.125 BTC", 312_500_000, 150, false, []out{{307_812_500, soloMiner}, {4_687_500, testPayout}}},
		// 5,000,000,123 × 33 / 10000 = 16,500,000.4059: floored.
		{"fee floored", 5_000_000_123, 33, true, []out{{4_983_500_123, soloMiner}, {16_500_000, testPayout}}},
		{"no fee", 312_500_000, 0, true, []out{{312_500_000, soloMiner}}},
		// 1 × 9999 / 10000 = 0.9999: no satoshi of fee, no fee output.
		{"fee below one satoshi", 1, 9999, false, []out{{1, soloMiner}}},
		{"whole reward as fee", 312_500_000, 10_000, false, []out{{312_500_000, testPayout}}},
		{"zero reward", 0, 200, false, []out{{0, soloMiner}}},
		// 2,099,999,999,999,999 × 9999 would overflow int64;
		// the fee is 2,099,789,999,999,999.9999 floored.
		{"max money", 2_099_999_999_999_999, 9999, false, []out{{210_000_000_000, soloMiner}, {2_099_789_999_999_999, testPayout}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBuilder(t, nil)
			tpl := syntheticTemplate(t, 4, tc.witness)
			tpl.CoinbaseValue = tc.value
			j, err := b.BuildFor(tpl, testNow, soloMiner, testPayout, tc.feeBps)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(j.SoloScript, soloMiner) || !strings.HasPrefix(j.ID, SoloJobPrefix) {
				t.Fatalf("solo job %s: SoloScript %x, want %x and an ID starting with %q", j.ID, j.SoloScript, soloMiner, SoloJobPrefix)
			}
			tx, _ := decodeCoinbase(t, j, make([]byte, 4), make([]byte, 4))
			outs := tx.TxOut
			if tc.witness {
				last := outs[len(outs)-1]
				if last.Value != 0 || !isWitnessCommitment(last.PkScript) {
					t.Fatalf("last output %d sat %x is not the witness commitment", last.Value, last.PkScript)
				}
				outs = outs[:len(outs)-1]
			}
			if len(outs) != len(tc.want) {
				t.Fatalf("%d outputs, want %d", len(outs), len(tc.want))
			}
			var sum int64
			for i, o := range outs {
				if o.Value != tc.want[i].value || !bytes.Equal(o.PkScript, tc.want[i].script) {
					t.Errorf("output %d: %d sat to %x, want %d sat to %x", i, o.Value, o.PkScript, tc.want[i].value, tc.want[i].script)
				}
				sum += o.Value
			}
			if sum != tc.value {
				t.Errorf("outputs sum to %d sat, want the reward %d", sum, tc.value)
			}
			// The solo job hashes and assembles like a pool job: same
			// header fields and branch, its own coinbase.
			pool, err := b.Build(tpl, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if pool.SoloScript != nil || strings.HasPrefix(pool.ID, SoloJobPrefix) || !branchEqual(pool.MerkleBranch, j.MerkleBranch) || pool.Bits != j.Bits {
				t.Fatalf("pool job %s (solo %x) vs solo job %s", pool.ID, pool.SoloScript, j.ID)
			}
		})
	}
}

func branchEqual(a, b []chainhash.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBuildForRejects(t *testing.T) {
	b := newTestBuilder(t, nil)
	tpl := syntheticTemplate(t, 0, false)
	tests := []struct {
		name        string
		payout, fee []byte
		feeBps      int64
		want        string
	}{
		{"no miner script", nil, testPayout, 100, "miner's payout script is empty"},
		{"bare multisig miner", mustScript("5121" + strings.Repeat("02", 33) + "51ae"), testPayout, 100, "miner's payout script"},
		{"negative fee", soloMiner, testPayout, -1, "fee -1 bps out of range [0, 10000]"},
		{"fee above 100%", soloMiner, testPayout, 10_001, "fee 10001 bps out of range"},
		{"fee without a fee script", soloMiner, nil, 100, "pool fee payout script is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.BuildFor(tpl, testNow, tc.payout, tc.fee, tc.feeBps)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// No fee needs no fee script.
	if _, err := b.BuildFor(tpl, testNow, soloMiner, nil, 0); err != nil {
		t.Fatalf("fee 0 without a fee script: %v", err)
	}
}

func TestSoloFee(t *testing.T) {
	tests := []struct{ value, bps, want int64 }{
		{312_500_000, 150, 4_687_500},
		{9_999, 1, 0},                  // 0.9999
		{10_000, 1, 1},                 // exactly 1
		{625_000_001, 200, 12_500_000}, // 12,500,000.02
		{2_100_000_000_000_000, 10_000, 2_100_000_000_000_000},
		{2_100_000_000_000_000, 9_999, 2_099_790_000_000_000},
		{0, 10_000, 0},
	}
	for _, tc := range tests {
		if got := SoloFee(tc.value, tc.bps); got != tc.want {
			t.Errorf("SoloFee(%d, %d) = %d, want %d", tc.value, tc.bps, got, tc.want)
		}
	}
}

func BenchmarkBuildFor(b *testing.B) {
	bld := newTestBuilder(b, nil)
	tpl := syntheticTemplate(b, 3000, true)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bld.BuildFor(tpl, testNow, soloMiner, testPayout, 100); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBuildForReusesOnlyItsTemplate: BuildFor reuses the merkle branch and
// witness commitment of the template built last, never another's.
func TestBuildForReusesOnlyItsTemplate(t *testing.T) {
	b := newTestBuilder(t, nil)
	a, c := syntheticTemplate(t, 7, true), syntheticTemplate(t, 12, true)
	if _, err := b.Build(a, testNow); err != nil {
		t.Fatal(err)
	}
	solo, err := b.BuildFor(c, testNow, soloMiner, testPayout, 100)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := b.Build(c, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(solo.MerkleBranch) != 4 || !branchEqual(solo.MerkleBranch, pool.MerkleBranch) {
		t.Fatalf("solo branch %v, pool branch %v of the same 12-transaction template (4 steps)", solo.MerkleBranch, pool.MerkleBranch)
	}
	soloTx, _ := decodeCoinbase(t, solo, make([]byte, 4), make([]byte, 4))
	poolTx, _ := decodeCoinbase(t, pool, make([]byte, 4), make([]byte, 4))
	last := func(outs []*wire.TxOut) []byte { return outs[len(outs)-1].PkScript }
	if !bytes.Equal(last(soloTx.TxOut), last(poolTx.TxOut)) || !isWitnessCommitment(last(soloTx.TxOut)) {
		t.Fatalf("solo commitment %x, pool commitment %x", last(soloTx.TxOut), last(poolTx.TxOut))
	}
}
