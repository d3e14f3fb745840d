package audit_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
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
	"github.com/wattpool/wattpool/shares/payout"
	"github.com/wattpool/wattpool/stratum"
	"github.com/wattpool/wattpool/stratum/work"
)

func TestMain(m *testing.M) { testenv.Main(m) }

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
			c := conn(t, db)
			rep, err := audit.Verify(ctx, c, audit.VerifyOptions{})
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

var _ payout.Archive = (*audit.ArchiveReader)(nil)

// explain recomputes the test block's split by PPLNS over a window larger
// than all shares: every share counts at its difficulty.
func explain(t *testing.T, db *pgxpool.Pool, hash chainhash.Hash) map[string]int64 {
	t.Helper()
	r := payout.NewReader(db).WithArchive(audit.NewArchiveReader(db))
	_, res, err := r.Explain(context.Background(), payout.Params{Scheme: payout.PPLNS, Window: payout.WindowSize{Diff: 1e9}}, hash, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, c := range res.Split.Credits {
		got[c.Account] = c.Sats
	}
	got["remainder"] = res.Split.RemainderSats
	got["shares"] = int64(res.Window.Shares)
	return got
}

func TestArchiveVerifiesDropsAndStaysProvable(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	ledger(t, db, day)
	hash := chainhash.Hash{0xb1}
	mustExec(t, db, `INSERT INTO blocks (hash, height, coinbase_sats, instance, account_id, worker_id, job_id, submit_result,
		status, found_at, updated_at) SELECT $1, 812345, 1257510, 'pool-a', a.id, w.id, 'j1', 'accepted', 'confirmed', $2, $2
		FROM accounts a JOIN workers w ON w.account_id = a.id WHERE a.name = 'acct0'`, hash[:], day.Add(time.Second))
	// Difficulties 1..501, 10 sats each: acct0 holds shares 0, 3, ...,
	// 498 (Σ = 41750), acct1 1, 4, ..., 499 (41917), acct2 2, 5, ...,
	// 497 and the late 500 (41583 + 501 = 42084); Σ = 125751.
	want := map[string]int64{"acct0": 417500, "acct1": 419170, "acct2": 420840, "remainder": 0, "shares": 501}
	if got := explain(t, db, hash); !maps.Equal(got, want) {
		t.Fatalf("explain before archiving: %v, want %v", got, want)
	}
	changed := idOf(t, db, 42)
	dir := t.TempDir()
	c := conn(t, db)
	// 401 days after the shares' day: the day's partition (ending at
	// midnight) is past a 400-day retention, the next day's is not.
	done, err := audit.Archive(ctx, c, audit.ArchiveOptions{Dir: dir, Retention: 400 * 24 * time.Hour,
		Now: day.AddDate(0, 0, 401), Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 1 || done[0].Partition != "shares_p20310330" || done[0].Shares != 501 || done[0].Segments != 3 {
		t.Fatalf("archived %+v", done)
	}
	var gone bool
	if err := db.QueryRow(ctx, "SELECT to_regclass('shares_p20310330') IS NULL").Scan(&gone); err != nil || !gone {
		t.Fatalf("partition still there (%v)", err)
	}
	rep, err := audit.Verify(ctx, c, audit.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Rows != 501 || rep.Archives != 1 {
		t.Fatalf("verify after archiving: %+v", rep)
	}
	if got := explain(t, db, hash); !maps.Equal(got, want) {
		t.Fatalf("explain from the archive: %v, want %v", got, want)
	}
	// Running it again archives nothing more.
	if again, err := audit.Archive(ctx, c, audit.ArchiveOptions{Dir: dir, Retention: 400 * 24 * time.Hour,
		Now: day.AddDate(0, 0, 401)}); err != nil || len(again) != 0 {
		t.Fatalf("second run: %+v, %v", again, err)
	}

	// Share 42 (difficulty 43) re-credited at 86 inside the file,
	// recompressed with its manifest: the file is not the one archived,
	// and the row is named.
	rewriteArchive(t, done[0].Path, func(rows []byte) []byte {
		old := append(f64(43), 0, 0, 0, 8)
		old = append(old, f64(64.5)...)
		if bytes.Count(rows, old) != 1 {
			t.Fatalf("share 42's difficulties found %d times", bytes.Count(rows, old))
		}
		return bytes.Replace(rows, f64(43), f64(86), 1)
	})
	rep, err = audit.Verify(ctx, c, audit.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := findings(rep)
	if len(got) != 2 || got[0].kind != audit.KindArchive || got[1] != (finding{audit.KindChanged, changed, 1}) {
		t.Fatalf("tampered archive: %+v", rep.Problems)
	}
	if _, _, err := payout.NewReader(db).WithArchive(audit.NewArchiveReader(db)).Explain(ctx,
		payout.Params{Scheme: payout.PPLNS, Window: payout.WindowSize{Diff: 1e9}}, hash, nil); err == nil ||
		!strings.Contains(err.Error(), "not the one archived") && !strings.Contains(err.Error(), "manifest says") {
		t.Fatalf("explain from a tampered archive: %v", err)
	}
}

func f64(v float64) []byte { return binary.BigEndian.AppendUint64(nil, math.Float64bits(v)) }

// rewriteArchive rewrites the archive at path with edit applied to its
// COPY stream, the manifest kept.
func rewriteArchive(t *testing.T, path string, edit func([]byte) []byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(f)
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false)
	rows, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if err := zr.Reset(br); err != nil {
		t.Fatal(err)
	}
	manifest, err := io.ReadAll(zr)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, member := range [][]byte{edit(rows), manifest} {
		zw := gzip.NewWriter(&out)
		zw.Write(member)
		zw.Close()
	}
	if err := os.WriteFile(path, out.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
}

// conn lends one connection of db for the test.
func conn(t *testing.T, db *pgxpool.Pool) *pgx.Conn {
	t.Helper()
	c, err := db.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Release)
	return c.Conn()
}

// TestRecorderArchivesDaily: a recorder with retention archives the day
// past it at its first pass, as serve's does once a day.
func TestRecorderArchivesDaily(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	ledger(t, db, day)
	dir := t.TempDir()
	r, err := shares.New(shares.Config{Instance: "pool-a", SpoolDir: t.TempDir()}, db, zaptest.NewLogger(t),
		shares.WithFlushInterval(time.Hour), shares.WithRetention(dir, 400*24*time.Hour),
		shares.WithClock(func() time.Time { return day.AddDate(0, 0, 401) }))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	var archived int64
	for deadline := time.Now().Add(60 * time.Second); archived == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the recorder did not archive the day within 60s")
		}
		if err := db.QueryRow(ctx, "SELECT count(*) FROM audit_archives WHERE partition = 'shares_p20310330' AND shares = 501").Scan(&archived); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := audit.Verify(ctx, conn(t, db), audit.VerifyOptions{})
	if err != nil || !rep.OK || rep.Archives != 1 || rep.Rows != 501 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestInstancesSealInOneChain: two instances draining into one database
// at once seal every share once, in one unbroken chain.
func TestInstancesSealInOneChain(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if _, err := migrations.EnsurePartitions(ctx, db, day, 1); err != nil {
		t.Fatal(err)
	}
	job := testJob()
	errs := make(chan error, 2)
	for _, name := range []string{"pool-a", "pool-b"} {
		r, err := shares.New(shares.Config{Instance: name, SpoolDir: t.TempDir()}, db, zaptest.NewLogger(t),
			shares.WithFlushInterval(time.Hour), shares.WithClock(func() time.Time { return day }))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		go func() {
			err := r.RecordJob(ctx, job)
			for batch := 0; batch < 10 && err == nil; batch++ {
				for i := batch * 30; i < (batch+1)*30 && err == nil; i++ {
					err = r.RecordShare(ctx, share(job, day, i))
				}
				if err == nil {
					err = r.Flush(ctx)
				}
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	rep, err := audit.Verify(ctx, conn(t, db), audit.VerifyOptions{})
	if err != nil || !rep.OK || rep.Rows != 600 || rep.Head.Shares != 600 || rep.Chain != 20 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestAdoptSealsRowsFromBeforeTheAuditSchema: rows a database held before
// migration 006 are unsealed (verify names each); adopt seals them at the
// end of the chain, and later sealing continues from there.
func TestAdoptSealsRowsFromBeforeTheAuditSchema(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	ledger(t, db, day)
	// As before the audit schema: no segment, the head at its start.
	mustExec(t, db, "DELETE FROM audit_segments")
	mustExec(t, db, "UPDATE audit_head SET seq = 0, hash = '\\x0000000000000000000000000000000000000000000000000000000000000000'")
	c := conn(t, db)
	rep, err := audit.Verify(ctx, c, audit.VerifyOptions{})
	if err != nil || rep.OK || len(rep.Problems) != 501 || rep.Problems[0].Kind != audit.KindInserted {
		t.Fatalf("before adopt: %d problems, %v", len(rep.Problems), err)
	}
	// Rows after `before` are not adopted: the late share at 11:00 is.
	got, err := audit.Adopt(ctx, c, day.Add(100*time.Millisecond), day)
	if err != nil || got != (audit.Adopted{Shares: 101, Segments: 1, FirstSeq: 1, LastSeq: 1}) {
		t.Fatalf("adopt: %+v, %v", got, err)
	}
	got, err = audit.Adopt(ctx, c, day.Add(time.Hour), day)
	if err != nil || got != (audit.Adopted{Shares: 400, Segments: 1, FirstSeq: 2, LastSeq: 2}) {
		t.Fatalf("adopt the rest: %+v, %v", got, err)
	}
	rep, err = audit.Verify(ctx, c, audit.VerifyOptions{})
	if err != nil || !rep.OK || rep.Rows != 501 || rep.Chain != 2 {
		t.Fatalf("after adopt: %+v, %v", rep, err)
	}
}
