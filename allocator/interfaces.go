package allocator

import (
	"context"
	"time"
)

// Policy decides one evaluation for every configured group. The pinned
// policy (Merit, see Evaluate) is shared by the backtest and the live loop;
// the live loop's guards (emergency, confirmation, overrides, staleness)
// wrap whichever policy is configured.
type Policy interface {
	// Name is the policy's allocator.policy name.
	Name() string
	// Decide returns one decision per group of in.Params.Groups, in that
	// order. An error means no decision: the caller holds every state.
	Decide(ctx context.Context, in PolicyInput) ([]Decision, error)
}

// PolicyInput is what a policy decides from.
type PolicyInput struct {
	Params *Params
	Market Market
	// States holds every group's state entering the evaluation; a group
	// missing from it has never been seen and starts mining.
	States map[string]GroupState
}

// Quote is one price and when it was observed.
type Quote struct {
	Value float64
	// At is when the source produced the value (a CSV row's time, the
	// moment an HTTP reply arrived): the stale-price guard compares it
	// with the evaluation's time.
	At time.Time
}

// PriceSource gives the current value of one live price.
type PriceSource interface {
	// Name describes the source in logs and errors ("http https://…").
	Name() string
	// Quote returns the price in force at now. An error names what was
	// wrong (timeout, HTML instead of JSON, a NaN or negative price); the
	// caller keeps the last good quote and lets the stale guard judge it.
	Quote(ctx context.Context, now time.Time) (Quote, error)
}

// Actuator carries a decision to the machines of its group.
type Actuator interface {
	// Name is the actuator's allocator.actuator name.
	Name() string
	// Apply acts on one decision that switched a group's state (or
	// repeats one that has not been confirmed). It returns when the
	// receiver has taken it, or with an error naming why not.
	Apply(ctx context.Context, d Decision) error
}
