package stratum

import (
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// maxFloodersTracked bounds the flooders remembered per address, so an
// address that cycles through endless worker names cannot grow the map
// without limit; past it, only flooders already known refresh.
const maxFloodersTracked = 4096

// banList holds per-address ban state: the flooders dropped recently (the
// evidence for an address ban) and the ban in force. It is safe for
// concurrent use.
//
// Farms mine from behind one NAT address, so a connection that floods
// costs only its own connection; the address is banned only when many
// distinct miners behind it flood (see BanConfig). A ban escalates once
// per ban period: flooders seen while a ban is in force do not extend it.
type banList struct {
	mu      sync.Mutex
	entries map[netip.Addr]*banEntry
}

type banEntry struct {
	until   time.Time // end of the current ban
	strikes int       // bans so far (escalation)
	last    time.Time // start of the latest ban
	// flooders maps each miner dropped for invalid shares (its worker
	// name, or its connection when it authorized none) to the time of its
	// latest drop.
	flooders map[string]time.Time
}

func newBanList() *banList { return &banList{entries: map[netip.Addr]*banEntry{}} }

// ban bans ip from now and returns the ban's duration. While a ban is in
// force it is neither extended nor escalated: one strike per ban period.
func (b *banList) ban(ip netip.Addr, now time.Time, cfg BanConfig) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, _ := b.banLocked(b.entry(ip, now, cfg), now, cfg)
	return d
}

// entry returns ip's entry, creating it (and forgetting strikes older than
// ForgetAfter) as needed. b.mu is held.
func (b *banList) entry(ip netip.Addr, now time.Time, cfg BanConfig) *banEntry {
	e := b.entries[ip]
	if e == nil {
		e = &banEntry{}
		b.entries[ip] = e
	}
	if e.strikes > 0 && !now.Before(e.until) && now.Sub(e.last) > cfg.ForgetAfter {
		e.strikes = 0
	}
	return e
}

// banLocked bans e from now unless a ban is in force, and returns the
// duration of the ban in force and whether it is new.
func (b *banList) banLocked(e *banEntry, now time.Time, cfg BanConfig) (time.Duration, bool) {
	if now.Before(e.until) {
		return e.until.Sub(now), false
	}
	d := cfg.Duration
	for i := 0; i < e.strikes && d < cfg.MaxDuration; i++ {
		d *= 2
	}
	if d > cfg.MaxDuration {
		d = cfg.MaxDuration
	}
	e.strikes++
	e.last = now
	e.until = now.Add(d)
	// The evidence is spent: after the ban the address starts afresh.
	clear(e.flooders)
	return d, true
}

// floodVerdict is what one flooding connection did to its address.
type floodVerdict struct {
	// flooders is how many distinct miners of the address were dropped
	// for floods within AddressWindow, this one included.
	flooders int
	// banned is set when the address is banned (newBan: by this flood);
	// d is how long the ban in force lasts from now.
	banned, newBan bool
	d              time.Duration
}

// flooded records that the miner key behind ip was dropped for a flood at
// now, while live connections (this one included) were open from ip, and
// bans ip when the address floods as a whole: at least AddressMinFlooders
// distinct miners within AddressWindow, making up at least
// AddressFlooderPercent of the address's miners.
func (b *banList) flooded(ip netip.Addr, key string, live int, now time.Time, cfg BanConfig) floodVerdict {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entry(ip, now, cfg)
	if e.flooders == nil {
		e.flooders = map[string]time.Time{}
	}
	pruneFlooders(e, now, cfg)
	if _, known := e.flooders[key]; known || len(e.flooders) < maxFloodersTracked {
		e.flooders[key] = now
	}
	v := floodVerdict{flooders: len(e.flooders)}
	if now.Before(e.until) {
		v.banned, v.d = true, e.until.Sub(now)
		return v
	}
	miners := max(live, v.flooders)
	if cfg.AddressMinFlooders <= 0 || v.flooders < cfg.AddressMinFlooders ||
		float64(v.flooders)*100 < cfg.AddressFlooderPercent*float64(miners) {
		return v
	}
	v.d, v.newBan = b.banLocked(e, now, cfg)
	v.banned = true
	return v
}

// pruneFlooders forgets flooders dropped longer than AddressWindow ago.
func pruneFlooders(e *banEntry, now time.Time, cfg BanConfig) {
	for k, t := range e.flooders {
		if now.Sub(t) > cfg.AddressWindow {
			delete(e.flooders, k)
		}
	}
}

// banned reports whether ip is banned at now, and until when.
func (b *banList) banned(ip netip.Addr, now time.Time) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[ip]
	if e == nil || !now.Before(e.until) {
		return time.Time{}, false
	}
	return e.until, true
}

// prune forgets addresses with no ban in force, no strikes left to
// remember and no recent flooders, so the list does not grow without
// bound.
func (b *banList) prune(now time.Time, cfg BanConfig) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ip, e := range b.entries {
		pruneFlooders(e, now, cfg)
		if now.Before(e.until) || len(e.flooders) > 0 {
			continue
		}
		if e.strikes == 0 || now.Sub(e.last) > cfg.ForgetAfter {
			delete(b.entries, ip)
		}
	}
}

// bannedCount returns the number of addresses banned at now.
func (b *banList) bannedCount(now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, e := range b.entries {
		if now.Before(e.until) {
			n++
		}
	}
	return n
}

// banScore judges one connection's recent shares against the ban policy.
// It is owned by the connection's reader.
type banScore struct {
	valid, invalid int
}

// add counts one share (or malformed line) and reports whether the window
// of CheckShares is complete and too invalid.
func (s *banScore) add(valid bool, cfg BanConfig) bool {
	if !cfg.Enabled {
		return false
	}
	if valid {
		s.valid++
	} else {
		s.invalid++
	}
	total := s.valid + s.invalid
	if total < cfg.CheckShares {
		return false
	}
	ban := float64(s.invalid)*100 >= cfg.InvalidPercent*float64(total)
	s.valid, s.invalid = 0, 0
	return ban
}

// flooderKey names the miner behind a flooding connection: the first
// worker it authorized (a reconnecting machine keeps its name, so it
// counts once), or the connection itself when it authorized none.
func (c *conn) flooderKey() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.workers) > 0 {
		return "w:" + c.workers[0].name
	}
	return "c:" + strconv.FormatUint(c.id, 10)
}
