package shares

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/wattpool/wattpool/shares/spool"
)

// hangingDisk makes the next write to a spool segment, once armed, block
// until released.
type hangingDisk struct {
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

type hangingFile struct {
	*os.File
	d *hangingDisk
}

func (f hangingFile) Write(p []byte) (int, error) {
	f.d.mu.Lock()
	armed := f.d.armed
	f.d.armed = false
	f.d.mu.Unlock()
	if armed {
		close(f.d.entered)
		<-f.d.release
	}
	return f.File.Write(p)
}

func (d *hangingDisk) wrap(f *os.File) spool.File { return hangingFile{File: f, d: d} }

func (d *hangingDisk) arm() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.armed, d.entered, d.release = true, make(chan struct{}), make(chan struct{})
}

// TestStalledSpoolWriteNeverLetsARefusedShareIntoTheLedger: while one
// share's spool write hangs, 50 shares recorded with 50 ms deadlines are
// refused with ErrSpoolTimeout by then, and none of them reaches
// PostgreSQL: not when the write is released and the spool drained, not
// when a restarted recorder replays the spool. The stalled share is
// recorded once its write completes (long after its own deadline) and
// stored exactly once; the metrics count the timeouts.
func TestStalledSpoolWriteNeverLetsARefusedShareIntoTheLedger(t *testing.T) {
	const (
		refused  = 50
		deadline = 50 * time.Millisecond
		slack    = time.Second // scheduling on a loaded two-core -race run
	)
	ctx := context.Background()
	db := newDB(t)
	dir := t.TempDir()
	disk := &hangingDisk{}
	r := newRecorder(t, db, dir, withSpoolFile(disk.wrap))
	job := testJob("stall1")
	if err := r.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	recordShares(t, r, job, 0, 10)

	disk.arm()
	var wg sync.WaitGroup
	defer func() {
		select {
		case <-disk.release:
		default:
			close(disk.release)
		}
		wg.Wait()
	}()
	stalledErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		sctx, cancel := context.WithTimeout(ctx, deadline/5)
		defer cancel()
		stalledErr <- r.RecordShare(sctx, testShare(job, 10))
	}()
	select {
	case <-disk.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the share's write never started")
	}

	errs := make([]error, refused)
	took := make([]time.Duration, refused)
	var owg sync.WaitGroup
	for i := range refused {
		owg.Add(1)
		go func() {
			defer owg.Done()
			sctx, cancel := context.WithTimeout(ctx, deadline)
			defer cancel()
			start := time.Now()
			errs[i] = r.RecordShare(sctx, testShare(job, 11+i))
			took[i] = time.Since(start)
		}()
	}
	owg.Wait() // all answered while the write still hangs
	for i, err := range errs {
		if !errors.Is(err, ErrSpoolTimeout) {
			t.Fatalf("share %d during the stall: %v; want ErrSpoolTimeout", 11+i, err)
		}
		if took[i] > deadline+slack {
			t.Fatalf("share %d answered after %v; its deadline was %v", 11+i, took[i], deadline)
		}
	}
	if got := metricValue(t, r.metrics.appendTimeouts); got != refused {
		t.Fatalf("wattpool_spool_append_timeouts_total = %v, want %d", got, refused)
	}
	if got := metricValue(t, r.metrics.spoolFull); got != 0 {
		t.Fatalf("wattpool_spool_refused_total = %v, want 0 (a timeout is counted as such)", got)
	}
	if h := r.Health(); h.SpoolWritable {
		t.Fatal("health says the spool is writable while appends time out")
	}
	// The drain runs meanwhile and stores what was acknowledged, not
	// the stalled write's share.
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("flush during the stall: %v", err)
	}
	checkShares(t, db, 10)
	select {
	case err := <-stalledErr:
		t.Fatalf("the stalled share was answered during the stall: %v", err)
	default:
	}

	close(disk.release)
	if err := <-stalledErr; err != nil {
		t.Fatalf("stalled share after its write completed: %v", err)
	}
	recordShares(t, r, job, 61, 62) // the spool goes on
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	refusedIn := func() int64 {
		var en2 [][]byte
		for i := 11; i < 11+refused; i++ {
			en2 = append(en2, testShare(job, i).Extranonce2)
		}
		var n int64
		if err := db.QueryRow(ctx, "SELECT count(*) FROM shares WHERE extranonce2 = ANY($1)", en2).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := refusedIn(); n != 0 {
		t.Fatalf("%d refused shares in the ledger after the stall", n)
	}
	if n := count(t, db, "SELECT count(*) FROM shares"); n != 12 {
		t.Fatalf("%d share rows after the stall, want 12 (0-10 and 61)", n)
	}
	if err := r.close(ctx, false); err != nil {
		t.Fatal(err)
	}
	r2 := newRecorder(t, db, dir)
	if err := r2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := refusedIn(); n != 0 {
		t.Fatalf("%d refused shares in the ledger after a restart replayed the spool", n)
	}
	if n := count(t, db, "SELECT count(*) FROM shares"); n != 12 {
		t.Fatalf("%d share rows after the replay, want 12", n)
	}
	if n := count(t, db, "SELECT count(DISTINCT (extranonce2, nonce)) FROM shares"); n != 12 {
		t.Fatalf("%d distinct shares after the replay, want 12", n)
	}
}

// TestBlockFoundWhileTheSpoolStallsIsStoredOnce: a found block whose
// spool record times out behind a hanging write is stored in PostgreSQL
// directly, with its share, and exactly once: its withdrawn record never
// comes back through the drain or a restart's replay.
func TestBlockFoundWhileTheSpoolStallsIsStoredOnce(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	l := NewLedger(db)
	dir := t.TempDir()
	disk := &hangingDisk{}
	r := newRecorder(t, db, dir, withSpoolFile(disk.wrap))
	job := testJob("stallblk")
	if err := r.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	disk.arm()
	stalled := make(chan error, 1)
	go func() { stalled <- r.RecordShare(ctx, testShare(job, 0)) }()
	defer func() {
		select {
		case <-disk.release:
		default:
			close(disk.release)
		}
	}()
	select {
	case <-disk.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the share's write never started")
	}
	fb := blockShare(job, 1, 0x5a)
	bctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := r.RecordBlock(bctx, fb); err != nil {
		t.Fatalf("block found during the stall: %v; want it stored in PostgreSQL", err)
	}
	if got := metricValue(t, r.metrics.appendTimeouts); got != 1 {
		t.Fatalf("wattpool_spool_append_timeouts_total = %v, want 1 (the block's record)", got)
	}
	if b, s := blockAndShare(t, ctx, l, fb); b != 1 || s != 1 {
		t.Fatalf("during the stall: %d block rows, %d share rows; want 1 and 1", b, s)
	}
	close(disk.release)
	if err := <-stalled; err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.close(ctx, false); err != nil {
		t.Fatal(err)
	}
	r2 := newRecorder(t, db, dir)
	if err := r2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if b, s := blockAndShare(t, ctx, l, fb); b != 1 || s != 1 {
		t.Fatalf("after the drain and a replay: %d block rows, %d share rows; want 1 and 1", b, s)
	}
	if n := count(t, db, "SELECT count(*) FROM shares"); n != 2 {
		t.Fatalf("%d share rows, want 2 (the stalled share and the block's)", n)
	}
}
