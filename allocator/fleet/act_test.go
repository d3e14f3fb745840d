package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// fakeDriver scripts failures per address and records concurrency.
type fakeDriver struct {
	name    string
	curtail bool
	mu      sync.Mutex
	// fails[addr] is the list of errors returned by successive calls.
	fails    map[string][]error
	state    map[string]State
	calls    []string
	inFlight atomic.Int32
	maxSeen  atomic.Int32
	hold     chan struct{} // when set, calls wait for it to close
}

func newFake(name string) *fakeDriver {
	return &fakeDriver{name: name, curtail: true, fails: map[string][]error{}, state: map[string]State{}}
}

func (f *fakeDriver) Name() string     { return f.name }
func (f *fakeDriver) CanCurtail() bool { return f.curtail }

func (f *fakeDriver) enter(ctx context.Context, op string, m Miner) error {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		old := f.maxSeen.Load()
		if n <= old || f.maxSeen.CompareAndSwap(old, n) {
			break
		}
	}
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrUnreachable, ctx.Err())
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op+" "+m.Address)
	if errs := f.fails[m.Address]; len(errs) > 0 {
		f.fails[m.Address] = errs[1:]
		if errs[0] != nil {
			return errs[0]
		}
	}
	return nil
}

func (f *fakeDriver) Status(ctx context.Context, m Miner) (MinerState, error) {
	if err := f.enter(ctx, "status", m); err != nil {
		return MinerState{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.state[m.Address]
	if st == "" {
		st = StateMining
	}
	return MinerState{State: st}, nil
}

func (f *fakeDriver) Curtail(ctx context.Context, m Miner) error {
	if err := f.enter(ctx, "curtail", m); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state[m.Address] != "liar" {
		f.state[m.Address] = StateSleeping
	}
	return nil
}

func (f *fakeDriver) Resume(ctx context.Context, m Miner) error {
	if err := f.enter(ctx, "resume", m); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state[m.Address] = StateMining
	return nil
}

func miners(n int, driver string) []Miner {
	out := make([]Miner, n)
	for i := range out {
		out[i] = Miner{Address: fmt.Sprintf("10.0.%d.%d:4028", i/250, i%250+1), Driver: driver, Group: "g"}
	}
	return out
}

// noWait records waits instead of sleeping.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func TestActRetriesAndReasons(t *testing.T) {
	f := newFake("fake")
	ms := miners(5, "fake")
	unreach := fmt.Errorf("%w: dial: connection refused", ErrUnreachable)
	f.fails[ms[0].Address] = []error{unreach, unreach}                          // succeeds on the 3rd attempt
	f.fails[ms[1].Address] = []error{unreach, unreach, unreach}                 // fails after 3 attempts
	f.fails[ms[2].Address] = []error{fmt.Errorf("%w: digest refused", ErrAuth)} // not retried
	f.fails[ms[3].Address] = []error{fmt.Errorf("%w: garbage", ErrBadReply)}    // retried once, then OK
	w := &waits{}
	rs := Act(context.Background(), ms, ActionCurtail, Options{Drivers: Registry{"fake": f}, Retries: 2, RetryBackoff: 100 * time.Millisecond, Wait: w.wait})
	want := []struct {
		ok       bool
		attempts int
		reason   string
	}{{true, 3, ""}, {false, 3, "unreachable"}, {false, 1, "auth"}, {true, 2, ""}, {true, 1, ""}}
	for i, w := range want {
		r := rs[i]
		if r.OK != w.ok || r.Attempts != w.attempts || r.Reason != w.reason || r.Address != ms[i].Address || r.Group != "g" {
			t.Errorf("miner %d: ok %v attempts %d reason %q, want %+v (%v)", i, r.OK, r.Attempts, r.Reason, w, r.Err)
		}
	}
	if !errors.Is(rs[2].Err, ErrAuth) || !strings.Contains(rs[1].Error, "connection refused") {
		t.Errorf("errors: %v / %q", rs[2].Err, rs[1].Error)
	}
	// Backoffs: miner 0 waits 100ms then 200ms, miner 1 the same, miner 3
	// 100ms: five waits summing to 700ms.
	var sum time.Duration
	for _, d := range w.d {
		sum += d
	}
	if len(w.d) != 5 || sum != 700*time.Millisecond {
		t.Errorf("waits %v, want 5 summing to 700ms", w.d)
	}
	s := Summarize(rs)
	if s.OK != 3 || s.Failed != 2 || s.ByReason["unreachable"] != 1 || s.ByReason["auth"] != 1 {
		t.Errorf("summary %+v", s)
	}
}

// TestActBoundedParallelism: no more than MaxInFlight calls at once, and
// all of them at once when the bound allows.
func TestActBoundedParallelism(t *testing.T) {
	for _, tc := range []struct{ miners, bound, want int }{{50, 8, 8}, {20, 256, 20}} {
		f := newFake("fake")
		f.hold = make(chan struct{})
		ms := miners(tc.miners, "fake")
		done := make(chan []Result)
		go func() {
			done <- Act(context.Background(), ms, ActionCurtail, Options{Drivers: Registry{"fake": f}, MaxInFlight: tc.bound})
		}()
		deadline := time.Now().Add(5 * time.Second)
		for f.inFlight.Load() < int32(tc.want) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		close(f.hold)
		rs := <-done
		if got := f.maxSeen.Load(); got != int32(tc.want) {
			t.Errorf("%d miners, bound %d: max in flight %d, want %d", tc.miners, tc.bound, got, tc.want)
		}
		if s := Summarize(rs); s.OK != tc.miners {
			t.Errorf("summary %+v", s)
		}
	}
}

// TestActResumeInBatches: 7 miners in batches of 3 resume as 3+3+1, each
// batch finished before the next, the interval waited twice.
func TestActResumeInBatches(t *testing.T) {
	f := newFake("fake")
	ms := miners(7, "fake")
	w := &waits{}
	rs := Act(context.Background(), ms, ActionResume, Options{Drivers: Registry{"fake": f},
		RestoreBatchSize: 3, RestoreBatchInterval: 30 * time.Second, Wait: w.wait})
	wantBatch := []int{1, 1, 1, 2, 2, 2, 3}
	for i, r := range rs {
		if !r.OK || r.Batch != wantBatch[i] {
			t.Errorf("miner %d: ok %v batch %d, want batch %d", i, r.OK, r.Batch, wantBatch[i])
		}
	}
	if len(w.d) != 2 || w.d[0] != 30*time.Second || w.d[1] != 30*time.Second {
		t.Errorf("waits %v, want two of 30s", w.d)
	}
	// Calls of batch k all come before those of batch k+1.
	pos := map[string]int{}
	for i, c := range f.calls {
		pos[strings.TrimPrefix(c, "resume ")] = i
	}
	for i := range ms {
		for j := range ms {
			if wantBatch[i] < wantBatch[j] && pos[ms[i].Address] > pos[ms[j].Address] {
				t.Fatalf("miner %d (batch %d) resumed after miner %d (batch %d)", i, wantBatch[i], j, wantBatch[j])
			}
		}
	}
	// Curtailment ignores the batch size.
	w.d = nil
	rs = Act(context.Background(), ms, ActionCurtail, Options{Drivers: Registry{"fake": f}, RestoreBatchSize: 3, Wait: w.wait})
	if len(w.d) != 0 || rs[6].Batch != 0 {
		t.Errorf("curtail waited %v, batch %d", w.d, rs[6].Batch)
	}
}

// TestActVerify: a miner that acknowledges sleep and reads back mining is
// still_hashing; a read-only driver is cannot_curtail without a call.
func TestActVerify(t *testing.T) {
	f := newFake("fake")
	ro := newFake("ro")
	ro.curtail = false
	ms := miners(3, "fake")
	ms[2].Driver = "ro"
	f.state[ms[1].Address] = "liar" // Curtail leaves it; Status then reads "liar"
	rs := Act(context.Background(), ms, ActionCurtail, Options{Drivers: Registry{"fake": f, "ro": ro}, Verify: true})
	if !rs[0].OK || rs[0].State == nil || rs[0].State.State != StateSleeping {
		t.Errorf("miner 0: %+v", rs[0])
	}
	// "liar" is neither mining nor sleeping: not proof of hashing.
	if !rs[1].OK {
		t.Errorf("miner 1: %+v", rs[1])
	}
	if rs[2].OK || rs[2].Reason != "cannot_curtail" || len(ro.calls) != 0 {
		t.Errorf("read-only miner: %+v, calls %v", rs[2], ro.calls)
	}
	f.mu.Lock()
	f.state[ms[1].Address] = StateMining
	f.fails[ms[0].Address] = nil
	f.mu.Unlock()
	liar := &liarDriver{fakeDriver: f}
	rs = Act(context.Background(), ms[:2], ActionCurtail, Options{Drivers: Registry{"fake": liar}, Verify: true})
	if rs[0].OK || rs[0].Reason != "still_hashing" || !errors.Is(rs[0].Err, ErrStillHashing) {
		t.Errorf("liar: %+v", rs[0])
	}
}

// liarDriver acknowledges every curtail and keeps reading mining.
type liarDriver struct{ *fakeDriver }

func (l *liarDriver) Curtail(context.Context, Miner) error { return nil }

func (l *liarDriver) Status(context.Context, Miner) (MinerState, error) {
	return MinerState{State: StateMining, HashrateTHs: 95}, nil
}

// TestActCanceled: a cancelled context ends Act promptly with every miner
// reported, and no goroutine left.
func TestActCanceled(t *testing.T) {
	leakcheck.Test(t)
	f := newFake("fake")
	f.hold = make(chan struct{})
	defer close(f.hold)
	ms := miners(40, "fake")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []Result)
	go func() {
		done <- Act(ctx, ms, ActionCurtail, Options{Drivers: Registry{"fake": f}, MaxInFlight: 4, Retries: -1})
	}()
	for f.inFlight.Load() < 4 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	var rs []Result
	select {
	case rs = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Act did not return after cancel")
	}
	for i, r := range rs {
		if r.OK || r.Address != ms[i].Address || r.Reason != "canceled" {
			t.Fatalf("miner %d: %+v", i, r)
		}
	}
}

func TestActuatorApply(t *testing.T) {
	f := newFake("fake")
	ms := miners(4, "fake")
	ms[3].Group = "other"
	f.fails[ms[1].Address] = []error{fmt.Errorf("%w: bad digest", ErrAuth)}
	a := NewActuator(ms, Options{Drivers: Registry{"fake": f}, Wait: (&waits{}).wait})
	err := a.Apply(context.Background(), allocator.Decision{Group: "g", Before: allocator.Mining, After: allocator.Curtailed})
	var ae *ActError
	if !errors.As(err, &ae) || len(ae.Failed) != 1 || ae.Failed[0].Address != ms[1].Address || !errors.Is(err, ErrAuth) {
		t.Fatalf("apply: %v", err)
	}
	if !strings.Contains(err.Error(), "1 of 3 miners failed (auth 1)") {
		t.Errorf("message %q", err)
	}
	if got := a.Last("g"); len(got) != 3 {
		t.Errorf("last %d results", len(got))
	}
	if err := a.Apply(context.Background(), allocator.Decision{Group: "g", Before: allocator.Curtailed, After: allocator.Mining}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Act(context.Background(), "nope", ActionStatus); err == nil {
		t.Fatal("unknown group acted on")
	}
	if g := a.Groups(); len(g) != 2 || g[0] != "g" || g[1] != "other" {
		t.Errorf("groups %v", g)
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{fmt.Errorf("dial: %w", ErrUnreachable), "unreachable"},
		{fmt.Errorf("%w: %w", ErrUnreachable, context.DeadlineExceeded), "unreachable"},
		{fmt.Errorf("%w: %w", ErrUnreachable, context.Canceled), "canceled"},
		{fmt.Errorf("x: %w", ErrAuth), "auth"},
		{fmt.Errorf("x: %w", ErrRefused), "refused"},
		{fmt.Errorf("x: %w", ErrCannotCurtail), "cannot_curtail"},
		{fmt.Errorf("x: %w", ErrBadReply), "bad_reply"},
		{fmt.Errorf("x: %w", ErrStillHashing), "still_hashing"},
		{fmt.Errorf("x: %w", ErrStillSleeping), "still_sleeping"},
		{errors.New("other"), "error"},
	}
	for _, tc := range tests {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if retryable(fmt.Errorf("x: %w", ErrAuth)) || retryable(ErrCannotCurtail) || !retryable(ErrUnreachable) || !retryable(ErrBadReply) {
		t.Error("retryable misclassifies")
	}
}
