package fleet

import (
	"context"
	"fmt"
	"strings"
)

// LuxOS drives Luxor's LuxOS firmware over its cgminer-style API on TCP
// 4028. Privileged commands need a session: "logon" answers
// SESSION[0].SessionID, or STATUS E code 402 "Another session is active"
// when one exists, in which case "session" returns the active id (the
// order pyasic uses, pyasic/miners/backends/luxminer.py _get_session; the
// 402 case is handled in LuxorLabs/luxos-tooling src/luxos/asyncops.py).
// "curtail" takes "<sid>,sleep" or "<sid>,wakeup"; "logoff" takes the sid
// (LuxorLabs/luxos-tooling src/luxos/api.json marks curtail and logoff
// logon_required). The state comes from "config" (CONFIG[0].CurtailMode
// "Sleep" or "None"), the hashrate from "summary" (SUMMARY[0]["GHS 5s"])
// and the power from "power" (POWER[0].Watts), as pyasic reads them.
type LuxOS struct{ opts DriverOptions }

// Name is "luxos".
func (*LuxOS) Name() string { return "luxos" }

// CanCurtail is true: LuxOS has a sleep mode.
func (*LuxOS) CanCurtail() bool { return true }

// luxCode402 is LuxOS's "Another session is active".
const luxCode402 = 402

// Status reads config, summary and power.
func (d *LuxOS) Status(ctx context.Context, m Miner) (MinerState, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	var st MinerState
	cfg, err := cgCall(ctx, m.Address, "config", "", d.opts.MaxReplyBytes)
	if err != nil {
		return st, err
	}
	if !cfg.ok() {
		return st, cfg.statusErr("config", ErrRefused)
	}
	var c struct {
		CurtailMode *string `json:"CurtailMode"`
	}
	if err := cfg.first("CONFIG", &c); err != nil {
		return st, fmt.Errorf("config: %w", err)
	}
	if c.CurtailMode == nil {
		return st, fmt.Errorf("config: %w: CONFIG[0] has no CurtailMode", ErrBadReply)
	}
	switch strings.ToLower(*c.CurtailMode) {
	case "sleep":
		st.State = StateSleeping
	case "none", "":
		st.State = StateMining
	default:
		st.State = StateUnknown
	}
	st.HashrateTHs, err = summaryTHs(ctx, m.Address, d.opts.MaxReplyBytes)
	if err != nil {
		return st, err
	}
	pw, err := cgCall(ctx, m.Address, "power", "", d.opts.MaxReplyBytes)
	if err != nil {
		return st, err
	}
	if !pw.ok() {
		return st, pw.statusErr("power", ErrRefused)
	}
	var p struct {
		Watts *number `json:"Watts"`
	}
	if err := pw.first("POWER", &p); err != nil {
		return st, fmt.Errorf("power: %w", err)
	}
	if p.Watts == nil {
		return st, fmt.Errorf("power: %w: POWER[0] has no Watts", ErrBadReply)
	}
	if err := nonNeg("power watts", float64(*p.Watts)); err != nil {
		return st, fmt.Errorf("power: %w", err)
	}
	st.PowerW, st.HasPower = float64(*p.Watts), true
	return st, nil
}

// summaryTHs reads SUMMARY[0]'s 5-second hashrate, in GH/s ("GHS 5s",
// LuxOS and bmminer) or MH/s ("MHS 5s", cgminer), as TH/s.
func summaryTHs(ctx context.Context, addr string, maxReply int64) (float64, error) {
	sum, err := cgCall(ctx, addr, "summary", "", maxReply)
	if err != nil {
		return 0, err
	}
	if !sum.ok() {
		return 0, sum.statusErr("summary", ErrRefused)
	}
	var s struct {
		GHS5s *number `json:"GHS 5s"`
		MHS5s *number `json:"MHS 5s"`
	}
	if err := sum.first("SUMMARY", &s); err != nil {
		return 0, fmt.Errorf("summary: %w", err)
	}
	var ths float64
	switch {
	case s.GHS5s != nil:
		ths = float64(*s.GHS5s) / 1e3
	case s.MHS5s != nil:
		ths = float64(*s.MHS5s) / 1e6
	default:
		return 0, fmt.Errorf("summary: %w: SUMMARY[0] has neither \"GHS 5s\" nor \"MHS 5s\"", ErrBadReply)
	}
	if err := nonNeg("summary hashrate", ths); err != nil {
		return 0, fmt.Errorf("summary: %w", err)
	}
	return ths, nil
}

// Curtail sends curtail <sid>,sleep.
func (d *LuxOS) Curtail(ctx context.Context, m Miner) error { return d.curtail(ctx, m, "sleep") }

// Resume sends curtail <sid>,wakeup.
func (d *LuxOS) Resume(ctx context.Context, m Miner) error { return d.curtail(ctx, m, "wakeup") }

func (d *LuxOS) curtail(ctx context.Context, m Miner, mode string) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	sid, ours, err := d.logon(ctx, m)
	if err != nil {
		return err
	}
	r, err := cgCall(ctx, m.Address, "curtail", sid+","+mode, d.opts.MaxReplyBytes)
	if err == nil && !r.ok() {
		err = r.statusErr("curtail "+mode, ErrRefused)
	}
	if ours {
		// A session we opened is closed even when curtail failed, so the
		// next attempt (or another tool) is not locked out by it. A failed
		// logoff does not undo an acknowledged curtail.
		_, _ = cgCall(ctx, m.Address, "logoff", sid, d.opts.MaxReplyBytes)
	}
	return err
}

// logon returns a session id and whether this call opened it.
func (d *LuxOS) logon(ctx context.Context, m Miner) (string, bool, error) {
	r, err := cgCall(ctx, m.Address, "logon", "", d.opts.MaxReplyBytes)
	if err != nil {
		return "", false, err
	}
	if r.ok() {
		sid, err := sessionID(r)
		return sid, true, err
	}
	if r.status.Code != luxCode402 {
		return "", false, r.statusErr("logon", ErrAuth)
	}
	// Another session is active: reuse it, as LuxOS allows one session.
	s, err := cgCall(ctx, m.Address, "session", "", d.opts.MaxReplyBytes)
	if err != nil {
		return "", false, err
	}
	if !s.ok() {
		return "", false, s.statusErr("session", ErrRefused)
	}
	sid, err := sessionID(s)
	return sid, false, err
}

func sessionID(r cgReply) (string, error) {
	var s struct {
		SessionID *string `json:"SessionID"`
	}
	if err := r.first("SESSION", &s); err != nil {
		return "", fmt.Errorf("logon: %w", err)
	}
	if s.SessionID == nil || *s.SessionID == "" || strings.ContainsAny(*s.SessionID, ",\x00") || len(*s.SessionID) > 128 {
		return "", fmt.Errorf("logon: %w: no usable SessionID", ErrBadReply)
	}
	return *s.SessionID, nil
}
