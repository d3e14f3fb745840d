package stratum

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

type ctxKey struct{}

// TestCallCtxLifecycle: armed, the context carries its deadline and the
// parent's values; it expires like context.WithTimeout; disarmed and
// re-armed, it is live again with a fresh Done channel.
func TestCallCtxLifecycle(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "v")
	c := newCallCtx()

	before := time.Now()
	c.arm(parent, time.Hour)
	if d, ok := c.Deadline(); !ok || d.Before(before.Add(time.Hour)) {
		t.Fatalf("deadline %v %v, want about an hour from now", d, ok)
	}
	if c.Err() != nil {
		t.Fatalf("armed context has error %v", c.Err())
	}
	if got := c.Value(ctxKey{}); got != "v" {
		t.Fatalf("value %v, want the parent's", got)
	}
	select {
	case <-c.Done():
		t.Fatal("done before the deadline")
	default:
	}
	c.disarm()
	if _, ok := c.Deadline(); ok {
		t.Fatal("disarmed context still has a deadline")
	}

	c.arm(parent, time.Millisecond)
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("1ms deadline did not expire")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("err %v, want DeadlineExceeded", c.Err())
	}
	expired := c.Done()
	c.disarm()

	c.arm(parent, time.Hour)
	if c.Err() != nil || c.Done() == expired {
		t.Fatalf("reused context: err %v, same closed channel %v", c.Err(), c.Done() == expired)
	}
	select {
	case <-c.Done():
		t.Fatal("reused context is done")
	default:
	}
	c.disarm()
}

// TestCallCtxStaleFiring: a timer firing that belongs to an earlier call
// (it went off as that call was disarmed) must not end the next call.
func TestCallCtxStaleFiring(t *testing.T) {
	c := newCallCtx()
	c.expire() // disarmed
	if c.Err() != nil {
		t.Fatalf("firing while disarmed set %v", c.Err())
	}
	c.arm(context.Background(), time.Hour)
	c.expire() // deadline an hour ahead
	if c.Err() != nil {
		t.Fatalf("early firing set %v", c.Err())
	}
	c.disarm()
}

// TestCallCtxNoAlloc: arming and disarming a pooled context allocates
// nothing, which is the point of it.
func TestCallCtxNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	s := &Server{opCtx: context.Background()}
	s.calls.New = func() any { return newCallCtx() }
	s.endSinkCall(s.sinkCall(time.Second)) // warm the pool
	allocs := testing.AllocsPerRun(1000, func() {
		c := s.sinkCall(time.Second)
		if c.Err() != nil {
			t.Fatal(c.Err())
		}
		s.endSinkCall(c)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per sink call context", allocs)
	}
}

// TestCallCtxConcurrent exercises arming, expiry and readers at once
// (meaningful under -race).
func TestCallCtxConcurrent(t *testing.T) {
	c := newCallCtx()
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		c.arm(context.Background(), time.Duration(i%3)*time.Microsecond)
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-c.Done():
				_ = c.Err()
			case <-time.After(time.Millisecond):
			}
			c.Deadline()
		}()
		wg.Wait()
		c.disarm()
	}
}

// expiringSink waits in RecordShare until its context ends.
type expiringSink struct {
	*recSink
	deadline chan bool // whether the context carried a deadline
}

func (b *expiringSink) RecordShare(ctx context.Context, _ *Share) error {
	_, ok := ctx.Deadline()
	<-ctx.Done()
	b.deadline <- ok
	return ctx.Err()
}

// TestSinkTimeoutRejectsShare: a sink that does not answer within
// SinkTimeout gets a context that expires, and the share is rejected as
// not recorded; the next share gets a live context again.
func TestSinkTimeoutRejectsShare(t *testing.T) {
	s, c, job := offlineConn(t, makeTemplate(100, mainnetBits, 5, 1), tinyDiff)
	cfg := *s.cfg.Load()
	cfg.SinkTimeout = 20 * time.Millisecond
	s.cfg.Store(&cfg)
	sink := &expiringSink{recSink: s.sink.(*recSink), deadline: make(chan bool, 2)}
	s.sink = sink
	var m Message
	for i := uint32(1); i <= 2; i++ {
		if !c.handleLine(submitLine(job, "00000001", i), &m) {
			t.Fatal("connection closed")
		}
		if !<-sink.deadline {
			t.Fatal("sink context had no deadline")
		}
		if got := s.rejected[RejectNotRecorded].Load(); got != uint64(i) {
			t.Fatalf("share %d: %d not-recorded rejects, want %d", i, got, i)
		}
	}
	if s.accepted.Load() != 0 {
		t.Fatalf("%d shares accepted by a sink that never answered", s.accepted.Load())
	}
}

// TestSubmitPathNoAlloc: an accepted share, from line to reply written,
// allocates nothing with a sink that does not allocate.
func TestSubmitPathNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	s, c, job := offlineConn(t, makeTemplate(100, mainnetBits, 3000, 1), tinyDiff)
	s.sink = NewLogSink(zap.NewNop())
	cfg := *s.cfg.Load()
	cfg.Vardiff.RetargetShares = 0
	cfg.Vardiff.RetargetInterval = 1 << 62
	s.cfg.Store(&cfg)
	lines := make([][]byte, 300)
	for i := range lines {
		lines[i] = submitLine(job, "00000001", uint32(i))
	}
	var m Message
	c.handleLine(lines[0], &m) // first share on the job creates its duplicate set
	i := 1
	allocs := testing.AllocsPerRun(200, func() {
		if !c.handleLine(lines[i], &m) {
			t.Fatal("connection closed")
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per accepted share", allocs)
	}
	if n := s.accepted.Load(); n < 201 {
		t.Fatalf("%d shares accepted, want all", n)
	}
}
