package minersim

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/work"
)

// errReconnect ends a session because the pool sent client.reconnect.
var errReconnect = errors.New("pool requested reconnect")

// handleLine processes one server line. Lines the client cannot use are
// counted and skipped, like firmware does; only handshake failures and
// client.reconnect end the session.
func (m *Miner) handleLine(s *session, line []byte) error {
	line = bytes.TrimSpace(line)
	if e := m.grinder.notifies.get(line); e != nil {
		m.applyNotify(s, e) // a job line another miner already parsed
		return nil
	}
	msg, err := parseLine(line)
	if err != nil {
		m.stats.malformed.Add(1)
		m.log.Debug("unusable line from pool", zap.Error(err))
		return nil
	}
	if msg.IsResponse() {
		return m.handleResponse(s, &msg)
	}
	return m.handleNotification(s, &msg, line)
}

func (m *Miner) handleResponse(s *session, msg *serverMsg) error {
	now := m.now()
	m.mu.Lock()
	p, ok := s.pending[msg.ID]
	if ok {
		delete(s.pending, msg.ID)
		if p.kind == reqSubmit {
			s.inflight--
		}
	}
	m.mu.Unlock()
	if !ok {
		return nil // an answer to a submit we already timed out, or noise
	}
	switch p.kind {
	case reqConfigure:
		return m.onConfigure(s, msg)
	case reqSubscribe:
		return m.onSubscribe(s, msg)
	case reqAuthorize:
		return m.onAuthorize(s, msg)
	case reqSubmit:
		m.onSubmitResult(msg, p, now)
	}
	return nil
}

// onConfigure applies the negotiated version mask (intersected with ours:
// we roll only bits we asked for) and subscribes. A pool that does not know
// mining.configure answers with an error: mine without rolling.
func (m *Miner) onConfigure(s *session, msg *serverMsg) error {
	var res configureResult
	if msg.Err == nil {
		r, err := parseConfigureResult(msg.Result)
		if err != nil {
			m.log.Debug("mining.configure answer unusable; not rolling versions", zap.Error(err))
		} else {
			res = r
		}
	}
	m.mu.Lock()
	s.rolling = res.VersionRolling
	s.mask = res.Mask & m.cfg.VersionMask
	m.mu.Unlock()
	return m.sendSubscribe(s)
}

func (m *Miner) onSubscribe(s *session, msg *serverMsg) error {
	if msg.Err != nil {
		return fmt.Errorf("%w: mining.subscribe: %s", errHandshake, msg.Err)
	}
	en1, en2Size, err := parseSubscribeResult(msg.Result)
	if err != nil {
		return fmt.Errorf("%w: %w", errHandshake, err)
	}
	m.mu.Lock()
	s.en1, s.en2Size, s.subscribed = en1, en2Size, true
	if s.offered != "" {
		// The pool resumed the session exactly when it gave back the
		// extranonce1 the offered session had.
		if bytes.Equal(en1, m.lastEn1) {
			m.resumed.Add(1)
			m.stats.resumed.Add(1)
		} else {
			m.resumeRefused.Add(1)
			m.stats.resumeRefused.Add(1)
		}
	}
	m.lastSession, m.lastEn1 = subscriptionID(msg.Result), en1
	m.mu.Unlock()
	return m.sendAfterSubscribe(s)
}

func (m *Miner) onAuthorize(s *session, msg *serverMsg) error {
	if msg.Err != nil || string(msg.Result) != "true" {
		m.stats.authFailures.Add(1)
		reason := "result " + truncate(string(msg.Result), 40)
		if msg.Err != nil {
			reason = msg.Err.String()
		}
		return fmt.Errorf("%w: mining.authorize %s: %s", errHandshake, m.cfg.User, reason)
	}
	if err := s.conn.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("clear handshake deadline: %w", err)
	}
	m.mu.Lock()
	s.authorized = true
	m.mu.Unlock()
	m.wake()
	return nil
}

// onSubmitResult counts an answered submit and reports accepted shares.
func (m *Miner) onSubmitResult(msg *serverMsg, p pending, now time.Time) {
	sh := p.share
	ok := msg.Err == nil && string(msg.Result) == "true"
	m.stats.answered(now.Sub(p.sent), ok)
	if ok {
		m.accepted.Add(1)
		if sh.bad != BadNone {
			m.stats.badAccepted.Add(1)
		} else if sh.isBlock {
			m.stats.blocksAccepted.Add(1)
		}
		if m.cfg.OnAccepted != nil {
			m.cfg.OnAccepted(sh.accepted(m.cfg.ID, m.cfg.User))
		}
	} else {
		m.rejected.Add(1)
		key := "result " + truncate(string(msg.Result), 20)
		if msg.Err != nil {
			key = truncate(msg.Err.String(), 80)
		}
		m.stats.addReject(key)
		if sh.bad == BadNone {
			m.stats.goodRejected.Add(1)
		}
	}
	if m.cfg.Fast {
		m.wake()
	}
}

func (m *Miner) handleNotification(s *session, msg *serverMsg, line []byte) error {
	switch msg.Method {
	case methodNotify:
		m.onNotify(s, msg, line)
	case methodSetDifficulty:
		d, err := parseSetDifficulty(msg.Params)
		if err != nil {
			m.stats.malformed.Add(1)
			return nil
		}
		m.mu.Lock()
		s.nextDiff = d
		m.mu.Unlock()
	case methodSetVersionMask:
		mask, err := parseSetVersionMask(msg.Params)
		if err != nil {
			m.stats.malformed.Add(1)
			return nil
		}
		// BIP310: the new mask is valid immediately, for the current job
		// too.
		m.mu.Lock()
		if s.rolling {
			s.mask = mask & m.cfg.VersionMask
		}
		m.mu.Unlock()
	case methodSetExtranonce:
		en1, en2Size, err := parseSetExtranonce(msg.Params)
		if err != nil {
			m.stats.malformed.Add(1)
			return nil
		}
		m.mu.Lock()
		s.en1, s.en2Size = en1, en2Size
		m.mu.Unlock()
	case methodReconnect:
		r, err := parseReconnect(msg.Params)
		if err != nil {
			m.stats.malformed.Add(1)
			return nil
		}
		r.Wait = min(r.Wait, maxReconnectWait)
		m.stats.reconnectRequests.Add(1)
		m.mu.Lock()
		s.redirect = &r
		m.mu.Unlock()
		return errReconnect
	case methodShowMessage:
		m.log.Info("pool message", zap.String("params", truncate(string(msg.Params), 200)))
	case methodGetVersion:
		if msg.HasID {
			b, err := encodeResponse(msg.ID, m.cfg.UserAgent)
			if err != nil {
				return err
			}
			return m.write(s, b)
		}
	}
	return nil
}

// onNotify turns mining.notify into the miner's current job, at the
// difficulty and extranonce in force now (later changes apply to later
// jobs only). The parsed line is shared with the fleet's other miners.
func (m *Miner) onNotify(s *session, msg *serverMsg, line []byte) {
	p, err := parseNotifyParams(msg.Params)
	if err != nil {
		m.stats.malformed.Add(1)
		m.log.Debug("unusable mining.notify", zap.Error(err))
		return
	}
	m.applyNotify(s, m.grinder.notifies.put(line, p))
}

// applyNotify makes a parsed mining.notify line the current job.
func (m *Miner) applyNotify(s *session, e *notifyEntry) {
	p := &e.params
	m.mu.Lock()
	if !s.subscribed {
		m.mu.Unlock()
		m.stats.malformed.Add(1)
		return
	}
	en1 := s.en1
	en2Size := s.en2Size
	diff := s.nextDiff
	m.mu.Unlock()
	job, err := e.job(len(en1), en2Size)
	if err != nil {
		m.stats.malformed.Add(1)
		m.log.Debug("unusable mining.notify", zap.String("job", p.JobID), zap.Error(err))
		return
	}
	aj := &activeJob{job: job, en1: en1, en2Size: en2Size, diff: diff, target: work.TargetFromDiff(diff)}
	m.stats.jobs.Add(1)
	m.mu.Lock()
	if p.CleanJobs && s.job != nil {
		s.staleJobID = s.job.job.ID
	}
	s.jobSeq++
	aj.seq = s.jobSeq
	s.job = aj
	m.mu.Unlock()
	m.wake()
}
