package payout

import (
	"errors"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2031, 3, 30, 12, 0, 0, 0, time.UTC)

// sh is a share at t0 + sec seconds with share id byte id.
func sh(sec int, id byte, account string, diff float64) Share {
	return Share{Time: t0.Add(time.Duration(sec) * time.Second), ID: [16]byte{15: id}, Account: account, Worker: "rig", Diff: diff}
}

type wantCredit struct {
	account    string
	difficulty string
	sats       int64
}

func TestCompute(t *testing.T) {
	// The shares of the `shares window` test: the block is alice's share
	// at 4 s; bob's at 5 s comes after it.
	example := Rows{
		sh(1, 1, "carol", 4), sh(2, 2, "alice", 2.5), sh(3, 3, "bob", 1), sh(4, 4, "alice", 0.25), sh(5, 5, "bob", 100),
	}
	block := Block{FoundAt: t0.Add(4 * time.Second), CoinbaseSats: 5_000_000_000, NetworkDiff: 2.5}
	for _, tc := range []struct {
		name       string
		p          Params
		b          Block
		rows       Rows
		n          string // window difficulty, "" for prop
		shares     int64
		complete   bool
		d          string
		fee, rem   int64
		credits    []wantCredit
		partOldest string // the oldest share's part, "" when whole
	}{
		{
			// N = 5, newest first: alice 0.25 (4.75 left), bob 1 (3.75),
			// alice 2.5 (1.25), carol 4 counts 1.25. fee 1% of 50 BTC =
			// 50,000,000; 4,950,000,000 x 2.75/5, x 1/5, x 1.25/5.
			name: "pplns several accounts, partial oldest share", p: Params{Scheme: PPLNS, FeeBps: 100, Window: WindowSize{Diff: 5}},
			b: block, rows: example, n: "5", shares: 4, complete: true, d: "5", fee: 50_000_000, rem: 0,
			credits:    []wantCredit{{"alice", "2.75", 2_722_500_000}, {"bob", "1", 990_000_000}, {"carol", "1.25", 1_237_500_000}},
			partOldest: "1.25",
		},
		{
			name: "pplns 2x the job's network difficulty 2.5 is the same window", p: Params{Scheme: PPLNS, FeeBps: 100, Window: WindowSize{Times: 2}},
			b: block, rows: example, n: "5", shares: 4, complete: true, d: "5", fee: 50_000_000, rem: 0,
			credits:    []wantCredit{{"alice", "2.75", 2_722_500_000}, {"bob", "1", 990_000_000}, {"carol", "1.25", 1_237_500_000}},
			partOldest: "1.25",
		},
		{
			// Vardiff raised alice from 1 to 4 inside the window. N = 9:
			// alice 4 (5 left), bob 2 (3), alice 4 counts 3; alice 1, 1
			// are outside. fee floor(1000 x 150 / 10000) = 15; 985 x 7/9 =
			// 766.1, 985 x 2/9 = 218.9; remainder 985 - 984 = 1.
			name: "pplns difficulty change inside the window, rounding remainder", p: Params{Scheme: PPLNS, FeeBps: 150, Window: WindowSize{Diff: 9}},
			b:    Block{FoundAt: t0.Add(5 * time.Second), CoinbaseSats: 1000},
			rows: Rows{sh(1, 1, "alice", 1), sh(2, 2, "alice", 1), sh(3, 3, "alice", 4), sh(4, 4, "bob", 2), sh(5, 5, "alice", 4)},
			n:    "9", shares: 3, complete: true, d: "9", fee: 15, rem: 1,
			credits:    []wantCredit{{"alice", "7", 766}, {"bob", "2", 218}},
			partOldest: "3",
		},
		{
			// Two shares at the same instant: share_id orders them, the
			// larger id is newer. N = 4: bob (id 2) 3, alice (id 1) counts
			// 1; carol is outside. 1000 x 3/4 and x 1/4.
			name: "pplns two shares at the same instant", p: Params{Scheme: PPLNS, Window: WindowSize{Diff: 4}},
			b:    Block{FoundAt: t0.Add(2 * time.Second), CoinbaseSats: 1000},
			rows: Rows{sh(1, 9, "carol", 3), sh(2, 1, "alice", 3), sh(2, 2, "bob", 3)},
			n:    "4", shares: 2, complete: true, d: "4", fee: 0, rem: 0,
			credits:    []wantCredit{{"alice", "1", 250}, {"bob", "3", 750}},
			partOldest: "1",
		},
		{
			name: "pplns same instant, ids swapped", p: Params{Scheme: PPLNS, Window: WindowSize{Diff: 4}},
			b:    Block{FoundAt: t0.Add(2 * time.Second), CoinbaseSats: 1000},
			rows: Rows{sh(1, 9, "carol", 3), sh(2, 2, "alice", 3), sh(2, 1, "bob", 3)},
			n:    "4", shares: 2, complete: true, d: "4", fee: 0, rem: 0,
			credits:    []wantCredit{{"alice", "3", 750}, {"bob", "1", 250}},
			partOldest: "1",
		},
		{
			// Fewer shares than N: all count, incomplete. fee floor(2.5) =
			// 2; 98 / 3 = 32.67 each; remainder 98 - 96 = 2.
			name: "pplns fewer shares than N", p: Params{Scheme: PPLNS, FeeBps: 250, Window: WindowSize{Diff: 1e6}},
			b:    Block{FoundAt: t0.Add(9 * time.Second), CoinbaseSats: 100},
			rows: Rows{sh(1, 1, "a", 1), sh(2, 2, "b", 1), sh(3, 3, "c", 1)},
			n:    "1000000", shares: 3, complete: false, d: "3", fee: 2, rem: 2,
			credits: []wantCredit{{"a", "1", 32}, {"b", "1", 32}, {"c", "1", 32}},
		},
		{
			// Float accumulation gives 0.1 + 0.2 = 0.30000000000000004;
			// the exact sum of the two binary fractions is below.
			name: "exact sum of binary fractions", p: Params{Scheme: PPLNS, Window: WindowSize{Diff: 1e6}},
			b:    Block{FoundAt: t0.Add(9 * time.Second), CoinbaseSats: 3_000_000_000},
			rows: Rows{sh(1, 1, "a", 0.1), sh(2, 2, "a", 0.2), sh(3, 3, "b", 0.3)},
			n:    "1000000", shares: 3, complete: false,
			d: "0.6000000000000000055511151231257827021181583404541015625", fee: 0, rem: 1,
			// a: 3e9 x 0.3000000000000000166533453693773481063544750213623046875 / D = 1,500,000,000.0000000555
			// b: 3e9 x 0.299999999999999988897769753748434595763683319091796875 / D = 1,499,999,999.9999999445
			// floored: 2,999,999,999, so 1 sat of remainder.
			credits: []wantCredit{{"a", "0.3000000000000000166533453693773481063544750213623046875", 1_500_000_000},
				{"b", "0.299999999999999988897769753748434595763683319091796875", 1_499_999_999}},
		},
		{
			// TIDES: N = 8 x 0.5 = 4. bob 1, then alice 1, 1, 1 (the
			// fourth reaches N exactly: it counts whole).
			name: "tides 8x", p: Params{Scheme: TIDES, Window: WindowSize{Diff: 1}}, // Window ignored
			b: Block{FoundAt: t0.Add(7 * time.Second), CoinbaseSats: 1000, NetworkDiff: 0.5},
			rows: Rows{sh(1, 1, "alice", 1), sh(2, 2, "alice", 1), sh(3, 3, "alice", 1), sh(4, 4, "alice", 1),
				sh(5, 5, "alice", 1), sh(6, 6, "alice", 1), sh(7, 7, "bob", 1)},
			n: "4", shares: 4, complete: true, d: "4", fee: 0, rem: 0,
			credits:    []wantCredit{{"alice", "3", 750}, {"bob", "1", 250}},
			partOldest: "1",
		},
		{
			// PROP: the previous block was found at 3 s with bob's share;
			// the round is alice 1 (4 s) and carol 2 (5 s). fee
			// floor(10.01) = 10; 991/3 = 330.3, 1982/3 = 660.7; rem 1.
			name: "prop since the previous block", p: Params{Scheme: PROP, FeeBps: 100},
			b:      Block{FoundAt: t0.Add(5 * time.Second), CoinbaseSats: 1001, PrevFoundAt: t0.Add(3 * time.Second)},
			rows:   Rows{sh(1, 1, "alice", 5), sh(3, 3, "bob", 7), sh(4, 4, "alice", 1), sh(5, 5, "carol", 2), sh(6, 6, "bob", 9)},
			shares: 2, complete: true, d: "3", fee: 10, rem: 1,
			credits: []wantCredit{{"alice", "1", 330}, {"carol", "2", 660}},
		},
		{
			name:   "prop, first block of the pool: every share before it",
			p:      Params{Scheme: PROP},
			b:      Block{FoundAt: t0.Add(5 * time.Second), CoinbaseSats: 1000},
			rows:   Rows{sh(1, 1, "alice", 5), sh(3, 3, "bob", 3), sh(6, 6, "bob", 9)},
			shares: 2, complete: true, d: "8", credits: []wantCredit{{"alice", "5", 625}, {"bob", "3", 375}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var parts []*big.Rat
			res, err := Compute(tc.p, tc.b, tc.rows, func(_ Share, part *big.Rat) error { parts = append(parts, part); return nil })
			if err != nil {
				t.Fatal(err)
			}
			w := res.Window
			if gotN := ""; w.N != nil {
				gotN = Decimal(w.N)
				if gotN != tc.n {
					t.Errorf("N %s, want %s", gotN, tc.n)
				}
			} else if tc.n != "" {
				t.Errorf("no N, want %s", tc.n)
			}
			if w.Shares != tc.shares || w.Complete != tc.complete || Decimal(w.Difficulty) != tc.d || int64(len(parts)) != tc.shares {
				t.Errorf("window: %d shares (%d seen), complete %v, D %s; want %d, %v, %s",
					w.Shares, len(parts), w.Complete, Decimal(w.Difficulty), tc.shares, tc.complete, tc.d)
			}
			sp := res.Split
			if sp.CoinbaseSats != tc.b.CoinbaseSats || sp.FeeSats != tc.fee || sp.RemainderSats != tc.rem || len(sp.Credits) != len(tc.credits) {
				t.Fatalf("split %+v, want fee %d remainder %d and %d credits", sp, tc.fee, tc.rem, len(tc.credits))
			}
			total := sp.FeeSats + sp.RemainderSats
			for i, c := range sp.Credits {
				want := tc.credits[i]
				if c.Account != want.account || Decimal(c.Difficulty) != want.difficulty || c.Sats != want.sats {
					t.Errorf("credit %d: %s %s %d, want %s %s %d", i, c.Account, Decimal(c.Difficulty), c.Sats, want.account, want.difficulty, want.sats)
				}
				total += c.Sats
			}
			if total != tc.b.CoinbaseSats {
				t.Errorf("credits + fee + remainder = %d, want %d", total, tc.b.CoinbaseSats)
			}
			for i, p := range parts {
				last := i == len(parts)-1
				switch {
				case last && tc.partOldest != "":
					if p == nil || Decimal(p) != tc.partOldest {
						t.Errorf("oldest share's part %v, want %s", p, tc.partOldest)
					}
				case p != nil:
					t.Errorf("share %d counted in part (%s)", i, Decimal(p))
				}
			}
		})
	}
}

func TestComputeErrors(t *testing.T) {
	rows := Rows{sh(1, 1, "a", 1)}
	for _, tc := range []struct {
		name string
		p    Params
		b    Block
		rows Rows
		want error
		msg  string
	}{
		{"no shares before the block", Params{Scheme: PPLNS, Window: WindowSize{Diff: 5}}, Block{FoundAt: t0, CoinbaseSats: 1}, rows, ErrEmptyWindow, "no shares at or before"},
		{"only zero difficulty", Params{Scheme: PPLNS, Window: WindowSize{Diff: 5}}, Block{FoundAt: t0.Add(time.Hour), CoinbaseSats: 1}, Rows{sh(1, 1, "a", 0)}, ErrEmptyWindow, "no share difficulty"},
		{"relative window without the job", Params{Scheme: PPLNS, Window: WindowSize{Times: 2}}, Block{FoundAt: t0.Add(time.Hour)}, rows, ErrNoNetworkDiff, "needs the network difficulty"},
		{"tides without the job", Params{Scheme: TIDES}, Block{FoundAt: t0.Add(time.Hour)}, rows, ErrNoNetworkDiff, "8x"},
		{"fee over 100%", Params{Scheme: PROP, FeeBps: 10_001}, Block{FoundAt: t0.Add(time.Hour), CoinbaseSats: 1}, rows, nil, "fee_bps 10001"},
		{"negative coinbase", Params{Scheme: PROP}, Block{FoundAt: t0.Add(time.Hour), CoinbaseSats: -1}, rows, nil, "negative"},
		{"unknown scheme", Params{Scheme: "pps"}, Block{FoundAt: t0.Add(time.Hour)}, rows, nil, `"pps" cannot be computed`},
		{"duplicate share", Params{Scheme: PROP}, Block{FoundAt: t0.Add(time.Hour), CoinbaseSats: 1}, Rows{sh(1, 1, "a", 1), sh(1, 1, "b", 1)}, ErrOutOfOrder, "out of order"},
		{"negative difficulty", Params{Scheme: PROP}, Block{FoundAt: t0.Add(time.Hour), CoinbaseSats: 1}, Rows{sh(1, 1, "a", -1)}, nil, "difficulty -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compute(tc.p, tc.b, tc.rows, nil)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestParseWindowSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want WindowSize
		err  string
	}{
		{"2x", WindowSize{Times: 2}, ""},
		{"0.5x", WindowSize{Times: 0.5}, ""},
		{"5e12", WindowSize{Diff: 5e12}, ""},
		{"1000", WindowSize{Diff: 1000}, ""},
		{"", WindowSize{}, "empty"},
		{"0", WindowSize{}, "positive"},
		{"-2x", WindowSize{}, "positive"},
		{"x", WindowSize{}, "not a finite"},
		{"2xx", WindowSize{}, "not a finite"},
		{"0x10", WindowSize{}, "not a finite"},
		{"inf", WindowSize{}, "not a finite"},
		{"NaN", WindowSize{}, "not a finite"},
		{"1_000", WindowSize{}, "not a finite"},
	} {
		got, err := ParseWindowSize(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.in, got, err, tc.want)
		}
		if again, err := ParseWindowSize(got.String()); err != nil || again != got {
			t.Errorf("%q: String %q does not parse back: %+v %v", tc.in, got.String(), again, err)
		}
	}
}

func TestParseScheme(t *testing.T) {
	for in, want := range map[string]string{"pplns": "", "tides": "", "prop": "", "pps": "", "fpps": "", "solo": "solo mining is per port", "PPLNS": "not one of", "": "not one of"} {
		_, err := ParseScheme(in)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

func TestDecimal(t *testing.T) {
	for _, tc := range []struct {
		r    *big.Rat
		want string
	}{
		{big.NewRat(5, 1), "5"},
		{big.NewRat(11, 4), "2.75"},
		{big.NewRat(-1, 8), "-0.125"},
		{big.NewRat(1, 1<<20), "0.00000095367431640625"},
		{big.NewRat(3, 10), "0.3"},
		{big.NewRat(1, 3), "0.3333333333333333333333333333333333333333~"},
	} {
		if got := Decimal(tc.r); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.r, got, tc.want)
		}
	}
}

// TestSplitAddsUp: for random windows, rewards and fees, credits + fee +
// remainder = R, every credit is the floor of its exact share, and the
// remainder is less than one satoshi per account.
func TestSplitAddsUp(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range 2000 {
		accounts := 1 + rng.IntN(20)
		var rows Rows
		for j := range 1 + rng.IntN(200) {
			d := rng.ExpFloat64() * []float64{1e-10, 1, 1e6, 1e12}[rng.IntN(4)]
			rows = append(rows, sh(j, byte(j), string(rune('a'+rng.IntN(accounts))), d))
		}
		r := rng.Int64N(21e14)
		fee := rng.Int64N(MaxFeeBps + 1)
		p := Params{Scheme: PPLNS, FeeBps: fee, Window: WindowSize{Diff: rng.ExpFloat64() * 1e6}}
		res, err := Compute(p, Block{FoundAt: t0.Add(time.Hour), CoinbaseSats: r}, rows, nil)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		sp := res.Split
		sum := sp.FeeSats + sp.RemainderSats
		dist := big.NewRat(r-sp.FeeSats, 1)
		for _, c := range sp.Credits {
			sum += c.Sats
			exact := new(big.Rat).Mul(dist, c.Difficulty)
			exact.Quo(exact, res.Window.Difficulty)
			lo, hi := big.NewRat(c.Sats, 1), big.NewRat(c.Sats+1, 1)
			if exact.Cmp(lo) < 0 || exact.Cmp(hi) >= 0 {
				t.Fatalf("case %d: %s gets %d, exact %s", i, c.Account, c.Sats, exact.FloatString(3))
			}
		}
		if sum != r || sp.FeeSats != new(big.Int).Quo(new(big.Int).Mul(big.NewInt(r), big.NewInt(fee)), big.NewInt(MaxFeeBps)).Int64() || sp.RemainderSats < 0 || sp.RemainderSats >= int64(max(1, len(sp.Credits))) {
			t.Fatalf("case %d: R %d fee %d remainder %d credits %d: sum %d", i, r, sp.FeeSats, sp.RemainderSats, len(sp.Credits), sum)
		}
	}
}

// FuzzParseWindowSize: pplns_window comes from the config file.
func FuzzParseWindowSize(f *testing.F) {
	for _, s := range []string{"2x", "5e12", "", "x", "0.5x", "-1", "1e400x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWindowSize(s)
		if err != nil {
			return
		}
		if n, err := w.N(3.5); err != nil || n.Sign() <= 0 {
			t.Fatalf("%q parsed to %+v but N = %v, %v", s, w, n, err)
		}
		if again, err := ParseWindowSize(w.String()); err != nil || again != w {
			t.Fatalf("%q: %+v does not round-trip: %+v %v", s, w, again, err)
		}
	})
}
