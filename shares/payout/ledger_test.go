package payout_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/migrations"
	"github.com/wattpool/wattpool/shares/payout"
)

// book is a migrated database filled by hand: accounts, jobs, shares and
// blocks inserted as SQL rows, so every satoshi below is computed from
// rows the test names.
type book struct {
	t   *testing.T
	db  *pgxpool.Pool
	ids map[string]int64
	n   int
	now time.Time
}

func newBook(t *testing.T) *book {
	t.Helper()
	ctx := context.Background()
	url := testenv.Postgres(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrations.Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return &book{t: t, db: db, ids: map[string]int64{}, now: t0.Add(48 * time.Hour)}
}

func (b *book) exec(sql string, args ...any) {
	b.t.Helper()
	if _, err := b.db.Exec(context.Background(), sql, args...); err != nil {
		b.t.Fatalf("%s: %v", sql, err)
	}
}

func (b *book) account(name string) int64 {
	b.t.Helper()
	if id, ok := b.ids[name]; ok {
		return id
	}
	var id int64
	if err := b.db.QueryRow(context.Background(), "INSERT INTO accounts (name) VALUES ($1) RETURNING id", name).Scan(&id); err != nil {
		b.t.Fatal(err)
	}
	var wid int64
	if err := b.db.QueryRow(context.Background(), "INSERT INTO workers (account_id, name) VALUES ($1, 'rig') RETURNING id", id).Scan(&wid); err != nil {
		b.t.Fatal(err)
	}
	b.ids[name] = id
	b.ids[name+".rig"] = wid
	return id
}

// coinbase builds a job's coinb1/coinb2 around 8 extranonce bytes, paying
// the given output values.
func coinbase(t *testing.T, height int64, values ...int64) (c1, c2 []byte) {
	t.Helper()
	tx := wire.NewMsgTx(1)
	script := append([]byte{0x03, byte(height), byte(height >> 8), 0}, make([]byte, 8)...)
	tx.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&chainhash.Hash{}, 0xffffffff), script, nil))
	for _, v := range values {
		tx.AddTxOut(wire.NewTxOut(v, []byte{0x51}))
	}
	var buf bytes.Buffer
	if err := tx.SerializeNoWitness(&buf); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	// version 4, input count 1, outpoint 36, script length 1, then 4
	// bytes of prefix: the extranonce starts at 46.
	cut := 4 + 1 + 36 + 1 + 4
	return raw[:cut], raw[cut+8:]
}

func (b *book) job(id string, height int64, netDiff float64, coinbaseSats int64) {
	b.t.Helper()
	c1, c2 := coinbase(b.t, height, coinbaseSats)
	b.exec(`INSERT INTO jobs (instance, job_id, height, prevhash, version, nbits, ntime, coinb1, coinb2, merkle_branch,
		extranonce1_size, extranonce2_size, network_diff, created_at) VALUES ('pool-a', $1, $2, $3, 536870912, 545259519, 1700000000,
		$4, $5, '{}', 4, 4, $6, $7)`, id, height, make([]byte, 32), c1, c2, netDiff, t0.Add(time.Duration(height)*time.Millisecond))
}

// share inserts a share; id orders shares of the same instant.
func (b *book) share(at time.Duration, account, job string, diff float64, id byte) {
	b.t.Helper()
	aid := b.account(account)
	b.exec(`INSERT INTO shares (time, share_id, instance, account_id, worker_id, group_name, job_id, extranonce1, extranonce2,
		ntime, nonce, version_bits, version, share_diff, achieved_diff, hash, is_block)
		VALUES ($1, $2, 'pool-a', $3, $4, '', $5, '\x00', '\x00', 0, 0, 0, 0, $6, $6, '\x00', false)`,
		t0.Add(at), [16]byte{15: id}, aid, b.ids[account+".rig"], job, diff)
}

func (b *book) block(tag byte, at time.Duration, job string, sats int64, status string) chainhash.Hash {
	b.t.Helper()
	h := chainhash.Hash{0xb0, tag}
	aid := b.account("finder")
	b.exec(`INSERT INTO blocks (hash, height, coinbase_sats, instance, account_id, worker_id, job_id, submit_result, status, found_at, updated_at)
		VALUES ($1, 100, $2, 'pool-a', $3, $4, $5, 'accepted', $6, $7, $7)`, h[:], sats, aid, b.ids["finder.rig"], job, status, t0.Add(at))
	return h
}

func (b *book) ledger(opts ...payout.LedgerOption) *payout.Ledger {
	return payout.NewLedger(b.db, "pool-a", &chaincfg.MainNetParams,
		append([]payout.LedgerOption{payout.WithClock(func() time.Time { return b.now })}, opts...)...)
}

func (b *book) record(l *payout.Ledger, p payout.Params, from time.Time) {
	b.t.Helper()
	if _, err := l.RecordParams(context.Background(), p, from); err != nil {
		b.t.Fatal(err)
	}
}

func (b *book) balances(l *payout.Ledger) map[string]int64 {
	b.t.Helper()
	m, err := l.Balances(context.Background())
	if err != nil {
		b.t.Fatal(err)
	}
	return m
}

func (b *book) count(sql string, args ...any) int64 {
	b.t.Helper()
	var n int64
	if err := b.db.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		b.t.Fatal(err)
	}
	return n
}

func equalMap(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// fixture: job j1 at network difficulty 2, j2 at 3 (the difficulty
// changes inside the window); carol and alice share one instant (3 s),
// alice's share_id the larger, so hers is the newer.
func (b *book) fixture() {
	b.job("j1", 100, 2, 5_000_000_000)
	b.job("j2", 100, 3, 5_000_000_000)
	b.share(1*time.Second, "alice", "j1", 4, 1)
	b.share(2*time.Second, "bob", "j1", 2, 2)
	b.share(3*time.Second, "carol", "j2", 1, 3)
	b.share(3*time.Second, "alice", "j2", 1, 4)
}

func TestCreditBlockBySchemes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		params  payout.Params
		credits map[string]int64
		fee     int64
		rem     int64
		// balances, when not nil, differ from credits (pps credits the
		// shares' hour too).
		balances map[string]int64
	}{
		{
			// N = 2 x 3 = 6, newest first: alice 1 (3 s, id 4), carol 1
			// (3 s, id 3), bob 2, then alice's 4 counts 2 of 4: alice 3,
			// bob 2, carol 1 of D = 6. R = 1,000,000,001; fee floor(R x
			// 100 / 10000) = 10,000,000; 990,000,001 x 3/6 =
			// 495,000,000.5, x 2/6 = 330,000,000.33, x 1/6 =
			// 165,000,000.17: 1 sat left.
			name:    "pplns 2x",
			params:  payout.Params{Scheme: payout.PPLNS, FeeBps: 100, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 144},
			credits: map[string]int64{"alice": 495_000_000, "bob": 330_000_000, "carol": 165_000_000},
			fee:     10_000_000, rem: 1,
		},
		{
			// N = 8 x 3 = 24 > 8: every share counts, alice 5, bob 2,
			// carol 1 of 8: 618,750,000.625, 247,500,000.25,
			// 123,750,000.125: 1 sat left.
			name:    "tides",
			params:  payout.Params{Scheme: payout.TIDES, FeeBps: 100, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 144},
			credits: map[string]int64{"alice": 618_750_000, "bob": 247_500_000, "carol": 123_750_000},
			fee:     10_000_000, rem: 1,
		},
		{
			// The pool's first block: the whole round, as tides here; no
			// fee: 1,000,000,001 x 5/8 = 625,000,000.625, x 2/8 =
			// 250,000,000.25, x 1/8 = 125,000,000.125: 1 left.
			name:    "prop",
			params:  payout.Params{Scheme: payout.PROP, FeeBps: 0, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 144},
			credits: map[string]int64{"alice": 625_000_000, "bob": 250_000_000, "carol": 125_000_000},
			fee:     0, rem: 1,
		},
		{
			// pps paid the shares: the block is the pool's. The shares'
			// hour pays d / D_net x 5e9 x 0.99: alice 4/2 + 1/3 of
			// 4,950,000,000 = 11,550,000,000, bob 2/2 = 4,950,000,000,
			// carol 1/3 = 1,650,000,000.
			name:    "pps",
			params:  payout.Params{Scheme: payout.PPS, FeeBps: 100, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 144},
			credits: map[string]int64{},
			fee:     0, rem: 1_000_000_001,
			balances: map[string]int64{"alice": 11_550_000_000, "bob": 4_950_000_000, "carol": 1_650_000_000},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := newBook(t)
			b.fixture()
			hash := b.block(1, 4*time.Second, "j2", 1_000_000_001, "mature")
			l := b.ledger()
			b.record(l, tc.params, time.Time{})
			for i := range 2 {
				rep, err := l.Run(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if want := 1 - i; len(rep.Credited) != want || len(rep.Skipped) != 0 {
					t.Fatalf("run %d: credited %d, skipped %v; want %d credited", i+1, len(rep.Credited), rep.Skipped, want)
				}
			}
			e, ok, err := l.BlockEntries(ctx, hash)
			if err != nil || !ok {
				t.Fatalf("entries: %v %v", ok, err)
			}
			if !equalMap(e.Credits, tc.credits) || e.FeeSats != tc.fee || e.RemainderSats != tc.rem || e.CoinbaseSats != 1_000_000_001 {
				t.Fatalf("credited %v fee %d remainder %d coinbase %d; want %v fee %d remainder %d",
					e.Credits, e.FeeSats, e.RemainderSats, e.CoinbaseSats, tc.credits, tc.fee, tc.rem)
			}
			if e.Params.Scheme != tc.params.Scheme || e.Params.FeeBps != tc.params.FeeBps {
				t.Fatalf("stored parameters %v, want %v", e.Params, tc.params)
			}
			wantBal := tc.credits
			if tc.balances != nil {
				wantBal = tc.balances
			}
			if got := b.balances(l); !equalMap(got, wantBal) {
				t.Fatalf("balances %v, want %v", got, wantBal)
			}
			// Every block's entries sum to its coinbase value; the journal
			// to zero.
			rec, err := l.Reconcile(ctx, t0, b.now.Add(time.Hour))
			if err != nil || rec.Mismatches != 0 || len(rec.Blocks) != 1 || !rec.Blocks[0].OK {
				t.Fatalf("reconcile: %+v %v", rec, err)
			}
		})
	}
}

func TestCreditOnceAcrossInstancesAndReverseOrphan(t *testing.T) {
	ctx := context.Background()
	b := newBook(t)
	b.fixture()
	b1 := b.block(1, 4*time.Second, "j2", 1_000_000_001, "mature")
	// A share after b1, then b2: pplns newest first bob 3 (rem 3), alice
	// 1, carol 1, bob 2 counts 1: alice 1, bob 4, carol 1 of 6. R = 600,
	// fee 6, 594 x 1/6 = 99, x 4/6 = 396, x 1/6 = 99.
	b.share(4500*time.Millisecond, "bob", "j2", 3, 5)
	b2 := b.block(2, 5*time.Second, "j2", 600, "mature")
	params := payout.Params{Scheme: payout.PPLNS, FeeBps: 100, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 144}
	// Two instances start together: the parameters are recorded once.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for _, name := range []string{"pool-a", "pool-b"} {
		wg.Go(func() {
			l := payout.NewLedger(b.db, name, &chaincfg.MainNetParams, payout.WithClock(func() time.Time { return b.now }))
			if _, err := l.RecordParams(ctx, params, time.Time{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	if n := b.count("SELECT count(*) FROM payout_params"); n != 1 {
		t.Fatalf("%d parameter rows, want 1", n)
	}
	// Four runs at once, two instances: each block credited once.
	for i := range 4 {
		wg.Go(func() {
			l := payout.NewLedger(b.db, fmt.Sprintf("pool-%d", i%2), &chaincfg.MainNetParams, payout.WithClock(func() time.Time { return b.now }))
			if _, err := l.Run(ctx); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := b.count("SELECT count(*) FROM payout_journals WHERE kind = 'block'"); n != 2 {
		t.Fatalf("%d block journals, want 2", n)
	}
	l := b.ledger()
	want := map[string]int64{"alice": 495_000_000 + 99, "bob": 330_000_000 + 396, "carol": 165_000_000 + 99}
	if got := b.balances(l); !equalMap(got, want) {
		t.Fatalf("balances %v, want %v", got, want)
	}
	// A reorg after maturity: b2 orphaned, its credits reversed, once.
	b.exec("UPDATE blocks SET status = 'orphaned' WHERE hash = $1", b2[:])
	for i := range 2 {
		rep, err := l.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Reversed) != 1-i {
			t.Fatalf("run %d reversed %d", i+1, len(rep.Reversed))
		}
	}
	want = map[string]int64{"alice": 495_000_000, "bob": 330_000_000, "carol": 165_000_000}
	if got := b.balances(l); !equalMap(got, want) {
		t.Fatalf("balances after the reversal %v, want %v", got, want)
	}
	e, _, err := l.BlockEntries(ctx, b2)
	if err != nil || !e.Reversed {
		t.Fatalf("b2 entries %+v, %v: want reversed", e, err)
	}
	rec, err := l.Reconcile(ctx, t0, b.now.Add(time.Hour))
	if err != nil || rec.Mismatches != 0 || len(rec.Blocks) != 3 {
		t.Fatalf("reconcile: %+v %v", rec, err)
	}
	// Tampering shows: one credit moved from bob to alice still sums to
	// zero, but not to the stored result? It does; a changed coinbase
	// entry does not.
	b.exec(`UPDATE payout_entries SET amount_sats = amount_sats - 1 WHERE kind = 'coinbase' AND journal_id =
		(SELECT id FROM payout_journals WHERE kind = 'block' AND block_hash = $1)`, b1[:])
	rec, err = l.Reconcile(ctx, t0, b.now.Add(time.Hour))
	if err != nil || rec.Mismatches == 0 {
		t.Fatalf("reconcile after tampering: %d mismatches, %v", rec.Mismatches, err)
	}
}

func TestParamsChangeNeedsFutureEffectiveFrom(t *testing.T) {
	ctx := context.Background()
	b := newBook(t)
	b.fixture()
	l := b.ledger()
	pplns := payout.Params{Scheme: payout.PPLNS, FeeBps: 100, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 144}
	b.record(l, pplns, time.Time{})
	// The same set again: nothing to record.
	if p, err := l.RecordParams(ctx, pplns, time.Time{}); err != nil || p != nil {
		t.Fatalf("same parameters: %v, %v", p, err)
	}
	pps := pplns
	pps.Scheme = payout.PPS
	future := payout.Hour(b.now).Add(2 * time.Hour)
	for _, tc := range []struct {
		name string
		from time.Time
		want string
	}{
		{"no effective_from", time.Time{}, "set payouts.effective_from to a future whole UTC hour"},
		{"in the past", b.now.Add(-2 * time.Hour).Truncate(time.Hour), "is not in the future"},
		{"not a whole hour", future.Add(time.Minute), "must be a whole UTC hour"},
	} {
		_, err := l.RecordParams(ctx, pps, tc.from)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if tc.name != "not a whole hour" && !errors.Is(err, payout.ErrParamsChange) {
			t.Errorf("%s: %v is not ErrParamsChange", tc.name, err)
		}
	}
	if n := b.count("SELECT count(*) FROM payout_params"); n != 1 {
		t.Fatalf("%d parameter rows after refused changes, want 1", n)
	}
	if p, err := l.RecordParams(ctx, pps, future); err != nil || p == nil || !p.From.Equal(future) {
		t.Fatalf("future change: %v, %v", p, err)
	}
	h, err := l.History(ctx)
	if err != nil || len(h) != 2 {
		t.Fatalf("history %v, %v", h, err)
	}
	if p, _ := h.At(future.Add(-time.Nanosecond)); p.Scheme != payout.PPLNS {
		t.Fatalf("before the change: %s", p.Scheme)
	}
	if p, _ := h.At(future); p.Scheme != payout.PPS {
		t.Fatalf("from the change: %s", p.Scheme)
	}
}
