package spool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// A request's state moves once from pending, either to taken (by the
// writer, which will write it) or to withdrawn (by its appender, whose
// deadline passed first, and it is never written). Whoever wins the
// compare-and-swap decides, so a record is never both refused and written.
const (
	reqPending uint32 = iota
	reqTaken
	reqWithdrawn
)

// request is one record on its way to disk.
type request struct {
	state atomic.Uint32
	frame []byte
	sync  bool // fsync before acknowledging
	// span is the writer's index of the batch span the record went to.
	span int
	// pos and err are the outcome, set by the writer before it signals
	// done.
	pos Position
	err error
	// done receives the writer's one signal for a taken request; a
	// withdrawn request never gets one, so the channel is empty whenever
	// a request is reused.
	done chan struct{}
}

// minCompact is the queue length from which a push first drops withdrawn
// requests; the next compaction waits until the queue doubled, so pushes
// stay O(1) amortised.
const minCompact = 1024

// queue holds the requests the writer has not taken yet, and who owns the
// files: the writer goroutine, or an appender writing its own record
// because nobody else was (see push).
type queue struct {
	mu        sync.Mutex
	reqs      []*request
	closed    bool
	compactAt int
	// busy is set while a writer owns the files: an appender writing
	// inline, or the writer goroutine from the wake that handed it the
	// queue until it finds the queue empty.
	busy bool
	// inline counts appenders writing inline, for Close to wait out.
	inline sync.WaitGroup
	// wake carries the token that hands the files to the writer
	// goroutine.
	wake chan struct{}
	pool sync.Pool
}

func (q *queue) init() {
	q.wake = make(chan struct{}, 1)
	q.compactAt = minCompact
	q.pool.New = func() any { return &request{done: make(chan struct{}, 1)} }
}

func (q *queue) get() *request { return q.pool.Get().(*request) }

func (q *queue) put(r *request) {
	r.err = nil
	if cap(r.frame) > 64<<10 {
		r.frame = nil
	}
	q.pool.Put(r)
}

// push queues r. When no writer owns the files and nothing is queued it
// queues nothing and returns inline: the caller owns the files and writes
// r itself (an uncontended append costs no hand-over between goroutines),
// then calls release. Otherwise r waits for the writer goroutine, which
// push wakes when it was idle. ok is false once the queue is closed.
func (q *queue) push(r *request) (ok, inline bool) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false, false
	}
	if !q.busy && len(q.reqs) == 0 {
		q.busy = true
		q.inline.Add(1)
		q.mu.Unlock()
		return true, true
	}
	if len(q.reqs) >= q.compactAt {
		q.compactLocked()
	}
	q.reqs = append(q.reqs, r)
	wake := !q.busy
	q.busy = true
	q.mu.Unlock()
	if wake {
		q.wake <- struct{}{}
	}
	return true, false
}

// release ends an inline write: what was queued meanwhile goes to the
// writer goroutine, not to this appender, whose record is done.
func (q *queue) release() {
	q.mu.Lock()
	handOff := len(q.reqs) > 0
	if !handOff {
		q.busy = false
	}
	q.mu.Unlock()
	if handOff {
		q.wake <- struct{}{}
	}
	q.inline.Done()
}

// compactLocked drops withdrawn requests: while the writer is stalled the
// queue would otherwise grow by every share refused meanwhile, not only by
// the appenders still waiting. A withdrawn request is owned by whoever
// holds the queue slice it is in (its appender has returned), here the
// queue.
func (q *queue) compactLocked() {
	kept := q.reqs[:0]
	for _, r := range q.reqs {
		if r.state.Load() == reqWithdrawn {
			q.put(r)
			continue
		}
		kept = append(kept, r)
	}
	clear(q.reqs[len(kept):])
	q.reqs = kept
	q.compactAt = max(minCompact, 2*len(kept))
}

// take hands the writer goroutine every queued request, giving the queue
// spare (an emptied slice) to fill next. With nothing queued the
// goroutine gives up the files.
func (q *queue) take(spare []*request) []*request {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.reqs
	if len(out) == 0 {
		q.busy = false
		return out
	}
	q.reqs = spare[:0]
	return out
}

// close refuses further pushes; false when it was closed already.
func (q *queue) close() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.closed = true
	return true
}

func (s *Spool) append(ctx context.Context, typ byte, payload []byte, sync bool) (Position, error) {
	if len(payload) > MaxPayload {
		return Position{}, fmt.Errorf("spool append: payload of %d bytes exceeds %d", len(payload), MaxPayload)
	}
	start := time.Now()
	r := s.q.get()
	r.frame = AppendFrame(r.frame[:0], typ, payload)
	r.sync = sync
	r.state.Store(reqPending)
	ok, inline := s.q.push(r)
	if !ok {
		s.q.put(r)
		return Position{}, ErrClosed
	}
	if inline {
		// Nobody else is writing: write it now, on this goroutine. Its
		// bytes are about to land, so the deadline no longer applies,
		// as for any record the writer took.
		r.state.Store(reqTaken)
		s.wr.batch = append(s.wr.batch[:0], r)
		s.writeTaken()
		s.wr.batch[0] = nil
		s.q.release()
	} else {
		select {
		case <-r.done:
		case <-ctx.Done():
			if r.state.CompareAndSwap(reqPending, reqWithdrawn) {
				// Never written. The writer (or a compaction) recycles
				// r: it is not ours any more.
				s.timeouts.Add(1)
				wait := time.Since(start)
				s.observeWait(wait)
				return Position{}, fmt.Errorf("%w (waited %v): %w", ErrTimeout, wait.Round(time.Microsecond), ctx.Err())
			}
			// Taken: its bytes may land, so its outcome must be the
			// real one.
			<-r.done
		}
	}
	pos, err := r.pos, r.err
	s.q.put(r)
	s.observeWait(time.Since(start))
	return pos, err
}

func (s *Spool) observeWait(d time.Duration) {
	if s.opts.ObserveWait != nil {
		s.opts.ObserveWait(d)
	}
}

// batchWriter is the writer goroutine's state.
type batchWriter struct {
	spare []*request // the queue slice handed back on the next take
	batch []*request // the requests taken
	buf   []byte     // frames for the current span, one write
	spans []span
}

// span is one segment's part of a batch: its records were written (or
// failed) together.
type span struct {
	seg       *segment
	from, end int64 // the published size before the batch; the file end after it
	err       error // the write or fsync failed: every record of the span is refused
}

// writeLoop is the writer goroutine: each wake hands it the files and the
// queue, which it writes batch after batch until the queue is empty.
func (s *Spool) writeLoop() {
	defer close(s.wdone)
	for {
		select {
		case <-s.q.wake:
			s.writeQueued()
		case <-s.wstop:
			// Close closed the queue and waited out inline writers
			// first: what is queued now is all that will ever be.
			s.writeQueued()
			return
		}
	}
}

// writeQueued writes queued requests, batch after batch, until it finds
// the queue empty (and so gives the files up).
func (s *Spool) writeQueued() {
	w := &s.wr
	for {
		reqs := s.q.take(w.spare)
		if len(reqs) == 0 {
			return // the queue kept its slice; w.spare is still ours
		}
		w.batch = w.batch[:0]
		for i, r := range reqs {
			if r.state.CompareAndSwap(reqPending, reqTaken) {
				w.batch = append(w.batch, r)
			} else {
				s.q.put(r) // withdrawn: its appender is gone
			}
			reqs[i] = nil
		}
		w.spare = reqs[:0]
		if len(w.batch) == 0 {
			continue
		}
		s.writeTaken()
		for i, r := range w.batch {
			r.done <- struct{}{}
			w.batch[i] = nil
		}
	}
}

// writeTaken writes the batch the caller took (it owns the files) and sets
// each request's outcome; the caller answers the appenders.
func (s *Spool) writeTaken() {
	w := &s.wr
	if s.opts.ObserveBatch != nil {
		s.opts.ObserveBatch(len(w.batch))
	}
	s.writeBatch(w.batch)
	if cap(w.buf) > 4<<20 {
		w.buf = nil
	}
}

// writeBatch writes the records of batch, rotating segments and applying
// the byte limit record by record as Append did, with one write per
// segment touched and, when any record asks for it, one fsync per segment.
// It sets every request's outcome. Sizes are published (the drain may read
// the records, Stats counts them) only after the batch was written and,
// when asked, fsynced: the drain never sees a record whose append failed.
func (s *Spool) writeBatch(batch []*request) {
	w := &s.wr
	s.mu.Lock()
	failed := s.failed
	cur := s.active
	// room only grows behind our back (Remove, Quarantine): what this
	// batch may add is never overestimated.
	room := s.opts.LimitBytes - s.bytes
	if cur != nil && failed == nil {
		cur.busy = true
	}
	s.mu.Unlock()
	if failed != nil {
		for _, r := range batch {
			r.err = fmt.Errorf("%w: spool disabled after an earlier failed fsync or close: %w", ErrFull, failed)
		}
		return
	}
	now := s.opts.Now()
	w.spans = w.spans[:0]
	w.buf = w.buf[:0]
	if cur != nil {
		w.spans = append(w.spans, span{seg: cur, from: cur.size, end: cur.size})
	}
	needSync := false
	for _, r := range batch {
		frame := int64(len(r.frame))
		if cur != nil {
			sp := &w.spans[len(w.spans)-1]
			if sp.end > HeaderSize && (sp.end+frame > s.opts.SegmentBytes || now.Sub(cur.created) >= s.opts.SegmentAge) {
				room += s.flush(sp)
				s.seal(cur)
				cur = nil
			}
		}
		need := frame
		if cur == nil {
			need += HeaderSize
		}
		if need > room {
			r.err = fmt.Errorf("%w: %d bytes spooled, limit %d (is the database down?)", ErrFull,
				s.opts.LimitBytes-room, s.opts.LimitBytes)
			continue
		}
		if cur == nil {
			seg, err := s.createSegment(now)
			if err != nil {
				// Nothing was created; the next record tries again.
				r.err = fmt.Errorf("%w: %w", ErrFull, err)
				continue
			}
			cur = seg
			room -= HeaderSize
			w.spans = append(w.spans, span{seg: cur, from: HeaderSize, end: HeaderSize})
		}
		sp := &w.spans[len(w.spans)-1]
		r.pos = Position{SegmentID: cur.id, Seq: cur.seq, Offset: sp.end}
		r.span = len(w.spans) - 1
		w.buf = append(w.buf, r.frame...)
		sp.end += frame
		room -= frame
		needSync = needSync || r.sync
	}
	if len(w.spans) > 0 {
		s.flush(&w.spans[len(w.spans)-1])
	}
	synced := false
	if needSync {
		synced = s.syncSpans()
	}
	var ok uint64
	for _, r := range batch {
		if r.err == nil {
			if err := w.spans[r.span].err; err != nil {
				r.err = err
			} else {
				ok++
			}
		}
	}
	s.mu.Lock()
	for i := range w.spans {
		sp := &w.spans[i]
		if sp.err == nil && sp.end > sp.from {
			sp.seg.size = sp.end
			s.bytes += sp.end - sp.from
			if synced {
				sp.seg.synced = sp.end
			}
		}
		sp.seg.busy = false
		sp.seg = nil
	}
	s.appended.Add(ok)
	s.mu.Unlock()
}

// flush writes the buffered frames of sp's segment and returns the bytes
// given back to the limit when the write failed. A failed write is cut off
// (a torn frame must not stay readable, nor refused records be replayed at
// the next Open) and the segment sealed: the next record goes to a new
// file.
func (s *Spool) flush(sp *span) int64 {
	w := &s.wr
	defer func() { w.buf = w.buf[:0] }()
	if len(w.buf) == 0 {
		return 0
	}
	if _, err := sp.seg.f.Write(w.buf); err != nil {
		if terr := sp.seg.f.Truncate(sp.from); terr != nil {
			s.opts.Log.Error("spool: cannot cut failed write", zap.String("path", sp.seg.path), zap.Error(terr))
		}
		s.seal(sp.seg)
		sp.err = fmt.Errorf("%w: write %s: %w", ErrFull, sp.seg.path, err)
		return sp.end - sp.from
	}
	return 0
}

// syncSpans fsyncs the directory (when a segment of the batch is new to
// it) and every segment the batch wrote, and reports whether all of that
// worked. A failed fsync ends the spool's promises (see fail): every
// record of the batch is refused and cut off the files, best effort, so
// that no restart replays what the miners were told was not recorded.
func (s *Spool) syncSpans() bool {
	w := &s.wr
	s.mu.Lock()
	needDir := false
	for i := range w.spans {
		if w.spans[i].err == nil && !w.spans[i].seg.dirSynced {
			needDir = true
		}
	}
	s.mu.Unlock()
	var err error
	if needDir {
		if err = s.syncDir(); err == nil {
			s.mu.Lock()
			for i := range w.spans {
				w.spans[i].seg.dirSynced = true
			}
			s.mu.Unlock()
		}
	}
	for i := range w.spans {
		sp := &w.spans[i]
		if err != nil {
			break
		}
		if sp.err == nil && sp.end > sp.from {
			if serr := sp.seg.f.Sync(); serr != nil {
				err = fmt.Errorf("fsync %s: %w", sp.seg.path, serr)
			}
		}
	}
	if err == nil {
		return true
	}
	s.fail(err)
	for i := range w.spans {
		sp := &w.spans[i]
		if sp.err != nil || sp.end == sp.from {
			continue
		}
		if terr := sp.seg.f.Truncate(sp.from); terr != nil {
			s.opts.Log.Error("spool: cannot cut records refused after a failed fsync", zap.String("path", sp.seg.path), zap.Error(terr))
		}
		sp.err = fmt.Errorf("%w: %w", ErrFull, err)
	}
	return false
}

// seal ends seg (the writer rotates, or its write failed).
func (s *Spool) seal(seg *segment) {
	s.mu.Lock()
	seg.sealed = true
	if s.active == seg {
		s.active = nil
	}
	s.mu.Unlock()
}

// createSegment creates the next segment file and makes it the active
// one, busy with the writer's batch. Only the writer creates segments, so
// the file is created outside the lock Sync and the drain take.
func (s *Spool) createSegment(now time.Time) (*segment, error) {
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	seq := s.nextSeq
	path := filepath.Join(s.dir, segmentName(seq))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		// Nothing was created (EMFILE is checked before the file is):
		// the next record tries the same name again.
		return nil, fmt.Errorf("create segment: %w", err)
	}
	// The name is taken from here on, even if the file is left behind
	// below: retrying it would fail with EEXIST for ever.
	s.nextSeq++
	var file File = f
	if s.opts.WrapFile != nil {
		file = s.opts.WrapFile(f)
	}
	if _, err := file.Write(encodeHeader(id, seq)); err != nil {
		file.Close()
		os.Remove(path)
		return nil, fmt.Errorf("write segment header %s: %w", path, err)
	}
	seg := &segment{seq: seq, id: id, path: path, f: file, size: HeaderSize, busy: true, created: now}
	s.mu.Lock()
	s.segs = append(s.segs, seg)
	s.active = seg
	s.bytes += HeaderSize
	s.mu.Unlock()
	return seg, nil
}
