package config

import (
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/wattpool/wattpool/shares/payout"
)

// PayoutsFile is the [payouts] table: how found blocks and shares are paid
// (README "What finance reconciles").
type PayoutsFile struct {
	// Scheme is pplns, tides, prop, pps or fpps.
	Scheme string `toml:"scheme"`
	// FeeBps is the pool fee in basis points of the block reward (or of
	// each share's pps value), 0..10000.
	FeeBps int64 `toml:"fee_bps"`
	// PPLNSWindow is pplns's N: a difficulty ("5e12") or a multiple of
	// the block's network difficulty ("2x").
	PPLNSWindow string `toml:"pplns_window"`
	// FPPSFeeBlocks is how many of the newest templates' fees fpps
	// averages.
	FPPSFeeBlocks int64 `toml:"fpps_fee_blocks"`
	// PayoutThresholdSats is the smallest balance a payment batch pays.
	PayoutThresholdSats int64 `toml:"payout_threshold_sats"`
	// EffectiveFrom (RFC 3339, a whole UTC hour) is when this set takes
	// over from the one the ledger has: a change needs a future one.
	EffectiveFrom string `toml:"effective_from"`
}

// PayoutsConfig is the validated [payouts] table.
type PayoutsConfig struct {
	payout.Params
	// EffectiveFrom is zero when not stated.
	EffectiveFrom time.Time
	ThresholdSats int64
	// Network is bitcoin.network: the subsidy schedule and what an
	// address is, for crediting and paying.
	Network *chaincfg.Params
}

// Payout defaults: PPLNS over twice the network difficulty, no fee, fpps
// over a day of blocks, payments from 0.001 BTC.
const (
	DefaultPayoutScheme    = "pplns"
	DefaultPPLNSWindow     = "2x"
	DefaultFPPSFeeBlocks   = 144
	DefaultPayoutThreshold = 100_000
)

func defaultPayouts() PayoutsFile {
	return PayoutsFile{Scheme: DefaultPayoutScheme, FeeBps: 0, PPLNSWindow: DefaultPPLNSWindow,
		FPPSFeeBlocks: DefaultFPPSFeeBlocks, PayoutThresholdSats: DefaultPayoutThreshold}
}

// payouts validates [payouts] within the whole configuration.
func (v *validator) payouts(f *File, c *Config) {
	c.Payouts = v.payoutsTable(&f.Payouts)
	c.Payouts.Network = c.Network
}

// payoutsTable validates the [payouts] table on its own.
func (v *validator) payoutsTable(p *PayoutsFile) PayoutsConfig {
	var c PayoutsConfig
	scheme, err := payout.ParseScheme(p.Scheme)
	if err != nil {
		v.errorf("payouts.scheme", "%v", err)
	}
	c.Scheme = scheme
	if p.FeeBps < 0 || p.FeeBps > payout.MaxFeeBps {
		v.errorf("payouts.fee_bps", "%d is out of range [0, %d] (basis points: 100 is 1%%)", p.FeeBps, payout.MaxFeeBps)
	}
	c.FeeBps = p.FeeBps
	w, err := payout.ParseWindowSize(p.PPLNSWindow)
	if err != nil {
		v.errorf("payouts.pplns_window", "%v", err)
	}
	c.Window = w
	if p.FPPSFeeBlocks < 1 || p.FPPSFeeBlocks > 10_000 {
		v.errorf("payouts.fpps_fee_blocks", "%d is out of range [1, 10000] (blocks whose template fees fpps averages)", p.FPPSFeeBlocks)
	}
	c.FPPSFeeBlocks = p.FPPSFeeBlocks
	if p.PayoutThresholdSats < payout.DustSats {
		v.errorf("payouts.payout_threshold_sats", "%d is below the dust limit %d sats", p.PayoutThresholdSats, payout.DustSats)
	}
	c.ThresholdSats = p.PayoutThresholdSats
	if p.EffectiveFrom != "" {
		t, err := time.Parse(time.RFC3339, p.EffectiveFrom)
		switch {
		case err != nil:
			v.errorf("payouts.effective_from", "%q is not an RFC 3339 time such as 2031-04-01T00:00:00Z", p.EffectiveFrom)
		case !t.Equal(t.Truncate(time.Hour)):
			v.errorf("payouts.effective_from", "%q is not a whole UTC hour (pps and fpps credit whole hours)", p.EffectiveFrom)
		default:
			c.EffectiveFrom = t.UTC()
		}
	}
	return c
}

// LoadPayouts reads the configuration file at path as strictly as Load
// (unknown keys anywhere are errors) but validates only [payouts] and
// bitcoin.network: the payout commands need the database, not a node or a
// payout address. lookup (nil: none) applies the WATTPOOL_* variables as
// Load does.
func LoadPayouts(path string, lookup func(string) (string, bool)) (*PayoutsConfig, error) {
	f, errs, _ := decodeFile(path)
	if len(errs) > 0 {
		return nil, errs
	}
	v := &validator{}
	if lookup != nil {
		from, envErrs := ApplyEnv(&f, lookup)
		v.from = from
		for _, e := range envErrs {
			v.errs = append(v.errs, e)
		}
	}
	c := v.payoutsTable(&f.Payouts)
	c.Network = Networks[f.Bitcoin.Network]
	if c.Network == nil {
		v.errorf("bitcoin.network", "%q: want mainnet, testnet, testnet4, signet, regtest or simnet", f.Bitcoin.Network)
	}
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return &c, nil
}
