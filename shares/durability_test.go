package shares

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/stratum"
)

// flushUntilUp retries Flush while a restarted database comes back.
func flushUntilUp(t *testing.T, r *Recorder) {
	t.Helper()
	var err error
	// A restarted cluster under a loaded -race run can take far longer
	// than usual to accept connections again.
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		if err = r.Flush(context.Background()); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("flush after restart: %v", err)
}

// withDrainLock runs f while no drain runs (test hooks are read by it).
func withDrainLock(r *Recorder, f func()) {
	r.drainMu.Lock()
	defer r.drainMu.Unlock()
	f()
}

func TestSpoolLimitBelowSegmentSizeHoldsWhileTheDrainKeepsUp(t *testing.T) {
	ctx := context.Background()
	cluster := testenv.PrivatePostgres(t)
	migrate(t, cluster.URL)
	db := newPool(t, cluster.URL)
	const limit = 256 << 10
	// Default 64 MiB segments, never sealed by age: before the drain could
	// seal a crowded active segment, this spool was full after ~1,400
	// shares whatever the database did.
	r := newRecorder(t, db, t.TempDir(), WithSpoolLimit(limit), WithSegmentAge(time.Hour))
	job := testJob("lim1")
	if err := r.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	n := 0
	for round := range 40 { // ~2 MB through a 256 KiB spool
		for range 300 {
			if err := r.RecordShare(ctx, testShare(job, n)); err != nil {
				t.Fatalf("round %d, share %d, spool %+v: %v", round, n, r.spool.Stats(), err)
			}
			n++
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	checkShares(t, db, n)
	if rows := count(t, db, "SELECT count(*) FROM spool_segments"); rows > int64(len(r.spool.Segments())) {
		t.Fatalf("%d spool_segments rows for %d segments on disk", rows, len(r.spool.Segments()))
	}
	if err := r.RecordShare(ctx, testShare(job, n)); err != nil {
		t.Fatal(err)
	}
	n++
	if segs := r.spool.Segments(); len(segs) != 1 || segs[0].Seq < 5 {
		t.Fatalf("segments %+v: the active segment should have been sealed and removed several times", segs)
	}

	// The database goes down: the limit is reached and refused as before.
	cluster.Stop()
	var err error
	refusedAt := n
	for ; refusedAt < n+limit/100 && err == nil; refusedAt++ {
		err = r.RecordShare(ctx, testShare(job, refusedAt))
	}
	if !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("%d shares spooled with the database down, err %v; want ErrSpoolFull", refusedAt-n, err)
	}
	if st := r.spool.Stats(); st.Bytes > limit {
		t.Fatalf("spool holds %d bytes, limit %d", st.Bytes, limit)
	}
	stored := refusedAt - 1 // the last try was refused
	// Back up: one drain makes room again, though the active segment is
	// larger than half the limit and far from its size limit or age.
	cluster.Start(t)
	flushUntilUp(t, r)
	if st := r.spool.Stats(); st.Bytes > limit/2 {
		t.Fatalf("spool holds %d bytes after the drain caught up", st.Bytes)
	}
	for i := refusedAt; i < refusedAt+300; i++ {
		if err := r.RecordShare(ctx, testShare(job, i)); err != nil {
			t.Fatalf("share %d after the database came back: %v", i, err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(t, db, "SELECT count(*) FROM shares"); got != int64(stored+300) {
		t.Fatalf("%d shares stored, want %d", got, stored+300)
	}
	if got := count(t, db, "SELECT count(DISTINCT (extranonce2, nonce)) FROM shares"); got != int64(stored+300) {
		t.Fatalf("%d distinct shares stored, want %d", got, stored+300)
	}
}

func TestConcurrentAppendsAndCrowdedSealsStoreEachShareOnce(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	// ~1 MB of shares through a 64 KiB spool of 64 MiB segments never
	// sealed by age: the appender can only finish if the drain seals the
	// crowded active segment, again and again, while appends go on.
	r := newRecorder(t, db, t.TempDir(), WithSpoolLimit(64<<10), WithSegmentAge(time.Hour), WithBatchSize(100))
	job := testJob("conc1")
	const total = 6000
	refused := 0
	done := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(2 * time.Minute) // liveness guard only
		for i := 0; i < total; {
			err := r.RecordShare(ctx, testShare(job, i))
			switch {
			case err == nil:
				i++
			case errors.Is(err, ErrSpoolFull) && time.Now().Before(deadline):
				refused++ // not stored: wait for the drain and offer it again
				time.Sleep(time.Millisecond)
			default:
				done <- fmt.Errorf("share %d: %w", i, err)
				return
			}
		}
		done <- nil
	}()
	for loop := true; loop; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			loop = false
		default:
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	checkShares(t, db, total)
	if n := spoolRows(t, db, "pool-a"); n > int64(len(r.spool.Segments())) {
		t.Fatalf("%d spool_segments rows for %d segments on disk", n, len(r.spool.Segments()))
	}
	t.Logf("%d refusals while the drain caught up", refused)
}

func spoolRows(t *testing.T, db *pgxpool.Pool, instance string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(context.Background(), "SELECT count(*) FROM spool_segments WHERE instance = $1", instance).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSpoolSegmentRowsArePrunedPerInstance(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	// Rows left by segments deleted before a crash: one of ours, one of
	// another instance sharing the database (its segment may be on its
	// disk still).
	if _, err := db.Exec(ctx, `INSERT INTO spool_segments VALUES (1001, 'pool-a', 4096, now()), (1002, 'pool-b', 4096, now())`); err != nil {
		t.Fatal(err)
	}
	r := newRecorder(t, db, t.TempDir())
	job := testJob("p1")
	for round := range 3 {
		recordShares(t, r, job, round*100, round*100+100)
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		// The active segment's row is kept: its file is on disk.
		if n := spoolRows(t, db, "pool-a"); n != 1 {
			t.Fatalf("round %d: %d rows of pool-a with one segment on disk", round, n)
		}
		r.spool.Rotate()
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if n := spoolRows(t, db, "pool-a"); n != 0 {
			t.Fatalf("round %d: %d rows of pool-a with no segment on disk", round, n)
		}
	}
	if n := count(t, db, "SELECT count(*) FROM spool_segments WHERE segment_id = 1002"); n != 1 {
		t.Fatal("another instance's row was pruned")
	}
	checkShares(t, db, 300)
}

func TestCommittedSegmentRowSurvivesACrashBeforeItsFileIsRemoved(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	dir := t.TempDir()
	job := testJob("p2")
	r1 := newRecorder(t, db, dir)
	recordShares(t, r1, job, 0, 200)
	errCrash := errors.New("crash before remove")
	withDrainLock(r1, func() { r1.writer.beforeRemove = func() error { return errCrash } })
	r1.spool.Rotate()
	if err := r1.Flush(ctx); !errors.Is(err, errCrash) {
		t.Fatalf("flush: %v", err)
	}
	seg := r1.spool.Segments()[0]
	r1.close(ctx, false)
	var off int64
	if err := db.QueryRow(ctx, "SELECT committed_offset FROM spool_segments WHERE segment_id = $1", int64(seg.ID)).Scan(&off); err != nil {
		t.Fatalf("committed offset of the segment still on disk: %v", err)
	}
	if off != seg.Size {
		t.Fatalf("committed offset %d, segment size %d", off, seg.Size)
	}
	r2 := newRecorder(t, db, dir) // its sweep must keep the row: the file is there
	if err := r2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkShares(t, db, 200)
	if n := spoolRows(t, db, "pool-a"); n != 0 {
		t.Fatalf("%d rows after the segment was removed", n)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(segs) != 0 {
		t.Fatalf("segments left: %v", segs)
	}
}

func rejectSum(t *testing.T, db *pgxpool.Pool, worker string) int64 {
	t.Helper()
	var n int64
	err := db.QueryRow(context.Background(), `SELECT coalesce(sum(r.count), 0) FROM rejects r JOIN workers w ON w.id = r.worker_id
		WHERE w.name = $1`, worker).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func reject(worker string) *stratum.Reject {
	return &stratum.Reject{Time: shareTime, Account: "acct1", Worker: worker, Reason: stratum.RejectStale, Difficulty: 8}
}

func TestRejectFlushWithLostAcknowledgementCountsOnce(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	r := newRecorder(t, db, t.TempDir())
	withDrainLock(r, func() {
		r.rejects.mu.Lock()
		r.rejects.limit = 3
		r.rejects.mu.Unlock()
	})
	for range 3 {
		r.RecordReject(reject("rig1"))
	}
	r.RecordReject(reject("rig2"))
	errLost := errors.New("connection reset after COMMIT")
	withDrainLock(r, func() { r.rejects.afterCommit = func() error { return errLost } })
	if err := r.Flush(ctx); !errors.Is(err, errLost) {
		t.Fatalf("flush: %v", err)
	}
	if got := rejectSum(t, db, "rig1"); got != 3 {
		t.Fatalf("rig1: %d rejects stored by the committed flush, want 3", got)
	}
	// While the outcome is unknown the pending flush counts against the
	// bound: 2 keys pending, room for one more.
	r.RecordReject(reject("rig1"))
	r.RecordReject(reject("rig3"))
	if got := metricValue(t, r.metrics.rejectDrop); got != 1 {
		t.Fatalf("dropped %v rejects, want 1", got)
	}
	withDrainLock(r, func() { r.rejects.afterCommit = nil })
	for range 2 {
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := rejectSum(t, db, "rig1"); got != 4 {
			t.Fatalf("rig1: %d rejects, want 3 + 1 (the retried flush counted twice?)", got)
		}
		if got := rejectSum(t, db, "rig2"); got != 1 {
			t.Fatalf("rig2: %d rejects, want 1", got)
		}
	}
	// A new recorder (a restart) continues with larger flush ids.
	r.close(ctx, false)
	r2 := newRecorder(t, db, t.TempDir())
	r2.RecordReject(reject("rig1"))
	if err := r2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rejectSum(t, db, "rig1"); got != 5 {
		t.Fatalf("rig1: %d rejects after restart, want 5", got)
	}
}

func TestRejectFlushIdIsAppliedOnceEvenWhileTheLostCommitIsRunning(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	r := newRecorder(t, db, t.TempDir())
	a := r.rejects
	aid, wid, err := r.names.resolve(ctx, db, "acct1", "rig1")
	if err != nil {
		t.Fatal(err)
	}
	key := rejectKey{minute: shareTime.Unix(), account: "acct1", worker: "rig1", reason: stratum.RejectStale}
	f := &rejectFlush{id: 1000, counts: map[rejectKey]rejectCount{key: {count: 1, diff: 8}}}
	// The "lost" transaction: it claimed the flush and added its counts
	// but has not committed when the retry starts.
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var id int64
	if err := tx.QueryRow(ctx, rejectClaimSQL, "pool-a", f.id).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, rejectUpsertSQL, shareTime, aid, wid, "", "stale", 1, 8.0); err != nil {
		t.Fatal(err)
	}
	retry := make(chan error, 1)
	go func() { retry <- a.store(ctx, db, r.names, f) }()
	// Wait until the retry queues on the flush row, then let the lost
	// transaction commit.
	deadline := time.Now().Add(30 * time.Second)
	for count(t, db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the retry never waited for the running transaction")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-retry; err != nil {
		t.Fatal(err)
	}
	if got := rejectSum(t, db, "rig1"); got != 1 {
		t.Fatalf("%d rejects after the lost commit and its retry, want 1", got)
	}
	// An older flush id (a stale retry) adds nothing; a newer one does.
	if err := a.store(ctx, db, r.names, &rejectFlush{id: 999, counts: f.counts}); err != nil {
		t.Fatal(err)
	}
	if err := a.store(ctx, db, r.names, &rejectFlush{id: 1001, counts: f.counts}); err != nil {
		t.Fatal(err)
	}
	if got := rejectSum(t, db, "rig1"); got != 2 {
		t.Fatalf("%d rejects, want 2", got)
	}
}
