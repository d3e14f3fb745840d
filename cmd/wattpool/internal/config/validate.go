package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"go.uber.org/zap/zapcore"

	"github.com/wattpool/wattpool/stratum"
	"github.com/wattpool/wattpool/stratum/work"
)

// Networks maps the accepted bitcoin.network names to chain parameters.
// "testnet" is testnet3; btcd's chaincfg/v2 also carries testnet4. Bitcoin
// Core's -chain names (main, test) are accepted too, so one variable can
// configure both the node and the pool.
var Networks = map[string]*chaincfg.Params{
	"mainnet":  &chaincfg.MainNetParams,
	"main":     &chaincfg.MainNetParams,
	"test":     &chaincfg.TestNet3Params,
	"testnet":  &chaincfg.TestNet3Params,
	"testnet3": &chaincfg.TestNet3Params,
	"testnet4": &chaincfg.TestNet4Params,
	"signet":   &chaincfg.SigNetParams,
	"regtest":  &chaincfg.RegressionNetParams,
	"simnet":   &chaincfg.SimNetParams,
}

var instanceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// validator collects field errors, naming the environment variable a bad
// value came from.
type validator struct {
	from map[string]string
	errs Errors
	// The most connections this process's open-file limit allows (or why
	// none), set by connLimits before the listeners are checked.
	connBound    int
	connNofile   uint64
	connBoundErr error
	// lookup reads the environment (allocator.inventory's password
	// variables); Parse always sets it.
	lookup func(string) (string, bool)
}

func (v *validator) errorf(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Env: v.from[field], Err: fmt.Errorf(format, args...)})
}

func (v *validator) duration(field, s string, lo time.Duration) time.Duration {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	switch {
	case err != nil:
		v.errorf(field, "%q is not a duration (write e.g. \"250ms\", \"30s\", \"5m\")", s)
	case d < lo:
		v.errorf(field, "%v is too short (at least %v)", d, lo)
	}
	return d
}

func validate(f *File, from map[string]string, lookup func(string) (string, bool)) (*Config, Errors) {
	v := &validator{from: from, lookup: lookup}
	c := &Config{}

	// [instance]
	c.Instance = f.Instance.Name
	if !instanceName.MatchString(f.Instance.Name) {
		v.errorf("instance.name", "%q: want 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", f.Instance.Name)
	}
	if f.Instance.ID < 0 || f.Instance.ID > 255 {
		v.errorf("instance.id", "%d is out of range [0, 255]", f.Instance.ID)
	} else {
		c.InstanceID = uint8(f.Instance.ID)
	}
	c.SpoolDir = f.Instance.SpoolDir
	if strings.TrimSpace(c.SpoolDir) == "" {
		v.errorf("instance.spool_dir", "must not be empty")
	}
	if n, err := ParseSize(f.Instance.SpoolLimit); err != nil {
		v.errorf("instance.spool_limit", "%v", err)
	} else if n < MinSpoolLimit {
		v.errorf("instance.spool_limit", "%q is too small (at least 1MiB)", f.Instance.SpoolLimit)
	} else {
		c.SpoolLimit = n
	}
	if c.SpoolSync = v.duration("instance.spool_sync_interval", f.Instance.SpoolSync, 0); c.SpoolSync > MaxSpoolSync {
		v.errorf("instance.spool_sync_interval", "%v is too long (at most %v: it is what a power loss may take)", c.SpoolSync, MaxSpoolSync)
	}
	c.ShutdownTimeout = v.duration("instance.shutdown_timeout", f.Instance.ShutdownTimeout, time.Second)

	// [log]
	lvl, err := zapcore.ParseLevel(f.Log.Level)
	if err != nil || lvl > zapcore.ErrorLevel {
		v.errorf("log.level", "%q: want debug, info, warn or error", f.Log.Level)
	}
	c.LogLevel = lvl
	c.LogFormat = f.Log.Format
	if c.LogFormat != "json" && c.LogFormat != "console" {
		v.errorf("log.format", "%q: want json or console", f.Log.Format)
	}

	// [bitcoin]
	c.Network = Networks[f.Bitcoin.Network]
	if c.Network == nil {
		v.errorf("bitcoin.network", "%q: want mainnet, testnet, testnet4, signet, regtest or simnet", f.Bitcoin.Network)
	}
	c.PayoutAddress, c.PoolTag = f.Bitcoin.PayoutAddress, f.Bitcoin.PoolTag
	switch {
	case f.Bitcoin.PayoutAddress == "":
		v.errorf("bitcoin.payout_address", "must be set: the address every found block pays")
	case c.Network != nil:
		if c.PayoutScript, err = work.PayoutScript(f.Bitcoin.PayoutAddress, c.Network); err != nil {
			v.errorf("bitcoin.payout_address", "%v", err)
		}
	}
	for _, r := range f.Bitcoin.PoolTag {
		if r < 0x20 || r > 0x7e {
			v.errorf("bitcoin.pool_tag", "%q: only printable ASCII is allowed", f.Bitcoin.PoolTag)
			break
		}
	}

	// [node]
	v.node(f, c)

	// [database]
	c.DatabaseURL, c.Migrate = f.Database.URL, f.Database.Migrate
	c.BlockCheckInterval = v.duration("database.block_check_interval", f.Database.BlockCheckInterval, time.Second)
	if c.DatabaseURL != "" {
		if err := checkDatabaseURL(c.DatabaseURL); err != nil {
			v.errorf("database.url", "%v", err)
		}
	} else if c.Migrate {
		v.errorf("database.migrate", "is true but database.url is not set")
	}

	// [stratum]
	c.Extranonce2Size = f.Stratum.Extranonce2Size
	if c.Extranonce2Size < work.MinExtranonce2Size || c.Extranonce2Size > work.MaxExtranonce2Size {
		v.errorf("stratum.extranonce2_size", "%d is out of range [%d, %d]", c.Extranonce2Size, work.MinExtranonce2Size, work.MaxExtranonce2Size)
	} else if c.PayoutScript != nil {
		// The builder knows how much room the coinbase script leaves for
		// the tag next to the height and the extranonces.
		if _, err := work.NewBuilder(work.Config{Params: c.Network, PayoutScript: c.PayoutScript,
			PoolTag: c.PoolTag, Extranonce2Size: c.Extranonce2Size}); err != nil {
			v.errorf("bitcoin.pool_tag", "%v", err)
		}
	}
	if m, err := strconv.ParseUint(strings.TrimPrefix(f.Stratum.VersionMask, "0x"), 16, 32); err != nil {
		v.errorf("stratum.version_mask", "%q is not a 32-bit hex mask (e.g. \"1fffe000\"; \"0\" disables version rolling)", f.Stratum.VersionMask)
	} else if c.VersionMask = uint32(m); c.VersionMask != 0 && bits.OnesCount32(c.VersionMask) < 2 {
		v.errorf("stratum.version_mask", "%08x leaves fewer than 2 bits to roll (\"0\" disables version rolling)", c.VersionMask)
	}
	c.JobRefresh = v.duration("stratum.job_refresh_interval", f.Stratum.JobRefresh, time.Second)
	c.SessionResumeWindow = v.duration("stratum.session_resume_window", f.Stratum.SessionResume, 0)
	if c.SessionResumeWindow > MaxSessionResumeWindow {
		v.errorf("stratum.session_resume_window", "%v is too long (at most %v; \"0s\" disables resuming)", c.SessionResumeWindow, MaxSessionResumeWindow)
	}
	c.MaxParkedSessions = f.Stratum.MaxParked
	if c.MaxParkedSessions < 0 || c.MaxParkedSessions > MaxParkedSessions {
		v.errorf("stratum.max_parked_sessions", "%d is out of range [0, %d] (0 disables resuming)", c.MaxParkedSessions, MaxParkedSessions)
	}
	v.vardiff(f, c)
	v.ban(f, c)
	v.connLimits(f, c)
	v.listeners(f, c)
	for i, g := range f.Stratum.Groups {
		p := fmt.Sprintf("stratum.group[%d].", i)
		if _, err := path.Match(g.Pattern, ""); err != nil || g.Pattern == "" {
			v.errorf(p+"pattern", "%q is not a valid pattern (path.Match syntax, e.g. \"acme.rack1-*\")", g.Pattern)
		}
		if !instanceName.MatchString(g.Group) {
			v.errorf(p+"group", "%q: want 1-63 letters, digits, '.', '_' or '-'", g.Group)
		}
		c.Groups = append(c.Groups, Group{Pattern: g.Pattern, Group: g.Group})
	}

	// [http]
	switch a := f.HTTP.Addr; a {
	case "", "off":
	default:
		if err := checkHostPort(a); err != nil {
			v.errorf("http.addr", "%v", err)
		}
		c.HTTPAddr = a
	}
	for _, l := range c.Listeners {
		if c.HTTPAddr != "" && sameAddr(l.Addr, c.HTTPAddr) {
			v.errorf("http.addr", "%q is also the address of stratum listener %q", c.HTTPAddr, l.Name)
		}
	}
	v.allocator(f, c)
	v.payouts(f, c)
	v.audit(f, c)
	v.notify(f, c)
	return c, v.errs
}

func (v *validator) node(f *File, c *Config) {
	n := &f.Node
	c.NodeTimeout = v.duration("node.timeout", n.Timeout, 100*time.Millisecond)
	c.PollInterval = v.duration("node.poll_interval", n.PollInterval, 10*time.Millisecond)
	c.RefreshInterval = v.duration("node.refresh_interval", n.RefreshInterval, time.Second)
	c.MaxTemplateAge = v.duration("node.max_template_age", n.MaxTemplateAge, time.Second)
	if c.MaxTemplateAge > 0 && c.RefreshInterval > 0 && c.MaxTemplateAge <= c.RefreshInterval {
		v.errorf("node.max_template_age", "%v must exceed node.refresh_interval %v (a template is fetched every refresh)", c.MaxTemplateAge, c.RefreshInterval)
	}
	c.LongPoll = n.LongPoll
	c.TemplateFile = n.TemplateFile
	if c.TemplateFile != "" {
		if fi, err := os.Stat(c.TemplateFile); err != nil {
			v.errorf("node.template_file", "%v", err)
		} else if fi.IsDir() {
			v.errorf("node.template_file", "%s is a folder, not a getblocktemplate JSON file", c.TemplateFile)
		}
		// A template file replaces the nodes: their URLs are not used
		// and so not checked.
		return
	}
	if len(n.URLs) == 0 {
		v.errorf("node.urls", "no node: set node.urls (WATTPOOL_NODE_URL) or node.template_file (WATTPOOL_TEMPLATE_FILE)")
		return
	}
	seen := make(map[string]bool)
	anyHTTPS := false
	for i, raw := range n.URLs {
		field := fmt.Sprintf("node.urls[%d]", i)
		if _, ok := v.from["node.urls"]; ok {
			field = "node.urls"
		}
		name, https, err := checkNodeURL(raw)
		if err != nil {
			v.errorf(field, "%s: %v", Redact(raw), err)
			continue
		}
		if seen[name] {
			v.errorf(field, "node %s is listed twice", name)
			continue
		}
		seen[name] = true
		anyHTTPS = anyHTTPS || https
		c.Nodes = append(c.Nodes, Node{Name: name, URL: raw})
	}
	if n.CAFile != "" {
		if !anyHTTPS && len(c.Nodes) > 0 {
			v.errorf("node.ca_file", "is set but no node URL uses https")
		}
		if err := checkReadableFile(n.CAFile); err != nil {
			v.errorf("node.ca_file", "%v", err)
		}
		for i := range c.Nodes {
			if strings.HasPrefix(c.Nodes[i].URL, "https://") {
				c.Nodes[i].CAFile = n.CAFile
			}
		}
	}
}

// checkNodeURL checks http(s)://user:pass@host:port and returns host:port.
// Its errors never quote the password.
func checkNodeURL(raw string) (name string, https bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false, errors.New("does not parse as a URL (want http(s)://user:pass@host:port)")
	}
	switch u.Scheme {
	case "http":
	case "https":
		https = true
	default:
		return "", false, fmt.Errorf("scheme %q: want http or https", u.Scheme)
	}
	if err := checkHostPort(u.Host); err != nil {
		return "", false, err
	}
	if u.Hostname() == "" {
		return "", false, errors.New("no host name")
	}
	if u.User == nil || u.User.Username() == "" {
		return "", false, errors.New("no RPC user (want http(s)://user:pass@host:port)")
	}
	if p, ok := u.User.Password(); !ok || p == "" {
		return "", false, errors.New("no RPC password (want http(s)://user:pass@host:port)")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", false, errors.New("query or fragment not allowed")
	}
	return u.Host, https, nil
}

func checkDatabaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("does not parse as a URL (want postgres://user:pass@host:5432/database)")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("%s: scheme %q, want postgres:// (key=value strings are not accepted so passwords can be redacted)", Redact(raw), u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%s: no host", Redact(raw))
	}
	if strings.Trim(u.Path, "/") == "" {
		return fmt.Errorf("%s: no database name", Redact(raw))
	}
	return nil
}

// checkHostPort accepts host:port with a numeric port 1-65535 (host may be
// empty: all interfaces).
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: port %q is not a number in [1, 65535]", addr, port)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q: bad host %q", addr, host)
	}
	return nil
}

// sameAddr reports whether two listen addresses would collide: same port
// and the same host, or either on all interfaces.
func sameAddr(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wild(ha) || wild(hb)
}

func checkReadableFile(path string) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a folder", path)
	}
	return nil
}

func (v *validator) vardiff(f *File, c *Config) {
	vd := f.Stratum.Vardiff
	c.Vardiff.TargetInterval = v.duration("stratum.vardiff.target_interval", vd.TargetInterval, 100*time.Millisecond)
	c.Vardiff.RetargetInterval = v.duration("stratum.vardiff.retarget_interval", vd.RetargetInterval, 100*time.Millisecond)
	c.Vardiff.RetargetShares = vd.RetargetShares
	if vd.RetargetShares < 0 {
		v.errorf("stratum.vardiff.retarget_shares", "%d must not be negative (0 disables)", vd.RetargetShares)
	}
	c.Vardiff.MaxFactor = vd.MaxFactor
	if !(vd.MaxFactor > 1) || math.IsInf(vd.MaxFactor, 0) {
		v.errorf("stratum.vardiff.max_factor", "%v: want a finite number above 1", vd.MaxFactor)
	}
	c.Vardiff.Tolerance = vd.Tolerance
	if !(vd.Tolerance >= 0 && vd.Tolerance < 1) {
		v.errorf("stratum.vardiff.tolerance", "%v: want a number in [0, 1)", vd.Tolerance)
	}
}

// ban checks [stratum.ban]. The bounds are stratum.Config.Validate's,
// named by their file keys.
func (v *validator) ban(f *File, c *Config) {
	b := f.Stratum.Ban
	c.Ban = stratum.BanConfig{Enabled: b.Enabled, CheckShares: b.CheckShares, InvalidPercent: b.InvalidPercent,
		AddressMinFlooders: b.AddressMinFlooders, AddressFlooderPercent: b.AddressFlooderPercent}
	const p = "stratum.ban."
	c.Ban.AddressWindow = v.duration(p+"address_window", b.AddressWindow, time.Second)
	c.Ban.Duration = v.duration(p+"duration", b.Duration, time.Second)
	c.Ban.MaxDuration = v.duration(p+"max_duration", b.MaxDuration, time.Second)
	c.Ban.ForgetAfter = v.duration(p+"forget_after", b.ForgetAfter, time.Second)
	if !b.Enabled {
		return
	}
	if b.CheckShares < 10 || b.CheckShares > 1_000_000 {
		v.errorf(p+"check_shares", "%d is out of range [10, 1000000]", b.CheckShares)
	}
	if !(b.InvalidPercent > 0 && b.InvalidPercent <= 100) {
		v.errorf(p+"invalid_percent", "%v: want a percentage in (0, 100]", b.InvalidPercent)
	}
	if b.AddressMinFlooders < 0 || b.AddressMinFlooders > MaxBanFlooders {
		v.errorf(p+"address_min_flooders", "%d is out of range [0, %d] (0 never bans an address)", b.AddressMinFlooders, MaxBanFlooders)
	}
	if b.AddressMinFlooders > 0 && !(b.AddressFlooderPercent > 0 && b.AddressFlooderPercent <= 100) {
		v.errorf(p+"address_flooder_percent", "%v: want a percentage in (0, 100]", b.AddressFlooderPercent)
	}
	if c.Ban.Duration > 0 && c.Ban.MaxDuration > 0 && c.Ban.MaxDuration < c.Ban.Duration {
		v.errorf(p+"max_duration", "%v is shorter than stratum.ban.duration %v", c.Ban.MaxDuration, c.Ban.Duration)
	}
}

// MaxBanFlooders bounds stratum.ban.address_min_flooders: the flooders
// remembered per address are bounded by the same number.
const MaxBanFlooders = 4096

func (v *validator) listeners(f *File, c *Config) {
	if len(f.Stratum.Listeners) == 0 {
		v.errorf("stratum.listener", "no listener: add a [[stratum.listener]] table or set WATTPOOL_STRATUM_ADDR")
		return
	}
	names := make(map[string]bool)
	for i, lf := range f.Stratum.Listeners {
		p := fmt.Sprintf("stratum.listener[%d].", i)
		l := Listener{Name: lf.Name, Addr: lf.Addr}
		if l.Name == "" {
			l.Name = fmt.Sprintf("listener%d", i)
		}
		if !instanceName.MatchString(l.Name) || len(l.Name) > 32 {
			v.errorf(p+"name", "%q: want 1-32 letters, digits, '.', '_' or '-'", lf.Name)
		} else if names[l.Name] {
			v.errorf(p+"name", "%q is used by another listener", l.Name)
		}
		names[l.Name] = true
		if err := checkHostPort(lf.Addr); err != nil {
			v.errorf(p+"addr", "%v", err)
		}
		for j := range i {
			if lf.Addr != "" && sameAddr(lf.Addr, f.Stratum.Listeners[j].Addr) {
				v.errorf(p+"addr", "%q collides with stratum.listener[%d] (%q)", lf.Addr, j, f.Stratum.Listeners[j].Addr)
			}
		}
		l.StartDiff = v.diff(p+"start_diff", lf.StartDiff, DefaultStartDiff)
		l.MinDiff = v.diff(p+"min_diff", lf.MinDiff, DefaultMinDiff)
		l.MaxDiff = v.diff(p+"max_diff", lf.MaxDiff, DefaultMaxDiff)
		if l.MinDiff > 0 && l.MaxDiff > 0 {
			if l.MinDiff > l.MaxDiff {
				v.errorf(p+"min_diff", "%v is above max_diff %v", l.MinDiff, l.MaxDiff)
			} else if l.StartDiff > 0 && (l.StartDiff < l.MinDiff || l.StartDiff > l.MaxDiff) {
				v.errorf(p+"start_diff", "%v is outside [min_diff %v, max_diff %v]", l.StartDiff, l.MinDiff, l.MaxDiff)
			}
		}
		l.ProxyProtocol, l.TLSCert, l.TLSKey = lf.ProxyProtocol, lf.TLSCert, lf.TLSKey
		l.Solo = lf.Solo
		if l.ProxyProtocol && len(f.Stratum.ProxyTrusted) == 0 {
			v.errorf(p+"proxy_protocol", "needs stratum.proxy_trusted: the networks of the load balancers that may send PROXY headers")
		}
		switch {
		case (l.TLSCert == "") != (l.TLSKey == ""):
			v.errorf(p+"tls_cert", "tls_cert %q and tls_key %q must be set together", l.TLSCert, l.TLSKey)
		case l.TLSCert != "":
			if _, err := tls.LoadX509KeyPair(l.TLSCert, l.TLSKey); err != nil {
				v.errorf(p+"tls_cert", "%s with tls_key %s: %v", l.TLSCert, l.TLSKey, err)
			}
		}
		l.MaxConnections = lf.MaxConnections
		switch {
		case lf.MaxConnections < 0:
			v.errorf(p+"max_connections", "%d must not be negative (0: only stratum.max_connections applies)", lf.MaxConnections)
		case v.connBoundErr == nil && lf.MaxConnections > v.connBound:
			v.errorf(p+"max_connections", "%d exceeds %d, %s", lf.MaxConnections, v.connBound, v.connBoundWhy())
		}
		c.Listeners = append(c.Listeners, l)
	}
}

// connLimits checks the connection caps against the open-file limit of
// this process. `wattpool check-config` may run under another limit than
// the service (systemd's LimitNOFILE=, a container's ulimit): serve checks
// again at start.
func (v *validator) connLimits(f *File, c *Config) {
	v.connBound, v.connNofile, v.connBoundErr = stratum.ProcessConnectionBound()
	c.MaxConnections = f.Stratum.MaxConnections
	switch {
	case c.MaxConnections < 0:
		v.errorf("stratum.max_connections", "%d must not be negative (0 derives the cap from the open-file limit)", c.MaxConnections)
	case v.connBoundErr != nil:
		v.errorf("stratum.max_connections", "%v", v.connBoundErr)
	case c.MaxConnections > v.connBound:
		v.errorf("stratum.max_connections", "%d exceeds %d, %s; or set 0 to derive it", c.MaxConnections, v.connBound, v.connBoundWhy())
	}
	for i, s := range f.Stratum.ProxyTrusted {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				v.errorf(fmt.Sprintf("stratum.proxy_trusted[%d]", i), "%q: want a network such as \"10.0.0.0/8\" or an address", s)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		c.ProxyTrusted = append(c.ProxyTrusted, p.Masked())
	}
	c.HandshakeTimeout = v.duration("stratum.handshake_timeout", f.Stratum.HandshakeTime, time.Millisecond)
	c.MaxConnectionsPerIP = f.Stratum.MaxConnsPerIP
	if c.MaxConnectionsPerIP < 0 || c.MaxConnectionsPerIP > stratum.MaxConnectionsLimit {
		v.errorf("stratum.max_connections_per_ip", "%d is out of range [0, %d] (0: unlimited)", c.MaxConnectionsPerIP, stratum.MaxConnectionsLimit)
	}
}

// connBoundWhy explains the connection bound of this process.
func (v *validator) connBoundWhy() string {
	return fmt.Sprintf("the most the open-file limit allows (RLIMIT_NOFILE %d minus %d kept for the spool, database, node, HTTP and logs); raise the limit (ulimit -n, systemd LimitNOFILE=) or lower the value",
		v.connNofile, stratum.FileReserve(v.connNofile))
}

// diff returns *d, or def when the key was omitted; a value that is not
// a usable share difficulty is reported and returned as 0.
func (v *validator) diff(field string, d *float64, def float64) float64 {
	if d == nil {
		return def
	}
	if err := work.ValidDiff(*d); err != nil {
		v.errorf(field, "%v: want a finite number above 0 (fractions such as 0.001 are fine)", *d)
		return 0
	}
	return *d
}
