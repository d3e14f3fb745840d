package stratum

import (
	"time"
)

// Session takeover. The most common reconnect is not after a clean close:
// the miner's old TCP connection died without a FIN (power blip, NAT or
// Wi-Fi timeout), the server will only notice at ReadTimeout or at a
// failed write, and the miner is back within seconds offering its session
// id while that connection still looks live. Refusing it would cost the
// miner its extranonce1 and every share in flight.
//
// Presenting the id is taken as proof that it is the same miner: the id
// carries 4 random bytes that only ever went to that miner, in the
// subscribe answer on its own connection, so an id with a wrong random
// part matches no session and is refused like any unknown one. Someone
// who can read the miner's traffic could replay the id and cut the
// miner's connection, but such an attacker can already read (and steal)
// its work and its worker name, so the id gives away nothing new.
//
// The takeover goes through the normal close path: the old connection is
// closed (reason taken_over), its reader finishes the message it is
// handling (a submit in flight is recorded and its duplicate set
// updated; its answer is lost with the socket, and a resubmission on the
// new connection is a duplicate), then tears down and parks the session,
// and the new connection resumes it as any parked one. At no instant do
// two live connections hold the extranonce1: the old one holds it until
// its teardown parks it, the new one only after that.

// takeoverWait bounds how long a subscribe waits for the connection it
// takes over to park its session: the longest message that reader can be
// busy with is a block submission followed by two sink calls (the block,
// then the share).
func takeoverWait(cfg *Config) time.Duration {
	return cfg.BlockSubmitTimeout + 2*cfg.SinkTimeout + time.Second
}

// resume decides what a first subscribe offering id gets: a parked
// session, a live connection's session taken over, or (any other
// outcome) nothing, leaving c without a session. It must be called
// without s.mu or c.mu held, since a takeover waits for the old
// connection's teardown, which takes both locks.
func (s *Server) resume(c *conn, id sessionID) resumeOutcome {
	s.mu.Lock()
	c.mu.Lock()
	o := s.resumeLocked(c, id, s.now())
	c.mu.Unlock()
	if o != resumeInUse {
		s.mu.Unlock()
		return o
	}
	old := s.sessions.live[id]
	o = s.takeoverAllowedLocked(c, old)
	if o == resumeTakenOver && old.tornDown == nil {
		// old is live (its teardown has not passed s.mu yet), so its
		// teardown will see this channel and close it.
		old.tornDown = make(chan struct{})
	}
	tornDown := old.tornDown
	s.mu.Unlock()
	if o != resumeTakenOver {
		return o
	}
	old.close(ClosedTakenOver)
	t := time.NewTimer(takeoverWait(s.cfg.Load()))
	defer t.Stop()
	select {
	case <-tornDown:
	case <-t.C:
		// The old connection keeps the session (and its extranonce1)
		// until its reader lets go; the miner can offer it again later.
		return resumeTakeoverTimeout
	}
	s.mu.Lock()
	c.mu.Lock()
	// Only one attempt: when another connection offering the same id
	// won the race for the parked session, it holds it live now and this
	// one starts anew (in_use) rather than taking it over in turn.
	o = s.resumeLocked(c, id, s.now())
	c.mu.Unlock()
	s.mu.Unlock()
	if o == resumeOK {
		return resumeTakenOver
	}
	return o
}

// takeoverAllowedLocked reports whether c may take over the live session
// of old: resumeTakenOver when it may, otherwise the outcome to count.
// Caller holds s.mu (not c.mu).
func (s *Server) takeoverAllowedLocked(c, old *conn) resumeOutcome {
	if old.l != c.l {
		// The jobs' difficulties belong to the other port's range, as
		// for a parked session.
		return resumeOtherListener
	}
	if s.closing.Load() {
		return resumeInUse // sessions are not parked during shutdown
	}
	r := old.reason.Load()
	_, ipBanned := s.bans.banned(old.ip, s.now())
	if r == uint32(ClosedBanned)+1 || (old.ip.IsValid() && ipBanned) {
		// A banned connection's session is never parked: the miner
		// starts anew, as it would after the ban closed the connection.
		return resumeBanned
	}
	old.mu.Lock()
	hasWork := old.lastJob != nil
	old.mu.Unlock()
	if !hasWork {
		// Nothing to resume (no job was sent on it); the old connection
		// is dropped by its own handshake timeouts.
		return resumeInUse
	}
	return resumeTakenOver
}
