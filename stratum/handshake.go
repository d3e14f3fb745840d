package stratum

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// What happens between accept and the first Stratum line on listeners
// with a PROXY header, TLS, or both (the header comes first: the
// balancer writes it before relaying the miner's TLS bytes). It runs in
// the connection's own goroutine under HandshakeTimeout, so a client
// that sends nothing holds one goroutine and one slot for that long and
// never the accept loop.

// listenerTLS is a TLS listener's certificate, swapped whole on reload:
// handshakes in flight keep the one they loaded, and connections that
// finished theirs are not touched.
type listenerTLS struct {
	cert   atomic.Pointer[tls.Certificate]
	config *tls.Config
}

func newListenerTLS(cert *tls.Certificate) *listenerTLS {
	t := &listenerTLS{}
	t.cert.Store(cert)
	t.config = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.cert.Load(), nil
		},
	}
	return t
}

// loadListenerCert reads a listener's certificate and key files (nil,
// nil for a listener without TLS).
func loadListenerCert(lc ListenerConfig) (*tls.Certificate, error) {
	if lc.TLSCert == "" {
		return nil, nil
	}
	c, err := tls.LoadX509KeyPair(lc.TLSCert, lc.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("listener %q: TLSCert %s / TLSKey %s: %w", lc.Name, lc.TLSCert, lc.TLSKey, err)
	}
	return &c, nil
}

// setupListener prepares what a listener needs before the first accept:
// its certificate and whether it reads PROXY headers.
func (l *listener) setup(lc ListenerConfig) error {
	cert, err := loadListenerCert(lc)
	if err != nil {
		return err
	}
	if cert != nil {
		l.tls = newListenerTLS(cert)
	}
	l.proxy = lc.ProxyProtocol
	return nil
}

// loadCerts reads the certificate of every TLS listener in ls (index by
// index with s.listeners), so that Reload swaps all of them or none.
func (s *Server) loadCerts(ls []ListenerConfig) ([]*tls.Certificate, error) {
	out := make([]*tls.Certificate, len(ls))
	var errs []error
	for i, lc := range ls {
		if s.listeners[i].tls == nil {
			continue
		}
		c, err := loadListenerCert(lc)
		if err != nil {
			errs = append(errs, err)
		}
		out[i] = c
	}
	return out, errors.Join(errs...)
}

// swapCerts puts certificates loadCerts read in force.
func (s *Server) swapCerts(certs []*tls.Certificate) {
	for i, c := range certs {
		if c != nil && s.listeners[i].tls != nil {
			s.listeners[i].tls.cert.Store(c)
		}
	}
}

// handshakes are the sockets between accept and their first Stratum
// line, so that shutdown can cut their wait short.
type handshakes struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
}

func (h *handshakes) add(nc net.Conn) {
	h.mu.Lock()
	if h.m == nil {
		h.m = map[net.Conn]struct{}{}
	}
	h.m[nc] = struct{}{}
	h.mu.Unlock()
}

func (h *handshakes) remove(nc net.Conn) {
	h.mu.Lock()
	delete(h.m, nc)
	h.mu.Unlock()
}

// interrupt makes every handshake's next read fail at once.
func (h *handshakes) interrupt() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for nc := range h.m {
		nc.SetDeadline(time.Unix(1, 0))
	}
}

// trustedProxy reports whether ip may send PROXY headers.
func (s *Server) trustedProxy(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range s.cfg.Load().ProxyTrusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// acceptProxied takes a socket of a PROXY listener: only a trusted
// balancer may connect, and its socket counts against the server's and
// the listener's caps now. Bans and the per-IP cap wait for the header,
// which names the miner.
func (s *Server) acceptProxied(l *listener, nc net.Conn, peer netip.Addr) {
	if !s.trustedProxy(peer) {
		s.metrics.closedByReason[ClosedProxyUntrusted].Inc()
		nc.Close()
		if s.log.Core().Enabled(zap.DebugLevel) {
			s.log.Debug("refused PROXY connection from an untrusted address", zap.String("listener", l.cfg.Load().Name),
				zap.String("remote", nc.RemoteAddr().String()))
		}
		return
	}
	if r, ok := s.admit(l, netip.Addr{}); !ok {
		s.metrics.closedByReason[r].Inc()
		nc.Close()
		s.refused(l, r, netip.Addr{})
		return
	}
	s.startHandshake(l, nc, peer, netip.Addr{})
}

// startHandshake runs handshake in a counted goroutine; admitted is the
// address admit counted the socket under.
func (s *Server) startHandshake(l *listener, nc net.Conn, peer, admitted netip.Addr) {
	s.hs.add(nc)
	if !s.goroutine(func() { s.handshake(l, nc, peer, admitted) }) {
		s.hs.remove(nc)
		nc.Close()
		s.release(l, admitted)
	}
}

// handshake reads the PROXY header and does the TLS handshake (either or
// both, as the listener says) within HandshakeTimeout, then serves the
// connection in this goroutine. A failure closes the socket with its
// reason counted; nothing else is affected.
func (s *Server) handshake(l *listener, nc net.Conn, peer, admitted netip.Addr) {
	fail := func(r CloseReason, err error) {
		s.hs.remove(nc)
		s.metrics.closedByReason[r].Inc()
		nc.Close()
		s.release(l, admitted)
		if err != nil && s.log.Core().Enabled(zap.DebugLevel) {
			s.log.Debug("connection closed before its first line", zap.String("listener", l.cfg.Load().Name),
				zap.String("remote", nc.RemoteAddr().String()), zap.Stringer("reason", r), zap.Error(err))
		}
	}
	nc.SetDeadline(time.Now().Add(s.cfg.Load().HandshakeTimeout))
	ip, remote := peer, nc.RemoteAddr().String()
	var pending []byte
	if l.proxy {
		h, rest, err := readProxyHeader(nc)
		if err != nil {
			r := ClosedProxyHeader
			if isTimeout(err) {
				r = ClosedProxyTimeout
			}
			if s.closing.Load() {
				r = ClosedShutdown
			}
			fail(r, err)
			return
		}
		local := 0
		if h.Local {
			local = 1
		} else {
			ip, remote = h.Src.Addr().Unmap(), h.Src.String()
		}
		s.metrics.proxyHeaders[h.Version-1][local].Inc()
		if until, banned := s.bans.banned(ip, s.now()); banned && ip.IsValid() {
			fail(ClosedBanned, fmt.Errorf("%s banned until %s", ip, until.Format(time.RFC3339)))
			return
		}
		if r, ok := s.admitIP(ip); !ok {
			fail(r, nil)
			s.refused(l, r, ip)
			return
		}
		admitted = ip
		pending = rest
	}
	conn := nc
	if l.tls != nil {
		var under net.Conn = nc
		if len(pending) > 0 {
			under = &prefixConn{Conn: nc, buf: pending}
			pending = nil
		}
		tc := tls.Server(under, l.tls.config)
		if err := tc.HandshakeContext(context.Background()); err != nil {
			var rhe tls.RecordHeaderError
			r := ClosedTLSHandshake
			switch {
			case s.closing.Load():
				r = ClosedShutdown
			case isTimeout(err):
				r = ClosedTLSTimeout
			case errors.As(err, &rhe):
				r = ClosedTLSPlaintext
			}
			fail(r, err)
			return
		}
		conn = tc
	}
	nc.SetDeadline(time.Time{})
	s.hs.remove(nc)
	c := s.newConnAt(conn, l, ip, remote, true)
	c.readFrom(pending)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// readProxyHeader reads one PROXY header from nc and returns it with the
// bytes read past it (the miner's first data, handled before the next
// read). It never reads more than the header's length plus one read.
func readProxyHeader(nc net.Conn) (proxyHeader, []byte, error) {
	buf := make([]byte, 0, 256)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		n, err := nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		h, hl, perr := parseProxyHeader(buf)
		switch {
		case perr == nil:
			return h, buf[hl:], nil
		case !errors.Is(perr, errProxyShort):
			return proxyHeader{}, nil, fmt.Errorf("PROXY header: %w", perr)
		case err != nil:
			return proxyHeader{}, nil, fmt.Errorf("PROXY header after %d bytes: %w", len(buf), err)
		}
	}
}

// prefixConn reads buf before the connection: bytes that arrived with
// the PROXY header and belong to the TLS handshake.
type prefixConn struct {
	net.Conn
	buf []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}
