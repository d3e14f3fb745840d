package allocator

import (
	"math"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/v2"
)

// TestSubsidyBTC: the allocator's bitcoin view of work.Subsidy (whose
// own table is in stratum/work).
func TestSubsidyBTC(t *testing.T) {
	if got := SubsidyBTC(840_000, &chaincfg.MainNetParams); got != 3.125 {
		t.Errorf("SubsidyBTC(840000) = %v, want 3.125", got)
	}
	if got := SubsidyBTC(440, &chaincfg.RegressionNetParams); got != 12.5 {
		t.Errorf("SubsidyBTC(440, regtest) = %v, want 12.5", got)
	}
}

func econNear(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

func TestHashprice(t *testing.T) {
	// Block 840,000 (the fourth halving, 2024-04-20): difficulty
	// 86,388,558,925,171.02, subsidy 3.125 BTC; at $64,000 and no fees,
	// 1e15 × 86400 × 3.125 × 64000 / (86388558925171.02 × 4294967296)
	// = 1.728e25 / 3.710349...e23 = 46.5722958... $/PH/day.
	m := Market{BTCUSD: 64000, NetworkDifficulty: 86388558925171.02, SubsidyBTC: SubsidyBTC(840_000, &chaincfg.MainNetParams)}
	if got, want := HashpriceUSDPerPHDay(m), 46.57229582708776; !econNear(got, want, 1e-12) {
		t.Errorf("hashprice = %.12f, want %.12f", got, want)
	}
	// Fees add to the subsidy: 3.125 + 0.375 = 3.5 BTC is 3.5/3.125 = 1.12 times as much.
	m.FeesBTCPerBlock = 0.375
	if got, want := HashpriceUSDPerPHDay(m), 46.57229582708776*1.12; !econNear(got, want, 1e-12) {
		t.Errorf("hashprice with fees = %.12f, want %.12f", got, want)
	}
	// A difficulty of 86400e15 / 2^32 makes the hashprice (subsidy + fees) × btc_usd.
	unit := Market{BTCUSD: 30, SubsidyBTC: 1.5, FeesBTCPerBlock: 0.5, NetworkDifficulty: 86400e15 / (1 << 32)}
	if got := HashpriceUSDPerPHDay(unit); !econNear(got, 60, 1e-15) {
		t.Errorf("hashprice = %v, want 60", got)
	}
	if got := HashpriceUSDPerPHDay(Market{BTCUSD: 1, SubsidyBTC: 1}); got != 0 {
		t.Errorf("hashprice at difficulty 0 = %v, want 0", got)
	}
}

func TestMiningValueWorkedExample(t *testing.T) {
	// The README's worked example: HP $45/PH/day, E = 17.5 J/TH, fee 2 %:
	// 45 / (0.024 × 17.5) × 0.98 = 45 / 0.42 × 0.98 = 105.00 $/MWh before energy.
	if got := MiningGrossUSDPerMWh(45, 17.5, 200); !econNear(got, 105, 1e-12) {
		t.Errorf("gross mining value = %v, want 105", got)
	}
	// Energy at $40/MWh leaves 65.
	if got := MiningUSDPerMWh(45, 17.5, 200, 40); !econNear(got, 65, 1e-12) {
		t.Errorf("mining value = %v, want 65", got)
	}
	// A group of 350 kW and 20,000 TH/s is 17.5 J/TH.
	g := Group{Name: "rack1", PowerKW: 350, HashrateTHs: 20000}
	if got := g.JoulesPerTH(); got != 17.5 {
		t.Errorf("J/TH = %v, want 17.5", got)
	}
	// No pool fee: 45 / 0.42 = 107.142857...
	if got := MiningGrossUSDPerMWh(45, 17.5, 0); !econNear(got, 107.14285714285714, 1e-12) {
		t.Errorf("gross without fee = %v", got)
	}
	// The whole fee: nothing kept.
	if got := MiningGrossUSDPerMWh(45, 17.5, 10000); got != 0 {
		t.Errorf("gross at 100%% fee = %v, want 0", got)
	}
}

func TestLeasedValue(t *testing.T) {
	if got := LeasedUSDPerMWh(120, 45, true); got != 75 {
		t.Errorf("operator pays: %v, want 120 - 45 = 75", got)
	}
	if got := LeasedUSDPerMWh(120, 45, false); got != 120 {
		t.Errorf("tenant pays: %v, want 120", got)
	}
}

func TestLeaseUnits(t *testing.T) {
	for _, tc := range []struct {
		price float64
		unit  string
		want  float64
		err   string
	}{
		{120, "usd_per_mwh", 120, ""},
		// $73/kW-month = 73 × 1000 / 730 = $100/MWh.
		{73, "usd_per_kw_month", 100, ""},
		// $876,000/MW-year = 876000 / 8760 = $100/MWh.
		{876000, "usd_per_mw_year", 100, ""},
		{0, "usd_per_mwh", 0, ""},
		{1, "usd_per_kwh", 0, `lease unit "usd_per_kwh"`},
		{math.NaN(), "usd_per_mwh", 0, "not a finite number"},
		{math.Inf(1), "usd_per_kw_month", 0, "not a finite number"},
	} {
		got, err := LeaseUSDPerMWh(tc.price, tc.unit)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("LeaseUSDPerMWh(%v, %q) = %v, %v; want error %q", tc.price, tc.unit, got, err, tc.err)
			}
		case err != nil || !econNear(got, tc.want, 1e-12):
			t.Errorf("LeaseUSDPerMWh(%v, %q) = %v, %v; want %v", tc.price, tc.unit, got, err, tc.want)
		}
	}
}
