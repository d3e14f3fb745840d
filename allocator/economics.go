package allocator

import (
	"fmt"
	"math"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/wattpool/wattpool/stratum/work"
)

// SatsPerBTC converts the chain's integer satoshis to bitcoin.
const SatsPerBTC = 1e8

// SubsidyBTC is work.Subsidy in bitcoin, the unit Market carries.
func SubsidyBTC(height int64, params *chaincfg.Params) float64 {
	return float64(work.Subsidy(height, params)) / SatsPerBTC
}

// diff1Hashes is 2^32, the expected hashes per unit of difficulty.
const diff1Hashes = 1 << 32

// HashpriceUSDPerPHDay is what one PH/s earns in a day at m's prices:
// 1e15 × 86400 × (subsidy + fees per block) × btc_usd / (difficulty × 2^32).
// A block is found every difficulty × 2^32 hashes in expectation, so this is
// the expected revenue of 1e15 hashes a second for 86,400 seconds. It is 0
// when the difficulty is not positive (no meaningful market).
func HashpriceUSDPerPHDay(m Market) float64 {
	if !(m.NetworkDifficulty > 0) {
		return 0
	}
	return 1e15 * 86400 * (m.SubsidyBTC + m.FeesBTCPerBlock) * m.BTCUSD / (m.NetworkDifficulty * diff1Hashes)
}

// MiningGrossUSDPerMWh is what a megawatt-hour of mining earns before
// energy: hashprice / (0.024 × E) × (1 − pool fee). A machine of E J/TH
// draws E × 1000 W per PH/s, i.e. 0.024 × E MWh per PH-day; the pool fee
// is the share of revenue the site does not keep (0 on its own pool).
func MiningGrossUSDPerMWh(hashpriceUSDPerPHDay, joulesPerTH float64, poolFeeBps int) float64 {
	if !(joulesPerTH > 0) {
		return 0
	}
	return hashpriceUSDPerPHDay / (0.024 * joulesPerTH) * (1 - float64(poolFeeBps)/10000)
}

// MiningUSDPerMWh is the mining value per MWh: the gross mining revenue
// less the energy it burns.
func MiningUSDPerMWh(hashpriceUSDPerPHDay, joulesPerTH float64, poolFeeBps int, energyUSDPerMWh float64) float64 {
	return MiningGrossUSDPerMWh(hashpriceUSDPerPHDay, joulesPerTH, poolFeeBps) - energyUSDPerMWh
}

// LeasedUSDPerMWh is the curtailed value per MWh of a group whose power the
// lease takes: the lease price, less the energy the tenant burns when the
// operator pays for it. The lease's room (max_mw) is the policy's concern:
// a group it has no room for earns 0 (idle) instead.
func LeasedUSDPerMWh(leaseUSDPerMWh, energyUSDPerMWh float64, operatorPaysEnergy bool) float64 {
	if operatorPaysEnergy {
		return leaseUSDPerMWh - energyUSDPerMWh
	}
	return leaseUSDPerMWh
}

// Lease price units (allocator.lease.unit).
const (
	UnitUSDPerMWh     = "usd_per_mwh"
	UnitUSDPerKWMonth = "usd_per_kw_month"
	UnitUSDPerMWYear  = "usd_per_mw_year"
)

// HoursPerMonth and HoursPerYear are the conventions the lease units use:
// a kW-month of 730 hours is 0.73 MWh, a MW-year of 8760 hours 8760 MWh.
const (
	HoursPerMonth = 730
	HoursPerYear  = 8760
)

// LeaseUSDPerMWh converts a lease price given in unit to dollars per MWh:
// usd_per_mwh as is, usd_per_kw_month × 1000 / 730, usd_per_mw_year / 8760.
// Tenants quote capacity (per kW-month, per MW-year) while the allocator
// compares energy, so the price is spread over every hour of the period.
func LeaseUSDPerMWh(price float64, unit string) (float64, error) {
	if math.IsNaN(price) || math.IsInf(price, 0) {
		return 0, fmt.Errorf("lease price %v is not a finite number", price)
	}
	switch unit {
	case UnitUSDPerMWh:
		return price, nil
	case UnitUSDPerKWMonth:
		return price * 1000 / HoursPerMonth, nil
	case UnitUSDPerMWYear:
		return price / HoursPerYear, nil
	}
	return 0, fmt.Errorf("lease unit %q: want %s, %s or %s", unit, UnitUSDPerMWh, UnitUSDPerKWMonth, UnitUSDPerMWYear)
}
