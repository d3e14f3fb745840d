package allocator

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// simMiner is one miner of fakeFleet: fault "" obeys, "auth" refuses every
// command, "unreachable" answers nothing, "liar" acknowledges sleep and
// reads back sleeping but keeps hashing.
type simMiner struct {
	addr, fault string
	sleeping    bool
}

// fakeFleet is a MachineActuator over simulated miners of group "a"; its
// Rate is the pool-side view: one difficulty per second per hashing miner.
type fakeFleet struct {
	mu      sync.Mutex
	miners  []*simMiner
	acts    [][]string // addresses acted on, per call
	applied []Decision // Apply calls (groups not covered)
}

func newFakeFleet(faults ...string) *fakeFleet {
	f := &fakeFleet{}
	for i, fault := range faults {
		f.miners = append(f.miners, &simMiner{addr: fmt.Sprintf("10.0.0.%d:4028", i+1), fault: fault})
	}
	return f
}

func (f *fakeFleet) Name() string { return "fleet" }
func (f *fakeFleet) Apply(_ context.Context, d Decision) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, d)
	return nil
}
func (f *fakeFleet) Covers(group string) bool { return group == "a" }
func (f *fakeFleet) Addresses(string) []string {
	var out []string
	for _, m := range f.miners {
		out = append(out, m.addr)
	}
	return out
}

func (f *fakeFleet) each(only []string, do func(m *simMiner) MinerResult) []MinerResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []MinerResult
	for _, m := range f.miners {
		if only == nil || slices.Contains(only, m.addr) {
			r := do(m)
			r.Address, r.Driver, r.Attempts = m.addr, "luxos", 1
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeFleet) ActMachines(_ context.Context, _ string, action Action, only []string) []MinerResult {
	var addrs []string
	rs := f.each(only, func(m *simMiner) MinerResult {
		addrs = append(addrs, m.addr)
		switch m.fault {
		case "auth":
			return MinerResult{Reason: "auth", Error: "authentication refused"}
		case "unreachable":
			return MinerResult{Reason: "unreachable", Error: "dial: connection refused"}
		}
		m.sleeping = action == ActionCurtail
		return MinerResult{OK: true}
	})
	f.mu.Lock()
	f.acts = append(f.acts, addrs)
	f.mu.Unlock()
	return rs
}

func (f *fakeFleet) ReadBack(_ context.Context, _ string, only []string) []MinerResult {
	return f.each(only, func(m *simMiner) MinerResult {
		if m.fault == "unreachable" {
			return MinerResult{Reason: "unreachable", Error: "dial: connection refused"}
		}
		state := "mining"
		if m.sleeping {
			state = "sleeping"
		}
		return MinerResult{OK: true, State: state}
	})
}

func (f *fakeFleet) GroupRate(group string, _ time.Duration) float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if group != "a" {
		return 0
	}
	n := 0.0
	for _, m := range f.miners {
		if !m.sleeping || m.fault == "liar" {
			n++
		}
	}
	return n
}

func (f *fakeFleet) actCalls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.acts)
}

// memConfirms records confirmations; memAlerts alerts.
type memConfirms struct {
	mu   sync.Mutex
	rows []Confirmation
}

func (m *memConfirms) RecordConfirmation(_ context.Context, c Confirmation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = append(m.rows, c)
	return nil
}

func (m *memConfirms) states() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, c := range m.rows {
		out = append(out, fmt.Sprintf("%s %s %d", c.Action, c.State, c.Attempt))
	}
	return out
}

type memAlerts struct {
	mu   sync.Mutex
	sent []Confirmation
}

func (m *memAlerts) got() []Confirmation {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sent)
}

func (m *memAlerts) Alert(_ context.Context, c Confirmation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, c)
	return nil
}

// confirmHarness is the live harness with group a on a fake fleet,
// confirm_window 60s, below 0.05, above 0.5, timeout 5m, 1 retry; its Wait
// advances the fake clock, so a confirmation runs in no real time.
func confirmHarness(t *testing.T, fleet *fakeFleet, mutate func(*LoopConfig)) (*harness, *memConfirms, *memAlerts) {
	confirms, alerts := &memConfirms{}, &memAlerts{}
	var h *harness
	h = newHarness(t, []Group{groupA}, func(c *LoopConfig) {
		c.Actuator = fleet
		c.Rates = fleet
		c.ConfirmStore = confirms
		c.Alerter = alerts
		c.Config.Confirm = ConfirmSpec{Window: time.Minute, Below: 0.05, Above: 0.5, Timeout: 5 * time.Minute, Retries: 1}
		c.ConfirmPoll = 10 * time.Second
		c.ReadBackDelay = 5 * time.Second
		c.Wait = func(ctx context.Context, d time.Duration) error {
			h.clock.advance(d)
			return ctx.Err()
		}
		if mutate != nil {
			mutate(c)
		}
	})
	t.Cleanup(h.loop.Close)
	return h, confirms, alerts
}

// settled waits (bounded, real time) until group's confirmation ended.
func settled(t *testing.T, l *Loop, group string) Confirmation {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, ok := l.Status().Confirmations[group]
		if ok && !c.Pending() {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("confirmation of %s still %+v", group, c)
		}
		time.Sleep(time.Millisecond)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.Gauge != nil {
				return m.Gauge.GetValue()
			}
			return m.Counter.GetValue()
		}
	}
	return 0
}

// TestConfirmCurtailAndResume: three obedient miners; the curtailment
// confirms once they read back asleep and the pool rate (3 before) is 0
// < 0.05 × 3; the resume confirms when it is back above 0.5 × 3.
func TestConfirmCurtailAndResume(t *testing.T) {
	fleet := newFakeFleet("", "", "")
	h, confirms, alerts := confirmHarness(t, fleet, nil)
	h.lease.v = 110 // leaves 70 > 65: a is curtailed
	rows := h.step()
	if rows[0].Action != ActionCurtail || rows[0].Outcome != OutcomeOK || rows[0].Error != "" {
		t.Fatalf("row %+v", rows[0])
	}
	c := settled(t, h.loop, "a")
	if c.State != ConfirmConfirmed || c.RateBefore != 3 || c.RateReference != 3 || math.Abs(c.Threshold-0.15) > 1e-12 || c.RateNow != 0 ||
		!c.PoolOK || c.MachinesOK == nil || !*c.MachinesOK || len(c.Failed) != 0 || c.Miners != 3 || c.Attempt != 0 {
		t.Fatalf("curtail confirmation %+v", c)
	}
	h.lease.v = 100 // 60 < 65: a resumes
	h.step()
	c = settled(t, h.loop, "a")
	if c.State != ConfirmConfirmed || c.Action != ActionResume || c.RateReference != 3 || c.Threshold != 1.5 || c.RateNow != 3 {
		t.Fatalf("resume confirmation %+v", c)
	}
	if got, want := confirms.states(), []string{"curtail curtailing 0", "curtail confirmed 0", "resume resuming 0", "resume confirmed 0"}; !slices.Equal(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
	if len(alerts.got()) != 0 || gauge(t, h.reg, "wattpool_allocator_unconfirmed_groups") != 0 ||
		gauge(t, h.reg, "wattpool_allocator_confirming", "group", "a") != 0 {
		t.Fatalf("alerts %v", alerts.got())
	}
}

// TestConfirmResumeReferenceNeedsAWholeWindow: a curtailment within the
// first confirm_window of the loop read a rate over less than a window
// (too low: 3 over a 2-minute window of which 1 minute had passed), so its
// resume must come back to the rate over the part it covered (6), not to
// 3.
func TestConfirmResumeReferenceNeedsAWholeWindow(t *testing.T) {
	fleet := newFakeFleet("", "", "")
	h, _, _ := confirmHarness(t, fleet, func(c *LoopConfig) {
		c.Config.Confirm.Window = 2 * time.Minute // the first step is 1 minute in
		c.Config.Confirm.Timeout = 10 * time.Minute
	})
	h.lease.v = 110
	h.step()
	if c := settled(t, h.loop, "a"); c.State != ConfirmConfirmed || c.RateReference != 3 {
		t.Fatalf("curtail confirmation %+v", c)
	}
	h.lease.v = 100
	h.step()
	c := settled(t, h.loop, "a")
	if c.Action != ActionResume || c.RateReference != 6 || c.Threshold != 3 {
		t.Fatalf("resume confirmation %+v, want reference 6", c)
	}
}

// TestConfirmFailedMiners: a wrong password and an unreachable miner are
// listed with their reasons, retried once (confirm_retries 1, only those
// two), then alerted; the group still switched (one miner took it).
func TestConfirmFailedMiners(t *testing.T) {
	fleet := newFakeFleet("", "auth", "unreachable")
	h, confirms, alerts := confirmHarness(t, fleet, nil)
	h.lease.v = 110
	rows := h.step()
	if rows[0].Outcome != OutcomeOK || rows[0].After != Curtailed ||
		!strings.Contains(rows[0].Error, "2 of 3 miners failed (auth 1, unreachable 1)") {
		t.Fatalf("row %+v", rows[0])
	}
	c := settled(t, h.loop, "a")
	if c.State != ConfirmUnconfirmed || c.Attempt != 1 || len(c.Failed) != 2 ||
		c.Failed[0].Address != "10.0.0.2:4028" || c.Failed[0].Reason != "auth" ||
		c.Failed[1].Address != "10.0.0.3:4028" || c.Failed[1].Reason != "unreachable" {
		t.Fatalf("confirmation %+v", c)
	}
	// The pool saw 3 before; 2 miners still hash: 2 > 0.15.
	if c.PoolOK || c.RateNow != 2 || c.MachinesOK == nil || *c.MachinesOK {
		t.Fatalf("checks %+v", c)
	}
	wantActs := [][]string{{"10.0.0.1:4028", "10.0.0.2:4028", "10.0.0.3:4028"}, {"10.0.0.2:4028", "10.0.0.3:4028"}}
	if got := fleet.actCalls(); fmt.Sprint(got) != fmt.Sprint(wantActs) {
		t.Fatalf("acted on %v, want %v", got, wantActs)
	}
	if got, want := confirms.states(), []string{"curtail curtailing 0", "curtail curtailing 1", "curtail unconfirmed 1"}; !slices.Equal(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
	if len(alerts.got()) != 1 || alerts.got()[0].Group != "a" || len(alerts.got()[0].Failed) != 2 {
		t.Fatalf("alerts %+v", alerts.got())
	}
	if gauge(t, h.reg, "wattpool_allocator_confirm_failures_total", "group", "a", "action", "curtail") != 1 ||
		gauge(t, h.reg, "wattpool_allocator_unconfirmed_groups") != 1 {
		t.Fatal("failure metrics not set")
	}
	// The timeout is measured on the loop's clock: two attempts of
	// 5 s settling + 5 min each.
	if d := c.Updated.Sub(c.Since); d < 2*(5*time.Minute+5*time.Second) || d > 2*(5*time.Minute+5*time.Second)+time.Minute {
		t.Fatalf("took %v of the loop's clock", d)
	}
}

// TestConfirmCatchesLiar: every miner reads back asleep, but one keeps
// hashing: the pool rate stays at 1 of 3 (> 0.05 × 3) and only that
// check fails; the retry re-acts on the whole group, then it alerts.
func TestConfirmCatchesLiar(t *testing.T) {
	fleet := newFakeFleet("", "liar", "")
	h, _, alerts := confirmHarness(t, fleet, nil)
	h.lease.v = 110
	h.step()
	c := settled(t, h.loop, "a")
	if c.State != ConfirmUnconfirmed || c.PoolOK || c.RateNow != 1 || c.MachinesOK == nil || !*c.MachinesOK || len(c.Failed) != 0 ||
		!strings.Contains(c.Message, "pool-side rate 1 diff/s over 1m0s is still above 0.15") {
		t.Fatalf("confirmation %+v", c)
	}
	if got := fleet.actCalls(); len(got) != 2 || len(got[1]) != 3 {
		t.Fatalf("acted on %v; the retry should take the whole group", got)
	}
	if len(alerts.got()) != 1 {
		t.Fatalf("alerts %+v", alerts.got())
	}
}

// TestConfirmWebhookGroup: a group the fleet does not cover goes through
// Apply and is confirmed by the pool rate alone (0 before, 0 after).
func TestConfirmWebhookGroup(t *testing.T) {
	fleet := newFakeFleet("")
	b := Group{Name: "b", PowerKW: 350, HashrateTHs: 10000}
	confirms := &memConfirms{}
	var h *harness
	h = newHarness(t, []Group{b}, func(c *LoopConfig) {
		c.Actuator, c.Rates, c.ConfirmStore = fleet, fleet, confirms
		c.Config.Confirm = ConfirmSpec{Window: time.Minute, Below: 0.05, Above: 0.5, Timeout: 5 * time.Minute}
		c.Wait = func(ctx context.Context, d time.Duration) error { h.clock.advance(d); return ctx.Err() }
	})
	defer h.loop.Close()
	h.step() // lease 100 leaves 60 > 12.50: b is curtailed
	c := settled(t, h.loop, "b")
	if c.State != ConfirmConfirmed || c.MachinesOK != nil || len(fleet.applied) != 1 || len(fleet.actCalls()) != 0 {
		t.Fatalf("confirmation %+v, applied %d, acts %v", c, len(fleet.applied), fleet.actCalls())
	}
}

// TestConfirmAllMinersFail: when no miner takes the action the group
// keeps its state (outcome failed) and nothing is confirmed.
func TestConfirmAllMinersFail(t *testing.T) {
	fleet := newFakeFleet("auth", "unreachable")
	h, confirms, _ := confirmHarness(t, fleet, nil)
	h.lease.v = 110
	rows := h.step()
	if rows[0].Outcome != OutcomeFailed || rows[0].After != Mining || !strings.Contains(rows[0].Error, "2 of 2 miners failed") {
		t.Fatalf("row %+v", rows[0])
	}
	if len(confirms.states()) != 0 {
		t.Fatalf("confirmations %v", confirms.states())
	}
}

// TestConfirmSuperseded: a resume decided while the curtailment is still
// confirming replaces it; the old one is recorded as superseded.
func TestConfirmSuperseded(t *testing.T) {
	fleet := newFakeFleet("", "")
	release := make(chan struct{})
	var once sync.Once
	h, confirms, _ := confirmHarness(t, fleet, func(c *LoopConfig) {
		inner := c.Wait
		c.Wait = func(ctx context.Context, d time.Duration) error {
			// The first confirmation blocks in its first wait until
			// the test released it or it was superseded.
			first := false
			once.Do(func() { first = true })
			if first {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return inner(ctx, d)
		}
	})
	defer close(release)
	h.lease.v = 110
	h.step()
	h.lease.v = 100
	h.step()
	c := settled(t, h.loop, "a")
	if c.Action != ActionResume || c.State != ConfirmConfirmed {
		t.Fatalf("latest %+v", c)
	}
	want := []string{"curtail curtailing 0", "curtail superseded 0", "resume resuming 0", "resume confirmed 0"}
	if got := confirms.states(); !slices.Equal(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
}

// TestConfirmStopsWithLeadership: losing the leadership cancels a running
// confirmation, recorded as canceled.
func TestConfirmStopsWithLeadership(t *testing.T) {
	fleet := newFakeFleet("", "liar")
	blocked := make(chan struct{}, 1)
	h, confirms, alerts := confirmHarness(t, fleet, func(c *LoopConfig) {
		c.Wait = func(ctx context.Context, d time.Duration) error {
			select {
			case blocked <- struct{}{}:
			default:
			}
			<-ctx.Done()
			return ctx.Err()
		}
	})
	h.lease.v = 110
	h.step()
	<-blocked
	h.elect.set(false)
	h.step()
	c := h.loop.Status().Confirmations["a"]
	if c.State != ConfirmCanceled || !strings.Contains(c.Message, "lost the allocator leadership") || len(alerts.got()) != 0 {
		t.Fatalf("confirmation %+v", c)
	}
	if got := confirms.states(); len(got) != 2 || got[1] != "curtail canceled 0" {
		t.Fatalf("records %q", got)
	}
}

// TestConfirmRestoreBatches: with restore_batch_size 1 a resume acts on
// the first miner within the evaluation and on the others from the
// confirmation, restore_batch_interval (10 s of the loop's clock) apart;
// a curtailment goes at once.
func TestConfirmRestoreBatches(t *testing.T) {
	fleet := newFakeFleet("", "", "")
	h, confirms, _ := confirmHarness(t, fleet, func(c *LoopConfig) {
		c.Config.Fleet = FleetSpec{RestoreBatchSize: 1, RestoreBatchInterval: 10 * time.Second}
	})
	h.lease.v = 110
	h.step()
	settled(t, h.loop, "a")
	h.lease.v = 100
	h.step()
	c := settled(t, h.loop, "a")
	if c.State != ConfirmConfirmed || c.Miners != 3 || c.Action != ActionResume {
		t.Fatalf("resume %+v", c)
	}
	want := [][]string{{"10.0.0.1:4028", "10.0.0.2:4028", "10.0.0.3:4028"}, {"10.0.0.1:4028"}, {"10.0.0.2:4028"}, {"10.0.0.3:4028"}}
	if got := fleet.actCalls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("acted on %v, want %v", got, want)
	}
	// Two batch intervals, then the 5 s settling delay; the first read
	// confirms.
	if !c.Since.Equal(c.DecisionTime) || c.Updated.Sub(c.Since) != 25*time.Second {
		t.Fatalf("confirmed %v after the decision, want 2 × 10 s + 5 s", c.Updated.Sub(c.Since))
	}
	if got := confirms.states(); !slices.Equal(got[2:], []string{"resume resuming 0", "resume resuming 0", "resume confirmed 0"}) {
		t.Fatalf("records %q", got)
	}
}

// TestConfirmBatchesSuperseded: a curtailment decided during a staged
// resume stops the batches left: the miners not yet woken are never
// told to wake.
func TestConfirmBatchesSuperseded(t *testing.T) {
	fleet := newFakeFleet("", "", "")
	inBatchWait := make(chan struct{}, 1)
	var h *harness
	h, _, _ = confirmHarness(t, fleet, func(c *LoopConfig) {
		c.Config.Fleet = FleetSpec{RestoreBatchSize: 1, RestoreBatchInterval: time.Hour}
		c.Wait = func(ctx context.Context, d time.Duration) error {
			if d == time.Hour {
				inBatchWait <- struct{}{}
				<-ctx.Done()
				return ctx.Err()
			}
			h.clock.advance(d)
			return ctx.Err()
		}
	})
	h.lease.v = 110
	h.step()
	settled(t, h.loop, "a")
	h.lease.v = 100
	h.step()
	<-inBatchWait
	h.lease.v = 110
	h.step()
	c := settled(t, h.loop, "a")
	if c.Action != ActionCurtail || c.State != ConfirmConfirmed {
		t.Fatalf("latest %+v", c)
	}
	all := []string{"10.0.0.1:4028", "10.0.0.2:4028", "10.0.0.3:4028"}
	want := [][]string{all, {"10.0.0.1:4028"}, all}
	if got := fleet.actCalls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("acted on %v, want %v", got, want)
	}
}
