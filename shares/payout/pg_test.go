package payout_test

import (
	"context"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/migrations"
	"github.com/wattpool/wattpool/shares"
	"github.com/wattpool/wattpool/shares/payout"
	"github.com/wattpool/wattpool/stratum"
	"github.com/wattpool/wattpool/stratum/work"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var t0 = time.Date(2031, 3, 30, 12, 0, 0, 0, time.UTC)

// Ledger is the fixture shared by the PostgreSQL tests: a migrated
// database, a recorder, and a helper that records shares and blocks.
type Ledger struct {
	DB  *pgxpool.Pool
	Rec *shares.Recorder
	Job *work.Job
	n   int
}

// NewLedger starts a throw-away database with the schema applied.
func NewLedger(t testing.TB, networkDiff float64) *Ledger {
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
	rec, err := shares.New(shares.Config{Instance: "pool-a", SpoolDir: t.TempDir()}, db, zaptest.NewLogger(t), shares.WithFlushInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close(context.Background()) })
	job := &work.Job{ID: "j1", Height: 100, Version: 0x20000000, Bits: 0x207fffff, NTime: 1700000000,
		Coinb1: []byte{1, 0, 0, 0}, Coinb2: []byte{0xff, 0xff, 0xff, 0xff}, Extranonce1Size: 4, Extranonce2Size: 4,
		MerkleBranch: []chainhash.Hash{{1}}, NetworkDiff: networkDiff, CreatedAt: t0}
	if err := rec.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	return &Ledger{DB: db, Rec: rec, Job: job}
}

func (l *Ledger) share(at time.Duration, account string, diff float64) *stratum.Share {
	l.n++
	i := l.n
	return &stratum.Share{Time: t0.Add(at), Account: account, Worker: "rig", Job: l.Job,
		Extranonce1: []byte{0, 0, 0, 1}, Extranonce2: []byte{0, 0, byte(i >> 8), byte(i)}, NTime: l.Job.NTime, Nonce: uint32(i),
		Version: l.Job.Version, Difficulty: diff, Achieved: 2 * diff, Hash: chainhash.Hash{byte(i), byte(i >> 8), 0x5a}}
}

// Share records one share.
func (l *Ledger) Share(t testing.TB, at time.Duration, account string, diff float64) {
	t.Helper()
	if err := l.Rec.RecordShare(context.Background(), l.share(at, account, diff)); err != nil {
		t.Fatal(err)
	}
}

// Block records a found block with its share and returns its hash.
func (l *Ledger) Block(t testing.TB, at time.Duration, account string, diff float64, coinbaseSats int64) chainhash.Hash {
	t.Helper()
	s := l.share(at, account, diff)
	s.IsBlock = true
	fb := &stratum.FoundBlock{Share: *s, Height: l.Job.Height, Hash: chainhash.Hash{0xb1, byte(l.n)}, CoinbaseValue: coinbaseSats, SubmitResult: "accepted", Accepted: true}
	if err := l.Rec.RecordBlock(context.Background(), fb); err != nil {
		t.Fatal(err)
	}
	return fb.Hash
}

// Flush drains the spool into PostgreSQL.
func (l *Ledger) Flush(t testing.TB) {
	t.Helper()
	if err := l.Rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

type credit struct {
	account, difficulty string
	sats                int64
}

func TestExplainOnPostgres(t *testing.T) {
	ctx := context.Background()
	l := NewLedger(t, 2.5)
	l.Share(t, 1*time.Second, "carol", 4)
	l.Share(t, 2*time.Second, "alice", 2.5)
	l.Share(t, 3*time.Second, "bob", 1)
	b1 := l.Block(t, 4*time.Second, "alice", 0.25, 5_000_000_000)
	l.Share(t, 5*time.Second, "bob", 100)
	b2 := l.Block(t, 6*time.Second, "carol", 3, 5_000_000_000) // orphaned below
	l.Share(t, 7*time.Second, "alice", 1)
	b3 := l.Block(t, 8*time.Second, "bob", 2, 3_125_000_001)
	l.Flush(t)
	if _, err := l.DB.Exec(ctx, "UPDATE blocks SET status = 'orphaned' WHERE hash = $1", b2[:]); err != nil {
		t.Fatal(err)
	}
	r := payout.NewReader(l.DB)
	for _, tc := range []struct {
		name     string
		p        payout.Params
		block    chainhash.Hash
		n        string
		shares   int64
		complete bool
		fee, rem int64
		credits  []credit
	}{
		{
			// N = 2 x 2.5 = 5: alice 0.25, bob 1, alice 2.5, carol 1.25
			// of 4. 1% fee of 50 BTC; 4.95e9 x 2.75/5, 1/5, 1.25/5.
			name: "pplns 2x", p: payout.Params{Scheme: payout.PPLNS, FeeBps: 100, Window: payout.WindowSize{Times: 2}}, block: b1,
			n: "5", shares: 4, complete: true, fee: 50_000_000, rem: 0,
			credits: []credit{{"alice", "2.75", 2_722_500_000}, {"bob", "1", 990_000_000}, {"carol", "1.25", 1_237_500_000}},
		},
		{
			// N = 8 x 2.5 = 20: bob 2, alice 1, carol 3 (the orphaned
			// block's share still counts), bob 14 of 100. 3,125,000,001 x
			// 16/20 = 2,500,000,000.8, x 1/20 = 156,250,000.05, x 3/20 =
			// 468,750,000.15: 1 sat of remainder.
			name: "tides", p: payout.Params{Scheme: payout.TIDES}, block: b3,
			n: "20", shares: 4, complete: true, fee: 0, rem: 1,
			credits: []credit{{"alice", "1", 156_250_000}, {"bob", "16", 2_500_000_000}, {"carol", "3", 468_750_000}},
		},
		{
			// The previous block not orphaned is b1 (4 s): bob 100, carol
			// 3, alice 1, bob 2; D = 106. 3,125,000,001 / 106 =
			// 29,481,132.08: alice 29,481,132, bob x 102 = 3,007,075,472.6,
			// carol x 3 = 88,443,396.2; remainder 1.
			name: "prop skips the orphaned block", p: payout.Params{Scheme: payout.PROP}, block: b3,
			shares: 4, complete: true, fee: 0, rem: 1,
			credits: []credit{{"alice", "1", 29_481_132}, {"bob", "102", 3_007_075_472}, {"carol", "3", 88_443_396}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var walked int64
			b, res, err := r.Explain(ctx, tc.p, tc.block, func(payout.Share, *big.Rat) error { walked++; return nil })
			if err != nil {
				t.Fatal(err)
			}
			if b.Hash != tc.block || b.Height != 100 || b.Status != "pending" {
				t.Errorf("block %+v", b)
			}
			w := res.Window
			gotN := ""
			if w.N != nil {
				gotN = payout.Decimal(w.N)
			}
			if gotN != tc.n || w.Shares != tc.shares || walked != tc.shares || w.Complete != tc.complete {
				t.Errorf("window N %q, %d shares (%d walked), complete %v", gotN, w.Shares, walked, w.Complete)
			}
			sp := res.Split
			if sp.FeeSats != tc.fee || sp.RemainderSats != tc.rem || len(sp.Credits) != len(tc.credits) {
				t.Fatalf("split %+v", sp)
			}
			for i, c := range sp.Credits {
				if c.Account != tc.credits[i].account || payout.Decimal(c.Difficulty) != tc.credits[i].difficulty || c.Sats != tc.credits[i].sats {
					t.Errorf("credit %s %s %d, want %+v", c.Account, payout.Decimal(c.Difficulty), c.Sats, tc.credits[i])
				}
			}
		})
	}
	if _, _, err := r.Explain(ctx, payout.Params{Scheme: payout.PROP}, chainhash.Hash{0xee}, nil); !errors.Is(err, payout.ErrUnknownBlock) {
		t.Fatalf("unknown block: %v", err)
	}
}
