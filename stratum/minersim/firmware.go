package minersim

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// FirmwareKind names a simulated firmware control API.
type FirmwareKind string

// The firmware APIs minersim can serve, named like the fleet drivers that
// speak them.
const (
	// FirmwareLuxOS: cgminer-style JSON on TCP (4028) with LuxOS sessions
	// and curtail sleep/wakeup.
	FirmwareLuxOS FirmwareKind = "luxos"
	// FirmwareAntminer: stock Antminer web CGI over HTTP with digest auth.
	FirmwareAntminer FirmwareKind = "antminer"
	// FirmwareWhatsminer: Whatsminer API v3 (length-prefixed JSON, 4433).
	FirmwareWhatsminer FirmwareKind = "whatsminer"
	// FirmwareCGMiner: read-only cgminer API (summary, devs) on 4028.
	FirmwareCGMiner FirmwareKind = "cgminer"
)

// ParseFirmwareKind checks a -firmware flag value.
func ParseFirmwareKind(s string) (FirmwareKind, error) {
	switch k := FirmwareKind(s); k {
	case FirmwareLuxOS, FirmwareAntminer, FirmwareWhatsminer, FirmwareCGMiner:
		return k, nil
	}
	return "", fmt.Errorf("firmware %q: want luxos, antminer, whatsminer or cgminer", s)
}

// Fault is a misbehaviour a simulated firmware shows on request.
type Fault uint32

// Faults.
const (
	FaultNone Fault = iota
	// FaultUnreachable: connections are accepted and closed at once, like
	// a miner whose API process is down.
	FaultUnreachable
	// FaultSilent: connections are accepted and never answered, like a
	// hung controller; clients must rely on their deadlines.
	FaultSilent
	// FaultWrongPassword: every credential is refused, as if the inventory
	// had the wrong password.
	FaultWrongPassword
	// FaultKeepsHashing: sleep is acknowledged and reported, but the
	// miner keeps hashing; only the pool's share rate shows it.
	FaultKeepsHashing
)

// ParseFault reads a fault name: none, unreachable, silent,
// wrong-password, keeps-hashing.
func ParseFault(s string) (Fault, error) {
	switch s {
	case "", "none":
		return FaultNone, nil
	case "unreachable":
		return FaultUnreachable, nil
	case "silent":
		return FaultSilent, nil
	case "wrong-password":
		return FaultWrongPassword, nil
	case "keeps-hashing":
		return FaultKeepsHashing, nil
	}
	return 0, fmt.Errorf("fault %q: want none, unreachable, silent, wrong-password or keeps-hashing", s)
}

// FirmwareConfig configures the firmware API of a miner.
type FirmwareConfig struct {
	Kind FirmwareKind
	// User and Password are the firmware account (Antminer digest auth,
	// Whatsminer token). User defaults to root (antminer) or super
	// (whatsminer).
	User, Password string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log, when set, gets connection errors at debug level.
	Log *zap.Logger
}

// Firmware serves one simulated miner's control API on one listener,
// backed by the miner's power model: sleep curtails the Miner (idle watts,
// no shares), wake resumes it after its WakeRamp.
type Firmware struct {
	cfg   FirmwareConfig
	miner *Miner
	fault atomic.Uint32
	// claimedSleep is what the firmware says under FaultKeepsHashing.
	claimedSleep atomic.Bool

	mu sync.Mutex
	// LuxOS: the one active session ("" for none).
	session string
	// Antminer: the stored configuration and the digest nonces issued.
	conf      map[string]json.RawMessage
	poolsLost bool
	nonces    map[string]struct{}
	nonceRing []string
	// Whatsminer: the salt tokens are signed with.
	salt string

	connMu sync.Mutex
	conns  map[net.Conn]struct{}
}

// NewFirmware returns the firmware API of m.
func NewFirmware(m *Miner, cfg FirmwareConfig) (*Firmware, error) {
	if m == nil {
		return nil, errors.New("firmware: nil miner")
	}
	if _, err := ParseFirmwareKind(string(cfg.Kind)); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.User == "" {
		switch cfg.Kind {
		case FirmwareAntminer:
			cfg.User = "root"
		case FirmwareWhatsminer:
			cfg.User = "super"
		}
	}
	if (cfg.Kind == FirmwareAntminer || cfg.Kind == FirmwareWhatsminer) && cfg.Password == "" {
		return nil, fmt.Errorf("firmware %s: a password is required", cfg.Kind)
	}
	f := &Firmware{cfg: cfg, miner: m, nonces: map[string]struct{}{}, conns: map[net.Conn]struct{}{}}
	salt, err := randomToken(8)
	if err != nil {
		return nil, err
	}
	f.salt = salt
	f.conf = defaultAntminerConf(m)
	return f, nil
}

// Miner returns the miner behind the API.
func (f *Firmware) Miner() *Miner { return f.miner }

// Kind returns the firmware kind.
func (f *Firmware) Kind() FirmwareKind { return f.cfg.Kind }

// SetFault switches a fault on (FaultNone switches it off).
func (f *Firmware) SetFault(x Fault) {
	f.fault.Store(uint32(x))
	if x != FaultKeepsHashing {
		f.claimedSleep.Store(false)
	}
}

func (f *Firmware) faulty(x Fault) bool { return Fault(f.fault.Load()) == x }

// setSleep applies a sleep or wake command through the power model; under
// FaultKeepsHashing a sleep is only claimed.
func (f *Firmware) setSleep(sleep bool) {
	if sleep && f.faulty(FaultKeepsHashing) {
		f.claimedSleep.Store(true)
		return
	}
	f.claimedSleep.Store(false)
	f.miner.SetCurtailed(sleep)
}

// view is what the firmware reports: the miner's status, or the lie told
// under FaultKeepsHashing.
type view struct {
	sleeping     bool
	ths, watts   float64
	nominalTHs   float64
	elapsedSec   int64
	accepted     uint64
	rejected     uint64
	modelName    string
	workerPrefix string
}

func (f *Firmware) view() view {
	st := f.miner.Status()
	v := view{sleeping: st.State == StateCurtailed, ths: st.TerahashPerSecond, watts: st.PowerWatts,
		nominalTHs: f.miner.cfg.Model.TerahashPerSecond, accepted: st.Accepted, rejected: st.Rejected,
		modelName: f.miner.cfg.Model.Name, workerPrefix: st.Worker}
	if f.claimedSleep.Load() {
		v.sleeping, v.ths, v.watts = true, 0, f.miner.cfg.Model.IdleWatts
	}
	return v
}

// Serve answers on ln until ctx is done, then closes ln and every
// connection and returns once its goroutines ended.
func (f *Firmware) Serve(ctx context.Context, ln net.Listener) error {
	fl := &faultListener{Listener: ln, f: f}
	if f.cfg.Kind == FirmwareAntminer {
		return f.serveHTTP(ctx, fl)
	}
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		f.closeConns()
	})
	defer stop()
	var err error
	for {
		conn, aerr := fl.Accept()
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("firmware %s accept: %w", f.cfg.Kind, aerr)
			}
			break
		}
		if !f.track(conn) {
			conn.Close()
			break
		}
		wg.Go(func() {
			defer f.untrack(conn)
			defer conn.Close()
			var herr error
			switch f.cfg.Kind {
			case FirmwareWhatsminer:
				herr = f.serveWhatsminer(conn)
			default:
				herr = f.serveCGMiner(conn)
			}
			if herr != nil {
				f.cfg.Log.Debug("firmware connection ended", zap.String("firmware", string(f.cfg.Kind)), zap.Error(herr))
			}
		})
	}
	ln.Close()
	f.closeConns()
	wg.Wait()
	return err
}

// track registers a connection for shutdown; false once closing.
func (f *Firmware) track(c net.Conn) bool {
	f.connMu.Lock()
	defer f.connMu.Unlock()
	if f.conns == nil {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Firmware) untrack(c net.Conn) {
	f.connMu.Lock()
	defer f.connMu.Unlock()
	delete(f.conns, c)
}

func (f *Firmware) closeConns() {
	f.connMu.Lock()
	defer f.connMu.Unlock()
	for c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

// faultListener applies the connection-level faults before any protocol.
type faultListener struct {
	net.Listener
	f *Firmware
}

// Accept drops (unreachable) or parks (silent) connections under a fault
// and hands the others to the protocol.
func (l *faultListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		switch Fault(l.f.fault.Load()) {
		case FaultUnreachable:
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset, like a dead API port
			}
			c.Close()
			continue
		case FaultSilent:
			// Held open, never read: closed at shutdown.
			if !l.f.track(c) {
				c.Close()
			}
			continue
		}
		return c, nil
	}
}

// FirmwareSet is the firmware APIs of many miners, one listener each.
type FirmwareSet struct {
	fws   []*Firmware
	lns   []net.Listener
	addrs []string
}

// ListenFirmware binds one listener per miner: miner i listens on base's
// IPv4 address plus i (127.0.1.1, 127.0.1.2, ... on the same port), or,
// with samePortStep, on base's address and port plus i. Port 0 gives each
// listener its own free port. Without samePortStep each miner's stratum
// connections are dialed from its own address too (Miner.SetLocalIP).
func ListenFirmware(miners []*Miner, base string, samePortStep bool, cfg FirmwareConfig) (*FirmwareSet, error) {
	ap, err := netip.ParseAddrPort(base)
	if err != nil {
		return nil, fmt.Errorf("firmware base address %q: %w (want ipv4:port)", base, err)
	}
	if !ap.Addr().Is4() {
		return nil, fmt.Errorf("firmware base address %q: want an IPv4 address", base)
	}
	s := &FirmwareSet{}
	for i, m := range miners {
		addr, err := nthAddr(ap, i, samePortStep)
		if err != nil {
			s.Close()
			return nil, err
		}
		fw, err := NewFirmware(m, cfg)
		if err != nil {
			s.Close()
			return nil, err
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("firmware of miner %d: %w", i, err)
		}
		s.fws, s.lns, s.addrs = append(s.fws, fw), append(s.lns, ln), append(s.addrs, ln.Addr().String())
		if !samePortStep {
			// Each miner has an address of its own: its pool connection
			// comes from it too, as a real miner's does.
			if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil {
				m.SetLocalIP(ap.Addr())
			}
		}
	}
	return s, nil
}

// nthAddr is base advanced by i addresses (or ports).
func nthAddr(base netip.AddrPort, i int, portStep bool) (string, error) {
	if portStep {
		if base.Port() == 0 {
			return netip.AddrPortFrom(base.Addr(), 0).String(), nil
		}
		p := int(base.Port()) + i
		if p > 65535 {
			return "", fmt.Errorf("firmware port %d + %d is past 65535", base.Port(), i)
		}
		return netip.AddrPortFrom(base.Addr(), uint16(p)).String(), nil
	}
	b := base.Addr().As4()
	v := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	v += uint64(i)
	if v>>24 != uint64(b[0]) {
		return "", fmt.Errorf("firmware address %s + %d leaves %d.0.0.0/8", base.Addr(), i, b[0])
	}
	a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	return netip.AddrPortFrom(a, base.Port()).String(), nil
}

// Addrs returns each miner's firmware address, in miner order.
func (s *FirmwareSet) Addrs() []string { return s.addrs }

// Firmware returns miner i's firmware (to set faults).
func (s *FirmwareSet) Firmware(i int) *Firmware { return s.fws[i] }

// Len is the number of miners served.
func (s *FirmwareSet) Len() int { return len(s.fws) }

// Serve answers on every listener until ctx is done and returns once all
// of them stopped.
func (s *FirmwareSet) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(s.fws))
	for i := range s.fws {
		wg.Go(func() { errs[i] = s.fws[i].Serve(ctx, s.lns[i]) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close releases listeners that were never served.
func (s *FirmwareSet) Close() {
	for _, ln := range s.lns {
		ln.Close()
	}
}

// WriteInventory writes a fleet inventory (CSV: address, driver, group,
// user, password_env) for these miners; passwordEnv names the variable the
// password is expected in ("" for drivers without one).
func (s *FirmwareSet) WriteInventory(w io.Writer, passwordEnv string) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"address", "driver", "group", "user", "password_env"})
	for i, fw := range s.fws {
		env := ""
		if fw.cfg.Password != "" {
			env = passwordEnv
		}
		_ = cw.Write([]string{s.addrs[i], string(fw.cfg.Kind), fw.miner.cfg.Group, fw.cfg.User, env})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	return nil
}

// unixNow is the firmware clock in seconds, for "When" fields.
func (f *Firmware) unixNow() int64 { return f.cfg.Now().Unix() }

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
