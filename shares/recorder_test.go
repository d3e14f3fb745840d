package shares

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/migrations"
	"github.com/wattpool/wattpool/shares/spool"
	"github.com/wattpool/wattpool/stratum"
	"github.com/wattpool/wattpool/stratum/work"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// migrate applies the schema to the database at url.
func migrate(t testing.TB, url string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if err := migrations.Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
}

func newPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func newDB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := testenv.Postgres(t)
	migrate(t, url)
	return newPool(t, url)
}

func newRecorder(t testing.TB, db *pgxpool.Pool, dir string, opts ...Option) *Recorder {
	t.Helper()
	opts = append([]Option{WithFlushInterval(time.Hour)}, opts...)
	r, err := New(Config{Instance: "pool-a", SpoolDir: dir}, db, zaptest.NewLogger(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.close(context.Background(), false) })
	// The first background pass runs at once; a test that records before
	// it ends races it (it may flush the test's rejects before a hook is
	// set). With a one-hour interval nothing runs after it.
	for deadline := time.Now().Add(60 * time.Second); r.passes.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the recorder's first pass did not end within 60s")
		}
	}
	return r
}

// testJob is a job with a two-step merkle branch; its fields need not make
// a valid block, only a reproducible header.
func testJob(id string) *work.Job {
	var prev, b1, b2 chainhash.Hash
	for i := range 32 {
		prev[i], b1[i], b2[i] = byte(i), byte(2*i), byte(3*i)
	}
	return &work.Job{ID: id, Height: 812345, PrevHash: prev, Version: 0x20000000, Bits: 0x17034219, NTime: 1700000000,
		Coinb1: []byte("\x01\x00\x00\x00coinbase-part-1"), Coinb2: []byte("coinbase-part-2\xff\xff\xff\xff"),
		Extranonce1Size: 4, Extranonce2Size: 4, MerkleBranch: []chainhash.Hash{b1, b2}, NetworkDiff: 6.2e13,
		CreatedAt: time.Date(2031, 3, 30, 12, 0, 0, 0, time.UTC)}
}

var shareTime = time.Date(2031, 3, 30, 12, 0, 0, 0, time.UTC)

// testShare returns share i of job with its true header hash.
func testShare(job *work.Job, i int) *stratum.Share {
	s := &stratum.Share{Time: shareTime.Add(time.Duration(i) * time.Millisecond), Instance: "pool-a",
		Account: fmt.Sprintf("acct%d", i%3), Worker: fmt.Sprintf("rig%d", i%5), Group: "g1", Job: job,
		Extranonce1: []byte{0xde, 0xad, byte(i >> 8), byte(i)}, Extranonce2: []byte{0, 0, byte(i >> 8), byte(i)},
		NTime: job.NTime + uint32(i%7), Nonce: uint32(i) * 2654435761, VersionBits: uint32(i%4) << 13,
	}
	s.Version = work.MergeVersion(job.Version, s.VersionBits, 0x1fffe000)
	var h work.Hasher
	s.Hash = h.HeaderHash(job, s.Extranonce1, s.Extranonce2, s.NTime, s.Nonce, s.Version)
	// Test headers are not mined: credit half of what the hash achieved,
	// so the share checks out.
	s.Achieved = work.DiffFromHash(&s.Hash)
	s.Difficulty = s.Achieved / 2
	return s
}

func recordShares(t testing.TB, r *Recorder, job *work.Job, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := r.RecordShare(context.Background(), testShare(job, i)); err != nil {
			t.Fatalf("share %d: %v", i, err)
		}
	}
}

func count(t testing.TB, db *pgxpool.Pool, sql string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// checkShares asserts the ledger holds shares [0, n) exactly once each.
func checkShares(t testing.TB, db *pgxpool.Pool, n int) {
	t.Helper()
	if got := count(t, db, "SELECT count(*) FROM shares"); got != int64(n) {
		t.Fatalf("%d share rows, want %d", got, n)
	}
	if got := count(t, db, "SELECT count(DISTINCT (extranonce2, nonce)) FROM shares"); got != int64(n) {
		t.Fatalf("%d distinct shares, want %d", got, n)
	}
}

func TestRecorderEndToEnd(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	reg := prometheus.NewRegistry()
	r := newRecorder(t, db, t.TempDir(), WithRegisterer(reg), WithBatchSize(300))
	job := testJob("a1")
	if err := r.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	recordShares(t, r, job, 0, 1000)
	r.RecordReject(&stratum.Reject{Time: shareTime, Account: "acct1", Worker: "rig1", Reason: stratum.RejectStale, Difficulty: 8})
	r.RecordReject(&stratum.Reject{Time: shareTime.Add(10 * time.Second), Account: "acct1", Worker: "rig1", Reason: stratum.RejectStale, Difficulty: 8})
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkShares(t, db, 1000)
	if got := metricValue(t, r.metrics.rows.WithLabelValues("shares")); got != 1000 {
		t.Fatalf("rows metric %v", got)
	}
	if got := metricValue(t, r.metrics.gauges[0]); got != 0 {
		t.Fatalf("spool records gauge %v after flush", got)
	}
	// Every field survives the trip.
	want := testShare(job, 7)
	var got stratum.Share
	var account, worker, jobID, instance string
	var hash []byte
	var ntime, nonce, vbits, version int64
	err := db.QueryRow(ctx, `SELECT s.time, s.instance, a.name, w.name, s.group_name, s.job_id, s.extranonce1, s.extranonce2,
		s.ntime, s.nonce, s.version_bits, s.version, s.share_diff, s.achieved_diff, s.hash, s.is_block
		FROM shares s JOIN workers w ON w.id = s.worker_id JOIN accounts a ON a.id = s.account_id
		WHERE s.extranonce2 = $1`, want.Extranonce2).Scan(&got.Time, &instance, &account, &worker, &got.Group, &jobID,
		&got.Extranonce1, &got.Extranonce2, &ntime, &nonce, &vbits, &version, &got.Difficulty, &got.Achieved, &hash, &got.IsBlock)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Time.Equal(want.Time) || instance != "pool-a" || account != want.Account || worker != want.Worker ||
		jobID != "a1" || string(got.Extranonce1) != string(want.Extranonce1) || uint32(ntime) != want.NTime ||
		uint32(nonce) != want.Nonce || uint32(vbits) != want.VersionBits || uint32(version) != want.Version ||
		got.Difficulty != want.Difficulty || got.Achieved != want.Achieved || string(hash) != string(want.Hash[:]) {
		t.Fatalf("stored share differs: %+v %s %s %s %x", got, account, worker, jobID, hash)
	}
	var rejects, rejectDiff float64
	if err := db.QueryRow(ctx, "SELECT sum(count), sum(diff_sum) FROM rejects WHERE reason = 'stale'").Scan(&rejects, &rejectDiff); err != nil {
		t.Fatal(err)
	}
	if rejects != 2 || rejectDiff != 16 {
		t.Fatalf("rejects %v diff %v", rejects, rejectDiff)
	}
	var rows int64
	if err := db.QueryRow(ctx, "SELECT count(*) FROM rejects").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	// Each flush counts the rows it upserted, so the metric covers the
	// table's rows (more when a background flush wrote a key twice).
	if got := metricValue(t, r.metrics.rows.WithLabelValues("rejects")); rows == 0 || got < float64(rows) {
		t.Fatalf("rejects rows metric %v, table has %d rows", got, rows)
	}
	if n := count(t, db, "SELECT count(*) FROM jobs WHERE job_id = 'a1' AND array_length(merkle_branch, 1) = 2"); n != 1 {
		t.Fatalf("%d jobs", n)
	}
	if n := count(t, db, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'shares'::regclass"); n < 8 {
		t.Fatalf("only %d share partitions after start", n)
	}
}

func TestRecordBlockGoesToDatabaseAtOnce(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	r := newRecorder(t, db, t.TempDir())
	job := testJob("b1")
	fb := &stratum.FoundBlock{Share: *testShare(job, 1), Height: 812345, CoinbaseValue: 312_500_000,
		SubmitResult: "accepted", Accepted: true}
	fb.Hash = fb.Share.Hash
	if err := r.RecordBlock(ctx, fb); err != nil {
		t.Fatal(err)
	}
	var status string
	var sats int64
	if err := db.QueryRow(ctx, "SELECT status::text, coinbase_sats FROM blocks WHERE hash = $1", fb.Hash[:]).Scan(&status, &sats); err != nil {
		t.Fatalf("block not in database right after RecordBlock: %v", err)
	}
	if status != "pending" || sats != 312_500_000 {
		t.Fatalf("status %s sats %d", status, sats)
	}
	// The spooled copy drains without duplicating it.
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, "SELECT count(*) FROM blocks") + count(t, db, "SELECT count(*) FROM block_status_history"); n != 2 {
		t.Fatalf("%d block + history rows, want 2", n)
	}
	checkSums(t, db)
}

func TestReplayAfterCrashStoresEveryShareOnce(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	dir := t.TempDir()
	job := testJob("c1")
	r1 := newRecorder(t, db, dir, WithBatchSize(100))
	if err := r1.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	recordShares(t, r1, job, 0, 250)
	if err := r1.Flush(ctx); err != nil { // part of it reaches the database...
		t.Fatal(err)
	}
	recordShares(t, r1, job, 250, 600)
	if err := r1.close(ctx, false); err != nil { // ...then the process "dies"
		t.Fatal(err)
	}
	if n := count(t, db, "SELECT count(*) FROM shares"); n != 250 {
		t.Fatalf("%d shares before replay", n)
	}
	r2 := newRecorder(t, db, dir, WithBatchSize(100))
	if err := r2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkShares(t, db, 600)
	checkSums(t, db)
	if st := r2.spool.Stats(); st.Segments != 0 {
		t.Fatalf("%d segments left after replay", st.Segments)
	}
}

func TestReplayOfCommittedSegmentWithLostOffsetDoesNotDouble(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	dir := t.TempDir()
	job := testJob("d1")
	r1 := newRecorder(t, db, dir)
	recordShares(t, r1, job, 0, 300)
	if err := r1.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r1.close(ctx, false); err != nil {
		t.Fatal(err)
	}
	// Keep a copy of the committed segment, as if deleting it had failed.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	r2 := newRecorder(t, db, dir) // knows the committed offset: skips, removes
	if err := r2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkShares(t, db, 300)
	r2.close(ctx, false)
	// Worst case: the file is back and the offset row is gone.
	if err := os.WriteFile(segs[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "DELETE FROM spool_segments"); err != nil {
		t.Fatal(err)
	}
	r3 := newRecorder(t, db, dir)
	if err := r3.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkShares(t, db, 300)
	checkSums(t, db)
}

func TestDamagedSpoolKeepsGoodRecordsAndReports(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	dir := t.TempDir()
	job := testJob("e1")
	r1 := newRecorder(t, db, dir)
	recordShares(t, r1, job, 0, 100)
	r1.close(ctx, false)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	data, _ := os.ReadFile(segs[0])
	frame := (len(data) - spool.HeaderSize) / 100 // all test share records have one size
	data[spool.HeaderSize+60*frame+30] ^= 1       // share 60 damaged: 0..59 survive
	if err := os.WriteFile(segs[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	r2 := newRecorder(t, db, dir)
	if got := metricValue(t, r2.metrics.corrupt.WithLabelValues("checksum")); got != 1 {
		t.Fatalf("damage metric %v", got)
	}
	if err := r2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkShares(t, db, 60)
	aside, _ := filepath.Glob(filepath.Join(dir, "*.damaged-*"))
	if len(aside) != 1 {
		t.Fatalf("set-aside files %v", aside)
	}
	// A torn tail (crash mid-write) likewise.
	r2.close(ctx, false)
	r3 := newRecorder(t, db, dir)
	recordShares(t, r3, job, 100, 110)
	r3.close(ctx, false)
	segs, _ = filepath.Glob(filepath.Join(dir, "*.seg"))
	st, _ := os.Stat(segs[len(segs)-1])
	if err := os.Truncate(segs[len(segs)-1], st.Size()-7); err != nil {
		t.Fatal(err)
	}
	r4 := newRecorder(t, db, dir)
	if got := metricValue(t, r4.metrics.corrupt.WithLabelValues("torn")); got != 1 {
		t.Fatalf("torn metric %v", got)
	}
	if err := r4.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, "SELECT count(*) FROM shares"); n != 69 {
		t.Fatalf("%d shares, want 60 + 9", n)
	}
}

func TestSpoolLimitRefusesWithErrSpoolFull(t *testing.T) {
	// A database that does not answer: everything stays in the spool.
	pool := newPool(t, "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	r := newRecorder(t, pool, t.TempDir(), WithSpoolLimit(20_000))
	job := testJob("f1")
	var err error
	n := 0
	for ; n < 1000 && err == nil; n++ {
		err = r.RecordShare(context.Background(), testShare(job, n))
	}
	if !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("after %d shares err = %v, want ErrSpoolFull", n, err)
	}
	if !strings.Contains(err.Error(), "limit") {
		t.Fatalf("error does not say why: %v", err)
	}
	if got := metricValue(t, r.metrics.spoolFull); got != 1 {
		t.Fatalf("refused metric %v", got)
	}
}

func TestDatabaseOutageLosesNothing(t *testing.T) {
	ctx := context.Background()
	cluster := testenv.PrivatePostgres(t)
	migrate(t, cluster.URL)
	db := newPool(t, cluster.URL)
	job := testJob("g1")
	r := newRecorder(t, db, t.TempDir(), WithFlushInterval(50*time.Millisecond), WithBatchSize(500))
	if err := r.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	recordShares(t, r, job, 0, 1000)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cluster.Stop()
	// The pool keeps accepting shares while the database is down.
	deadline := time.Now().Add(2 * time.Second)
	i := 1000
	for time.Now().Before(deadline) {
		recordShares(t, r, job, i, i+100)
		i += 100
		time.Sleep(10 * time.Millisecond)
	}
	if r.pendingRecords() == 0 {
		t.Fatal("nothing pending while the database is down")
	}
	cluster.Start(t)
	recordShares(t, r, job, i, i+100)
	i += 100
	var err error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); { // a loaded restart can be slow
		if err = r.Flush(ctx); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("flush after restart: %v", err)
	}
	checkShares(t, db, i)
	if n := count(t, db, "SELECT count(*) FROM jobs"); n != 1 {
		t.Fatalf("%d jobs", n)
	}
}

// metricValue reads a counter or gauge.
func metricValue(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
