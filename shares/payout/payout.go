// Package payout splits a found block's reward among the accounts whose
// shares earned it, in integer satoshis, recomputed from raw share rows so
// that any result can be proven from the share log years later.
//
// The arithmetic is exact. Each stored share difficulty is a float64, an
// exact binary fraction, so difficulties are summed without rounding
// (big integers scaled by a power of two, handed out as big.Rat), never by
// float accumulation. For a block of R satoshis:
//
//	fee          = floor(R × fee_bps / 10000)
//	distributable = R − fee
//	credit(a)    = floor(distributable × d(a) / D)   for each account a
//	remainder    = distributable − Σ credit(a)       (to the pool's account)
//
// where d(a) is the difficulty account a has in the block's window and D
// their sum, so credits + fee + remainder = R exactly.
//
// Windows (all end at the block's found time, shares ordered by (time,
// share_id), newest first):
//
//   - pplns: the shares at or before the found time until their difficulty
//     reaches N (pplns_window: a difficulty, or "2x" = 2 × the network
//     difficulty of the block's job); the oldest share counts only in part
//     (N minus the difficulty of the newer ones); with fewer shares than
//     N, all of them count and the window is incomplete.
//   - tides: pplns with N = 8 × the network difficulty, as OCEAN runs it: a
//     share is paid for every block found while it stays in the window.
//   - prop: every share after the pool's previous block (the latest one
//     found before this one and not orphaned: an orphaned block's round
//     continues into the next) up to this block's found time. A share at
//     the very instant of the previous block belongs to that block's round.
package payout

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scheme names a payout scheme ([payouts] scheme).
type Scheme string

// The schemes. pplns, tides and prop split a found block's reward by its
// window; pps and fpps pay every share as it comes, by the hour (see
// pps.go), and leave found blocks to the pool. Solo mining is no scheme:
// a solo port's jobs pay the finder directly (stratum.ListenerConfig.Solo)
// and its shares and blocks are left out of every scheme.
const (
	PPLNS Scheme = "pplns"
	TIDES Scheme = "tides"
	PROP  Scheme = "prop"
	PPS   Scheme = "pps"
	FPPS  Scheme = "fpps"
)

// ParseScheme checks a scheme name.
func ParseScheme(s string) (Scheme, error) {
	switch Scheme(s) {
	case PPLNS, TIDES, PROP, PPS, FPPS:
		return Scheme(s), nil
	case "solo":
		return "", fmt.Errorf("payout scheme %q is not a scheme: solo mining is per port, [[stratum.listener]] solo = true, and its blocks pay the finder directly (schemes: pplns, tides, prop, pps, fpps)", s)
	}
	return "", fmt.Errorf("payout scheme %q is not one of pplns, tides, prop, pps, fpps", s)
}

// PerShare reports whether the scheme pays shares as they come (pps,
// fpps) rather than splitting found blocks.
func (s Scheme) PerShare() bool { return s == PPS || s == FPPS }

// WindowSize is a PPLNS window's difficulty N: a fixed difficulty, or a
// multiple of the network difficulty of the block's job (exactly one of
// Diff and Times is non-zero).
type WindowSize struct {
	Diff  float64
	Times float64
}

// TidesWindow is the window TIDES uses: 8 × the network difficulty.
var TidesWindow = WindowSize{Times: 8}

// ParseWindowSize parses pplns_window: a positive finite difficulty such
// as "5e12", or a positive finite multiple of the block's network
// difficulty such as "2x".
func ParseWindowSize(s string) (WindowSize, error) {
	if s == "" {
		return WindowSize{}, errors.New("window size is empty (want a difficulty such as 5e12, or a multiple such as 2x)")
	}
	num, times := strings.CutSuffix(s, "x")
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) || strings.ContainsAny(num, "xXpP_") {
		return WindowSize{}, fmt.Errorf("window size %q is not a finite decimal number (or a multiple such as 2x)", s)
	}
	if v <= 0 {
		return WindowSize{}, fmt.Errorf("window size %q must be positive", s)
	}
	if times {
		return WindowSize{Times: v}, nil
	}
	return WindowSize{Diff: v}, nil
}

// String prints the size as ParseWindowSize reads it.
func (w WindowSize) String() string {
	if w.Times != 0 {
		return strconv.FormatFloat(w.Times, 'g', -1, 64) + "x"
	}
	return strconv.FormatFloat(w.Diff, 'g', -1, 64)
}

// Relative reports whether the size is a multiple of the network
// difficulty (and so needs the block's job).
func (w WindowSize) Relative() bool { return w.Times != 0 }

// N returns the window's difficulty exactly: Diff, or Times × networkDiff
// (the product of two float64 values, kept exact).
func (w WindowSize) N(networkDiff float64) (*big.Rat, error) {
	if w.Times == 0 {
		if !(w.Diff > 0) || math.IsInf(w.Diff, 0) {
			return nil, fmt.Errorf("window difficulty %v must be positive and finite", w.Diff)
		}
		return new(big.Rat).SetFloat64(w.Diff), nil
	}
	if !(w.Times > 0) || math.IsInf(w.Times, 0) {
		return nil, fmt.Errorf("window multiple %v must be positive and finite", w.Times)
	}
	if !(networkDiff > 0) || math.IsInf(networkDiff, 0) {
		return nil, fmt.Errorf("network difficulty %v must be positive and finite", networkDiff)
	}
	n := new(big.Rat).SetFloat64(w.Times)
	return n.Mul(n, new(big.Rat).SetFloat64(networkDiff)), nil
}

// Share is one share row as a payout reads it.
type Share struct {
	Time time.Time
	// ID is the share_id: it orders shares of the same instant.
	ID              [16]byte
	Account, Worker string
	// Diff is the difficulty the share was credited at.
	Diff float64
}

// newer reports whether a comes after b in (time, share_id) order.
func newer(a, b *Share) bool {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c > 0
	}
	return string(a.ID[:]) > string(b.ID[:])
}

// Window walks shares newest first and keeps each account's difficulty in
// it exactly. Its memory grows with the number of accounts, not shares.
type Window struct {
	bounded   bool
	n         sum
	rem       sum // N minus what is credited so far (bounded only)
	total     sum
	accounts  map[string]*sum
	shares    int64
	complete  bool
	last      Share
	tmp, a, b big.Int // scratch: a walk does not allocate per share
}

// NewWindow starts a window of difficulty n; nil n takes every share it
// is given (prop). n must be positive with a power-of-two denominator, as
// every N built from float64 values is.
func NewWindow(n *big.Rat) (*Window, error) {
	w := &Window{accounts: map[string]*sum{}}
	if n != nil {
		s, ok := sumOfRat(n)
		if !ok || n.Sign() <= 0 {
			return nil, fmt.Errorf("window difficulty %s must be positive and a sum of binary fractions", n.RatString())
		}
		w.bounded, w.n = true, s
		w.rem.m.Set(&s.m)
		w.rem.e = s.e
	}
	return w, nil
}

// ErrOutOfOrder is returned by Add for a share that is not older than the
// one before it in (time, share_id) order.
var ErrOutOfOrder = errors.New("shares out of order")

// Add counts the next older share. part is nil when the whole share
// counts, else the part of it inside the window (the oldest share of a
// complete window). Once Complete, further shares are refused.
func (w *Window) Add(s Share) (part *big.Rat, err error) {
	if w.complete {
		return nil, errors.New("window is complete: no older share counts")
	}
	if math.IsNaN(s.Diff) || math.IsInf(s.Diff, 0) || s.Diff < 0 {
		return nil, fmt.Errorf("share of %s at %s: difficulty %v is not a finite non-negative number",
			s.Account, s.Time.UTC().Format(time.RFC3339Nano), s.Diff)
	}
	if w.shares > 0 && !newer(&w.last, &s) {
		return nil, fmt.Errorf("%w: share at %s %x after %s %x", ErrOutOfOrder,
			s.Time.UTC().Format(time.RFC3339Nano), s.ID, w.last.Time.UTC().Format(time.RFC3339Nano), w.last.ID)
	}
	w.last = s
	w.shares++
	acc := w.accounts[s.Account]
	if acc == nil {
		acc = &sum{}
		w.accounts[s.Account] = acc
	}
	if w.bounded && w.rem.cmpFloatScratch(s.Diff, &w.a, &w.b) <= 0 {
		// The oldest share: only what N still lacks counts.
		w.complete = true
		acc.add(&w.rem)
		w.total.add(&w.rem)
		part = w.rem.rat()
		w.rem = sum{}
		return part, nil
	}
	acc.addFloat(s.Diff, &w.tmp)
	w.total.addFloat(s.Diff, &w.tmp)
	if w.bounded {
		w.rem.subFloat(s.Diff, &w.tmp)
	}
	return nil, nil
}

// Complete reports whether the shares added reached N.
func (w *Window) Complete() bool { return w.complete }

// WindowResult is a walked window.
type WindowResult struct {
	// N is the window's difficulty (nil for prop, which has none).
	N *big.Rat
	// Shares counts the shares in the window, the partial one included.
	Shares int64
	// Complete is false when the shares ran out before N.
	Complete bool
	// Difficulty is D, the window's total credited difficulty.
	Difficulty *big.Rat
	// ByAccount is each account's difficulty in the window.
	ByAccount map[string]*big.Rat
}

// Result returns the window so far.
func (w *Window) Result() WindowResult {
	r := WindowResult{Shares: w.shares, Complete: w.complete, Difficulty: w.total.rat(),
		ByAccount: make(map[string]*big.Rat, len(w.accounts))}
	if w.bounded {
		r.N = w.n.rat()
	}
	for a, s := range w.accounts {
		r.ByAccount[a] = s.rat()
	}
	return r
}

// Credit is one account's part of a block.
type Credit struct {
	Account    string
	Difficulty *big.Rat
	Sats       int64
}

// Split is a block's reward divided: CoinbaseSats = FeeSats + Σ
// Credits[i].Sats + RemainderSats, exactly.
type Split struct {
	CoinbaseSats  int64
	FeeBps        int64
	FeeSats       int64
	RemainderSats int64
	// Credits are by account name in byte order.
	Credits []Credit
}

// ErrEmptyWindow is returned when a window holds no difficulty: there is
// nothing to split the reward by.
var ErrEmptyWindow = errors.New("the window holds no share difficulty")

// MaxFeeBps is 100 %.
const MaxFeeBps = 10_000

// SplitReward divides coinbaseSats: the fee floor(R × feeBps / 10000),
// each account floor((R − fee) × d / D), the rest to the pool.
func SplitReward(coinbaseSats, feeBps int64, byAccount map[string]*big.Rat) (Split, error) {
	if coinbaseSats < 0 {
		return Split{}, fmt.Errorf("coinbase value %d sats is negative", coinbaseSats)
	}
	if feeBps < 0 || feeBps > MaxFeeBps {
		return Split{}, fmt.Errorf("fee_bps %d is not within 0..%d", feeBps, MaxFeeBps)
	}
	total := new(big.Rat)
	for a, d := range byAccount {
		if d.Sign() < 0 {
			return Split{}, fmt.Errorf("account %q has negative difficulty %s", a, d.RatString())
		}
		total.Add(total, d)
	}
	if total.Sign() == 0 {
		return Split{}, ErrEmptyWindow
	}
	sp := Split{CoinbaseSats: coinbaseSats, FeeBps: feeBps}
	fee := new(big.Int).Mul(big.NewInt(coinbaseSats), big.NewInt(feeBps))
	fee.Quo(fee, big.NewInt(MaxFeeBps))
	sp.FeeSats = fee.Int64()
	dist := coinbaseSats - sp.FeeSats
	distInt := big.NewInt(dist)
	var paid int64
	var num, den big.Int
	for a, d := range byAccount {
		// floor(dist × d / D) = floor(dist × dNum × Dden / (dDen × Dnum))
		num.Mul(distInt, d.Num())
		num.Mul(&num, total.Denom())
		den.Mul(d.Denom(), total.Num())
		num.Quo(&num, &den) // both positive: truncation is floor
		sats := num.Int64()
		paid += sats
		sp.Credits = append(sp.Credits, Credit{Account: a, Difficulty: new(big.Rat).Set(d), Sats: sats})
	}
	slices.SortFunc(sp.Credits, func(x, y Credit) int { return cmp.Compare(x.Account, y.Account) })
	sp.RemainderSats = dist - paid
	return sp, nil
}

// Params is the configured scheme ([payouts]).
type Params struct {
	Scheme Scheme
	FeeBps int64
	// Window is pplns_window (pplns only: tides uses TidesWindow, prop
	// none).
	Window WindowSize
	// FPPSFeeBlocks is how many of the newest templates' fees FPPS
	// averages (fpps only, but stored and compared with every set).
	FPPSFeeBlocks int64
}

// Equal reports whether two parameter sets compute the same results.
func (p Params) Equal(o Params) bool {
	return p.Scheme == o.Scheme && p.FeeBps == o.FeeBps && p.Window == o.Window && p.FPPSFeeBlocks == o.FPPSFeeBlocks
}

// String prints the set as an operator would write it.
func (p Params) String() string {
	return fmt.Sprintf("scheme %s, fee_bps %d, pplns_window %s, fpps_fee_blocks %d", p.Scheme, p.FeeBps, p.Window, p.FPPSFeeBlocks)
}

// WindowFor returns the window size the scheme uses, and false for prop.
func (p Params) WindowFor() (WindowSize, bool) {
	switch p.Scheme {
	case PPLNS:
		return p.Window, true
	case TIDES:
		return TidesWindow, true
	}
	return WindowSize{}, false
}

// Block is what a split needs to know of a found block.
type Block struct {
	FoundAt      time.Time
	CoinbaseSats int64
	// NetworkDiff is the network difficulty of the block's job (0 when
	// the job is not in the ledger: a relative window cannot be sized).
	NetworkDiff float64
	// PrevFoundAt is the found time of the pool's previous block that was
	// not orphaned (zero when there is none): where a prop round starts.
	PrevFoundAt time.Time
	// NotBefore, when not zero, is where the parameters in force began: a
	// window never reaches back past it, so shares paid under an earlier
	// scheme (pps) are not paid again.
	NotBefore time.Time
}

// Source yields shares newest first by (time, share_id): those at or
// before end and, when since is not zero, after since; it stops when fn
// returns false or an error.
type Source interface {
	Walk(end, since time.Time, fn func(Share) (bool, error)) error
}

// Result is one block's split with the window it came from.
type Result struct {
	Params Params
	// WindowSize is the size used (zero for prop).
	WindowSize WindowSize
	Window     WindowResult
	Split      Split
}

// Compute recomputes a block's split from its shares for the scheme in p;
// each, when not nil, sees every share of the window and its part (nil:
// all of it).
func Compute(p Params, b Block, src Source, each func(Share, *big.Rat) error) (Result, error) {
	res := Result{Params: p}
	var n *big.Rat
	var since time.Time
	size, bounded := p.WindowFor()
	switch {
	case bounded:
		res.WindowSize = size
		if size.Relative() && b.NetworkDiff == 0 {
			return res, fmt.Errorf("window %s needs the network difficulty of the block's job: %w", size, ErrNoNetworkDiff)
		}
		var err error
		if n, err = size.N(b.NetworkDiff); err != nil {
			return res, err
		}
	case p.Scheme == PROP:
		since = b.PrevFoundAt
	default:
		return res, fmt.Errorf("payout scheme %q cannot be computed from a block's window", p.Scheme)
	}
	if !b.NotBefore.IsZero() && (since.IsZero() || since.Before(b.NotBefore)) {
		// Shares exactly at NotBefore belong to the new parameters, so
		// the bound (exclusive) sits just before it.
		since = b.NotBefore.Add(-time.Nanosecond)
	}
	w, err := NewWindow(n)
	if err != nil {
		return res, err
	}
	err = walkWindow(w, src, b.FoundAt, since, each)
	res.Window = w.Result()
	if err != nil {
		return res, err
	}
	if res.Window.Shares == 0 {
		return res, fmt.Errorf("no shares at or before %s: %w", b.FoundAt.UTC().Format(time.RFC3339Nano), ErrEmptyWindow)
	}
	if p.Scheme == PROP {
		res.Window.Complete = true // a round is whole by definition
	}
	res.Split, err = SplitReward(b.CoinbaseSats, p.FeeBps, res.Window.ByAccount)
	return res, err
}

// ErrNoNetworkDiff is returned when a window is a multiple of the network
// difficulty but the block's job is not in the ledger.
var ErrNoNetworkDiff = errors.New("the block's job is not in the ledger")

// Rows is a Source over share rows in memory, in any order.
type Rows []Share

// Walk yields the rows in range newest first.
func (r Rows) Walk(end, since time.Time, fn func(Share) (bool, error)) error {
	sorted := slices.Clone(r)
	slices.SortFunc(sorted, func(a, b Share) int {
		if newer(&a, &b) {
			return -1
		}
		if newer(&b, &a) {
			return 1
		}
		return 0
	})
	for _, s := range sorted {
		if s.Time.After(end) || (!since.IsZero() && !s.Time.After(since)) {
			continue
		}
		more, err := fn(s)
		if err != nil || !more {
			return err
		}
	}
	return nil
}
