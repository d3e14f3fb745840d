package allocator

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
)

// Price CSV columns (ReadPrices).
const (
	ColTime       = "time"
	ColBTCUSD     = "btc_usd"
	ColDifficulty = "network_difficulty"
	ColEnergy     = "energy_usd_per_mwh"
	ColLease      = "lease_usd_per_mwh"
	ColFees       = "fees_btc_per_block"
	ColHeight     = "height"
)

// DefaultHeight is the block height a price series without a height column
// is priced at: 900,000, in mainnet's fifth subsidy epoch (blocks 840,000 to
// 1,049,999, April 2024 to about 2028), whose subsidy is 3.125 BTC.
const DefaultHeight = 900_000

// Bounds beyond which a price row is taken for a mistake (a unit slip, a
// shifted column) rather than a market.
const (
	MaxBTCUSD          = 1e8
	MaxDifficulty      = 1e20
	MaxUSDPerMWh       = 1e5
	MaxFeesBTCPerBlock = 1000
	MaxHeight          = 100_000_000
)

// PriceOptions completes the rows ReadPrices reads.
type PriceOptions struct {
	// Network gives the halving schedule the subsidy follows; nil is
	// mainnet (the markets a price series records are mainnet's).
	Network *chaincfg.Params
	// LeaseUSDPerMWh is the configured lease price, for a series without
	// a lease_usd_per_mwh column.
	LeaseUSDPerMWh float64
}

// column describes one CSV column ReadPrices knows.
type column struct {
	name     string
	required bool
	max      float64
	// positive: 0 is as wrong as a negative value (a price of bitcoin,
	// a difficulty); otherwise 0 is allowed.
	positive bool
}

// Indexes into priceColumns.
const (
	kTime = iota
	kBTCUSD
	kDifficulty
	kEnergy
	kLease
	kFees
	kHeight
)

var priceColumns = [...]column{
	{name: ColTime, required: true},
	{name: ColBTCUSD, required: true, max: MaxBTCUSD, positive: true},
	{name: ColDifficulty, required: true, max: MaxDifficulty, positive: true},
	{name: ColEnergy, required: true, max: MaxUSDPerMWh},
	{name: ColLease, max: MaxUSDPerMWh},
	{name: ColFees, max: MaxFeesBTCPerBlock},
	{name: ColHeight, max: MaxHeight},
}

// ReadPrices reads a price series: a CSV file whose header names its
// columns in any order. time (RFC 3339), btc_usd, network_difficulty and
// energy_usd_per_mwh are required; lease_usd_per_mwh (default: the
// configured lease price), fees_btc_per_block (default 0) and height
// (default DefaultHeight) are optional; any other column is an error, so
// that a misspelt optional column is never silently ignored. Each row
// holds from its time until the next row's, so times must strictly
// increase. Errors name the line and the column. NaN, infinite, negative
// and absurd values (above the Max* bounds) are rejected.
func ReadPrices(r io.Reader, opt PriceOptions) ([]Market, error) {
	network := opt.Network
	if network == nil {
		network = &chaincfg.MainNetParams
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("prices: empty file: want a header line naming the columns")
	}
	if err != nil {
		return nil, fmt.Errorf("prices: header: %w", err)
	}
	// idx[k] is the record index of priceColumns[k], or -1.
	idx := make([]int, len(priceColumns))
	for k := range idx {
		idx[k] = -1
	}
	for j, h := range header {
		name := strings.TrimSpace(h)
		if j == 0 {
			name = strings.TrimPrefix(name, "\ufeff") // a spreadsheet's byte-order mark
		}
		k := columnIndex(name)
		if k < 0 {
			return nil, fmt.Errorf("prices line 1, column %d: unknown column %q (want %s)", j+1, name, columnNames())
		}
		if idx[k] >= 0 {
			return nil, fmt.Errorf("prices line 1, column %d: column %q appears twice", j+1, name)
		}
		idx[k] = j
	}
	for k, c := range priceColumns {
		if c.required && idx[k] < 0 {
			return nil, fmt.Errorf("prices line 1: no %q column (want %s)", c.name, columnNames())
		}
	}

	var rows []Market
	var values [len(priceColumns)]float64
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("prices: %w", err)
		}
		line, _ := cr.FieldPos(0)
		tcol := idx[kTime]
		ts := strings.TrimSpace(rec[tcol])
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return nil, fmt.Errorf("prices line %d, column %s: %q is not an RFC 3339 time (e.g. 2026-01-01T00:00:00Z)", line, ColTime, ts)
		}
		if n := len(rows); n > 0 && !t.After(rows[n-1].Time) {
			return nil, fmt.Errorf("prices line %d, column %s: %s is not after the previous row's %s (rows must strictly increase in time)",
				line, ColTime, ts, rows[n-1].Time.Format(time.RFC3339))
		}
		for k := kTime + 1; k < len(priceColumns); k++ {
			values[k] = 0
			if idx[k] < 0 {
				continue
			}
			c := &priceColumns[k]
			v, err := parseValue(strings.TrimSpace(rec[idx[k]]), c)
			if err != nil {
				return nil, fmt.Errorf("prices line %d, column %s: %w", line, c.name, err)
			}
			values[k] = v
		}
		m := Market{
			Time:              t.UTC(),
			BTCUSD:            values[kBTCUSD],
			NetworkDifficulty: values[kDifficulty],
			EnergyUSDPerMWh:   values[kEnergy],
			LeaseUSDPerMWh:    opt.LeaseUSDPerMWh,
			FeesBTCPerBlock:   values[kFees],
			Height:            DefaultHeight,
		}
		if idx[kLease] >= 0 {
			m.LeaseUSDPerMWh = values[kLease]
		}
		if idx[kHeight] >= 0 {
			m.Height = int64(values[kHeight])
		}
		m.SubsidyBTC = SubsidyBTC(m.Height, network)
		rows = append(rows, m)
	}
	if len(rows) == 0 {
		return nil, errors.New("prices: no rows after the header")
	}
	return rows, nil
}

func columnIndex(name string) int {
	for k, c := range priceColumns {
		if c.name == name {
			return k
		}
	}
	return -1
}

func columnNames() string {
	names := make([]string, len(priceColumns))
	for k, c := range priceColumns {
		names[k] = c.name
	}
	return strings.Join(names, ", ")
}

func parseValue(s string, c *column) (float64, error) {
	if c.name == ColHeight {
		h, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a block height (a whole number)", s)
		}
		if h < 0 || h > MaxHeight {
			return 0, fmt.Errorf("%d is outside [0, %d]", h, MaxHeight)
		}
		return float64(h), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if s == "" {
			return 0, errors.New("empty: want a number")
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("%s is not a finite number", s)
	case v < 0:
		return 0, fmt.Errorf("%s is negative", s)
	case c.positive && v == 0:
		return 0, fmt.Errorf("%s: want a number above 0", s)
	case v > c.max:
		return 0, fmt.Errorf("%s is absurd (above %g)", s, c.max)
	}
	return v, nil
}

// Totals are what a backtest adds up, for one group or the whole site.
type Totals struct {
	HoursMining    float64 `json:"hours_mining"`
	HoursCurtailed float64 `json:"hours_curtailed"`
	Switches       int     `json:"switches"`
	MWhMining      float64 `json:"mwh_mining"`
	// MWhCurtailed counts every curtailed hour, idle ones included: the
	// energy the group did not mine with.
	MWhCurtailed float64 `json:"mwh_curtailed"`
	// MarginUSD is what the policy earned net of energy: mining hours at
	// the mining value, leased hours at the curtailed value, idle hours 0.
	MarginUSD float64 `json:"margin_usd"`
	// MiningOnlyMarginUSD is what mining every hour would have earned.
	MiningOnlyMarginUSD float64 `json:"mining_only_margin_usd"`
	// LeaseOnlyMarginUSD is what leasing every hour would have earned,
	// lease capacity (max_mw) ignored.
	LeaseOnlyMarginUSD float64 `json:"lease_only_margin_usd"`
}

func (t *Totals) add(o *Totals) {
	t.HoursMining += o.HoursMining
	t.HoursCurtailed += o.HoursCurtailed
	t.Switches += o.Switches
	t.MWhMining += o.MWhMining
	t.MWhCurtailed += o.MWhCurtailed
	t.MarginUSD += o.MarginUSD
	t.MiningOnlyMarginUSD += o.MiningOnlyMarginUSD
	t.LeaseOnlyMarginUSD += o.LeaseOnlyMarginUSD
}

// GroupResult is one group's backtest.
type GroupResult struct {
	Name string `json:"name"`
	Totals
}

// Result is a backtest's outcome; its JSON shape is pinned:
// {"groups": [...], "total": {...}}.
type Result struct {
	// Groups in configuration order.
	Groups []GroupResult `json:"groups"`
	// Total sums the groups.
	Total Totals `json:"total"`
}

// Backtest replays the pinned policy (the same evaluation as the live
// loop) over a price series: every group starts mining at the first row,
// each row is decided at its time and holds until the next row's, and the
// last row only closes the series. p must be valid (the configuration
// checks it); rows must strictly increase in time.
func Backtest(p *Params, rows []Market) (Result, error) {
	if len(rows) < 2 {
		return Result{}, fmt.Errorf("backtest: %d price row(s): want at least 2 (each row holds until the next; the last closes the series)", len(rows))
	}
	if len(p.Groups) == 0 {
		return Result{}, errors.New("backtest: no [[allocator.group]] to allocate")
	}
	n := len(p.Groups)
	states := make([]GroupState, n)
	for i := range states {
		states[i] = GroupState{State: Mining, LastSwitch: rows[0].Time}
	}
	lookup := func(i int, _ string) (GroupState, bool) { return states[i], true }
	res := Result{Groups: make([]GroupResult, n)}
	for i, g := range p.Groups {
		res.Groups[i].Name = g.Name
	}
	var e evaluator
	for r := 0; r+1 < len(rows); r++ {
		m := rows[r]
		hours := rows[r+1].Time.Sub(m.Time).Hours()
		if !(hours > 0) {
			return Result{}, fmt.Errorf("backtest: row %d at %s is not before row %d at %s", r, m.Time.Format(time.RFC3339), r+1, rows[r+1].Time.Format(time.RFC3339))
		}
		leased := LeasedUSDPerMWh(m.LeaseUSDPerMWh, m.EnergyUSDPerMWh, p.Lease.OperatorPaysEnergy)
		dec := e.evaluate(p, m, lookup)
		for i := range dec {
			d := &dec[i]
			gr := &res.Groups[i].Totals
			mwh := p.Groups[i].PowerKW * hours / 1000
			if d.After == Mining {
				gr.HoursMining += hours
				gr.MWhMining += mwh
				gr.MarginUSD += d.MiningUSDPerMWh * mwh
			} else {
				gr.HoursCurtailed += hours
				gr.MWhCurtailed += mwh
				if !d.Idle {
					gr.MarginUSD += d.CurtailedUSDPerMWh * mwh
				}
			}
			gr.MiningOnlyMarginUSD += d.MiningUSDPerMWh * mwh
			gr.LeaseOnlyMarginUSD += leased * mwh
			if d.Switched() {
				gr.Switches++
				states[i] = GroupState{State: d.After, LastSwitch: m.Time}
			}
		}
	}
	for i := range res.Groups {
		res.Total.add(&res.Groups[i].Totals)
	}
	return res, nil
}
