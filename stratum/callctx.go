package stratum

import (
	"context"
	"sync"
	"time"
)

// callCtx is a reusable context bounding one call into the Sink at a time.
// context.WithTimeout costs four allocations (context, timer, channel,
// cancel func) on every accepted share; a callCtx comes from a pool, is
// armed for the call and disarmed after it, so the share path allocates
// nothing. Only a deadline that really expires costs a fresh channel when
// the context is reused.
//
// Like every context given to a Sink (see Sink), it is valid only during
// the call: afterwards it is disarmed and handed to another call.
//
// The parent is the server's operation context, which is never canceled
// (context.WithoutCancel), so only the deadline can end a callCtx; values
// are looked up in the parent.
type callCtx struct {
	parent context.Context
	timer  *time.Timer

	mu       sync.Mutex
	deadline time.Time // zero while disarmed
	done     chan struct{}
	err      error
}

var _ context.Context = (*callCtx)(nil)

func newCallCtx() *callCtx {
	c := &callCtx{parent: context.Background(), done: make(chan struct{})}
	c.timer = time.AfterFunc(time.Hour, c.expire)
	c.timer.Stop()
	return c
}

// arm starts the call: the context expires d from now. parent must never
// be canceled (it is only asked for values).
func (c *callCtx) arm(parent context.Context, d time.Duration) {
	c.mu.Lock()
	c.parent = parent
	// The deadline is taken before the timer is set, so the timer never
	// fires before it (expire checks).
	c.deadline = time.Now().Add(d)
	c.mu.Unlock()
	c.timer.Reset(d)
}

// disarm ends the call and readies the context for the next one.
func (c *callCtx) disarm() {
	c.timer.Stop()
	c.mu.Lock()
	c.deadline = time.Time{}
	if c.err != nil {
		c.done, c.err = make(chan struct{}), nil
	}
	c.mu.Unlock()
}

// expire runs on the timer. A firing that belongs to an earlier call (the
// timer went off just as that call was disarmed) finds the context
// disarmed or its deadline still ahead, and does nothing.
func (c *callCtx) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.deadline.IsZero() || time.Now().Before(c.deadline) {
		return
	}
	c.err = context.DeadlineExceeded
	close(c.done)
}

// Deadline returns the call's deadline.
func (c *callCtx) Deadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline, !c.deadline.IsZero()
}

// Done is closed when the deadline passed.
func (c *callCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

// Err is context.DeadlineExceeded once Done is closed, nil before.
func (c *callCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Value looks the key up in the parent.
func (c *callCtx) Value(key any) any {
	c.mu.Lock()
	p := c.parent
	c.mu.Unlock()
	return p.Value(key)
}

// String names the context in debug output, as the standard ones do.
func (c *callCtx) String() string { return "stratum.callCtx" }

// sinkCall returns an armed context for one Sink call; end it with
// endSinkCall once the call returned.
func (s *Server) sinkCall(d time.Duration) *callCtx {
	c := s.calls.Get().(*callCtx)
	c.arm(s.opCtx, d)
	return c
}

func (s *Server) endSinkCall(c *callCtx) {
	c.disarm()
	s.calls.Put(c)
}
