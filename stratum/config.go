package stratum

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"path"
	"time"

	"github.com/wattpool/wattpool/stratum/vardiff"
)

// Config is the server's configuration. Default returns working values;
// Validate names every field that is wrong. Fields marked "reloadable" take
// effect on Reload without dropping connections.
type Config struct {
	// Instance names this pool instance in shares and logs.
	Instance string
	// InstanceID is the first byte of every extranonce1 this instance hands
	// out, so instances sharing one database never give two connections the
	// same coinbase. Give each instance its own value.
	InstanceID uint8
	// Listeners are the ports to serve, each with its difficulty range
	// (difficulties reloadable; addresses are not).
	Listeners []ListenerConfig
	// VersionMask is the set of header version bits miners may roll
	// (BIP310); 0 disables version rolling. Reloadable: negotiated
	// connections get mining.set_version_mask.
	VersionMask uint32
	// Extranonce2Size is the byte length of the miner's extranonce2; it
	// must equal the job builder's (checked at every job).
	Extranonce2Size int
	// Vardiff tunes per-connection difficulty (reloadable).
	Vardiff VardiffConfig
	// SubscribeTimeout closes connections that do not subscribe in time;
	// AuthTimeout those that do not authorize a worker in time;
	// ShareTimeout authorized connections without an accepted share for
	// that long; ReadTimeout connections silent for that long (half-open
	// TCP). All reloadable.
	SubscribeTimeout, AuthTimeout, ShareTimeout, ReadTimeout time.Duration
	// WriteTimeout bounds one write to a miner (reloadable).
	WriteTimeout time.Duration
	// MaxLineLength caps one incoming line in bytes; longer lines close
	// the connection (reloadable).
	MaxLineLength int
	// QueueLength bounds the messages waiting to be written to one
	// connection; a connection that falls this far behind is closed as a
	// slow consumer instead of stalling broadcasts (reloadable).
	QueueLength int
	// MaxMalformed closes a connection after this many lines that are not
	// valid JSON (reloadable).
	MaxMalformed int
	// JobWindow is how many recent jobs of the current block each
	// connection remembers; shares for older jobs are stale.
	JobWindow int
	// RefreshInterval is how often a fresh job (clean_jobs=false) is sent
	// within one block (reloadable).
	RefreshInterval time.Duration
	// HashrateWindow is the sliding window of hashrate estimates.
	HashrateWindow time.Duration
	// SinkTimeout bounds one call into the Sink; BlockSubmitTimeout one
	// block submission to the node.
	SinkTimeout, BlockSubmitTimeout time.Duration
	// Ban is the invalid-share ban policy (reloadable).
	Ban BanConfig
	// Groups map workers to worker groups; the first matching rule wins
	// (reloadable).
	Groups []GroupRule
	// SessionResumeWindow is how long a dropped connection's session stays
	// parked, so that firmware reconnecting with mining.subscribe
	// ["agent", "<session id>"] gets its extranonce1 back and its
	// in-flight shares are still judged against the jobs, difficulties
	// and duplicates of the old connection. 0 disables resume
	// (reloadable).
	SessionResumeWindow time.Duration
	// MaxParkedSessions caps the parked sessions; parking one more evicts
	// the oldest. 0 disables resume (reloadable).
	MaxParkedSessions int
	// MaxConnections caps the open miner connections of the whole server.
	// Sockets beyond it are closed as soon as they are accepted, before
	// anything is allocated for them, so a flood (or more miners than
	// planned) can never take the descriptors the spool, the database and
	// the node need. 0 derives the cap from the open-file limit at start
	// and at every reload (ConnectionBound); a positive value must not
	// exceed that bound. Reloadable: lowering it closes no live
	// connection, it only refuses new ones until enough have left.
	MaxConnections int
	// MaxConnectionsPerIP caps the open connections from one IP address;
	// 0 (the default) is unlimited, because whole ASIC farms mine from
	// behind one NAT address and a per-IP cap would turn them away.
	// Set it only where miners are known to come from many addresses
	// (reloadable, like MaxConnections).
	MaxConnectionsPerIP int
	// SoloFeeBps is the pool fee of solo jobs in basis points (0 to
	// 10000): their coinbase pays the pool's payout script
	// floor(reward × SoloFeeBps / 10000) and the miner the rest (see
	// work.Builder.BuildFor). Reloadable: it applies from the next job.
	SoloFeeBps int64
	// ProxyTrusted are the networks whose connections to a listener with
	// ProxyProtocol may carry a PROXY header (the load balancers'
	// addresses). A connection from elsewhere to such a listener is
	// closed unread: its header could claim any address and dodge bans
	// and per-IP caps (reloadable).
	ProxyTrusted []netip.Prefix
	// HandshakeTimeout bounds what a connection must send before it is a
	// miner connection: the PROXY header and the TLS handshake, on the
	// listeners that have them (reloadable).
	HandshakeTimeout time.Duration
}

// ListenerConfig is one port.
type ListenerConfig struct {
	// Name labels the port in logs and metrics (bounded label).
	Name string
	// Addr is the host:port to bind ("127.0.0.1:0" in tests).
	Addr string
	// StartDiff is the difficulty a new connection starts at; MinDiff and
	// MaxDiff bound vardiff and miner suggestions. Fractions are legal.
	StartDiff, MinDiff, MaxDiff float64
	// MaxConnections caps this port's open connections within the
	// server's cap (0: only the server's cap applies), so that one port
	// cannot take every slot from the others (reloadable).
	MaxConnections int
	// Solo makes the port a solo one: a miner's user name must be an
	// address of the pool's network ("address" or "address.worker"), and
	// its jobs pay that address directly (see solo.go). Not reloadable.
	Solo bool
	// ProxyProtocol makes the port read a PROXY protocol header (version
	// 1 or 2, HAProxy's send-proxy / send-proxy-v2) before anything
	// else, from ProxyTrusted sources only; the address it names is the
	// miner's for bans, per-IP caps, logs and the API. Not reloadable.
	ProxyProtocol bool
	// TLSCert and TLSKey are PEM files; both set make the port serve
	// Stratum over TLS (stratum+ssl). The files are read again on
	// Reload (a renewed certificate takes effect for new connections,
	// live ones stay); turning TLS on or off needs a restart.
	TLSCert, TLSKey string
}

// VardiffConfig tunes vardiff (see package vardiff).
type VardiffConfig struct {
	// TargetInterval is the wanted time between two shares.
	TargetInterval time.Duration
	// RetargetInterval is the least time between adjustments;
	// RetargetShares forces one after that many shares.
	RetargetInterval time.Duration
	RetargetShares   int
	// MaxFactor bounds one adjustment (x1/MaxFactor .. xMaxFactor).
	MaxFactor float64
	// Tolerance is the relative deviation that causes no change.
	Tolerance float64
}

// BanConfig is the invalid-share policy. Farms mine from behind one NAT
// address, so it works in two steps: a connection that floods is closed
// alone (closed reason invalid_shares); its address is banned only when
// many distinct miners behind it flood.
type BanConfig struct {
	// Enabled turns the policy on (both steps).
	Enabled bool
	// CheckShares is how many shares (and malformed lines) of one
	// connection are judged together; InvalidPercent of them invalid
	// closes that connection.
	CheckShares    int
	InvalidPercent float64
	// An address is banned when, within AddressWindow, at least
	// AddressMinFlooders distinct miners behind it (by worker name, or by
	// connection when unauthorized) were closed for floods, and they are
	// at least AddressFlooderPercent of its miners (its open connections,
	// or the flooders if more). AddressMinFlooders 0 never bans an
	// address: floods then cost only their own connections.
	AddressWindow         time.Duration
	AddressMinFlooders    int
	AddressFlooderPercent float64
	// Duration is the first ban; each further ban of the same address
	// doubles it up to MaxDuration, at most once per ban period.
	// ForgetAfter without a ban resets the doubling.
	Duration, MaxDuration, ForgetAfter time.Duration
}

// GroupRule maps workers whose "account.worker" name matches Pattern
// (path.Match syntax, e.g. "acme.rack1-*") to Group.
type GroupRule struct {
	Pattern string
	Group   string
}

// Default returns a configuration that works as is: one listener on
// :3333, difficulties sized for ASICs, timeouts as deployed pools use.
func Default() Config {
	return Config{
		Instance:        "wattpool",
		InstanceID:      0,
		Listeners:       []ListenerConfig{{Name: "default", Addr: ":3333", StartDiff: 16384, MinDiff: 1024, MaxDiff: 1 << 40}},
		VersionMask:     0x1fffe000,
		Extranonce2Size: 4,
		Vardiff: VardiffConfig{
			TargetInterval:   10 * time.Second,
			RetargetInterval: 90 * time.Second,
			RetargetShares:   30,
			MaxFactor:        4,
			Tolerance:        0.3,
		},
		SubscribeTimeout:   30 * time.Second,
		AuthTimeout:        60 * time.Second,
		ShareTimeout:       15 * time.Minute,
		ReadTimeout:        10 * time.Minute,
		WriteTimeout:       10 * time.Second,
		MaxLineLength:      16 << 10,
		QueueLength:        64,
		MaxMalformed:       3,
		JobWindow:          8,
		RefreshInterval:    30 * time.Second,
		HashrateWindow:     10 * time.Minute,
		SinkTimeout:        10 * time.Second,
		BlockSubmitTimeout: 60 * time.Second,
		// ckpool's window: firmware reconnects within seconds to a few
		// minutes, and by ten minutes a new block has more likely than
		// not made every parked job stale.
		SessionResumeWindow: 10 * time.Minute,
		// More than the 18,000 connections one instance is sized for, so
		// a pool-wide network blip keeps every session resumable.
		MaxParkedSessions: 20000,
		HandshakeTimeout:  10 * time.Second,
		Ban: BanConfig{
			Enabled:        true,
			CheckShares:    100,
			InvalidPercent: 50,
			// Ten machines of one address misconfigured at once, and
			// half of its miners: more than a few bad rigs in a farm.
			AddressWindow:         10 * time.Minute,
			AddressMinFlooders:    10,
			AddressFlooderPercent: 50,
			Duration:              10 * time.Minute,
			MaxDuration:           24 * time.Hour,
			ForgetAfter:           24 * time.Hour,
		},
	}
}

// Validate reports every wrong field, each error naming its field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Instance == "" || len(c.Instance) > 64 || !validName(c.Instance, true) {
		bad("Instance", "%q must be 1-64 characters of [A-Za-z0-9._-]", c.Instance)
	}
	if len(c.Listeners) == 0 {
		bad("Listeners", "at least one listener is required")
	}
	names := map[string]bool{}
	for i, l := range c.Listeners {
		f := fmt.Sprintf("Listeners[%d]", i)
		if l.Name == "" || len(l.Name) > 32 || !validName(l.Name, true) {
			bad(f+".Name", "%q must be 1-32 characters of [A-Za-z0-9._-]", l.Name)
		} else if names[l.Name] {
			bad(f+".Name", "%q is used twice", l.Name)
		}
		names[l.Name] = true
		if l.Addr == "" {
			bad(f+".Addr", "must not be empty")
		}
		if !finitePositive(l.MinDiff) {
			bad(f+".MinDiff", "%v must be a finite number above 0", l.MinDiff)
		}
		if !finitePositive(l.MaxDiff) || l.MaxDiff < l.MinDiff {
			bad(f+".MaxDiff", "%v must be finite and at least MinDiff %v", l.MaxDiff, l.MinDiff)
		}
		if !finitePositive(l.StartDiff) || l.StartDiff < l.MinDiff || l.StartDiff > l.MaxDiff {
			bad(f+".StartDiff", "%v must be within [MinDiff %v, MaxDiff %v]", l.StartDiff, l.MinDiff, l.MaxDiff)
		}
		if l.ProxyProtocol && len(c.ProxyTrusted) == 0 {
			bad(f+".ProxyProtocol", "needs at least one ProxyTrusted network (the load balancers' addresses)")
		}
		if (l.TLSCert == "") != (l.TLSKey == "") {
			bad(f+".TLSCert", "TLSCert and TLSKey must be set together (cert %q, key %q)", l.TLSCert, l.TLSKey)
		}
	}
	if c.SoloFeeBps < 0 || c.SoloFeeBps > maxSoloFeeBps {
		bad("SoloFeeBps", "%d is out of range [0, %d]", c.SoloFeeBps, maxSoloFeeBps)
	}
	if c.VersionMask != 0 && bits.OnesCount32(c.VersionMask) < 2 {
		bad("VersionMask", "%08x leaves fewer than 2 bits to roll (use 0 to disable)", c.VersionMask)
	}
	if c.Extranonce2Size < 2 || c.Extranonce2Size > 8 {
		bad("Extranonce2Size", "%d must be 2..8", c.Extranonce2Size)
	}
	if err := c.Vardiff.params(1, 1).Validate(); err != nil {
		bad("Vardiff", "%v", err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"SubscribeTimeout", c.SubscribeTimeout}, {"AuthTimeout", c.AuthTimeout},
		{"ShareTimeout", c.ShareTimeout}, {"ReadTimeout", c.ReadTimeout},
		{"WriteTimeout", c.WriteTimeout}, {"RefreshInterval", c.RefreshInterval},
		{"HashrateWindow", c.HashrateWindow}, {"SinkTimeout", c.SinkTimeout},
		{"BlockSubmitTimeout", c.BlockSubmitTimeout}, {"HandshakeTimeout", c.HandshakeTimeout},
	} {
		if d.v <= 0 {
			bad(d.name, "%v must be positive", d.v)
		}
	}
	if c.MaxLineLength < 512 || c.MaxLineLength > 1<<20 {
		bad("MaxLineLength", "%d must be 512..1048576 bytes", c.MaxLineLength)
	}
	if c.QueueLength < 4 || c.QueueLength > 1<<16 {
		bad("QueueLength", "%d must be 4..65536", c.QueueLength)
	}
	if c.MaxMalformed < 1 {
		bad("MaxMalformed", "%d must be at least 1", c.MaxMalformed)
	}
	if c.JobWindow < 2 || c.JobWindow > 256 {
		bad("JobWindow", "%d must be 2..256", c.JobWindow)
	}
	if c.SessionResumeWindow < 0 || c.SessionResumeWindow > maxSessionResumeWindow {
		bad("SessionResumeWindow", "%v must be 0 (no resume) .. %v", c.SessionResumeWindow, maxSessionResumeWindow)
	}
	if c.MaxParkedSessions < 0 || c.MaxParkedSessions > maxParkedSessionsLimit {
		bad("MaxParkedSessions", "%d must be 0 (no resume) .. %d", c.MaxParkedSessions, maxParkedSessionsLimit)
	}
	bound, nofile, boundErr := ProcessConnectionBound()
	c.checkConnLimits(bad, bound, nofile, boundErr)
	if b := c.Ban; b.Enabled {
		if b.CheckShares < 10 {
			bad("Ban.CheckShares", "%d must be at least 10", b.CheckShares)
		}
		if !(b.InvalidPercent > 0 && b.InvalidPercent <= 100) {
			bad("Ban.InvalidPercent", "%v must be in (0, 100]", b.InvalidPercent)
		}
		if b.Duration <= 0 {
			bad("Ban.Duration", "%v must be positive", b.Duration)
		}
		if b.MaxDuration < b.Duration {
			bad("Ban.MaxDuration", "%v must be at least Ban.Duration %v", b.MaxDuration, b.Duration)
		}
		if b.ForgetAfter <= 0 {
			bad("Ban.ForgetAfter", "%v must be positive", b.ForgetAfter)
		}
		if b.AddressMinFlooders < 0 || b.AddressMinFlooders > maxFloodersTracked {
			bad("Ban.AddressMinFlooders", "%d must be 0 (never ban an address) .. %d", b.AddressMinFlooders, maxFloodersTracked)
		}
		if b.AddressMinFlooders > 0 {
			if b.AddressWindow <= 0 {
				bad("Ban.AddressWindow", "%v must be positive", b.AddressWindow)
			}
			if !(b.AddressFlooderPercent > 0 && b.AddressFlooderPercent <= 100) {
				bad("Ban.AddressFlooderPercent", "%v must be in (0, 100]", b.AddressFlooderPercent)
			}
		}
	}
	for i, p := range c.ProxyTrusted {
		if !p.IsValid() {
			bad(fmt.Sprintf("ProxyTrusted[%d]", i), "%v is not a network", p)
		}
	}
	for i, g := range c.Groups {
		f := fmt.Sprintf("Groups[%d]", i)
		if _, err := path.Match(g.Pattern, ""); err != nil || g.Pattern == "" {
			bad(f+".Pattern", "%q is not a valid path.Match pattern", g.Pattern)
		}
		if g.Group == "" || len(g.Group) > 64 || !validName(g.Group, true) {
			bad(f+".Group", "%q must be 1-64 characters of [A-Za-z0-9._-]", g.Group)
		}
	}
	return errors.Join(errs...)
}

// params turns the shared vardiff settings into one port's vardiff config.
func (v VardiffConfig) params(minDiff, maxDiff float64) vardiff.Config {
	return vardiff.Config{
		TargetInterval:   v.TargetInterval,
		RetargetInterval: v.RetargetInterval,
		RetargetShares:   v.RetargetShares,
		MaxFactor:        v.MaxFactor,
		Tolerance:        v.Tolerance,
		Min:              minDiff,
		Max:              maxDiff,
	}
}

func finitePositive(f float64) bool { return f > 0 && !math.IsInf(f, 0) }

// groupFor returns the group of a worker's "account.worker" name.
func (c *Config) groupFor(fullName string) string {
	for _, g := range c.Groups {
		if ok, _ := path.Match(g.Pattern, fullName); ok {
			return g.Group
		}
	}
	return ""
}

// listener returns the listener config by name.
func (c *Config) listener(name string) (ListenerConfig, bool) {
	for _, l := range c.Listeners {
		if l.Name == name {
			return l, true
		}
	}
	return ListenerConfig{}, false
}
