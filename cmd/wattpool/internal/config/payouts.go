package config

import (
	"fmt"
	"os"

	"github.com/wattpool/wattpool/shares/payout"
)

// PayoutsFile is the [payouts] table: how a found block's reward is split
// among the accounts that earned it (`wattpool payouts explain`).
type PayoutsFile struct {
	// Scheme is pplns, tides or prop (pps, fpps and solo come later).
	Scheme string `toml:"scheme"`
	// FeeBps is the pool fee in basis points of the block reward,
	// 0..10000.
	FeeBps int64 `toml:"fee_bps"`
	// PPLNSWindow is pplns's N: a difficulty ("5e12") or a multiple of
	// the block's network difficulty ("2x").
	PPLNSWindow string `toml:"pplns_window"`
}

// PayoutsConfig is the validated [payouts] table.
type PayoutsConfig = payout.Params

// Payout defaults: PPLNS over twice the network difficulty, no fee.
const (
	DefaultPayoutScheme = "pplns"
	DefaultPPLNSWindow  = "2x"
)

func defaultPayouts() PayoutsFile {
	return PayoutsFile{Scheme: DefaultPayoutScheme, FeeBps: 0, PPLNSWindow: DefaultPPLNSWindow}
}

// payouts validates [payouts] within the whole configuration.
func (v *validator) payouts(f *File, c *Config) {
	c.Payouts = v.payoutsTable(&f.Payouts)
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
	return c
}

// LoadPayouts reads the configuration file at path as strictly as Load
// (unknown keys anywhere are errors) but validates only [payouts]:
// explaining a block needs the database, not a node or payout address.
func LoadPayouts(path string) (*PayoutsConfig, error) {
	f := Defaults()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, Errors{fmt.Errorf("read config file: %w", err)}
		}
		if err := decode(raw, &f); err != nil {
			errs, _ := decodeErrors(err)
			return nil, errs
		}
	}
	v := &validator{}
	c := v.payoutsTable(&f.Payouts)
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return &c, nil
}
