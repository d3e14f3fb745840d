package work

import "github.com/btcsuite/btcd/chaincfg/v2"

// baseSubsidySats is the first epoch's block subsidy, 50 BTC.
const baseSubsidySats int64 = 50 * 1e8

// maxHalvings is the halving count from which the subsidy is zero: 50 BTC
// shifted right 64 times (and a Go shift of an int64 by 64 or more would
// not be zero for negative values, nor portable in intent).
const maxHalvings = 64

// Subsidy returns the block subsidy in satoshis at height on params'
// halving schedule (SubsidyReductionInterval: 210,000 blocks on mainnet,
// 150 on regtest). It is computed in integers, as consensus does: the
// allocator's hashprice and the payout ledger's pps credits both start
// from it. A negative height is treated as 0 and a network without
// halvings pays 50 BTC forever.
func Subsidy(height int64, params *chaincfg.Params) (sats int64) {
	if height < 0 {
		height = 0
	}
	interval := int64(params.SubsidyReductionInterval)
	if interval <= 0 {
		return baseSubsidySats
	}
	halvings := height / interval
	if halvings >= maxHalvings {
		return 0
	}
	return baseSubsidySats >> uint(halvings)
}
