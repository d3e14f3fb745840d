package spool

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"
)

// stallDisk wraps segment files so that, once armed, one Write or Sync
// blocks until released: a disk that stops answering.
type stallDisk struct {
	mu      sync.Mutex
	op      string // "write" or "sync"; "" when not armed
	skip    int    // calls of op let through before the one that blocks
	entered chan struct{}
	release chan struct{}
}

type stallFile struct {
	*os.File
	d *stallDisk
}

func (f stallFile) Write(p []byte) (int, error) { f.d.hold("write"); return f.File.Write(p) }
func (f stallFile) Sync() error                 { f.d.hold("sync"); return f.File.Sync() }

func (d *stallDisk) wrap(f *os.File) File { return stallFile{File: f, d: d} }

// arm makes the call of op after skip more block; entered is closed when
// it does.
func (d *stallDisk) arm(op string, skip int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.op, d.skip = op, skip
	d.entered, d.release = make(chan struct{}), make(chan struct{})
}

func (d *stallDisk) hold(op string) {
	d.mu.Lock()
	if d.op != op {
		d.mu.Unlock()
		return
	}
	if d.skip > 0 {
		d.skip--
		d.mu.Unlock()
		return
	}
	d.op = ""
	entered, release := d.entered, d.release
	d.mu.Unlock()
	close(entered)
	<-release
}

// waitFor fails t unless ch is closed within a bound.
func waitFor(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

type appendResult struct {
	payload []byte
	err     error
	took    time.Duration
}

// appendAsync appends p with deadline d (none when 0) on a goroutine.
func appendAsync(s *Spool, p []byte, d time.Duration, wg *sync.WaitGroup, out chan<- appendResult) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx := context.Background()
		if d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		start := time.Now()
		_, err := s.AppendContext(ctx, 7, p)
		out <- appendResult{payload: p, err: err, took: time.Since(start)}
	}()
}

// TestStalledWriteStallsOnlyItsBatch: while one write (or fsync) hangs,
// 50 other appends with short deadlines are all refused with ErrTimeout
// by their deadlines, and none of their records is ever written: not
// after the stall ends, not after a restart. The stalled batch's records
// are acknowledged once their write completes, however late, and are in
// the spool exactly once.
func TestStalledWriteStallsOnlyItsBatch(t *testing.T) {
	const (
		others   = 50
		deadline = 50 * time.Millisecond
		// slack covers scheduling on a loaded two-core -race run; a
		// refused append waiting for the stalled write would take until
		// the release, which comes only after every one of them returned.
		slack = time.Second
	)
	tests := []struct {
		name      string
		syncEvery bool
		op        string // what hangs
		// queued appends (no deadline) let the stall happen in the writer
		// goroutine on a batch of several records, not inline.
		queued int
	}{
		{"inline write hangs", false, "write", 0},
		{"writer goroutine's batch write hangs", false, "write", 3},
		{"inline fsync hangs (sync every record)", true, "sync", 0},
		{"writer goroutine's batch fsync hangs (sync every record)", true, "sync", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			disk := &stallDisk{}
			opts := Options{SyncInterval: time.Hour, SyncEveryRecord: tc.syncEvery, WrapFile: disk.wrap}
			s, _ := open(t, dir, opts)
			var want [][]byte
			next := 0
			nextPayload := func() []byte { p := payload(next); next++; return p }
			for range 3 {
				p := nextPayload()
				if _, err := s.Append(7, p); err != nil {
					t.Fatal(err)
				}
				want = append(want, p)
			}

			var wg sync.WaitGroup
			defer func() {
				disk.mu.Lock()
				release := disk.release
				disk.mu.Unlock()
				select { // never leave a writer hanging on a failed test
				case <-release:
				default:
					close(release)
				}
				wg.Wait()
			}()
			stalled := make(chan appendResult, 1+tc.queued)
			// The first stalled append has a deadline far shorter than
			// the stall: taken records are answered by their write.
			first := nextPayload()
			want = append(want, first)
			if tc.queued == 0 {
				disk.arm(tc.op, 0)
				appendAsync(s, first, deadline/5, &wg, stalled)
			} else {
				// Hold the inline writer, queue records behind it, then
				// let it finish: the writer goroutine takes the queued
				// ones as one batch and hangs on it.
				disk.arm(tc.op, 0)
				appendAsync(s, first, deadline/5, &wg, stalled)
				waitFor(t, "the inline write to block", disk.entered)
				release := disk.release
				for range tc.queued {
					p := nextPayload()
					want = append(want, p)
					appendAsync(s, p, 0, &wg, stalled)
				}
				waitQueued(t, s, tc.queued)
				disk.arm(tc.op, 0)
				close(release)
				if r := <-stalled; r.err != nil {
					t.Fatalf("inline append after its write completed: %v", r.err)
				}
			}
			waitFor(t, "a write to block", disk.entered)

			refused := make(chan appendResult, others)
			var owg sync.WaitGroup
			for range others {
				appendAsync(s, nextPayload(), deadline, &owg, refused)
			}
			owg.Wait() // every one returned while the disk still hangs
			close(refused)
			for r := range refused {
				if !errors.Is(r.err, ErrTimeout) || !errors.Is(r.err, context.DeadlineExceeded) {
					t.Fatalf("append during the stall: %v; want ErrTimeout wrapping the deadline", r.err)
				}
				if r.took > deadline+slack {
					t.Fatalf("append during the stall answered after %v; deadline %v", r.took, deadline)
				}
			}
			if st := s.Stats(); st.Timeouts != others {
				t.Fatalf("%d timeouts counted, want %d", st.Timeouts, others)
			}
			select {
			case r := <-stalled:
				t.Fatalf("an append of the stalled batch returned during the stall: %+v", r)
			default:
			}
			// Sealing the segment under the stalled batch (the age limit,
			// the drain's SealIfCrowded) and a sync do not wait for the
			// disk's writer, nor close its file under it.
			s.Rotate()
			if err := s.Sync(); err != nil {
				t.Fatalf("sync during the stall: %v", err)
			}
			for _, seg := range s.Segments() {
				if seg.Sealed && seg.Seq == s.Segments()[len(s.Segments())-1].Seq {
					t.Fatalf("segment %d closed under its stalled write", seg.Seq)
				}
			}

			close(disk.release)
			remaining := 1 // the inline append
			if tc.queued > 0 {
				remaining = tc.queued // the writer goroutine's batch
			}
			for range remaining {
				if r := <-stalled; r.err != nil {
					t.Fatalf("append of the stalled batch, after its write completed: %v", r.err)
				}
			}
			// The spool goes on: one more record after the stall.
			p := nextPayload()
			if _, err := s.Append(7, p); err != nil {
				t.Fatal(err)
			}
			want = append(want, p)
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			checkSet(t, "after the stall", readAll(t, s), want)
			if st := s.Stats(); st.Appended != uint64(len(want)) {
				t.Fatalf("%d records appended, want %d", st.Appended, len(want))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2, dmg := open(t, dir, Options{})
			if len(dmg) != 0 {
				t.Fatalf("damage after the stall: %+v", dmg)
			}
			checkSet(t, "after a restart", readAll(t, s2), want)
		})
	}
}

// waitQueued waits until n requests are queued for the writer.
func waitQueued(t *testing.T, s *Spool, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.q.mu.Lock()
		got := len(s.q.reqs)
		s.q.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkSet fails unless got holds exactly the payloads of want, each
// once, in any order (concurrent appends have no order).
func checkSet(t *testing.T, what string, got, want [][]byte) {
	t.Helper()
	count := map[string]int{}
	for _, p := range got {
		count[string(p)]++
	}
	for _, p := range want {
		if count[string(p)] != 1 {
			t.Fatalf("%s: record %q found %d times, want once", what, p, count[string(p)])
		}
		delete(count, string(p))
	}
	for p := range count {
		t.Fatalf("%s: record %q should never have been written (%d records, want %d)", what, p, len(got), len(want))
	}
}

// failDisk makes the calls of op after skip fail with EIO.
type failDisk struct {
	op   string
	skip int
	mu   sync.Mutex
}

type failFile struct {
	*os.File
	d *failDisk
}

func (d *failDisk) wrap(f *os.File) File { return failFile{File: f, d: d} }

func (d *failDisk) fails(op, path string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.op != op {
		return nil
	}
	if d.skip > 0 {
		d.skip--
		return nil
	}
	return &os.PathError{Op: op, Path: path, Err: errors.New("input/output error (injected)")}
}

func (f failFile) Write(p []byte) (int, error) {
	if err := f.d.fails("write", f.Name()); err != nil {
		// A torn write: half the bytes land before the error.
		n, _ := f.File.Write(p[:len(p)/2])
		return n, err
	}
	return f.File.Write(p)
}

func (f failFile) Sync() error {
	if err := f.d.fails("sync", f.Name()); err != nil {
		return err
	}
	return f.File.Sync()
}

// TestFailedWriteOrFsyncRefusesAndCutsTheRecord: a record whose write or
// fsync failed is refused with ErrFull and cut off its segment, so neither
// the running spool nor a restart ever reads it. A failed write refuses
// that record only; a failed fsync disables the spool for good.
func TestFailedWriteOrFsyncRefusesAndCutsTheRecord(t *testing.T) {
	tests := []struct {
		name      string
		syncEvery bool
		op        string
		skip      int // calls let through: the 3 good records' (and header's) writes or fsyncs
		usable    bool
	}{
		{"torn write", false, "write", 4, true},                     // header + 3 records
		{"failed fsync, sync every record", true, "sync", 3, false}, // 3 records
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			disk := &failDisk{}
			s, _ := open(t, dir, Options{SyncInterval: time.Hour, SyncEveryRecord: tc.syncEvery, WrapFile: disk.wrap})
			var want [][]byte
			disk.mu.Lock()
			disk.op, disk.skip = tc.op, tc.skip
			disk.mu.Unlock()
			for i := range 3 {
				if _, err := s.Append(7, payload(i)); err != nil {
					t.Fatal(err)
				}
				want = append(want, payload(i))
			}
			if _, err := s.Append(7, payload(3)); !errors.Is(err, ErrFull) {
				t.Fatalf("append on a failing disk: %v; want ErrFull", err)
			}
			disk.mu.Lock()
			disk.op = ""
			disk.mu.Unlock()
			_, err := s.Append(7, payload(4))
			if tc.usable {
				if err != nil {
					t.Fatalf("append after one failed write: %v", err)
				}
				want = append(want, payload(4))
			} else if !errors.Is(err, ErrFull) {
				t.Fatalf("append after a failed fsync: %v; want ErrFull for good", err)
			}
			s.Sync()
			checkSet(t, "running spool", readAll(t, s), want)
			if st := s.Stats(); st.Appended != uint64(len(want)) {
				t.Fatalf("%d records appended, want %d", st.Appended, len(want))
			}
			s.Close()
			s2, dmg := open(t, dir, Options{})
			if len(dmg) != 0 {
				t.Fatalf("refused record left damage behind: %+v", dmg)
			}
			checkSet(t, "after a restart", readAll(t, s2), want)
		})
	}
}

// TestAppendNoAlloc: an append, inline or through the writer goroutine,
// with a deadline-carrying context, allocates nothing (the submit path's
// 0 allocations depend on it; make test-noalloc runs it without -race).
func TestAppendNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	s, _ := open(t, t.TempDir(), Options{SegmentBytes: 1 << 30, SyncInterval: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	rec := make([]byte, 150)
	if _, err := s.AppendContext(ctx, 7, rec); err != nil { // creates the segment
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(500, func() {
		if _, err := s.AppendContext(ctx, 7, rec); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per inline append", n)
	}
	// Through the writer goroutine: appenders queue behind each other.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.AppendContext(ctx, 7, rec); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	n := testing.AllocsPerRun(2000, func() {
		if _, err := s.AppendContext(ctx, 7, rec); err != nil {
			t.Fatal(err)
		}
	})
	close(stop)
	wg.Wait()
	// AllocsPerRun counts the other goroutines' allocations too; with
	// none per append the total stays below one per run.
	if n >= 1 {
		t.Fatalf("%v allocations per contended append", n)
	}
}
