package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/wattpool/wattpool/allocator"
)

// Actuator carries allocator decisions to a group's machines through their
// firmware drivers. It implements allocator.Actuator ("fleet"): Apply acts
// on every inventory miner of the decision's group and fails (with an
// *ActError listing each failed miner and its reason) unless all of them
// acknowledged. The per-miner results of the last action per group are
// kept for the decision record and the operator view (Last).
type Actuator struct {
	byGroup map[string][]Miner
	opts    Options

	mu   sync.Mutex
	last map[string][]Result
}

// NewActuator indexes the inventory by group. opts apply to every action
// (Verify is usually on: the read-back is the closed loop's first check).
func NewActuator(miners []Miner, opts Options) *Actuator {
	return &Actuator{byGroup: Groups(miners), opts: opts.withDefaults(), last: map[string][]Result{}}
}

// Name is the allocator.actuator name, "fleet".
func (*Actuator) Name() string { return "fleet" }

// Groups lists the groups the inventory has miners in, sorted.
func (a *Actuator) Groups() []string {
	out := make([]string, 0, len(a.byGroup))
	for g := range a.byGroup {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// Miners returns the inventory miners of group g.
func (a *Actuator) Miners(g string) []Miner { return a.byGroup[g] }

// Apply curtails the group's miners when d.After is curtailed, resumes
// them when it is mining.
func (a *Actuator) Apply(ctx context.Context, d allocator.Decision) error {
	action := ActionResume
	if d.After == allocator.Curtailed {
		action = ActionCurtail
	}
	_, err := a.Act(ctx, d.Group, action)
	return err
}

// Act applies action to group g's miners and returns every miner's result;
// the error is nil only when all succeeded. ActionStatus reads each
// miner's state.
func (a *Actuator) Act(ctx context.Context, g string, action Action) ([]Result, error) {
	miners, ok := a.byGroup[g]
	if !ok {
		return nil, fmt.Errorf("fleet: group %q has no miners in the inventory", g)
	}
	rs := Act(ctx, miners, action, a.opts)
	a.mu.Lock()
	a.last[g] = rs
	a.mu.Unlock()
	var failed []Result
	for _, r := range rs {
		if !r.OK {
			failed = append(failed, r)
		}
	}
	if len(failed) > 0 {
		return rs, &ActError{Group: g, Action: action, Miners: len(rs), Failed: failed}
	}
	return rs, nil
}

// Last returns the results of the last action on group g (nil if none).
func (a *Actuator) Last(g string) []Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last[g]
}

// ActError reports the miners of a group an action failed on.
type ActError struct {
	Group  string
	Action Action
	Miners int
	Failed []Result
}

// Error summarises the failures by reason and names the first few miners.
func (e *ActError) Error() string {
	s := Summarize(e.Failed)
	reasons := make([]string, 0, len(s.ByReason))
	for r, n := range s.ByReason {
		reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
	}
	sort.Strings(reasons)
	var names []string
	for i, r := range e.Failed {
		if i == 5 {
			names = append(names, "…")
			break
		}
		names = append(names, r.Address+" ("+r.Reason+")")
	}
	return fmt.Sprintf("fleet %s group %s: %d of %d miners failed (%s): %s", e.Action, e.Group,
		len(e.Failed), e.Miners, strings.Join(reasons, ", "), strings.Join(names, ", "))
}

// Unwrap exposes the failures' errors to errors.Is (ErrAuth, ...).
func (e *ActError) Unwrap() []error {
	out := make([]error, 0, len(e.Failed))
	for _, r := range e.Failed {
		if r.Err != nil {
			out = append(out, r.Err)
		}
	}
	return out
}
