package work

import (
	"testing"

	"github.com/btcsuite/btcd/chaincfg/v2"
)

func TestSubsidy(t *testing.T) {
	for _, tc := range []struct {
		height int64
		params *chaincfg.Params
		want   int64
	}{
		{0, &chaincfg.MainNetParams, 50e8},
		{209_999, &chaincfg.MainNetParams, 50e8},
		{210_000, &chaincfg.MainNetParams, 25e8},
		{420_000, &chaincfg.MainNetParams, 12.5e8},
		{630_000, &chaincfg.MainNetParams, 6.25e8},
		{839_999, &chaincfg.MainNetParams, 6.25e8},
		{840_000, &chaincfg.MainNetParams, 3.125e8},
		{900_000, &chaincfg.MainNetParams, 312_500_000},
		{1_050_000, &chaincfg.MainNetParams, 156_250_000},
		// 32 halvings: 5e9 >> 32 = 1 satoshi; 33: 0.
		{32 * 210_000, &chaincfg.MainNetParams, 1},
		{33 * 210_000, &chaincfg.MainNetParams, 0},
		{64 * 210_000, &chaincfg.MainNetParams, 0},
		{1 << 40, &chaincfg.MainNetParams, 0},
		{-5, &chaincfg.MainNetParams, 50e8},
		// Regtest halves every 150 blocks.
		{149, &chaincfg.RegressionNetParams, 50e8},
		{150, &chaincfg.RegressionNetParams, 25e8},
		{440, &chaincfg.RegressionNetParams, 12.5e8},
		{64 * 150, &chaincfg.RegressionNetParams, 0},
		{63 * 150, &chaincfg.RegressionNetParams, 0},
		// 4,000,000 / 210,000 = 19 halvings: 5e9 >> 19 = 9536 (floor of 9536.7).
		{4_000_000, &chaincfg.TestNet4Params, 9536},
		{210_000, &chaincfg.TestNet4Params, 25e8},
	} {
		if got := Subsidy(tc.height, tc.params); got != tc.want {
			t.Errorf("Subsidy(%d, %s) = %d, want %d", tc.height, tc.params.Name, got, tc.want)
		}
	}
}
