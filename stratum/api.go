package stratum

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"time"

	"go.uber.org/zap"
)

// Stats is a snapshot of the server for the JSON status API.
type Stats struct {
	Instance       string            `json:"instance"`
	Connections    int               `json:"connections"`
	Ready          int               `json:"ready"` // subscribed and authorized
	Workers        int               `json:"workers"`
	Hashrate       float64           `json:"hashrate"` // hashes per second
	Groups         []GroupStats      `json:"groups"`
	Accounts       []AccountStats    `json:"accounts"`
	Height         int64             `json:"height"`
	JobID          string            `json:"job_id,omitempty"`
	NetworkDiff    float64           `json:"network_diff"`
	SharesAccepted uint64            `json:"shares_accepted"`
	SharesRejected map[string]uint64 `json:"shares_rejected"`
	BlocksFound    uint64            `json:"blocks_found"`
	BannedIPs      int               `json:"banned_ips"`
	// ParkedSessions counts sessions of closed connections that miners
	// can still resume.
	ParkedSessions int `json:"parked_sessions"`
}

// ConnInfo describes one open connection.
type ConnInfo struct {
	ID          uint64    `json:"id"`
	Listener    string    `json:"listener"`
	Remote      string    `json:"remote"`
	UserAgent   string    `json:"user_agent,omitempty"`
	Extranonce1 string    `json:"extranonce1"`
	Workers     []string  `json:"workers"`
	Difficulty  float64   `json:"difficulty"`
	VersionMask string    `json:"version_mask,omitempty"`
	ConnectedAt time.Time `json:"connected_at"`
	// Resumed is true when the miner took over a parked session (same
	// extranonce1 as its previous connection).
	Resumed bool `json:"resumed,omitempty"`
}

// Workers returns every known worker, sorted by account and worker.
func (s *Server) Workers() []WorkerStats { return s.reg.snapshot(s.now()) }

// Stats returns a snapshot of the whole server.
func (s *Server) Stats() Stats {
	ws := s.reg.snapshot(s.now())
	groups, accounts := aggregate(ws)
	st := Stats{
		Instance: s.cfg.Load().Instance, Workers: len(ws), Groups: groups, Accounts: accounts,
		SharesAccepted: s.accepted.Load(), SharesRejected: map[string]uint64{},
		BlocksFound: s.blocks.Load(), BannedIPs: s.bans.bannedCount(s.now()),
	}
	for _, w := range ws {
		st.Hashrate += w.Hashrate
	}
	for _, r := range AllRejectReasons() {
		st.SharesRejected[r.String()] = s.rejected[r].Load()
	}
	if b := s.block.Load(); b != nil {
		st.Height = b.height
		if b.job != nil {
			st.JobID, st.NetworkDiff = b.job.job.ID, b.job.job.NetworkDiff
		}
	}
	s.mu.Lock()
	st.ParkedSessions = len(s.sessions.parked)
	s.mu.Unlock()
	for _, c := range s.connList() {
		st.Connections++
		c.mu.Lock()
		if c.ready {
			st.Ready++
		}
		c.mu.Unlock()
	}
	return st
}

// Connections lists open connections, oldest first.
func (s *Server) Connections() []ConnInfo {
	conns := s.connList()
	out := make([]ConnInfo, 0, len(conns))
	for _, c := range conns {
		c.mu.Lock()
		ci := ConnInfo{
			ID: c.id, Listener: c.l.cfg.Load().Name, Remote: c.remote, UserAgent: c.userAgent,
			Extranonce1: hex.EncodeToString(c.en1[:]), Difficulty: c.vd.Difficulty(), ConnectedAt: c.connectedAt,
			Resumed: c.resumed,
		}
		if c.rolling {
			ci.VersionMask = fmt.Sprintf("%08x", c.mask)
		}
		for _, w := range c.workers {
			ci.Workers = append(ci.Workers, w.name)
		}
		c.mu.Unlock()
		out = append(out, ci)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ErrNoConnection is returned for a connection id that is not open.
var ErrNoConnection = errors.New("no such connection")

// ErrExtranonceNotSubscribed is returned when a connection's extranonce
// cannot be changed because the miner did not subscribe to changes.
var ErrExtranonceNotSubscribed = errors.New("miner did not subscribe to extranonce changes")

// ChangeExtranonce gives a connection a new extranonce1 (an operator
// action, or a collision), tells the miner with mining.set_extranonce and
// sends the current job again as clean so new work uses the new value.
//
// A new extranonce1 applies from the next job on, so shares for every job
// sent before are still judged with the extranonce1 they were sent with.
// The re-sent job keeps its id: job ids are the builder's and the
// ledger's (every job is recorded before it goes out, and shares name it),
// so a made-up id would point at nothing. The connection instead keeps the
// job's old slot next to the new one, and a share that fails with the
// newest slot's extranonce1 is tried with the older slot's (checkShare):
// at most one extra hash, for low-difficulty shares on a job that was
// re-sent. Each slot keeps its own duplicate set. The replaced
// extranonce1 stays reserved while a slot still holds it, so no other
// connection is given it while shares made with it are accepted here.
func (s *Server) ChangeExtranonce(connID uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conns[connID]
	if c == nil {
		return fmt.Errorf("change extranonce of connection %d: %w", connID, ErrNoConnection)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.extranonceSub {
		return fmt.Errorf("change extranonce of connection %d: %w", connID, ErrExtranonceNotSubscribed)
	}
	old := c.en1
	c.en1 = s.allocExtranonce1Locked()
	c.retired = append(c.retired, en1Value(old))
	p := s.getBuf()
	*p = appendSetExtranonce(*p, c.en1[:], s.cfg.Load().Extranonce2Size)
	c.enqueue(*p, p)
	if b := s.block.Load(); b != nil && b.job != nil && c.ready {
		last := c.lastJob
		c.lastJob = nil // sendJobLocked skips the job the miner already has
		e := b.job
		if m := c.soloLocked(); m != nil {
			e = s.solo.cached(e, m.script) // nil: the next job goes out with the new extranonce1
		}
		if e != nil {
			c.sendJobLocked(e, true)
		}
		if c.lastJob == nil {
			c.lastJob = last // not sent (the connection is closing)
		}
	}
	s.releaseRetiredLocked(c)
	c.log().Info("extranonce1 changed", zap.String("old", hex.EncodeToString(old[:])), zap.String("new", hex.EncodeToString(c.en1[:])))
	return nil
}

// releaseRetiredLocked frees the replaced extranonce1s of c that no job
// slot holds any more. Caller holds s.mu and c.mu.
func (s *Server) releaseRetiredLocked(c *conn) {
	kept := c.retired[:0]
	for _, v := range c.retired {
		held := false
		for i := range c.jobs {
			if c.jobs[i].entry != nil && en1Value(c.jobs[i].en1) == v {
				held = true
				break
			}
		}
		if held {
			kept = append(kept, v)
		} else {
			delete(s.en1Used, v)
		}
	}
	clear(c.retired[len(kept):])
	c.retired = kept
}

// ShowMessage sends client.show_message to the connections of account
// (every connection when account is empty) and returns how many got it.
func (s *Server) ShowMessage(account, msg string) int {
	line := appendShowMessage(nil, msg)
	return s.sendMatching(account, line)
}

// Reconnect sends client.reconnect to the connections of account (all when
// empty): to host:port after waitSeconds, or to the same address when host
// is empty. Miners that honour it move without losing work.
func (s *Server) Reconnect(account, host string, port, waitSeconds int) int {
	line := appendReconnect(nil, host, port, waitSeconds)
	return s.sendMatching(account, line)
}

func (s *Server) sendMatching(account string, line []byte) int {
	n := 0
	for _, c := range s.connList() {
		c.mu.Lock()
		match := account == ""
		for _, w := range c.workers {
			if w.stats.account == account {
				match = true
			}
		}
		c.mu.Unlock()
		if match && c.enqueue(line, nil) {
			n++
		}
	}
	return n
}

// ErrNotReloadable wraps the list of changed settings Reload could not
// apply; everything else was applied.
var ErrNotReloadable = errors.New("settings need a restart")

// Reload applies a new configuration to the running server: listener
// difficulty ranges, vardiff, version mask, timeouts, queue and line
// limits, ban policy, groups, the refresh interval, session resume (a
// lowered MaxParkedSessions evicts at the next housekeeping) and the
// connection caps (a lowered cap closes no connection: it refuses new ones
// until enough have left; 0 derives it again from the open-file limit).
// Instance,
// InstanceID, Extranonce2Size, JobWindow, HashrateWindow and listener
// names and addresses need a restart: changes to them are reported in an
// error wrapping ErrNotReloadable and otherwise ignored.
func (s *Server) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	old := s.cfg.Load()
	next := cfg
	next.Listeners = append([]ListenerConfig(nil), cfg.Listeners...)
	next.Groups = append([]GroupRule(nil), cfg.Groups...)
	var fixed []string
	keep := func(name string, changed bool) {
		if changed {
			fixed = append(fixed, name)
		}
	}
	keep("Instance", next.Instance != old.Instance)
	keep("InstanceID", next.InstanceID != old.InstanceID)
	keep("Extranonce2Size", next.Extranonce2Size != old.Extranonce2Size)
	keep("JobWindow", next.JobWindow != old.JobWindow)
	keep("HashrateWindow", next.HashrateWindow != old.HashrateWindow)
	next.Instance, next.InstanceID, next.Extranonce2Size = old.Instance, old.InstanceID, old.Extranonce2Size
	next.JobWindow, next.HashrateWindow = old.JobWindow, old.HashrateWindow
	listeners := make([]ListenerConfig, len(old.Listeners))
	for i, ol := range old.Listeners {
		nl, ok := next.listener(ol.Name)
		switch {
		case !ok:
			fixed = append(fixed, fmt.Sprintf("Listeners: %q removed", ol.Name))
			nl = ol
		case nl.Addr != ol.Addr:
			fixed = append(fixed, fmt.Sprintf("Listeners[%q].Addr", ol.Name))
			nl.Addr = ol.Addr
		}
		if nl.ProxyProtocol != ol.ProxyProtocol {
			fixed = append(fixed, fmt.Sprintf("Listeners[%q].ProxyProtocol", ol.Name))
			nl.ProxyProtocol = ol.ProxyProtocol
		}
		if (nl.TLSCert == "") != (ol.TLSCert == "") {
			fixed = append(fixed, fmt.Sprintf("Listeners[%q].TLSCert (TLS on or off)", ol.Name))
			nl.TLSCert, nl.TLSKey = ol.TLSCert, ol.TLSKey
		}
		listeners[i] = nl
	}
	for _, nl := range next.Listeners {
		if _, ok := old.listener(nl.Name); !ok {
			fixed = append(fixed, fmt.Sprintf("Listeners: %q added", nl.Name))
		}
	}
	next.Listeners = listeners
	maxConns, err := resolveMaxConns(next.MaxConnections)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	// Certificates are read before anything changes: a renewal that
	// cannot be read leaves the whole configuration as it was.
	certs, err := s.loadCerts(listeners)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	s.cfg.Store(&next)
	s.setConnLimit(maxConns)
	s.swapCerts(certs)
	for i, l := range s.listeners {
		lc := listeners[i]
		l.cfg.Store(&lc)
	}
	s.reg.regroup(&next)
	for _, c := range s.connList() {
		c.reloaded(&next)
	}
	s.log.Info("configuration reloaded", zap.Strings("needs_restart", fixed))
	if len(fixed) > 0 {
		return fmt.Errorf("reload: %w: %v", ErrNotReloadable, fixed)
	}
	return nil
}

// reloaded applies new difficulty bounds and version mask to one
// connection. A difficulty change is sent with the next job.
func (c *conn) reloaded(cfg *Config) {
	lc := c.l.cfg.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.vd.SetConfig(cfg.Vardiff.params(lc.MinDiff, lc.MaxDiff))
	if !c.rolling {
		return
	}
	mask := cfg.VersionMask & c.minerMask
	if mask == c.mask {
		return
	}
	if mask == 0 || bits.OnesCount32(mask) < int(c.minBits) {
		// The miner cannot roll with the new mask: stop accepting rolled
		// bits and tell it there are none left.
		mask = 0
	}
	c.mask = mask
	c.rolling = mask != 0
	p := c.s.getBuf()
	*p = appendSetVersionMask(*p, mask)
	c.enqueue(*p, p)
}
