package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Action is what Act does to each miner.
type Action string

// Actions.
const (
	ActionCurtail Action = "curtail"
	ActionResume  Action = "resume"
	// ActionStatus only reads each miner.
	ActionStatus Action = "status"
)

// Defaults of Options.
const (
	DefaultMaxInFlight  = 256
	DefaultCallTimeout  = 5 * time.Second
	DefaultRetries      = 2
	DefaultRetryBackoff = 250 * time.Millisecond
)

// Options tune Act. The zero value acts with the defaults.
type Options struct {
	// Drivers resolves inventory driver names (NewRegistry when nil).
	Drivers Registry
	// MaxInFlight bounds the miners acted on at once (DefaultMaxInFlight).
	MaxInFlight int
	// CallTimeout bounds each driver call (DefaultCallTimeout).
	CallTimeout time.Duration
	// Retries is the number of attempts after the first for a failure that
	// may pass (unreachable, bad reply, refused); a wrong password or a
	// firmware without sleep is not retried. -1 means none;
	// 0 means DefaultRetries.
	Retries int
	// RetryBackoff is the wait before the first retry, doubled for each
	// next one (DefaultRetryBackoff).
	RetryBackoff time.Duration
	// RestoreBatchSize, when > 0, resumes miners in batches of this many
	// (allocator restore_batch_size), each batch finished before the next
	// starts, RestoreBatchInterval apart, so a site's inrush stays
	// bounded. Curtailment always goes at once: shedding load is urgent.
	RestoreBatchSize     int
	RestoreBatchInterval time.Duration
	// Verify reads each acted-on miner back through its driver: a curtail
	// that reads back mining fails with ErrStillHashing, a resume that
	// reads back sleeping with ErrStillSleeping.
	Verify bool
	// Wait sleeps between batches and retries (a timer honouring ctx when
	// nil); tests inject their own.
	Wait func(ctx context.Context, d time.Duration) error
	// Log receives one debug line per failed attempt and one info line per
	// Act (nil: no logs). Lines name the miner's address, never its
	// password.
	Log *zap.Logger
}

func (o Options) withDefaults() Options {
	if o.Drivers == nil {
		o.Drivers = NewRegistry(DriverOptions{})
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	switch {
	case o.Retries == 0:
		o.Retries = DefaultRetries
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultRetryBackoff
	}
	if o.Wait == nil {
		o.Wait = sleepCtx
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	return o
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Result is one miner's outcome. It names the miner by address and never
// carries its password.
type Result struct {
	Address string `json:"address"`
	Driver  string `json:"driver"`
	Group   string `json:"group"`
	Action  Action `json:"action"`
	OK      bool   `json:"ok"`
	// Attempts counts driver attempts for the action (1 when it succeeded
	// at once).
	Attempts int `json:"attempts"`
	// State is the read-back (ActionStatus, or Verify); nil when none.
	State *MinerState `json:"state,omitempty"`
	// Reason is Reason(Err) ("unreachable", "auth", ...); Error is the
	// message. Both are empty on success.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
	// Err is the error itself, for errors.Is.
	Err error `json:"-"`
	// Batch is the restore batch the miner was resumed in (0 otherwise).
	Batch int `json:"batch,omitempty"`
	// Elapsed is how long the miner took, retries included.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Act applies action to every miner and returns one Result per miner, in
// the order given. At most MaxInFlight miners are in progress at once;
// resumes go in batches when RestoreBatchSize is set. Act returns when
// every miner has its result (or ctx ended: the rest report canceled);
// it leaves no goroutine behind.
func Act(ctx context.Context, miners []Miner, action Action, o Options) []Result {
	o = o.withDefaults()
	results := make([]Result, len(miners))
	switch action {
	case ActionCurtail, ActionResume, ActionStatus:
	default:
		for i, m := range miners {
			err := fmt.Errorf("unknown action %q", action)
			results[i] = Result{Address: m.Address, Driver: m.Driver, Group: m.Group, Action: action, Reason: "error", Error: err.Error(), Err: err}
		}
		return results
	}
	start := time.Now()
	batches := [][]int{indexes(len(miners))}
	if action == ActionResume && o.RestoreBatchSize > 0 {
		batches = split(len(miners), o.RestoreBatchSize)
	}
	for b, idx := range batches {
		if b > 0 {
			if err := o.Wait(ctx, o.RestoreBatchInterval); err != nil {
				for _, rest := range batches[b:] {
					for _, i := range rest {
						results[i] = canceled(miners[i], action, err)
					}
				}
				break
			}
		}
		batchNo := 0
		if len(batches) > 1 {
			batchNo = b + 1
		}
		runBatch(ctx, miners, idx, action, o, results, batchNo)
	}
	failed := 0
	for _, r := range results {
		if !r.OK {
			failed++
		}
	}
	o.Log.Info("fleet action done", zap.String("action", string(action)), zap.Int("miners", len(miners)),
		zap.Int("failed", failed), zap.Int("batches", len(batches)), zap.Duration("elapsed", time.Since(start)))
	return results
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func split(n, size int) [][]int {
	var out [][]int
	for lo := 0; lo < n; lo += size {
		hi := min(lo+size, n)
		b := make([]int, 0, hi-lo)
		for i := lo; i < hi; i++ {
			b = append(b, i)
		}
		out = append(out, b)
	}
	return out
}

func canceled(m Miner, action Action, err error) Result {
	err = fmt.Errorf("%s %s: not attempted: %w", action, m.Address, err)
	return Result{Address: m.Address, Driver: m.Driver, Group: m.Group, Action: action, Reason: Reason(err), Error: err.Error(), Err: err}
}

// runBatch acts on miners[idx...] with at most MaxInFlight at once and
// waits for all of them.
func runBatch(ctx context.Context, miners []Miner, idx []int, action Action, o Options, results []Result, batch int) {
	sem := make(chan struct{}, o.MaxInFlight)
	var wg sync.WaitGroup
	for _, i := range idx {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			results[i] = canceled(miners[i], action, ctx.Err())
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			r := actOne(ctx, miners[i], action, o)
			r.Batch = batch
			results[i] = r
		})
	}
	wg.Wait()
}

// actOne runs one miner's action with retries, then the read-back.
func actOne(ctx context.Context, m Miner, action Action, o Options) Result {
	start := time.Now()
	r := Result{Address: m.Address, Driver: m.Driver, Group: m.Group, Action: action}
	fail := func(err error) Result {
		r.Err, r.Reason, r.Error, r.Elapsed = err, Reason(err), err.Error(), time.Since(start)
		return r
	}
	d, err := o.Drivers.Lookup(m.Driver)
	if err != nil {
		return fail(err)
	}
	if action != ActionStatus && !d.CanCurtail() {
		r.Attempts = 1
		return fail(fmt.Errorf("%s %s: %w: driver %s is read-only", action, m.Address, ErrCannotCurtail, m.Driver))
	}
	var st MinerState
	err = o.retry(ctx, m, &r.Attempts, func(cctx context.Context) error {
		switch action {
		case ActionCurtail:
			return d.Curtail(cctx, m)
		case ActionResume:
			return d.Resume(cctx, m)
		default:
			var err error
			st, err = d.Status(cctx, m)
			return err
		}
	})
	if err != nil {
		return fail(err)
	}
	if action == ActionStatus {
		r.State = &st
	} else if o.Verify {
		var n int
		if err := o.retry(ctx, m, &n, func(cctx context.Context) error {
			var err error
			st, err = d.Status(cctx, m)
			return err
		}); err != nil {
			return fail(fmt.Errorf("read back after %s: %w", action, err))
		}
		r.State = &st
		switch {
		case action == ActionCurtail && st.State == StateMining:
			return fail(fmt.Errorf("%s %s: %w: acknowledged sleep, reads back mining at %.3g TH/s", action, m.Address, ErrStillHashing, st.HashrateTHs))
		case action == ActionResume && st.State == StateSleeping:
			return fail(fmt.Errorf("%s %s: %w: acknowledged wake-up, reads back sleeping", action, m.Address, ErrStillSleeping))
		}
	}
	r.OK, r.Elapsed = true, time.Since(start)
	return r
}

// retry runs call with a CallTimeout deadline per attempt, retrying
// retryable failures after a doubling backoff.
func (o Options) retry(ctx context.Context, m Miner, attempts *int, call func(context.Context) error) error {
	backoff := o.RetryBackoff
	var err error
	for a := 0; a <= o.Retries; a++ {
		if a > 0 {
			if werr := o.Wait(ctx, backoff); werr != nil {
				return errors.Join(err, werr)
			}
			backoff *= 2
		}
		*attempts++
		cctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
		err = call(cctx)
		cancel()
		if err == nil {
			return nil
		}
		o.Log.Debug("fleet attempt failed", zap.String("miner", m.Address), zap.String("driver", m.Driver),
			zap.Int("attempt", a+1), zap.String("reason", Reason(err)), zap.Error(err))
		if !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// Summary counts results by outcome and failure reason.
type Summary struct {
	Miners   int            `json:"miners"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	ByReason map[string]int `json:"by_reason,omitempty"`
}

// Summarize counts rs.
func Summarize(rs []Result) Summary {
	s := Summary{Miners: len(rs)}
	for _, r := range rs {
		if r.OK {
			s.OK++
			continue
		}
		s.Failed++
		if s.ByReason == nil {
			s.ByReason = map[string]int{}
		}
		s.ByReason[r.Reason]++
	}
	return s
}
