package stratum

import (
	"net/netip"
	"sync"
	"time"
)

// banList holds temporarily banned IPs. Each further ban of the same IP
// doubles its duration (up to the maximum) until the IP behaved for
// ForgetAfter. It is safe for concurrent use.
type banList struct {
	mu      sync.Mutex
	entries map[netip.Addr]*banEntry
}

type banEntry struct {
	until   time.Time // end of the current ban
	strikes int       // bans so far (escalation)
	last    time.Time // start of the latest ban
}

func newBanList() *banList { return &banList{entries: map[netip.Addr]*banEntry{}} }

// ban bans ip from now and returns the ban's duration.
func (b *banList) ban(ip netip.Addr, now time.Time, cfg BanConfig) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[ip]
	if e == nil || now.Sub(e.last) > cfg.ForgetAfter {
		e = &banEntry{}
		b.entries[ip] = e
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
	return d
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

// prune forgets IPs whose ban ended and whose strikes have expired, so the
// list does not grow without bound.
func (b *banList) prune(now time.Time, cfg BanConfig) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ip, e := range b.entries {
		if !now.Before(e.until) && now.Sub(e.last) > cfg.ForgetAfter {
			delete(b.entries, ip)
		}
	}
}

// len returns the number of IPs tracked (banned or with strikes).
func (b *banList) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.entries)
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
