package allocator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/internal/webhook"
)

// The closed loop: an action a firmware acknowledged is not yet power
// taken off the grid. After acting on a group the live loop confirms it
// asynchronously: (a) every miner of the group is read back through its
// driver, and (b) the group's accepted difficulty per second at the pool,
// over ConfirmSpec.Window, must fall below Below × its rate before a
// curtailment (or come back above Above × its mining rate after a resume)
// within Timeout. Otherwise the action is retried on the miners that did
// not confirm, Retries times, then alerted: a metric, a log line, a
// confirmation record and, when configured, a signed webhook. A new
// switch of the group supersedes its pending confirmation; evaluations
// never wait for one.

// ConfirmState is where a group's last action stands. The strings are
// stored in allocator_confirmations and shown in the operator view.
type ConfirmState string

// Confirmation states.
const (
	// ConfirmCurtailing and ConfirmResuming: the action was taken and is
	// not confirmed yet.
	ConfirmCurtailing ConfirmState = "curtailing"
	ConfirmResuming   ConfirmState = "resuming"
	// ConfirmConfirmed: every miner read back in the new state and the
	// pool-side rate crossed its threshold.
	ConfirmConfirmed ConfirmState = "confirmed"
	// ConfirmUnconfirmed: the retries ran out; alerted.
	ConfirmUnconfirmed ConfirmState = "unconfirmed"
	// ConfirmSuperseded: a newer switch of the group replaced it.
	ConfirmSuperseded ConfirmState = "superseded"
	// ConfirmCanceled: the loop stopped or lost the leadership first.
	ConfirmCanceled ConfirmState = "canceled"
)

// MinerResult is one machine's part of an action, as the record keeps it.
// It names the miner by address, never by its password.
type MinerResult struct {
	Address string `json:"address"`
	Driver  string `json:"driver"`
	OK      bool   `json:"ok"`
	// Reason is the failure's short name (unreachable, auth, refused,
	// cannot_curtail, bad_reply, still_hashing, still_sleeping, ...);
	// Error the message. Both empty when OK.
	Reason   string `json:"reason,omitempty"`
	Error    string `json:"error,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
	// State is what the miner read back as ("mining", "sleeping",
	// "unknown"); empty when it was not read.
	State string `json:"state,omitempty"`
}

// MachineActuator is an Actuator that reaches some groups miner by miner
// (allocator.actuator = "fleet"): the live loop acts on such a group
// through ActMachines and confirms each miner with ReadBack; other groups
// go through Apply and have only the pool-side check.
type MachineActuator interface {
	Actuator
	// Covers reports whether group's miners are acted on one by one.
	Covers(group string) bool
	// Addresses lists group's miners (their firmware API addresses).
	Addresses(group string) []string
	// ActMachines curtails or resumes group's miners (only those
	// addresses when only is non-nil) and reports each one.
	ActMachines(ctx context.Context, group string, action Action, only []string) []MinerResult
	// ReadBack reads group's miners (only those addresses when only is
	// non-nil) through their drivers; State says what each reports.
	ReadBack(ctx context.Context, group string, only []string) []MinerResult
}

// GroupRates is the pool-side rate: a group's accepted difficulty per
// second over window (stratum's (*Server).GroupRate).
type GroupRates interface {
	GroupRate(group string, window time.Duration) float64
}

// Confirmation is one group's last action and where its confirmation
// stands: the operator view, and one allocator_confirmations row each
// time it changes.
type Confirmation struct {
	Group    string `json:"group"`
	Instance string `json:"instance"`
	// DecisionTime is the evaluation that decided the action.
	DecisionTime time.Time    `json:"decision_time"`
	Action       Action       `json:"action"`
	State        ConfirmState `json:"state"`
	// Since is when the action was taken; Updated when this changed last.
	Since   time.Time `json:"since"`
	Updated time.Time `json:"updated"`
	// Attempt counts the retries taken (0: the first action).
	Attempt int `json:"attempt"`
	// RateBefore is the group's pool-side rate (difficulty per second,
	// over Window) just before the action; RateReference the rate the
	// threshold is a fraction of (RateBefore for a curtailment, the rate
	// before the group's last curtailment, or its nominal hashrate, for a
	// resume); RateNow the newest reading; Threshold the rate to cross.
	RateBefore    float64       `json:"rate_before"`
	RateReference float64       `json:"rate_reference"`
	RateNow       float64       `json:"rate_now"`
	Threshold     float64       `json:"threshold"`
	Window        time.Duration `json:"-"`
	// PoolOK and MachinesOK are the two checks; MachinesOK is nil for a
	// group without miners in the inventory (pool-side check only).
	PoolOK     bool  `json:"pool_ok"`
	MachinesOK *bool `json:"machines_ok,omitempty"`
	// Miners is how many miners the group has in the inventory; Failed
	// those that did not confirm (yet), with their reason.
	Miners  int           `json:"miners"`
	Failed  []MinerResult `json:"failed_miners"`
	Message string        `json:"message,omitempty"`
}

// Pending reports whether the confirmation is still running.
func (c Confirmation) Pending() bool {
	return c.State == ConfirmCurtailing || c.State == ConfirmResuming
}

// ConfirmStore records every change of a confirmation
// (allocator_confirmations and allocator_action_results).
type ConfirmStore interface {
	RecordConfirmation(ctx context.Context, c Confirmation) error
}

// Alerter tells the operator's systems about a confirmation that failed.
type Alerter interface {
	Alert(ctx context.Context, c Confirmation) error
}

// WebhookAlert is the JSON document WebhookAlerter POSTs, signed like the
// decisions (X-Wattpool-Signature). Field names are a contract: add
// fields, never rename them.
type WebhookAlert struct {
	// Type is always "allocator.alert".
	Type string `json:"type"`
	// Kind is "unconfirmed": an action whose confirmation failed after
	// every retry.
	Kind          string        `json:"kind"`
	Group         string        `json:"group"`
	Action        string        `json:"action"`
	DecisionTime  time.Time     `json:"decision_time"`
	Since         time.Time     `json:"since"`
	Time          time.Time     `json:"time"`
	Attempts      int           `json:"attempts"`
	RateBefore    float64       `json:"rate_before"`
	RateReference float64       `json:"rate_reference"`
	RateNow       float64       `json:"rate_now"`
	Threshold     float64       `json:"threshold"`
	WindowSeconds float64       `json:"window_seconds"`
	PoolOK        bool          `json:"pool_ok"`
	MachinesOK    *bool         `json:"machines_ok,omitempty"`
	Miners        int           `json:"miners"`
	FailedMiners  []MinerResult `json:"failed_miners"`
	Message       string        `json:"message"`
}

// WebhookAlerter POSTs a WebhookAlert to the allocator's webhook.
type WebhookAlerter struct{ client *webhook.Client }

// NewWebhookAlerter builds the alerter on [allocator.webhook] and its
// secret (SecretFromEnv); now is the signature's clock (time.Now if nil).
func NewWebhookAlerter(spec WebhookSpec, secret []byte, now func() time.Time, log *zap.Logger) (*WebhookAlerter, error) {
	c, err := newWebhookClient(spec, secret, now, log)
	if err != nil {
		return nil, err
	}
	return &WebhookAlerter{client: c}, nil
}

// Alert POSTs c as an "allocator.alert" document.
func (a *WebhookAlerter) Alert(ctx context.Context, c Confirmation) error {
	failed := c.Failed
	if failed == nil {
		failed = []MinerResult{}
	}
	body, err := json.Marshal(WebhookAlert{Type: "allocator.alert", Kind: "unconfirmed", Group: c.Group,
		Action: string(c.Action), DecisionTime: c.DecisionTime.UTC(), Since: c.Since.UTC(), Time: c.Updated.UTC(),
		Attempts: c.Attempt + 1, RateBefore: finite(c.RateBefore), RateReference: finite(c.RateReference),
		RateNow: finite(c.RateNow), Threshold: finite(c.Threshold), WindowSeconds: c.Window.Seconds(),
		PoolOK: c.PoolOK, MachinesOK: c.MachinesOK, Miners: c.Miners, FailedMiners: failed, Message: c.Message})
	if err != nil {
		return fmt.Errorf("alert webhook: group %q: encode: %w", c.Group, err)
	}
	if err := a.client.Post(ctx, body); err != nil {
		return fmt.Errorf("alert webhook: group %q: %w", c.Group, err)
	}
	return nil
}

// Defaults of the confirmation's pacing (LoopConfig).
const (
	DefaultConfirmPoll   = time.Second
	DefaultReadBackDelay = 2 * time.Second
)

// confirmer runs the loop's confirmations, one goroutine per group.
type confirmer struct {
	l   *Loop
	ctx context.Context // canceled by stop
	end context.CancelFunc
	wg  sync.WaitGroup

	mu     sync.Mutex
	jobs   map[string]*confirmJob
	latest map[string]Confirmation
	// miningRate remembers each group's rate before its last curtailment:
	// the reference a resume must come back to.
	miningRate map[string]float64
	// began is when the confirmer started: a rate read before began +
	// confirm_window covers less than a window and reads low.
	began time.Time
}

type confirmJob struct {
	// ctx is the job's context: it tells the job's updates apart from a
	// newer job's.
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
}

var (
	errSuperseded = errors.New("superseded by a newer switch")
	errStopped    = errors.New("allocator loop stopped")
)

func newConfirmer(l *Loop) *confirmer {
	ctx, cancel := context.WithCancel(context.Background())
	return &confirmer{l: l, ctx: ctx, end: cancel, jobs: map[string]*confirmJob{},
		latest: map[string]Confirmation{}, miningRate: map[string]float64{}, began: l.now()}
}

// enabled reports whether actions are confirmed at all: it needs the
// pool's rates and a window.
func (c *confirmer) enabled() bool {
	cs := c.l.cfg.Config.Confirm
	return c.l.cfg.Rates != nil && cs.Window > 0 && cs.Timeout > 0
}

// rate reads the group's pool-side rate.
func (c *confirmer) rate(group string) float64 {
	return c.l.cfg.Rates.GroupRate(group, c.l.cfg.Config.Confirm.Window)
}

// start confirms r's action (taken at the loop's now) when confirm is
// set, after acting on the restore batches left (rest, each
// restore_batch_interval after the one before); it supersedes a pending
// confirmation of the group and returns at once.
func (c *confirmer) start(r Record, g Group, rateBefore float64, covered bool, acted []MinerResult, rest [][]string, confirm bool) {
	if !confirm {
		if len(rest) == 0 {
			return
		}
		c.mu.Lock()
		prev := c.jobs[r.Group]
		ctx, cancel := context.WithCancelCause(c.ctx)
		job := &confirmJob{ctx: ctx, cancel: cancel, done: make(chan struct{})}
		c.jobs[r.Group] = job
		c.mu.Unlock()
		if prev != nil {
			prev.cancel(errSuperseded)
		}
		c.wg.Go(func() {
			defer close(job.done)
			defer cancel(nil)
			if prev != nil {
				<-prev.done
			}
			_ = c.actBatches(ctx, r, rest, map[string]MinerResult{})
		})
		return
	}
	cs := c.l.cfg.Config.Confirm
	now := c.l.now()
	miners := len(acted)
	for _, b := range rest {
		miners += len(b)
	}
	conf := Confirmation{Group: r.Group, Instance: r.Instance, DecisionTime: r.Time, Action: r.Action,
		State: ConfirmCurtailing, Since: now, Updated: now, RateBefore: rateBefore, RateNow: rateBefore,
		Window: cs.Window, Miners: miners, Failed: failedOf(acted)}
	c.mu.Lock()
	if r.Action == ActionCurtail {
		conf.RateReference = rateBefore
		// A rate read before a whole window has passed since the loop
		// started covers only part of the window, so it reads low and a
		// resume would confirm too easily against it: what a resume
		// must come back to is that rate over the part it covers.
		ref := rateBefore
		if covered := now.Sub(c.began).Truncate(time.Second); covered < cs.Window {
			ref = rateBefore * float64(cs.Window.Truncate(time.Second)) / float64(max(covered, time.Second))
		}
		c.miningRate[r.Group] = ref
		conf.Threshold = cs.Below * rateBefore
	} else {
		conf.State = ConfirmResuming
		ref := c.miningRate[r.Group]
		if !(ref > 0) {
			// Never seen mining here (a restart while curtailed): the
			// nominal hashrate in difficulty per second.
			ref = g.HashrateTHs * 1e12 / (1 << 32)
		}
		conf.RateReference = ref
		conf.Threshold = cs.Above * ref
	}
	if covered {
		f := false
		conf.MachinesOK = &f
	}
	prev := c.jobs[r.Group]
	ctx, cancel := context.WithCancelCause(c.ctx)
	job := &confirmJob{ctx: ctx, cancel: cancel, done: make(chan struct{})}
	c.jobs[r.Group] = job
	c.latest[r.Group] = conf
	c.mu.Unlock()
	if prev != nil {
		prev.cancel(errSuperseded)
	}
	c.l.metrics.confirming.WithLabelValues(r.Group).Set(1)
	c.record(conf)
	c.wg.Go(func() {
		defer close(job.done)
		defer cancel(nil)
		if prev != nil {
			<-prev.done
		}
		c.run(ctx, r, conf, covered, rest)
	})
}

// actBatches acts on the restore batches left, restore_batch_interval
// apart, noting failures in failed; it stops when ctx ends.
func (c *confirmer) actBatches(ctx context.Context, r Record, rest [][]string, failed map[string]MinerResult) error {
	for _, batch := range rest {
		if err := c.wait(ctx, c.l.cfg.Config.Fleet.RestoreBatchInterval); err != nil {
			return err
		}
		for _, m := range c.l.machines().ActMachines(ctx, r.Group, r.Action, batch) {
			if !m.OK {
				failed[m.Address] = m
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// supersede ends group's pending confirmation before a new action on the
// group is taken, and waits for it: its retries must not race the new
// command to the same miners. Driver calls honour the cancellation, so
// the wait is short.
func (c *confirmer) supersede(group string) {
	c.mu.Lock()
	j := c.jobs[group]
	c.mu.Unlock()
	if j == nil {
		return
	}
	j.cancel(errSuperseded)
	<-j.done
}

// stop cancels every confirmation and waits for them.
func (c *confirmer) stop(cause error) {
	c.mu.Lock()
	for _, j := range c.jobs {
		j.cancel(cause)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// close ends the confirmer for good.
func (c *confirmer) close() {
	c.stop(errStopped)
	c.end()
}

// snapshot returns every group's latest confirmation.
func (c *confirmer) snapshot() map[string]Confirmation {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]Confirmation, len(c.latest))
	for g, v := range c.latest {
		v.Failed = slices.Clone(v.Failed)
		out[g] = v
	}
	return out
}

// update publishes conf as the group's latest (unless a newer job took
// over: ctx is the job's own) and records it.
func (c *confirmer) update(ctx context.Context, conf Confirmation) {
	c.mu.Lock()
	if j := c.jobs[conf.Group]; j != nil && j.ctx == ctx {
		c.latest[conf.Group] = conf
	}
	c.mu.Unlock()
	c.record(conf)
}

func (c *confirmer) record(conf Confirmation) {
	st := c.l.cfg.ConfirmStore
	if st == nil {
		return
	}
	// The record outlives a canceled confirmation: its end is recorded.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.RecordConfirmation(ctx, conf); err != nil {
		c.l.metrics.errors.WithLabelValues("record").Inc()
		c.l.log.Warn("allocator: recording a confirmation failed", zap.String("group", conf.Group), zap.Error(err))
	}
}

// wait sleeps d on the loop's Wait, or until ctx ends.
func (c *confirmer) wait(ctx context.Context, d time.Duration) error {
	if w := c.l.cfg.Wait; w != nil {
		return w(ctx, d)
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

// run is one group's confirmation: check until confirmed or the timeout,
// retry the action, and alert when the retries ran out.
func (c *confirmer) run(ctx context.Context, r Record, conf Confirmation, covered bool, rest [][]string) {
	l := c.l
	cs := l.cfg.Config.Confirm
	poll, delay := l.cfg.ConfirmPoll, l.cfg.ReadBackDelay
	if poll <= 0 {
		poll = DefaultConfirmPoll
	}
	if delay <= 0 {
		delay = min(DefaultReadBackDelay, cs.Timeout/4)
	}
	want := "sleeping"
	if r.Action == ActionResume {
		want = "mining"
	}
	// failed holds every miner not confirmed yet, by address: the act's
	// failures first, read-back failures as they come.
	failed := map[string]MinerResult{}
	for _, m := range conf.Failed {
		failed[m.Address] = m
	}
	// Every miner must read back in the new state, those that failed to
	// take the command too (a miner asleep already is fine).
	pendingAddr := map[string]bool{}
	var addrs []string
	if covered {
		addrs = l.machines().Addresses(r.Group)
	}
	for _, a := range addrs {
		pendingAddr[a] = true
	}
	if len(rest) > 0 {
		err := c.actBatches(ctx, r, rest, failed)
		conf.Failed, conf.Updated = sortedFailures(failed), l.now()
		if err != nil {
			c.canceled(ctx, &conf, failed)
			return
		}
		c.update(ctx, conf)
	}
	end := func(state ConfirmState, msg string) {
		conf.State, conf.Updated, conf.Message = state, l.now(), msg
		conf.Failed = sortedFailures(failed)
		if state == ConfirmUnconfirmed {
			// Alert before the state is published: whoever sees
			// "unconfirmed" can rely on the alert having gone out.
			c.alert(conf)
		}
		c.update(ctx, conf)
		l.metrics.confirming.WithLabelValues(r.Group).Set(0)
	}
	for attempt := 0; ; attempt++ {
		conf.Attempt = attempt
		deadline := l.now().Add(cs.Timeout)
		if err := c.wait(ctx, delay); err != nil {
			c.canceled(ctx, &conf, failed)
			return
		}
		for {
			if covered && len(pendingAddr) > 0 {
				only := make([]string, 0, len(pendingAddr))
				for a := range pendingAddr {
					only = append(only, a)
				}
				sort.Strings(only)
				for _, m := range l.machines().ReadBack(ctx, r.Group, only) {
					switch {
					case m.OK && m.State == want:
						delete(pendingAddr, m.Address)
						delete(failed, m.Address)
					case m.OK:
						reason := "still_hashing"
						if r.Action == ActionResume {
							reason = "still_sleeping"
						}
						if prev, ok := failed[m.Address]; ok && prev.Reason != "still_hashing" && prev.Reason != "still_sleeping" {
							// It never took the command: keep why.
							prev.State = m.State
							failed[m.Address] = prev
							break
						}
						m.OK, m.Reason, m.Error = false, reason, fmt.Sprintf("%s reads back %s after %s", m.Address, m.State, r.Action)
						failed[m.Address] = m
					default:
						if prev, ok := failed[m.Address]; ok {
							prev.State = m.State
							failed[m.Address] = prev
						} else {
							failed[m.Address] = m
						}
					}
				}
				if ctx.Err() != nil {
					c.canceled(ctx, &conf, failed)
					return
				}
			}
			machinesOK := len(pendingAddr) == 0
			if covered {
				conf.MachinesOK = &machinesOK
			}
			conf.RateNow = c.rate(r.Group)
			if r.Action == ActionCurtail {
				conf.PoolOK = conf.RateNow < conf.Threshold || conf.RateNow == 0
			} else {
				conf.PoolOK = conf.RateNow > conf.Threshold
			}
			l.metrics.poolRate.WithLabelValues(r.Group).Set(conf.RateNow)
			if conf.PoolOK && machinesOK {
				end(ConfirmConfirmed, "")
				l.setUnconfirmed(r.Group, false)
				l.log.Info("allocator: action confirmed", zap.String("group", r.Group), zap.String("action", string(r.Action)),
					zap.Int("attempt", attempt), zap.Float64("rate_before", conf.RateBefore), zap.Float64("rate_now", conf.RateNow),
					zap.Duration("after", l.now().Sub(conf.Since)))
				return
			}
			if !l.now().Before(deadline) {
				break
			}
			if err := c.wait(ctx, poll); err != nil {
				c.canceled(ctx, &conf, failed)
				return
			}
		}
		msg := c.why(conf, failed, r.Action)
		if attempt >= cs.Retries {
			end(ConfirmUnconfirmed, msg)
			return
		}
		// Retry: the miners that did not confirm, or (a group whose
		// miners all claim the new state, or a webhook group) the whole
		// action again.
		l.log.Warn("allocator: action not confirmed; retrying", zap.String("group", r.Group),
			zap.String("action", string(r.Action)), zap.Int("attempt", attempt+1), zap.String("why", msg))
		conf.Message, conf.Updated, conf.Attempt = "retrying: "+msg, l.now(), attempt+1
		conf.Failed = sortedFailures(failed)
		c.update(ctx, conf)
		if covered {
			var only []string
			for a := range pendingAddr {
				only = append(only, a)
			}
			sort.Strings(only)
			if len(only) == 0 {
				only = addrs
			}
			for _, m := range l.machines().ActMachines(ctx, r.Group, r.Action, only) {
				if !m.OK {
					failed[m.Address] = m
					pendingAddr[m.Address] = true
				} else if _, ok := failed[m.Address]; ok {
					pendingAddr[m.Address] = true
				}
			}
		} else if err := l.cfg.Actuator.Apply(ctx, r.Decision); err != nil {
			l.metrics.errors.WithLabelValues("actuator").Inc()
			l.log.Warn("allocator: retrying the action failed", zap.String("group", r.Group), zap.Error(err))
		}
		if ctx.Err() != nil {
			c.canceled(ctx, &conf, failed)
			return
		}
	}
}

// canceled records why a confirmation ended early.
func (c *confirmer) canceled(ctx context.Context, conf *Confirmation, failed map[string]MinerResult) {
	state, msg := ConfirmCanceled, "canceled"
	if cause := context.Cause(ctx); cause != nil {
		msg = cause.Error()
		if errors.Is(cause, errSuperseded) {
			state = ConfirmSuperseded
		}
	}
	conf.State, conf.Updated, conf.Message = state, c.l.now(), msg
	conf.Failed = sortedFailures(failed)
	c.update(ctx, *conf)
	c.l.metrics.confirming.WithLabelValues(conf.Group).Set(0)
}

// why says what is missing.
func (c *confirmer) why(conf Confirmation, failed map[string]MinerResult, action Action) string {
	var parts []string
	if !conf.PoolOK {
		cmp := "still above"
		if action == ActionResume {
			cmp = "still below"
		}
		parts = append(parts, fmt.Sprintf("pool-side rate %.6g diff/s over %v is %s %.6g (%.6g × %.6g)",
			conf.RateNow, conf.Window, cmp, conf.Threshold, conf.Threshold/math.Max(conf.RateReference, math.SmallestNonzeroFloat64), conf.RateReference))
	}
	if len(failed) > 0 {
		by := map[string]int{}
		for _, m := range failed {
			by[m.Reason]++
		}
		keys := make([]string, 0, len(by))
		for k := range by {
			keys = append(keys, fmt.Sprintf("%s %d", k, by[k]))
		}
		sort.Strings(keys)
		parts = append(parts, fmt.Sprintf("%d of %d miners not confirmed (%s)", len(failed), conf.Miners, strings.Join(keys, ", ")))
	}
	return strings.Join(parts, "; ")
}

// alert raises a failed confirmation everywhere the operator looks.
func (c *confirmer) alert(conf Confirmation) {
	l := c.l
	l.metrics.confirmFailures.WithLabelValues(conf.Group, string(conf.Action)).Inc()
	l.setUnconfirmed(conf.Group, true)
	fields := []zap.Field{zap.String("group", conf.Group), zap.String("action", string(conf.Action)),
		zap.Int("attempts", conf.Attempt+1), zap.Float64("rate_before", conf.RateBefore),
		zap.Float64("rate_now", conf.RateNow), zap.Float64("threshold", conf.Threshold), zap.String("why", conf.Message)}
	var failed []string
	for i, m := range conf.Failed {
		if i == 10 {
			failed = append(failed, fmt.Sprintf("… %d more", len(conf.Failed)-i))
			break
		}
		failed = append(failed, m.Address+" ("+m.Reason+")")
	}
	fields = append(fields, zap.Strings("failed_miners", failed))
	l.log.Error("allocator alert: action not confirmed", fields...)
	if l.cfg.Alerter != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := l.cfg.Alerter.Alert(ctx, conf); err != nil {
			l.metrics.errors.WithLabelValues("alert").Inc()
			l.log.Warn("allocator: alert webhook failed", zap.String("group", conf.Group), zap.Error(err))
		}
	}
}

func failedOf(rs []MinerResult) []MinerResult {
	var out []MinerResult
	for _, r := range rs {
		if !r.OK {
			out = append(out, r)
		}
	}
	return out
}

func sortedFailures(m map[string]MinerResult) []MinerResult {
	out := make([]MinerResult, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}
