package stratum

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/vardiff"
	"github.com/wattpool/wattpool/stratum/work"
)

// Session resume. cgminer-based firmware (Antminer, Avalon, Whatsminer)
// remembers the subscription id of mining.subscribe's answer and sends it
// back as the second subscribe param when it reconnects. When the old
// connection is gone and its session was parked, the new one takes the
// session over: the same extranonce1, and the jobs the miner may still be
// submitting shares for, each with the difficulty it was sent at and the
// shares already seen on it. Without that, shares the miner found before
// the drop would be stale (a new extranonce1 knows no jobs); with an
// extranonce1 but without the jobs' duplicate sets, a share submitted
// before the drop and again after it would be credited twice.

// Limits on the two resume settings (see Config).
const (
	maxSessionResumeWindow = time.Hour
	// maxParkedSessionsLimit keeps parked and live extranonce1s far below
	// the 2^24 one instance can hand out.
	maxParkedSessionsLimit = 1 << 20
)

// sessionIDSize is the byte length of a session id: the extranonce1 the
// session was issued with (whose first byte is the instance id) and four
// random bytes, so ids cannot be guessed from extranonce1s.
const sessionIDSize = extranonce1Size + 4

// sessionID names a session; it goes to the miner as 16 hex digits.
type sessionID [sessionIDSize]byte

// resumeOutcome is how a subscribe's session id was handled. Its String()
// is a metric label and a log field, so values are stable.
type resumeOutcome uint8

const (
	resumeNone            resumeOutcome = iota // no session id offered
	resumeOK                                   // session resumed
	resumeDisabled                             // resume is turned off
	resumeMalformed                            // not 16 hex digits in a string
	resumeOtherInstance                        // issued by another pool instance
	resumeUnknown                              // never issued, evicted, or already resumed
	resumeExpired                              // parked longer than SessionResumeWindow
	resumeInUse                                // held by a live connection that cannot be taken over
	resumeOtherListener                        // parked by (or live on) a connection to another port
	resumeTakenOver                            // a live connection's session taken over (see takeOver)
	resumeBanned                               // held by a live connection closing for a ban
	resumeTakeoverTimeout                      // the live holder did not let go in time
	resumeOutcomeCount
)

var resumeOutcomeNames = [...]string{
	resumeNone:            "no_session",
	resumeOK:              "resumed",
	resumeDisabled:        "disabled",
	resumeMalformed:       "malformed",
	resumeOtherInstance:   "other_instance",
	resumeUnknown:         "unknown",
	resumeExpired:         "expired",
	resumeInUse:           "in_use",
	resumeOtherListener:   "other_listener",
	resumeTakenOver:       "taken_over",
	resumeBanned:          "banned",
	resumeTakeoverTimeout: "takeover_timeout",
}

func (o resumeOutcome) String() string {
	if o < resumeOutcomeCount {
		return resumeOutcomeNames[o]
	}
	return "unknown"
}

// parseSessionID reads subscribe's second param. Absent, null and "" mean
// the miner offers no session; anything else must be a string of exactly
// 16 hex digits.
func parseSessionID(v Value) (sessionID, resumeOutcome) {
	var id sessionID
	switch v.Kind {
	case KindInvalid, KindNull:
		return id, resumeNone
	case KindString:
	default:
		return id, resumeMalformed
	}
	b, ok := v.Bytes()
	switch {
	case !ok:
		return id, resumeMalformed
	case len(b) == 0:
		return id, resumeNone
	case decodeHex(id[:], b) != nil:
		return id, resumeMalformed
	}
	return id, resumeOK
}

// parkedSession is what a closed connection leaves behind for the miner
// to resume. It is guarded by Server.mu and linked oldest first.
type parkedSession struct {
	id       sessionID
	en1      [extranonce1Size]byte
	listener *listener
	at       time.Time // parked at (server clock)

	vd         *vardiff.State
	jobs       []sentJob
	jobHead    int
	lastJob    *jobEntry
	sentDiff   float64
	sentTarget *work.Target
	retired    []uint32 // see conn.retired; reserved like en1

	prev, next *parkedSession
}

// sessionTable holds the sessions of live connections and the parked ones.
// Every field is guarded by Server.mu. A parked session keeps its
// extranonce1 in Server.en1Used, so no new connection is given it.
type sessionTable struct {
	live       map[sessionID]*conn
	parked     map[sessionID]*parkedSession
	head, tail *parkedSession // oldest, newest
	strippedAt uint64         // block generation parked jobs were last checked against
}

func newSessionTable() sessionTable {
	return sessionTable{live: map[sessionID]*conn{}, parked: map[sessionID]*parkedSession{}}
}

func (t *sessionTable) push(p *parkedSession) {
	t.parked[p.id] = p
	p.prev, p.next = t.tail, nil
	if t.tail != nil {
		t.tail.next = p
	} else {
		t.head = p
	}
	t.tail = p
}

func (t *sessionTable) remove(p *parkedSession) {
	delete(t.parked, p.id)
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		t.head = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		t.tail = p.prev
	}
	p.prev, p.next = nil, nil
}

// dropParkedLocked forgets a parked session for good and frees its
// extranonce1. Caller holds s.mu.
func (s *Server) dropParkedLocked(p *parkedSession, why string) {
	s.sessions.remove(p)
	delete(s.en1Used, en1Value(p.en1))
	for _, v := range p.retired {
		delete(s.en1Used, v)
	}
	s.metrics.parked.Dec()
	s.metrics.parkedDropped.WithLabelValues(why).Inc()
}

// issueSessionLocked gives a connection subscribing without resuming a
// new session id built on its extranonce1. Caller holds s.mu and c.mu.
func (s *Server) issueSessionLocked(c *conn) {
	for {
		var id sessionID
		copy(id[:], c.en1[:])
		rand.Read(id[extranonce1Size:]) // never fails (crypto/rand since Go 1.24)
		if s.sessions.live[id] != nil || s.sessions.parked[id] != nil {
			continue // cannot happen with a fresh extranonce1; be sure anyway
		}
		c.session, c.hasSession = id, true
		s.sessions.live[id] = c
		return
	}
}

// resumeLocked decides what a subscribe offering id gets and, on
// resumeOK, hands the parked session to c. Caller holds s.mu and c.mu;
// c has not subscribed before, so it was sent no work yet.
func (s *Server) resumeLocked(c *conn, id sessionID, now time.Time) resumeOutcome {
	cfg := s.cfg.Load()
	if cfg.SessionResumeWindow <= 0 || cfg.MaxParkedSessions <= 0 {
		return resumeDisabled
	}
	// The session id starts with the extranonce1 it was issued with, whose
	// first byte names the instance: several instances share a database,
	// and only this one's sessions can be here.
	if id[0] != cfg.InstanceID {
		return resumeOtherInstance
	}
	if s.sessions.live[id] != nil {
		// Two live connections must never share an extranonce1 (their
		// work would collide): the caller may take the session over
		// (takeOver), which parks it first.
		return resumeInUse
	}
	p := s.sessions.parked[id]
	if p == nil {
		return resumeUnknown
	}
	if now.Sub(p.at) > cfg.SessionResumeWindow {
		s.dropParkedLocked(p, "expired")
		return resumeExpired
	}
	if p.listener != c.l {
		// The difficulties the jobs were sent at belong to the other
		// port's range; the session stays parked for the right port.
		return resumeOtherListener
	}
	s.sessions.remove(p)
	s.metrics.parked.Dec()
	// The extranonce1 reserved for the parked session becomes c's; the
	// fresh one c got at accept goes back.
	delete(s.en1Used, en1Value(c.en1))
	c.en1 = p.en1
	c.session, c.hasSession, c.resumed = id, true, true
	s.sessions.live[id] = c
	c.vd, c.jobs, c.jobHead, c.lastJob = p.vd, p.jobs, p.jobHead, p.lastJob
	c.sentDiff, c.sentTarget, c.retired = p.sentDiff, p.sentTarget, p.retired
	lc := c.l.cfg.Load()
	c.vd.SetConfig(cfg.Vardiff.params(lc.MinDiff, lc.MaxDiff)) // a reload may have happened meanwhile
	// The time away says nothing about the miner's hashrate: restart the
	// measurement window at the current difficulty.
	c.vd.Suggest(c.vd.Difficulty(), now)
	return resumeOK
}

// parkLocked parks a closing connection's session if it can be resumed
// and reports whether it did (the extranonce1 then stays reserved).
// Caller holds s.mu and c.mu.
func (s *Server) parkLocked(c *conn, why CloseReason, now time.Time) bool {
	cfg := s.cfg.Load()
	if !c.hasSession || c.lastJob == nil || cfg.SessionResumeWindow <= 0 || cfg.MaxParkedSessions <= 0 ||
		why == ClosedBanned || why == ClosedShutdown || s.closing.Load() {
		return false
	}
	// The parked session gets a copy of the difficulty state: the closed
	// connection stays readable (Connections may hold it a moment longer)
	// while the resuming one changes the state under its own lock.
	vd := *c.vd
	p := &parkedSession{
		id: c.session, en1: c.en1, listener: c.l, at: now,
		vd: &vd, jobs: c.jobs, jobHead: c.jobHead, lastJob: c.lastJob,
		sentDiff: c.sentDiff, sentTarget: c.sentTarget, retired: c.retired,
	}
	c.jobs, c.lastJob, c.retired = nil, nil, nil
	stripStale(p, s.block.Load())
	for len(s.sessions.parked) >= cfg.MaxParkedSessions && s.sessions.head != nil {
		s.dropParkedLocked(s.sessions.head, "evicted")
	}
	s.sessions.push(p)
	s.metrics.parked.Inc()
	return true
}

// stripStale lets go of a parked session's jobs once they belong to an
// older block: shares for them are stale whatever happens, and the jobs
// keep their templates in memory. The difficulty state stays.
func stripStale(p *parkedSession, cur *blockState) {
	if p.lastJob == nil || (cur != nil && p.lastJob.gen == cur.gen) {
		return
	}
	p.jobs, p.jobHead, p.lastJob = nil, 0, nil
}

// pruneParked drops parked sessions older than the window (oldest first),
// evicts beyond a lowered cap, and strips jobs of past blocks.
func (s *Server) pruneParked(now time.Time) {
	cfg := s.cfg.Load()
	cur := s.block.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &s.sessions
	for t.head != nil && (cfg.SessionResumeWindow <= 0 || now.Sub(t.head.at) > cfg.SessionResumeWindow) {
		s.dropParkedLocked(t.head, "expired")
	}
	for len(t.parked) > cfg.MaxParkedSessions && t.head != nil {
		s.dropParkedLocked(t.head, "evicted")
	}
	if cur != nil && cur.gen != t.strippedAt {
		t.strippedAt = cur.gen
		for p := t.head; p != nil; p = p.next {
			stripStale(p, cur)
		}
	}
}

// resendLocked sends a resumed miner the difficulty and job it had before
// the drop, which it lost with the connection. The job keeps its slot:
// the difficulty it was sent at and the shares already seen on it stay
// in force. A newer job goes out the normal way, after a set_difficulty
// the miner needs in any case. Caller holds c.mu.
func (c *conn) resendLocked(e *jobEntry) {
	if c.lastJob != e || c.sentDiff <= 0 {
		c.sentDiff = 0 // sendJobLocked sends the difficulty again
		c.sendJobLocked(e, true)
		return
	}
	p := c.s.getBuf()
	*p = appendSetDifficulty(*p, c.sentDiff)
	if c.enqueue(*p, p) {
		c.enqueue(e.clean, nil)
	}
}

// logResume records a subscribe's resume outcome in the metrics and, for a
// refused resume, in a debug line naming the reason.
func (c *conn) logResume(o resumeOutcome, offered []byte) {
	c.s.metrics.subscribes[o].Inc()
	if o == resumeNone || !c.debugOn() {
		return
	}
	en1 := hex.EncodeToString(c.en1[:])
	if o == resumeOK || o == resumeTakenOver {
		c.log().Debug("session resumed", zap.Stringer("how", o), zap.String("extranonce1", en1))
		return
	}
	c.log().Debug("session not resumed; new extranonce1", zap.Stringer("reason", o),
		zap.String("session", clipName(string(offered))), zap.String("extranonce1", en1))
}
