package fleet

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// State is what a miner's firmware says it is doing.
type State string

// Miner states as drivers report them.
const (
	StateMining   State = "mining"
	StateSleeping State = "sleeping"
	// StateUnknown: the firmware answered but its reply cannot tell
	// (a read-only cgminer reporting zero hashrate).
	StateUnknown State = "unknown"
)

// MinerState is one read of a miner through its driver.
type MinerState struct {
	State State `json:"state"`
	// HashrateTHs is the firmware's short-window hashrate.
	HashrateTHs float64 `json:"hashrate_ths"`
	// PowerW is the draw the firmware reports; HasPower is false when the
	// firmware reports none (stock Antminer, cgminer).
	PowerW   float64 `json:"power_w"`
	HasPower bool    `json:"has_power"`
}

// Driver speaks one firmware control API. Every call is bounded by ctx
// (callers give each call its own deadline) and may run concurrently for
// different miners.
type Driver interface {
	// Name is the driver's inventory name.
	Name() string
	// CanCurtail reports whether the firmware has a sleep command at all.
	CanCurtail() bool
	// Status reads the miner's state, hashrate and power.
	Status(ctx context.Context, m Miner) (MinerState, error)
	// Curtail puts the miner to sleep; it returns once the firmware
	// acknowledged. Read the state back with Status to confirm.
	Curtail(ctx context.Context, m Miner) error
	// Resume wakes the miner.
	Resume(ctx context.Context, m Miner) error
}

// Error kinds callers match with errors.Is; Reason maps them to the short
// strings the decision record and metrics use.
var (
	// ErrUnreachable: no connection, or no (complete) answer before the
	// deadline.
	ErrUnreachable = errors.New("unreachable")
	// ErrAuth: the firmware refused the credentials.
	ErrAuth = errors.New("authentication refused")
	// ErrRefused: the firmware understood the command and said no.
	ErrRefused = errors.New("refused")
	// ErrCannotCurtail: the firmware has no sleep command.
	ErrCannotCurtail = errors.New("cannot curtail")
	// ErrBadReply: the answer was garbage, truncated, too large or not
	// what the protocol says.
	ErrBadReply = errors.New("bad reply")
	// ErrStillHashing: the firmware acknowledged sleep but reads back
	// mining (Act with Verify).
	ErrStillHashing = errors.New("still hashing")
	// ErrStillSleeping: the firmware acknowledged the wake-up but reads
	// back sleeping (Act with Verify).
	ErrStillSleeping = errors.New("still sleeping")
)

// Reason returns the short, bounded name of err's kind: "unreachable",
// "auth", "refused", "cannot_curtail", "bad_reply", "still_hashing",
// "still_sleeping", "canceled" or "error". It is safe as a metric label.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrAuth):
		return "auth"
	case errors.Is(err, ErrCannotCurtail):
		return "cannot_curtail"
	case errors.Is(err, ErrRefused):
		return "refused"
	case errors.Is(err, ErrBadReply):
		return "bad_reply"
	case errors.Is(err, ErrStillHashing):
		return "still_hashing"
	case errors.Is(err, ErrStillSleeping):
		return "still_sleeping"
	case errors.Is(err, context.Canceled):
		// The caller gave up (shutdown, lost leadership): not the miner's
		// fault, whatever the driver saw. A call's own deadline is
		// DeadlineExceeded and stays "unreachable".
		return "canceled"
	case errors.Is(err, ErrUnreachable):
		return "unreachable"
	}
	return "error"
}

// retryable reports whether another attempt may succeed: a wrong password
// or missing sleep command will not change within a backoff.
func retryable(err error) bool {
	return !errors.Is(err, ErrAuth) && !errors.Is(err, ErrCannotCurtail) && !errors.Is(err, context.Canceled)
}

// Registry maps inventory driver names to drivers.
type Registry map[string]Driver

// driverSpec is what the inventory checks of a driver before any
// connection is made.
type driverSpec struct{ needsPassword bool }

var driverSpecs = map[string]driverSpec{
	"luxos":      {},
	"antminer":   {needsPassword: true},
	"whatsminer": {needsPassword: true},
	"cgminer":    {},
}

// DriverNames lists the known driver names, sorted.
func DriverNames() []string {
	out := make([]string, 0, len(driverSpecs))
	for n := range driverSpecs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// DriverOptions tune every driver of a registry.
type DriverOptions struct {
	// MaxReplyBytes bounds one reply (1 MiB when 0): a hostile or broken
	// endpoint cannot make us buffer without limit.
	MaxReplyBytes int64
	// Now is the clock (time.Now when nil); Whatsminer tokens carry it.
	Now func() time.Time
}

func (o DriverOptions) withDefaults() DriverOptions {
	if o.MaxReplyBytes <= 0 {
		o.MaxReplyBytes = 1 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// NewRegistry returns the four drivers by name.
func NewRegistry(o DriverOptions) Registry {
	o = o.withDefaults()
	return Registry{
		"luxos":      &LuxOS{opts: o},
		"antminer":   NewAntminer(o),
		"whatsminer": &Whatsminer{opts: o},
		"cgminer":    &CGMiner{opts: o},
	}
}

// Lookup returns the named driver, or an error listing the known ones.
func (r Registry) Lookup(name string) (Driver, error) {
	d, ok := r[name]
	if !ok {
		return nil, fmt.Errorf("unknown driver %q (known: %v)", name, DriverNames())
	}
	return d, nil
}

// Close releases what drivers hold between calls (idle HTTP connections).
func (r Registry) Close() {
	for _, d := range r {
		if c, ok := d.(interface{ close() }); ok {
			c.close()
		}
	}
}
