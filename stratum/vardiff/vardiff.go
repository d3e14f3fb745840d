// Package vardiff adjusts a connection's share difficulty so that a miner of
// any speed submits shares at about one target interval: fast miners do not
// flood the server and slow miners still show up in the statistics.
//
// The package keeps no clock of its own: every method takes the current time,
// so tests drive it with any time they like and the server passes its
// injected clock.
package vardiff

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Config bounds one connection's difficulty adjustments.
type Config struct {
	// TargetInterval is the wanted time between two shares.
	TargetInterval time.Duration
	// RetargetInterval is the least time between two adjustments; an
	// adjustment also happens earlier once RetargetShares shares arrived.
	RetargetInterval time.Duration
	// RetargetShares forces an adjustment after this many shares so a miner
	// that starts far too low is corrected within seconds (0 disables).
	RetargetShares int
	// MaxFactor bounds one adjustment to [diff/MaxFactor, diff*MaxFactor]
	// so one unlucky window never swings the difficulty wildly (e.g. 4).
	MaxFactor float64
	// Tolerance is the relative deviation of the observed share interval
	// from TargetInterval that does not cause a change (e.g. 0.3 keeps the
	// difficulty while the interval is within 70%..130% of the target).
	Tolerance float64
	// Min and Max bound the difficulty (the listener's port range).
	Min, Max float64
}

// Validate reports every field that is out of range.
func (c Config) Validate() error {
	var errs []error
	if c.TargetInterval <= 0 {
		errs = append(errs, fmt.Errorf("vardiff target interval %v: must be positive", c.TargetInterval))
	}
	if c.RetargetInterval <= 0 {
		errs = append(errs, fmt.Errorf("vardiff retarget interval %v: must be positive", c.RetargetInterval))
	}
	if c.RetargetShares < 0 {
		errs = append(errs, fmt.Errorf("vardiff retarget shares %d: must not be negative", c.RetargetShares))
	}
	if !(c.MaxFactor > 1) || math.IsInf(c.MaxFactor, 0) {
		errs = append(errs, fmt.Errorf("vardiff max factor %v: must be a finite number above 1", c.MaxFactor))
	}
	if !(c.Tolerance >= 0 && c.Tolerance < 1) {
		errs = append(errs, fmt.Errorf("vardiff tolerance %v: must be in [0, 1)", c.Tolerance))
	}
	if !(c.Min > 0) || math.IsInf(c.Min, 0) {
		errs = append(errs, fmt.Errorf("vardiff min difficulty %v: must be a finite number above 0", c.Min))
	}
	if !(c.Max >= c.Min) || math.IsInf(c.Max, 0) {
		errs = append(errs, fmt.Errorf("vardiff max difficulty %v: must be finite and at least the minimum %v", c.Max, c.Min))
	}
	return errors.Join(errs...)
}

// State is one connection's vardiff state. It is not safe for concurrent
// use; the session that owns it serializes calls.
type State struct {
	cfg    Config
	diff   float64
	floor  float64 // miner's own minimum (d=, suggest_difficulty, minimum-difficulty)
	since  time.Time
	shares int
}

// New returns a state starting at diff (clamped to the configured range).
func New(cfg Config, diff float64, now time.Time) *State {
	s := &State{cfg: cfg, since: now}
	s.diff = s.clamp(diff)
	return s
}

// Difficulty returns the difficulty the state currently asks for.
func (s *State) Difficulty() float64 { return s.diff }

// Floor returns the miner's own minimum difficulty (0 when none).
func (s *State) Floor() float64 { return s.floor }

// SetConfig applies new bounds (a live configuration reload) and clamps the
// current difficulty into them. It reports the difficulty after the change.
func (s *State) SetConfig(cfg Config) float64 {
	s.cfg = cfg
	s.diff = s.clamp(s.diff)
	return s.diff
}

// SetFloor records the miner's minimum (from "d=" in the password,
// mining.suggest_difficulty or the BIP310 minimum-difficulty extension),
// moves the difficulty to it and restarts the measurement window. The floor
// itself is clamped to the port range, so a miner cannot leave it.
func (s *State) SetFloor(floor float64, now time.Time) float64 {
	if !(floor > 0) || math.IsInf(floor, 0) {
		return s.diff
	}
	s.floor = math.Min(math.Max(floor, s.cfg.Min), s.cfg.Max)
	s.diff = s.floor
	s.since, s.shares = now, 0
	return s.diff
}

// Suggest moves the difficulty to the miner's suggestion (clamped) without
// making it a floor, and restarts the measurement window.
func (s *State) Suggest(diff float64, now time.Time) float64 {
	if !(diff > 0) || math.IsInf(diff, 0) {
		return s.diff
	}
	s.diff = s.clamp(diff)
	s.since, s.shares = now, 0
	return s.diff
}

// Record counts one accepted share and retargets when enough time or enough
// shares have passed. It returns the (possibly new) difficulty and whether
// it changed.
func (s *State) Record(now time.Time) (float64, bool) {
	s.shares++
	return s.retarget(now, false)
}

// Tick retargets when the retarget interval passed without enough shares,
// so a miner that stopped finding shares at a too high difficulty is
// brought down. The server calls it before sending a job.
func (s *State) Tick(now time.Time) (float64, bool) {
	return s.retarget(now, true)
}

func (s *State) retarget(now time.Time, tick bool) (float64, bool) {
	elapsed := now.Sub(s.since)
	byShares := !tick && s.cfg.RetargetShares > 0 && s.shares >= s.cfg.RetargetShares
	if elapsed < s.cfg.RetargetInterval && !byShares {
		return s.diff, false
	}
	if elapsed <= 0 {
		// Clock went backwards or many shares in the same instant: the
		// miner is far too fast, go up by the maximum step.
		elapsed = time.Nanosecond
	}
	var factor float64
	if s.shares == 0 {
		factor = 1 / s.cfg.MaxFactor
	} else {
		observed := elapsed.Seconds() / float64(s.shares)
		factor = s.cfg.TargetInterval.Seconds() / observed
	}
	s.since, s.shares = now, 0
	if factor >= 1-s.cfg.Tolerance && factor <= 1+s.cfg.Tolerance {
		return s.diff, false
	}
	factor = math.Min(math.Max(factor, 1/s.cfg.MaxFactor), s.cfg.MaxFactor)
	next := s.clamp(roundDiff(s.diff * factor))
	if next == s.diff {
		return s.diff, false
	}
	s.diff = next
	return s.diff, true
}

func (s *State) clamp(d float64) float64 {
	lo := math.Max(s.cfg.Min, s.floor)
	if d < lo {
		d = lo
	}
	if d > s.cfg.Max {
		d = s.cfg.Max
	}
	return d
}

// roundDiff keeps three significant digits so difficulties stay readable in
// logs and short on the wire; the error (< 0.5%) is far below share noise.
func roundDiff(d float64) float64 {
	if d <= 0 || math.IsInf(d, 0) || math.IsNaN(d) {
		return d
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(d, 'g', 3, 64), 64)
	if err != nil {
		return d
	}
	return r
}
