// Package spool is a write-ahead log of share-ledger records on local disk:
// the pool appends a record before it tells a miner "accepted", and a
// writer later copies the records into PostgreSQL and deletes what it
// committed. Records are length-prefixed and CRC-32C checksummed in
// numbered segment files; a background syncer fsyncs them on a short
// interval (group commit), or every record when asked.
//
// Appenders never touch a file: one writer goroutine owns the active
// segment and writes the queued records in batches (one write(2) per
// batch, and one fsync when any of them asks for it), so a disk that
// stalls stalls the writer, not every caller. An appender waits for its
// record's outcome or its context's deadline, whichever comes first; a
// record the writer has not taken by then is withdrawn and never written
// (see AppendContext).
//
// A Spool is safe for concurrent use.
package spool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// ErrFull is returned by Append when a record cannot be made durable: the
// spool reached its byte limit (the database is not keeping up or is
// down), the disk is full, a write failed, a new segment file could not be
// created (the process is out of descriptors: the error wraps EMFILE and
// the next record tries again) or an fsync failed (for good: see Spool).
// The caller must not claim the record was stored.
var ErrFull = errors.New("share spool full or failing: record not stored")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("share spool closed")

// ErrTimeout is returned (wrapped, with the context's error) by
// AppendContext when the caller's deadline passed before the writer took
// the record: the record was withdrawn and is never written, so it can
// never reach the ledger. The caller must not claim it was stored.
var ErrTimeout = errors.New("share spool: record not durable before the deadline: not stored")

// Defaults for Options fields left zero.
const (
	DefaultSegmentBytes = 64 << 20
	DefaultSegmentAge   = time.Minute
	DefaultSyncInterval = 20 * time.Millisecond
	DefaultLimitBytes   = 4 << 30
)

// Options tune a Spool. Zero values take the defaults above.
type Options struct {
	// SegmentBytes is the size after which the active segment is sealed
	// and a new one started. It need not be smaller than LimitBytes: a
	// reader that keeps up seals a crowded active segment (SealIfCrowded)
	// and removes it.
	SegmentBytes int64
	// SegmentAge is the age after which a non-empty active segment is
	// sealed, so that drained data can be deleted on a quiet pool.
	SegmentAge time.Duration
	// SyncInterval is how often the background syncer fsyncs what was
	// written: the most a power loss can take with it.
	SyncInterval time.Duration
	// SyncEveryRecord makes Append fsync before it returns (slow, for
	// operators who want zero loss window).
	SyncEveryRecord bool
	// LimitBytes caps the bytes of all segments on disk; Append fails with
	// ErrFull beyond it.
	LimitBytes int64
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log receives sync failures and recovery notes (zap.NewNop when nil).
	Log *zap.Logger
	// ObserveWait, when set, is told how long each append waited for its
	// outcome (durable, refused or timed out). It runs on the appender's
	// goroutine and must not block.
	ObserveWait func(wait time.Duration)
	// ObserveBatch, when set, is told how many records each write of the
	// writer carried. It runs on the writer goroutine and must not block.
	ObserveBatch func(records int)
	// WrapFile, when set, wraps every segment file the spool writes (tests
	// put a slow or failing disk under the spool with it).
	WrapFile func(*os.File) File
}

// File is what the spool does to a segment file it writes; *os.File is
// one. Options.WrapFile substitutes another.
type File interface {
	Write(p []byte) (int, error)
	Sync() error
	Truncate(size int64) error
	Close() error
}

func (o *Options) fill() {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.SegmentAge <= 0 {
		o.SegmentAge = DefaultSegmentAge
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.LimitBytes <= 0 {
		o.LimitBytes = DefaultLimitBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
}

// Position identifies an appended record forever: the random id of its
// segment and its byte offset there.
type Position struct {
	SegmentID uint64
	Seq       uint64
	Offset    int64
}

// SegmentInfo describes a segment for readers.
type SegmentInfo struct {
	Seq  uint64
	ID   uint64
	Path string
	// Readable is the end of the fsynced, readable part: records wholly
	// before it are durable.
	Readable int64
	// Size is the bytes written so far.
	Size int64
	// Sealed is true once the segment takes no more records and is
	// wholly synced; only sealed segments can be removed.
	Sealed bool
}

type segment struct {
	seq, id uint64
	path    string
	f       File // nil once closed
	// size is the end of the records whose append succeeded (published
	// by the writer after their batch was written, and fsynced when the
	// batch asked for it); bytes of a batch in flight lie beyond it.
	size      int64
	synced    int64
	sealed    bool // takes no more appends
	dirSynced bool
	// busy is set while the writer has a batch on this segment: Sync does
	// not close it under the writer even once it is sealed.
	busy    bool
	created time.Time
}

// Spool is an open spool directory. Open starts its syncer and writer
// goroutines; Close stops them.
//
// Only a failed fsync, or a failed close of a written segment, disables a
// spool for good (every later Append fails with ErrFull): after it the
// kernel may have dropped the dirty pages, so nothing written since the
// last good fsync can be promised. A file that cannot be opened or
// created (no descriptor left, EMFILE) refuses only the record at hand.
// The spool directory stays open from Open to Close so that syncing it
// never needs a new descriptor: what was accepted is made durable, and
// drained segments removed, even while a connection flood holds every
// descriptor the process may have.
type Spool struct {
	dir  string
	opts Options

	// dirf is the spool directory, open from Open to Close; dirMu keeps
	// Close from closing it under an fsync.
	dirMu sync.RWMutex
	dirf  *os.File

	mu       sync.Mutex
	segs     []*segment // by seq; the last may be active
	active   *segment
	nextSeq  uint64 // the writer's (and recover's) alone
	bytes    int64
	failed   error
	closed   bool
	appended atomic.Uint64

	// The append queue (see append.go): appenders add requests under
	// qmu, the writer goroutine takes them all at once.
	q        queue
	timeouts atomic.Uint64
	wstop    chan struct{}
	wdone    chan struct{}
	wr       batchWriter // the writer goroutine's own state

	syncMu sync.Mutex
	stop   chan struct{}
	done   chan struct{}
}

// Open opens (creating if needed) the spool in dir, checks every existing
// segment, sets damaged ones aside (see Damaged) keeping their intact
// records, and starts the background syncer. The returned reports list the
// damage found; they are not errors: the spool is usable.
func Open(dir string, opts Options) (*Spool, []Damaged, error) {
	opts.fill()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("open spool: %w", err)
	}
	s := &Spool{dir: dir, opts: opts, dirf: d, nextSeq: 1, stop: make(chan struct{}), done: make(chan struct{}),
		wstop: make(chan struct{}), wdone: make(chan struct{})}
	s.q.init()
	damaged, err := s.recover()
	if err != nil {
		d.Close()
		return nil, damaged, fmt.Errorf("open spool %s: %w", dir, err)
	}
	// Make the listing just read durable: a segment absent now stays
	// absent after a power loss, so whatever was kept about it elsewhere
	// (its committed offset) may be forgotten.
	if err := s.syncDir(); err != nil {
		d.Close()
		return nil, damaged, fmt.Errorf("open spool: %w", err)
	}
	go s.syncLoop()
	go s.writeLoop()
	return s, damaged, nil
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Append appends one record with no deadline (see AppendContext).
func (s *Spool) Append(typ byte, payload []byte) (Position, error) {
	return s.AppendContext(context.Background(), typ, payload)
}

// AppendSync appends a record and has it fsynced before returning (for
// found blocks, which must not wait for the syncer), with no deadline.
func (s *Spool) AppendSync(typ byte, payload []byte) (Position, error) {
	return s.AppendSyncContext(context.Background(), typ, payload)
}

// AppendContext appends one record and returns once the writer wrote it
// (write(2) completed: the record survives a crash of this process at
// once, and a power loss once the syncer ran) or, with SyncEveryRecord,
// wrote and fsynced it.
//
// It waits at most until ctx is done. When ctx ends before the writer took
// the record, the record is withdrawn, never written, and the error wraps
// ErrTimeout: no later write can bring it into the ledger. When the writer
// had already taken it (its batch is being written, and its bytes may
// land), the call waits for that batch whatever ctx says and reports its
// real outcome: only the appenders of a stalled batch wait for the disk,
// every other one is answered by its deadline.
func (s *Spool) AppendContext(ctx context.Context, typ byte, payload []byte) (Position, error) {
	return s.append(ctx, typ, payload, s.opts.SyncEveryRecord)
}

// AppendSyncContext is AppendContext with an fsync before the record is
// acknowledged, whatever the sync policy.
func (s *Spool) AppendSyncContext(ctx context.Context, typ byte, payload []byte) (Position, error) {
	return s.append(ctx, typ, payload, true)
}

// sealLocked ends the active segment; the syncer fsyncs and closes it
// (once the writer is done with it).
func (s *Spool) sealLocked() {
	if s.active != nil {
		s.active.sealed = true
		s.active = nil
	}
}

// Rotate seals the active segment now (if it holds records).
func (s *Spool) Rotate() {
	s.mu.Lock()
	if s.active != nil && s.active.size > HeaderSize {
		s.sealLocked()
	}
	s.mu.Unlock()
}

// Sync makes everything written so far durable: it fsyncs the directory
// when segments were created, fsyncs and closes sealed segments and
// fsyncs the active one. The syncer calls it every SyncInterval.
func (s *Spool) Sync() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()

	s.mu.Lock()
	var closing []*segment
	needDir := false
	for _, seg := range s.segs {
		if seg.sealed && seg.f != nil && !seg.busy {
			closing = append(closing, seg)
		}
		if seg.f != nil && !seg.dirSynced {
			needDir = true
		}
	}
	act := s.active
	var target int64
	if act != nil && act.size > act.synced {
		target = act.size
	}
	s.mu.Unlock()

	if needDir {
		if err := s.syncDir(); err != nil {
			return s.fail(err)
		}
		s.mu.Lock()
		for _, seg := range s.segs {
			if seg.f != nil {
				seg.dirSynced = true
			}
		}
		s.mu.Unlock()
	}
	for _, seg := range closing {
		// seg.size cannot change: sealed segments take no appends.
		if err := seg.f.Sync(); err != nil {
			return s.fail(fmt.Errorf("fsync %s: %w", seg.path, err))
		}
		err := seg.f.Close()
		s.mu.Lock()
		seg.f = nil
		seg.synced = seg.size
		s.mu.Unlock()
		if err != nil {
			return s.fail(fmt.Errorf("close %s: %w", seg.path, err))
		}
	}
	if target > 0 {
		if err := act.f.Sync(); err != nil {
			return s.fail(fmt.Errorf("fsync %s: %w", act.path, err))
		}
		s.mu.Lock()
		if act.synced < target {
			act.synced = target
		}
		s.mu.Unlock()
	}
	return nil
}

// fail makes a failed fsync (or close of a written file) sticky: after it
// the kernel may have dropped dirty pages, so no later record can be
// promised durable. Any other error (a file that could not be opened) is
// returned as it is: nothing written was lost and the next try may work.
func (s *Spool) fail(err error) error {
	s.mu.Lock()
	s.failLocked(err)
	s.mu.Unlock()
	return err
}

func (s *Spool) failLocked(err error) {
	if !permanent(err) {
		s.opts.Log.Warn("spool: sync step could not run; will retry", zap.Error(err))
		return
	}
	if s.failed == nil {
		s.failed = err
	}
	s.opts.Log.Error("spool: sync failed; refusing further records", zap.Error(err))
}

// permanent reports whether err, from a sync step, ends the spool's
// promises: a failed fsync or close (close reports write errors some file
// systems defer) does, failing to open a file does not. An error of
// unknown origin counts as permanent: refusing records wrongly is
// recoverable by a restart, promising them wrongly is not.
func permanent(err error) bool {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op != "open"
	}
	return true
}

// syncDir fsyncs the spool directory through the handle held since Open,
// so that it needs no descriptor. After Close (the recorder still removes
// drained segments then) it opens the directory for the one fsync; a
// failure to open is then transient (see permanent).
func (s *Spool) syncDir() error {
	s.dirMu.RLock()
	defer s.dirMu.RUnlock()
	if s.dirf == nil {
		return syncDir(s.dir)
	}
	if err := s.dirf.Sync(); err != nil {
		return fmt.Errorf("sync spool dir %s: %w", s.dir, err)
	}
	return nil
}

func (s *Spool) syncLoop() {
	defer close(s.done)
	t := time.NewTicker(s.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		if a := s.active; a != nil && a.size > HeaderSize && s.opts.Now().Sub(a.created) >= s.opts.SegmentAge {
			s.sealLocked()
		}
		s.mu.Unlock()
		_ = s.Sync() // failures are logged; fail makes fsync and close failures sticky
	}
}

// Segments lists the segments on disk in order, oldest first.
func (s *Spool) Segments() []SegmentInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SegmentInfo, 0, len(s.segs))
	for _, seg := range s.segs {
		out = append(out, SegmentInfo{Seq: seg.seq, ID: seg.id, Path: seg.path, Readable: seg.synced,
			Size: seg.size, Sealed: seg.sealed && seg.f == nil})
	}
	return out
}

// Stats is a snapshot of the spool's size.
type Stats struct {
	Segments int
	Bytes    int64
	// Appended counts records appended since Open plus those found in
	// existing segments at Open.
	Appended uint64
	// Unsynced is the bytes written but not yet fsynced.
	Unsynced int64
	// Timeouts counts appends refused since Open because their deadline
	// passed before the writer took the record (ErrTimeout).
	Timeouts uint64
}

// Stats returns the current size of the spool.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Segments: len(s.segs), Bytes: s.bytes, Appended: s.appended.Load(), Timeouts: s.timeouts.Load()}
	for _, seg := range s.segs {
		st.Unsynced += seg.size - seg.synced
	}
	return st
}

// Remove deletes a sealed segment whose records are all stored elsewhere.
// When it returns nil the deletion is durable (the directory was
// fsynced), so a power loss cannot bring the segment back: only then may
// the caller forget what it knew about the segment (its committed offset).
// The file is unlinked outside the lock Append takes, so deleting a large
// segment does not stall the submit path.
func (s *Spool) Remove(seq uint64) error {
	s.mu.Lock()
	i := slices.IndexFunc(s.segs, func(seg *segment) bool { return seg.seq == seq })
	if i < 0 {
		s.mu.Unlock()
		return fmt.Errorf("remove spool segment %d: not found", seq)
	}
	seg := s.segs[i]
	if !seg.sealed || seg.f != nil {
		s.mu.Unlock()
		return fmt.Errorf("remove spool segment %d: still open", seq)
	}
	s.segs = slices.Delete(s.segs, i, i+1)
	s.bytes -= seg.size
	s.mu.Unlock()

	if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		// Still on disk: keep it listed (and counted) so the caller
		// retries, and a restart replays it against its committed offset.
		s.mu.Lock()
		j, _ := slices.BinarySearchFunc(s.segs, seq, func(x *segment, seq uint64) int { return cmp.Compare(x.seq, seq) })
		s.segs = slices.Insert(s.segs, j, seg)
		s.bytes += seg.size
		s.mu.Unlock()
		return fmt.Errorf("remove spool segment: %w", err)
	}
	if err := s.syncDir(); err != nil {
		// The same directory holds the segments appended to: a failing
		// fsync there ends the spool's promises like any other. Either
		// way the caller keeps what it knew about the segment.
		return s.fail(fmt.Errorf("remove spool segment %d: %w", seq, err))
	}
	return nil
}

// SealIfCrowded seals segment seq if it is still the active segment while
// the spool holds at least half its byte limit and seq at least a quarter
// of it, and reports whether it did. The drain calls it after committing
// the active segment: once sealed, the segment can be drained to its end
// and removed, so a limit smaller than a segment still frees its room as
// fast as the database takes the records. Appends go to a new segment; the
// cost is one file creation per seal, the same as a rotation by size.
func (s *Spool) SealIfCrowded(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.active
	if a == nil || a.seq != seq || a.size <= HeaderSize {
		return false
	}
	limit := s.opts.LimitBytes
	if s.bytes < limit/2 || a.size < limit/4 {
		return false
	}
	s.sealLocked()
	return true
}

// SegmentReader reads one segment's records.
type SegmentReader struct {
	*Reader
	f *os.File
}

// Close closes the segment file.
func (r *SegmentReader) Close() error { return r.f.Close() }

// OpenSegment reads the records of seg from offset from (a frame boundary
// at or after HeaderSize) up to seg.Readable.
func OpenSegment(seg SegmentInfo, from int64) (*SegmentReader, error) {
	if from < HeaderSize {
		from = HeaderSize
	}
	f, err := os.Open(seg.Path)
	if err != nil {
		return nil, fmt.Errorf("open spool segment: %w", err)
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek spool segment %s: %w", seg.Path, err)
	}
	return &SegmentReader{Reader: NewReader(f, from, seg.Readable), f: f}, nil
}

// Close stops the writer (after it wrote what was queued before Close),
// stops the syncer, seals the active segment, fsyncs everything and
// closes the spool directory. Append fails with ErrClosed afterwards;
// segments stay on disk for the next Open, and Remove still works. With a
// stalled disk Close waits for the stalled write.
func (s *Spool) Close() error {
	if !s.q.close() {
		return nil
	}
	s.q.inline.Wait()
	close(s.wstop)
	<-s.wdone
	s.mu.Lock()
	s.closed = true
	s.sealLocked()
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	err := s.Sync()
	s.dirMu.Lock()
	if cerr := s.dirf.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close spool dir %s: %w", s.dir, cerr))
	}
	s.dirf = nil
	s.dirMu.Unlock()
	return err
}
