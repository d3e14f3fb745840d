package audit_test

import (
	"context"
	_ "embed"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/migrations"
	"github.com/wattpool/wattpool/shares"
	"github.com/wattpool/wattpool/shares/audit"
	"github.com/wattpool/wattpool/stratum"
	"github.com/wattpool/wattpool/stratum/work"
)

func TestMain(m *testing.M) { testenv.Main(m) }

//go:embed schema.sql
var schemaSQL string

// newDB returns a migrated database of its own.
func newDB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	url := testenv.Postgres(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := migrations.Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
	var present bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('audit_head') IS NOT NULL").Scan(&present); err != nil {
		t.Fatal(err)
	}
	if !present {
		if _, err := conn.Exec(ctx, schemaSQL); err != nil {
			t.Fatal(err)
		}
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

var day = time.Date(2031, 3, 30, 12, 0, 0, 0, time.UTC)

func testJob() *work.Job {
	return &work.Job{ID: "j1", Height: 812345, Version: 0x20000000, Bits: 0x17034219, NTime: 1700000000,
		Coinb1: []byte("c1"), Coinb2: []byte("c2"), Extranonce1Size: 4, Extranonce2Size: 4, NetworkDiff: 1000,
		CreatedAt: day}
}

// share i: account acct(i%3), difficulty i+1, i ms (and 7 µs 123 ns:
// PostgreSQL keeps the microseconds only) after at.
func share(job *work.Job, at time.Time, i int) *stratum.Share {
	return &stratum.Share{Time: at.Add(time.Duration(i)*time.Millisecond + 7123), Instance: "pool-a",
		Account: fmt.Sprintf("acct%d", i%3), Worker: "rig", Group: "g1", Job: job,
		Extranonce1: []byte{0xde, 0xad, 0, byte(i)}, Extranonce2: []byte{0, 0, byte(i >> 8), byte(i)},
		NTime: job.NTime, Nonce: uint32(i) * 2654435761, Version: job.Version, Difficulty: float64(i + 1),
		Achieved: float64(i+1) * 1.5, Hash: chainhash.Hash{byte(i), byte(i >> 8), 1}}
}

// ledger records three flushes: shares 0-299, 300-499, then a late share
// 500 timed before all of them: segments 1, 2 and 3.
func ledger(t *testing.T, db *pgxpool.Pool, at time.Time) {
	t.Helper()
	ctx := context.Background()
	if _, err := migrations.EnsurePartitions(ctx, db, at, 1); err != nil {
		t.Fatal(err)
	}
	r, err := shares.New(shares.Config{Instance: "pool-a", SpoolDir: t.TempDir()}, db, zaptest.NewLogger(t),
		shares.WithFlushInterval(time.Hour), shares.WithClock(func() time.Time { return at }))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	job := testJob()
	if err := r.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	record := func(from, to int, at time.Time) {
		for i := from; i < to; i++ {
			if err := r.RecordShare(ctx, share(job, at, i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	record(0, 300, at)
	record(300, 500, at)
	record(500, 501, at.Add(-time.Hour))
}

// idOf returns the share id (UUID text) and sealing segment of share i
// (by its extranonce2).
func idOf(t *testing.T, db *pgxpool.Pool, i int) string {
	t.Helper()
	var id string
	if err := db.QueryRow(context.Background(), "SELECT share_id::text FROM shares WHERE extranonce2 = $1",
		[]byte{0, 0, byte(i >> 8), byte(i)}).Scan(&id); err != nil {
		t.Fatalf("share %d: %v", i, err)
	}
	return id
}

type finding struct {
	kind, id string
	seq      int64
}

func findings(rep audit.Report) []finding {
	var out []finding
	for _, p := range rep.Problems {
		out = append(out, finding{p.Kind, p.ShareID, p.Segment})
	}
	slices.SortFunc(out, func(a, b finding) int {
		if c := strings.Compare(a.kind+a.id, b.kind+b.id); c != 0 {
			return c
		}
		return int(a.seq - b.seq)
	})
	return out
}

func TestVerifyNamesTamperedRows(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		// tamper returns the findings it must cause.
		tamper func(t *testing.T, db *pgxpool.Pool) []finding
	}{
		{"clean", func(t *testing.T, db *pgxpool.Pool) []finding { return nil }},
		{"update", func(t *testing.T, db *pgxpool.Pool) []finding {
			id := idOf(t, db, 42)
			mustExec(t, db, "UPDATE shares SET share_diff = share_diff * 2 WHERE share_id = $1", id)
			return []finding{{audit.KindChanged, id, 1}}
		}},
		{"delete", func(t *testing.T, db *pgxpool.Pool) []finding {
			id := idOf(t, db, 301)
			mustExec(t, db, "DELETE FROM shares WHERE share_id = $1", id)
			return []finding{{audit.KindDeleted, id, 2}}
		}},
		{"insert a new id", func(t *testing.T, db *pgxpool.Pool) []finding {
			id := "00000000-0000-0000-0000-000000000001"
			mustExec(t, db, "INSERT INTO shares SELECT time, $1::uuid, instance, account_id, worker_id, group_name, job_id, extranonce1,"+
				" extranonce2, ntime, nonce, version_bits, version, share_diff, achieved_diff, hash, is_block FROM shares WHERE share_id = $2",
				id, idOf(t, db, 7))
			return []finding{{audit.KindInserted, id, 0}}
		}},
		{"insert inside a segment's id range", func(t *testing.T, db *pgxpool.Pool) []finding {
			// Share 10's id with the offset one byte further: inside
			// segment 1's run, never sealed.
			src := idOf(t, db, 10)
			id := src[:len(src)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", src[len(src)-1])+1)%16])
			mustExec(t, db, "INSERT INTO shares SELECT time, $1::uuid, instance, account_id, worker_id, group_name, job_id, extranonce1,"+
				" extranonce2, ntime, nonce, version_bits, version, share_diff, achieved_diff, hash, is_block FROM shares WHERE share_id = $2",
				id, src)
			return []finding{{audit.KindInserted, id, 1}}
		}},
		{"late share moved in time", func(t *testing.T, db *pgxpool.Pool) []finding {
			// The late share was sealed after the others, in segment 3;
			// re-dating it among segment 1's shares changes its row.
			id := idOf(t, db, 500)
			mustExec(t, db, "UPDATE shares SET time = $1 WHERE share_id = $2", day.Add(150*time.Millisecond), id)
			return []finding{{audit.KindChanged, id, 3}}
		}},
		{"segments swapped", func(t *testing.T, db *pgxpool.Pool) []finding {
			mustExec(t, db, "UPDATE audit_segments SET seq = -seq WHERE seq IN (1, 2)")
			mustExec(t, db, "UPDATE audit_segments SET seq = CASE seq WHEN -1 THEN 2 ELSE 1 END WHERE seq < 0")
			// Segment "1" (was 2) does not start the chain and its hash
			// was made for seq 2; "2" (was 1) does not follow it and its
			// hash was made for seq 1; "3" does not follow the new 2.
			return []finding{{audit.KindChain, "", 1}, {audit.KindChain, "", 1}, {audit.KindChain, "", 2},
				{audit.KindChain, "", 2}, {audit.KindChain, "", 3}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			ledger(t, db, day)
			want := tc.tamper(t, db)
			rep, err := audit.Verify(ctx, db, audit.VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := findings(rep); !slices.Equal(got, want) {
				t.Fatalf("findings %+v, want %+v\nreport %+v", got, want, rep)
			}
			if rep.OK != (len(want) == 0) || rep.Chain != 3 || rep.Head.Seq != 3 || rep.Head.Shares != 501 {
				t.Fatalf("report %+v", rep)
			}
		})
	}
}

func mustExec(t *testing.T, db *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := db.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
