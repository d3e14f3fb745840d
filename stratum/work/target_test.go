package work

import (
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/chainhash/v2"
)

func TestTargetFromBits(t *testing.T) {
	tests := []struct {
		bits    uint32
		want    string // big-endian hex, "" for invalid
		wantErr string
	}{
		{0x1d00ffff, "00000000ffff0000000000000000000000000000000000000000000000000000", ""}, // genesis, diff 1
		{0x1a44b9f2, "00000000000044b9f20000000000000000000000000000000000000000000000", ""}, // block 125552
		{0x192495f8, "000000000000002495f800000000000000000000000000000000000000000000", ""}, // testnet 2442185 (GBT "target")
		{0x207fffff, "7fffff0000000000000000000000000000000000000000000000000000000000", ""}, // regtest
		{0x17034219, "0000000000000000000342190000000000000000000000000000000000000000", ""}, // block 840000
		{0x03123456, "0000000000000000000000000000000000000000000000000000000000123456", ""},
		{0x02123456, "0000000000000000000000000000000000000000000000000000000000001234", ""},
		{0x01123456, "0000000000000000000000000000000000000000000000000000000000000012", ""},
		{0x2100ffff, "ffff000000000000000000000000000000000000000000000000000000000000", ""},
		{0x01003456, "", "zero target"},
		{0x00000000, "", "zero target"},
		{0x04923456, "", "negative"},
		{0x1d80ffff, "", "negative"},
		{0x2101ffff, "", "overflow"},
		{0x23000001, "", "overflow"},
		{0xff123456, "", "overflow"},
	}
	for _, tc := range tests {
		got := TargetFromBits(tc.bits)
		err := CheckBits(tc.bits)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("CheckBits(%08x) = %v, want %q", tc.bits, err, tc.wantErr)
			}
			if got != (Target{}) {
				t.Errorf("TargetFromBits(%08x) = %s, want zero", tc.bits, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("CheckBits(%08x): %v", tc.bits, err)
		}
		if got.String() != tc.want {
			t.Errorf("TargetFromBits(%08x) = %s, want %s", tc.bits, got, tc.want)
		}
	}
}

func TestTargetFromDiff(t *testing.T) {
	tests := []struct {
		diff float64
		want string
	}{
		{1, "00000000ffff0000000000000000000000000000000000000000000000000000"},
		{2, "000000007fff8000000000000000000000000000000000000000000000000000"},
		{0.5, "00000001fffe0000000000000000000000000000000000000000000000000000"},
		{65536, "000000000000ffff000000000000000000000000000000000000000000000000"},
		// 0xFFFF is divisible by 3.
		{3, "0000000055550000000000000000000000000000000000000000000000000000"},
		{1.0 / 65536, "0000ffff00000000000000000000000000000000000000000000000000000000"},
		// 2^-32 * diff1 still fits; anything easier saturates.
		{math.Ldexp(1, -32), "ffff000000000000000000000000000000000000000000000000000000000000"},
		{1e-30, strings.Repeat("ff", 32)},
		{math.SmallestNonzeroFloat64, strings.Repeat("ff", 32)},
		{1e300, strings.Repeat("00", 32)},
		// Invalid difficulties fail closed: nothing meets the zero target.
		{0, strings.Repeat("00", 32)},
		{-1, strings.Repeat("00", 32)},
		{math.NaN(), strings.Repeat("00", 32)},
		{math.Inf(1), strings.Repeat("00", 32)},
	}
	for _, tc := range tests {
		if got := TargetFromDiff(tc.diff); got.String() != tc.want {
			t.Errorf("TargetFromDiff(%v) = %s, want %s", tc.diff, got, tc.want)
		}
	}
	// Against exact big-number arithmetic for awkward values.
	for _, d := range []float64{1.5, 7, 1000.3, 669.87, 1e-3, 123456789.123, 86388558925171.02} {
		got := TargetFromDiff(d)
		exact, _ := new(big.Float).SetPrec(2000).Quo(new(big.Float).SetPrec(2000).SetInt(diff1Int), big.NewFloat(d)).Int(nil)
		var want Target
		exact.FillBytes(want[:])
		if got != want {
			t.Errorf("TargetFromDiff(%v) = %s, exact %s", d, got, want)
		}
		if back := got.Diff(); math.Abs(back-d)/d > 1e-9 {
			t.Errorf("TargetFromDiff(%v).Diff() = %v", d, back)
		}
	}
}

func TestValidDiff(t *testing.T) {
	for _, d := range []float64{1, 0.001, 1e-300, 1e15, math.MaxFloat64} {
		if err := ValidDiff(d); err != nil {
			t.Errorf("ValidDiff(%v) = %v", d, err)
		}
	}
	for _, d := range []float64{0, math.Copysign(0, -1), -1, math.NaN(), math.Inf(1), math.Inf(-1)} {
		if err := ValidDiff(d); !errors.Is(err, ErrInvalidDiff) {
			t.Errorf("ValidDiff(%v) = %v, want ErrInvalidDiff", d, err)
		}
	}
}

func TestDiffFromHash(t *testing.T) {
	tests := []struct {
		hash string // display order
		want float64
	}{
		{"00000000ffff0000000000000000000000000000000000000000000000000000", 1},
		{"000000007fff8000000000000000000000000000000000000000000000000000", 2},
		// Genesis block hash: difficulty it achieved.
		{"000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f", 2536.4263},
		{"00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d", 35987218905.5087},
	}
	for _, tc := range tests {
		h := mustHash(t, tc.hash)
		got := DiffFromHash(&h)
		if math.Abs(got-tc.want)/tc.want > 1e-4 {
			t.Errorf("DiffFromHash(%s) = %v, want %v", tc.hash, got, tc.want)
		}
	}
	var zero chainhash.Hash
	if d := DiffFromHash(&zero); !math.IsInf(d, 1) {
		t.Errorf("DiffFromHash(0) = %v", d)
	}
}

func TestMeets(t *testing.T) {
	target := TargetFromBits(0x1d00ffff)
	tests := []struct {
		hash string
		want bool
	}{
		{"00000000ffff0000000000000000000000000000000000000000000000000000", true}, // equal
		{"00000000ffff0000000000000000000000000000000000000000000000000001", false},
		{"00000000fffeffffffffffffffffffffffffffffffffffffffffffffffffffff", true},
		{"0000000100000000000000000000000000000000000000000000000000000000", false},
		{"000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f", true},
		{"ff00000000000000000000000000000000000000000000000000000000000000", false},
		{"0000000000000000000000000000000000000000000000000000000000000000", true},
	}
	for _, tc := range tests {
		h := mustHash(t, tc.hash)
		if got := target.Meets(&h); got != tc.want {
			t.Errorf("Meets(%s) = %v, want %v", tc.hash, got, tc.want)
		}
	}
	var zero Target
	h := mustHash(t, "0000000000000000000000000000000000000000000000000000000000000001")
	if zero.Meets(&h) {
		t.Error("zero target met by a non-zero hash")
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = target.Meets(&h) }); allocs != 0 {
		t.Errorf("Meets allocates %v times", allocs)
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = DiffFromHash(&h) }); allocs != 0 {
		t.Errorf("DiffFromHash allocates %v times", allocs)
	}
}
