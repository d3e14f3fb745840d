package stratum

import (
	"bytes"
	"encoding/hex"
	"math/bits"
	"strconv"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/work"
)

// Stratum error codes beyond the share reject codes.
const (
	codeOther          = 20
	codeUnauthorized   = 24
	codeNotSubscribed  = 25
	maxUserAgentLength = 128
)

// handleLine handles one line; it returns false when the connection must
// stop reading.
func (c *conn) handleLine(line []byte, m *Message) bool {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return true
	}
	err := ParseMessage(line, m)
	if err == nil && m.HasMethod && string(m.Method) == "mining.submit" {
		c.submit(m) // its answer may be gathered with the read's others (see readLoop)
		return c.reason.Load() == 0
	}
	// Everything else is answered in order with what the session sends on
	// its own (a subscribe's answer before the first job), so answers
	// gathered so far go out first and nothing is gathered meanwhile.
	c.flushReplies()
	gather := c.gather
	c.gather = false
	defer func() { c.gather = gather }()
	if err != nil {
		c.malformed++
		cfg := c.s.cfg.Load()
		c.reply(func(b []byte) []byte { return appendError(b, nullID, codeOther, err.Error()) })
		if c.malformed >= cfg.MaxMalformed {
			c.log().Info("closing: too many malformed lines", zap.Int("malformed", c.malformed), zap.Error(err))
			c.closeAfterFlush(ClosedMalformed)
			return false
		}
		return !c.countForBan(false)
	}
	if !m.HasMethod {
		return true // a reply to something we sent; nothing to do
	}
	switch string(m.Method) {
	case "mining.subscribe":
		c.subscribe(m)
	case "mining.authorize":
		c.authorize(m)
	case "mining.configure":
		c.configure(m)
	case "mining.extranonce.subscribe":
		c.mu.Lock()
		c.extranonceSub = true
		c.mu.Unlock()
		c.reply(func(b []byte) []byte { return appendResult(b, m.ID, []byte("true")) })
	case "mining.suggest_difficulty":
		c.suggestDifficulty(m)
	default:
		c.reply(func(b []byte) []byte { return appendError(b, m.ID, codeOther, "Unknown method") })
	}
	return c.reason.Load() == 0
}

// countForBan feeds the invalid-share policy; it reports true when the
// connection flooded and is closing. Only the flooding connection is
// closed, unless its flood bans the whole address (see BanConfig): farms
// share one NAT address, and one bad machine must not cost its
// neighbours their connections.
func (c *conn) countForBan(valid bool) bool {
	cfg := c.s.cfg.Load()
	if !c.score.add(valid, cfg.Ban) {
		return false
	}
	if !c.ip.IsValid() {
		c.log().Info("closing connection for invalid shares", zap.Float64("invalid_percent_at_least", cfg.Ban.InvalidPercent))
		c.closeAfterFlush(ClosedInvalidShares)
		return true
	}
	v := c.s.bans.flooded(c.ip, c.flooderKey(), c.s.openFrom(c.ip), c.s.now(), cfg.Ban)
	if !v.banned {
		c.log().Info("closing connection for invalid shares",
			zap.Stringer("ip", c.ip), zap.Int("address_flooders", v.flooders),
			zap.Int("address_min_flooders", cfg.Ban.AddressMinFlooders))
		c.closeAfterFlush(ClosedInvalidShares)
		return true
	}
	if v.newBan {
		c.s.metrics.bansTotal.Inc()
		c.log().Warn("banning address: many of its miners send invalid shares",
			zap.Stringer("ip", c.ip), zap.Int("address_flooders", v.flooders), zap.Duration("for", v.d))
		c.s.mu.Lock()
		var same []*conn
		for _, o := range c.s.conns {
			if o != c && o.ip == c.ip {
				same = append(same, o)
			}
		}
		c.s.mu.Unlock()
		for _, o := range same {
			o.close(ClosedBanned)
		}
	}
	c.closeAfterFlush(ClosedBanned)
	return true
}

func (c *conn) subscribe(m *Message) {
	if ua, ok := m.Param(0).Text(); ok {
		if len(ua) > maxUserAgentLength {
			ua = ua[:maxUserAgentLength]
		}
		c.mu.Lock() // Connections reads it
		c.userAgent = ua
		c.mu.Unlock()
	}
	// params[1] is the session id of an earlier connection (see
	// resume.go); only the first subscribe of a connection may resume.
	outcome := resumeNone
	s := c.s
	// subscribed is written by this reader only, so it cannot change
	// while resume runs without the locks (a takeover waits there).
	c.mu.Lock()
	first := !c.subscribed
	c.mu.Unlock()
	if first {
		var offered sessionID
		if offered, outcome = parseSessionID(m.Param(1)); outcome == resumeOK {
			outcome = s.resume(c, offered)
		}
	}
	s.mu.Lock()
	c.mu.Lock()
	if first && !c.hasSession {
		s.issueSessionLocked(c)
	}
	c.subscribed = true
	en1, id := c.en1, c.session
	c.mu.Unlock()
	s.mu.Unlock()
	if first {
		raw, _ := m.Param(1).Bytes()
		c.logResume(outcome, raw)
	}
	size := s.cfg.Load().Extranonce2Size
	c.reply(func(b []byte) []byte {
		b = append(b, `{"id":`...)
		b = append(b, m.ID...)
		b = append(b, `,"result":[[["mining.set_difficulty","`...)
		b = hex.AppendEncode(b, id[:])
		b = append(b, `"],["mining.notify","`...)
		b = hex.AppendEncode(b, id[:])
		b = append(b, `"]],"`...)
		b = hex.AppendEncode(b, en1[:])
		b = append(b, `",`...)
		b = strconv.AppendInt(b, int64(size), 10)
		return append(b, "],\"error\":null}\n"...)
	})
	if first && c.debugOn() {
		c.log().Debug("subscribed", zap.String("agent", c.userAgent), zap.String("extranonce1", hex.EncodeToString(en1[:])))
	}
	c.start()
}

func (c *conn) authorize(m *Message) {
	name, ok := m.Param(0).Text()
	if !ok {
		c.reply(func(b []byte) []byte {
			return appendError(b, m.ID, codeOther, "mining.authorize: worker name must be a string")
		})
		return
	}
	password := ""
	if p := m.Param(1); p.Kind == KindString {
		password, _ = p.Text()
	} else if p.Kind != KindInvalid && p.Kind != KindNull {
		c.reply(func(b []byte) []byte {
			return appendError(b, m.ID, codeOther, "mining.authorize: password must be a string")
		})
		return
	}
	account, worker, err := parseWorkerName(name)
	if err != nil {
		c.reply(func(b []byte) []byte {
			return appendError(b, m.ID, codeUnauthorized, "Unauthorized worker: "+err.Error())
		})
		return
	}
	diff, derr := passwordOptions(password)
	if derr != nil {
		c.log().Info("ignoring password option", zap.Error(derr))
	}
	c.mu.Lock()
	for _, w := range c.workers {
		if w.name == name {
			c.mu.Unlock()
			c.reply(func(b []byte) []byte { return appendResult(b, m.ID, []byte("true")) })
			return
		}
	}
	if len(c.workers) >= maxWorkersPerConn {
		c.mu.Unlock()
		c.reply(func(b []byte) []byte {
			return appendError(b, m.ID, codeUnauthorized, "Too many workers on one connection")
		})
		return
	}
	var solo *soloMiner
	if c.l.cfg.Load().Solo {
		var refusal string
		if solo, refusal = c.s.soloAuthorize(account); solo == nil || (len(c.workers) > 0 && c.workers[0].solo.address != account) {
			if solo != nil {
				refusal = "solo: this connection mines for " + c.workers[0].solo.address + "; another address needs its own connection"
			}
			c.mu.Unlock()
			c.reply(func(b []byte) []byte { return appendError(b, m.ID, codeUnauthorized, "Unauthorized worker: "+refusal) })
			return
		}
	}
	cfg := c.s.cfg.Load()
	group := cfg.groupFor(account + "." + worker)
	stats := c.s.reg.attach(account, worker, group, c.s.now())
	c.workers = append(c.workers, &connWorker{name: name, stats: stats, solo: solo})
	if diff > 0 {
		c.vd.SetFloor(diff, c.s.now())
	}
	c.mu.Unlock()
	if c.debugOn() {
		c.log().Debug("authorized", zap.String("account", account), zap.String("worker", worker), zap.String("group", group))
	}
	c.reply(func(b []byte) []byte { return appendResult(b, m.ID, []byte("true")) })
	c.start()
}

// start sends the first difficulty and job once the connection is both
// subscribed and authorized.
func (c *conn) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready || !c.subscribed || len(c.workers) == 0 {
		return
	}
	b := c.s.block.Load()
	var e *jobEntry
	if b != nil {
		e = b.job
	}
	// A solo job may wait for the sink: it is built without the lock, and
	// built again if a broadcast published a newer job meanwhile (that
	// broadcast skipped this connection, not ready yet).
	for m := c.soloLocked(); m != nil && e != nil; {
		c.mu.Unlock()
		se := c.soloJob(e, m)
		c.mu.Lock()
		if c.ready || len(c.workers) == 0 {
			return
		}
		if nb := c.s.block.Load(); nb != b {
			b, e = nb, nb.job
			continue
		}
		e = se
		break
	}
	c.ready = true
	switch {
	case e == nil:
	case c.resumed:
		c.resendLocked(e)
	default:
		c.sendJobLocked(e, true)
	}
}

// configureExtensions returns mining.configure's extension names: an
// array of strings (null counts as "", as encoding/json has it).
func configureExtensions(v Value) ([]string, bool) {
	var names []string
	ok := true
	err := v.elements(func(e Value) bool {
		switch e.Kind {
		case KindString:
			name, good := e.Text()
			names, ok = append(names, name), good
		case KindNull:
			names = append(names, "")
		default:
			ok = false
		}
		return ok
	})
	return names, ok && err == nil
}

// configureOptions returns the members of mining.configure's options
// object the server reads, as encoding/json would decode them into
// map[string]any (the last of duplicate keys wins): strings and numbers.
// A number that is not a finite float64 makes the options bad. Absent or
// null options are empty.
func configureOptions(v Value) (map[string]any, bool) {
	options := map[string]any{}
	if v.Kind != KindObject {
		return options, true
	}
	ok := true
	err := v.members(func(key, val Value) bool {
		name, good := key.Text()
		if !good {
			ok = false
			return false
		}
		switch val.Kind {
		case KindString:
			s, good := val.Text()
			options[name], ok = s, good
		case KindNumber:
			f, good := val.Float()
			options[name], ok = f, good
		default:
			options[name] = nil // present, but of no type the server reads
		}
		return ok
	})
	return options, ok && err == nil
}

// configure answers BIP310 mining.configure.
func (c *conn) configure(m *Message) {
	exts, opts := m.Param(0), m.Param(1)
	if exts.Kind != KindArray || (opts.Kind != KindObject && opts.Kind != KindInvalid && opts.Kind != KindNull) {
		c.reply(func(b []byte) []byte {
			return appendError(b, m.ID, codeOther, "mining.configure: params must be [extensions, options]")
		})
		return
	}
	names, ok := configureExtensions(exts)
	if !ok {
		c.reply(func(b []byte) []byte {
			return appendError(b, m.ID, codeOther, "mining.configure: extensions must be strings")
		})
		return
	}
	options, ok := configureOptions(opts)
	if !ok {
		c.reply(func(b []byte) []byte { return appendError(b, m.ID, codeOther, "mining.configure: bad options") })
		return
	}
	cfg := c.s.cfg.Load()
	res := []byte{'{'}
	add := func(key string, val []byte) {
		if len(res) > 1 {
			res = append(res, ',')
		}
		res = appendString(res, key)
		res = append(res, ':')
		res = append(res, val...)
	}
	c.mu.Lock()
	for _, ext := range names {
		switch ext {
		case "version-rolling":
			minerMask := uint32(0xffffffff)
			if s, ok := options["version-rolling.mask"].(string); ok {
				v, err := parseHex32([]byte(s))
				if err != nil {
					add(ext, []byte("false"))
					add("version-rolling.error", appendString(nil, "version-rolling.mask is not 8 hex digits"))
					continue
				}
				minerMask = v
			}
			minBits := 0
			if f, ok := options["version-rolling.min-bit-count"].(float64); ok && f > 0 && f <= 32 {
				minBits = int(f)
			}
			mask := cfg.VersionMask & minerMask
			if mask == 0 || bits.OnesCount32(mask) < minBits {
				c.rolling, c.mask = false, 0
				add(ext, []byte("false"))
				continue
			}
			c.rolling, c.mask, c.minerMask, c.minBits = true, mask, minerMask, uint8(minBits)
			add(ext, []byte("true"))
			add("version-rolling.mask", appendHex32(nil, mask))
		case "minimum-difficulty":
			f, ok := options["minimum-difficulty.value"].(float64)
			if !ok || !(f > 0) {
				add(ext, []byte("false"))
				continue
			}
			c.vd.SetFloor(f, c.s.now())
			add(ext, []byte("true"))
		case "subscribe-extranonce":
			c.extranonceSub = true
			add(ext, []byte("true"))
		default:
			if len(ext) <= 64 && validName(ext, true) {
				add(ext, []byte("false")) // BIP310: unsupported extensions are answered false
			}
		}
	}
	c.mu.Unlock()
	res = append(res, '}')
	c.reply(func(b []byte) []byte { return appendResult(b, m.ID, res) })
}

// suggestDifficulty takes the miner's wish, clamped to the port's range;
// it is sent before the next job and is a floor for vardiff.
func (c *conn) suggestDifficulty(m *Message) {
	d, ok := m.Param(0).Float()
	if !ok || !(d > 0) {
		c.reply(func(b []byte) []byte {
			return appendError(b, m.ID, codeOther, "mining.suggest_difficulty: difficulty must be a positive number")
		})
		return
	}
	c.mu.Lock()
	c.vd.SetFloor(d, c.s.now())
	c.mu.Unlock()
	c.reply(func(b []byte) []byte { return appendResult(b, m.ID, []byte("true")) })
}

// sendJob queues a job to this connection (broadcast path); a solo
// connection gets its own job built from it.
func (c *conn) sendJob(e *jobEntry, clean bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.soloLocked()
	if m == nil {
		c.sendJobLocked(e, clean)
		return
	}
	if !c.ready {
		return
	}
	c.mu.Unlock()
	se := c.soloJob(e, m)
	c.mu.Lock()
	if se != nil {
		c.sendJobLocked(se, clean)
	}
}

// sendJobLocked sends a pending difficulty change followed by the job's
// notify and records what the job was sent with. Caller holds c.mu.
func (c *conn) sendJobLocked(e *jobEntry, clean bool) {
	if !c.ready || c.lastJob == e {
		return
	}
	cfg := c.s.cfg.Load()
	c.vd.Tick(c.s.now())
	if d := c.vd.Difficulty(); d != c.sentDiff {
		p := c.s.getBuf()
		*p = appendSetDifficulty(*p, d)
		if !c.enqueue(*p, p) {
			return
		}
		c.sentDiff = d
		t := work.TargetFromDiff(d)
		c.sentTarget = &t
	}
	line := e.refresh
	if clean || c.lastJob == nil || c.lastJob.gen != e.gen {
		line = e.clean
	}
	if !c.enqueue(line, nil) {
		return
	}
	if c.jobs == nil {
		c.jobs = make([]sentJob, cfg.JobWindow)
	} else if c.lastJob != nil && c.lastJob.gen != e.gen {
		// New block: every remembered job is stale now, so their
		// duplicate sets are dead weight.
		for i := range c.jobs {
			c.jobs[i].dup = nil
		}
	}
	c.jobHead = (c.jobHead + 1) % len(c.jobs)
	slot := &c.jobs[c.jobHead]
	dup := slot.dup
	clear(dup)
	*slot = sentJob{entry: e, diff: c.sentDiff, target: c.sentTarget, en1: c.en1, dup: dup}
	c.lastJob = e
}

// findJobLocked returns the newest slot holding the job with this id
// that is older than after (the newest of all when after is nil).
func (c *conn) findJobLocked(id []byte, after *sentJob) *sentJob {
	passed := after == nil
	for i := 0; i < len(c.jobs); i++ {
		slot := &c.jobs[(c.jobHead-i+len(c.jobs))%len(c.jobs)]
		if !passed {
			passed = slot == after
			continue
		}
		if slot.entry != nil && slot.entry.job.ID == string(id) {
			return slot
		}
	}
	return nil
}

// olderSlotLocked returns the newest slot older than after that holds the
// same job sent with an extranonce1 other than en1 (see ChangeExtranonce),
// or nil. Caller holds c.mu; after must still be in the ring.
func (c *conn) olderSlotLocked(id []byte, after *sentJob, en1 [extranonce1Size]byte) *sentJob {
	for s := c.findJobLocked(id, after); s != nil; s = c.findJobLocked(id, s) {
		if s.en1 != en1 {
			return s
		}
	}
	return nil
}

func (c *conn) findWorkerLocked(name []byte) *connWorker {
	for _, w := range c.workers {
		if w.name == string(name) {
			return w
		}
	}
	return nil
}
