package stratum

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/minersim"
)

func proxyConfig(trusted ...string) Config {
	cfg := testConfig()
	cfg.Listeners[0].ProxyProtocol = true
	for _, p := range trusted {
		cfg.ProxyTrusted = append(cfg.ProxyTrusted, netip.MustParsePrefix(p))
	}
	return cfg
}

// dialRaw dials the server and writes pre before anything else.
func (e *env) dialRaw(pre []byte) *client {
	e.t.Helper()
	c := e.dial()
	if len(pre) > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.nc.Write(pre); err != nil {
			e.t.Fatalf("write header: %v", err)
		}
	}
	return c
}

// connRemote waits for the one open connection whose extranonce1 is en1
// and returns the address the API shows for it.
func (e *env) connRemote(en1 []byte) string {
	e.t.Helper()
	var remote string
	eventually(e.t, func() bool {
		for _, ci := range e.s.Connections() {
			if ci.Extranonce1 == hex.EncodeToString(en1) {
				remote = ci.Remote
				return true
			}
		}
		return false
	}, "connection %x listed", en1)
	return remote
}

// TestProxyProtocolRealAddress: behind a trusted balancer the API shows
// the miner's address from the header (v1 or v2, header alone or in one
// write with the subscribe, split over two writes), a LOCAL or UNKNOWN
// header keeps the socket's own address as the spec says, and each miner
// mines normally.
func TestProxyProtocolRealAddress(t *testing.T) {
	noLeaks(t)
	e := startServer(t, proxyConfig("127.0.0.0/8"), makeTemplate(100, mainnetBits, 0, 1))
	subscribe := []byte(`{"id":1,"method":"mining.subscribe","params":["proxied/1.0"]}` + "\n")
	tests := []struct {
		name    string
		header  []byte
		split   int  // write the first split bytes alone first (0: one write)
		withSub bool // the subscribe line goes in the same write as the header
		remote  string
	}{
		{name: "v1 tcp4", header: []byte("PROXY TCP4 203.0.113.7 10.0.0.1 40001 3333\r\n"), remote: "203.0.113.7:40001"},
		{name: "v1 tcp6 split", header: []byte("PROXY TCP6 2001:db8::7 2001:db8::1 40002 3333\r\n"), split: 9, remote: "[2001:db8::7]:40002"},
		{name: "v2 tcp4 with subscribe", header: v2(t, v2sig, "21 11 000c", "cb007108 0a000001 9c43 0d05"), withSub: true, remote: "203.0.113.8:40003"},
		{name: "v2 tcp6 split in signature", header: v2(t, v2sig, "21 21 0024", "20010db8000000000000000000000009", "20010db8000000000000000000000001", "9c44 0d05"),
			split: 5, remote: "[2001:db8::9]:40004"},
		{name: "v2 local keeps the socket address", header: v2(t, v2sig, "20 00 0000"), withSub: true, remote: "127.0.0.1:"},
		{name: "v1 unknown keeps the socket address", header: []byte("PROXY UNKNOWN\r\n"), remote: "127.0.0.1:"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial()
			c.t = t
			first, rest := tc.header, []byte(nil)
			if tc.split > 0 {
				first, rest = tc.header[:tc.split], tc.header[tc.split:]
			}
			if tc.withSub {
				rest = append(append([]byte(nil), rest...), subscribe...)
			}
			c.nc.Write(first)
			if tc.split > 0 {
				time.Sleep(20 * time.Millisecond) // let the server read the first part alone
			}
			if !tc.withSub {
				rest = append(rest, subscribe...)
			}
			c.nc.Write(rest)
			c.id = 1
			r := c.replyTo("1")
			if len(r.Result) == 0 {
				t.Fatalf("subscribe: %s", r.raw)
			}
			c.en1 = subscribedEn1(t, r)
			got := e.connRemote(c.en1)
			if tc.remote[len(tc.remote)-1] == ':' {
				if len(got) < len(tc.remote) || got[:len(tc.remote)] != tc.remote {
					t.Fatalf("remote %q, want the socket's %s<port>", got, tc.remote)
				}
			} else if got != tc.remote {
				t.Fatalf("remote %q, want %q", got, tc.remote)
			}
			worker := "acct.proxied" + string(rune('a'+i))
			if a := c.call("mining.authorize", worker, "x"); string(a.Result) != "true" {
				t.Fatalf("authorize: %s", a.raw)
			}
			c.mine(worker, 1)
			c.nc.Close()
		})
	}
	// Two v1 and two v2 headers named a miner; one of each was local.
	for v := range 2 {
		for local, want := range []float64{2, 1} {
			if got := counterValue(e.s.metrics.proxyHeaders[v][local]); got != want {
				t.Errorf("proxy_headers{version=%d,local=%d} = %v, want %v", v+1, local, got, want)
			}
		}
	}
}

// TestReloadKeepsProxyAndTLS: turning PROXY or TLS off by a reload is
// refused as needing a restart, and the listener keeps working as it was.
func TestReloadKeepsProxyAndTLS(t *testing.T) {
	noLeaks(t)
	certFile, keyFile, pool := testCert(t, t.TempDir(), 5)
	cfg := proxyConfig("127.0.0.0/8")
	cfg.Listeners[0].TLSCert, cfg.Listeners[0].TLSKey = certFile, keyFile
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 0, 1))
	next := cfg
	next.Listeners = []ListenerConfig{cfg.Listeners[0]}
	next.Listeners[0].ProxyProtocol = false
	next.Listeners[0].TLSCert, next.Listeners[0].TLSKey = "", ""
	next.Listeners[0].MinDiff = tinyDiff / 2 // a reloadable change beside them
	err := e.s.Reload(next)
	if !errors.Is(err, ErrNotReloadable) || !strings.Contains(err.Error(), "ProxyProtocol") || !strings.Contains(err.Error(), "TLSCert") {
		t.Fatalf("Reload: %v, want ErrNotReloadable naming ProxyProtocol and TLSCert", err)
	}
	if l := e.s.listeners[0].cfg.Load(); !l.ProxyProtocol || l.TLSCert != certFile || l.MinDiff != tinyDiff/2 {
		t.Fatalf("listener after reload %+v", l)
	}
	raw, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tc := tls.Client(&headerConn{Conn: raw, header: []byte("PROXY TCP4 203.0.113.60 10.0.0.1 6000 3333\r\n")},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	c := &client{t: t, nc: tc, r: bufio.NewReader(tc)}
	c.queue = append(c.queue, c.handshake("acct.after"))
	c.mine("acct.after", 1)
}

// TestProxyProtocolCapsAndBans: the per-IP cap and bans apply to the
// address in the header, not to the balancer's: two miners behind one
// address meet a cap of 1 while another address is still served, and a
// banned miner address is refused while the balancer's other miners are
// not.
func TestProxyProtocolCapsAndBans(t *testing.T) {
	noLeaks(t)
	cfg := proxyConfig("127.0.0.0/8")
	cfg.MaxConnectionsPerIP = 1
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 0, 1))
	hdr := func(ip string) []byte { return []byte("PROXY TCP4 " + ip + " 10.0.0.1 5000 3333\r\n") }

	a := e.dialRaw(hdr("198.51.100.1"))
	a.queue = append(a.queue, a.handshake("acct.a"))
	e.refusedWith(hdr("198.51.100.1"))
	if v := counterValue(e.s.metrics.closedByReason[ClosedTooManyPerIP]); v != 1 {
		t.Fatalf("closed{too_many_connections_per_ip} = %v, want 1", v)
	}
	b := e.dialRaw(hdr("198.51.100.2"))
	b.queue = append(b.queue, b.handshake("acct.b"))

	e.s.bans.ban(netip.MustParseAddr("198.51.100.3"), e.clock.Now(), e.s.cfg.Load().Ban)
	e.refusedWith(hdr("198.51.100.3"))
	if v := counterValue(e.s.metrics.closedByReason[ClosedBanned]); v != 1 {
		t.Fatalf("closed{banned} = %v, want 1", v)
	}
	a.mine("acct.a", 1)
	b.mine("acct.b", 1)
	// Refused miners gave their slots back; the two served hold theirs.
	eventually(t, func() bool { return e.s.openSockets() == 2 }, "2 open sockets")
	if n := e.s.openFrom(netip.MustParseAddr("127.0.0.1")); n != 0 {
		t.Fatalf("%d sockets counted under the balancer's address, want 0", n)
	}
}

// refusedWith dials, writes pre and a subscribe, and expects the
// connection closed unanswered.
func (e *env) refusedWith(pre []byte) {
	e.t.Helper()
	c := e.dial()
	defer c.nc.Close()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.nc.Write(append(append([]byte(nil), pre...), `{"id":1,"method":"mining.subscribe","params":[]}`+"\n"...))
	if m, err := c.readLine(); err == nil {
		e.t.Fatalf("refused connection was served: %s", m.raw)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		e.t.Fatalf("refused connection left open")
	}
}

// TestProxyProtocolBadInput: an untrusted source, a malformed header, a
// truncated one, a plain Stratum line and silence are each closed with
// their counted reason, and a good miner connected all along keeps
// mining; every slot comes back.
func TestProxyProtocolBadInput(t *testing.T) {
	noLeaks(t)
	cfg := proxyConfig("127.0.0.0/8")
	cfg.HandshakeTimeout = 300 * time.Millisecond
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 0, 1))
	good := e.dialRaw([]byte("PROXY TCP4 192.0.2.1 10.0.0.1 1 3333\r\n"))
	good.queue = append(good.queue, good.handshake("acct.good"))

	tests := []struct {
		name   string
		send   []byte
		close  bool // close the client side after sending
		reason CloseReason
	}{
		{"malformed v1", []byte("PROXY TCP4 1.2.3 10.0.0.1 1 2\r\n"), false, ClosedProxyHeader},
		{"bad v2 command", v2(t, v2sig, "2f 11 000c", "c0a80001 c0a8000b dc04 01bb"), false, ClosedProxyHeader},
		{"stratum without header", []byte(`{"id":1,"method":"mining.subscribe","params":[]}` + "\n"), false, ClosedProxyHeader},
		{"truncated then closed", []byte("PROXY TCP4 192.0.2.9 10.0"), true, ClosedProxyHeader},
		{"silent", nil, false, ClosedProxyTimeout},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial()
			if len(tc.send) > 0 {
				c.nc.Write(tc.send)
			}
			if tc.close {
				c.nc.(*net.TCPConn).CloseWrite()
			}
			if m, err := c.readLine(); err == nil {
				t.Fatalf("served: %s", m.raw)
			}
			c.nc.Close()
			eventually(t, func() bool { return counterValue(e.s.metrics.closedByReason[tc.reason]) >= 1 }, "closed{%s}", tc.reason)
			good.mine("acct.good", uint32(i+1))
		})
	}
	if v := counterValue(e.s.metrics.closedByReason[ClosedProxyHeader]); v != 4 {
		t.Fatalf("closed{proxy_header} = %v, want 4", v)
	}
	eventually(t, func() bool { return e.s.openSockets() == 1 }, "only the good miner's slot taken")

	// The same listener trusting only 10.0.0.0/8 refuses 127.0.0.1 unread.
	cfg2 := proxyConfig("10.0.0.0/8")
	e2 := startServer(t, cfg2, makeTemplate(100, mainnetBits, 0, 1))
	e2.refusedWith([]byte("PROXY TCP4 192.0.2.1 10.0.0.1 1 3333\r\n"))
	if v := counterValue(e2.s.metrics.closedByReason[ClosedProxyUntrusted]); v != 1 {
		t.Fatalf("closed{proxy_untrusted} = %v, want 1", v)
	}
	if n := e2.s.openSockets(); n != 0 {
		t.Fatalf("untrusted socket holds a slot: %d", n)
	}
}

func subscribedEn1(t testing.TB, r rpc) []byte {
	t.Helper()
	var res []json.RawMessage
	var en1 string
	if err := json.Unmarshal(r.Result, &res); err != nil || len(res) != 3 || json.Unmarshal(res[1], &en1) != nil {
		t.Fatalf("subscribe result %s", r.raw)
	}
	b, err := hex.DecodeString(en1)
	if err != nil {
		t.Fatalf("extranonce1 %q: %v", en1, err)
	}
	return b
}

// testCert writes a self-signed certificate for 127.0.0.1 with the given
// serial to dir and returns its cert and key paths and a pool trusting it.
func testCert(t testing.TB, dir string, serial int64) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "wattpool test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "pool.crt"), filepath.Join(dir, "pool.key")
	// Written beside and renamed, as certbot and friends do.
	for _, f := range []struct {
		path string
		blk  *pem.Block
	}{{certFile, &pem.Block{Type: "CERTIFICATE", Bytes: der}}, {keyFile, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}}} {
		if err := os.WriteFile(f.path+".tmp", pem.EncodeToMemory(f.blk), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.path+".tmp", f.path); err != nil {
			t.Fatal(err)
		}
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// dialTLS connects over TLS and returns the client and the serial of
// the certificate the server showed.
func (e *env) dialTLS(addr string, roots *x509.CertPool) (*client, int64) {
	e.t.Helper()
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		e.t.Fatalf("TLS dial: %v", err)
	}
	e.t.Cleanup(func() { tc.Close() })
	return &client{t: e.t, nc: tc, r: bufio.NewReader(tc)}, tc.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestTLSListener: miners mine over TLS; plain Stratum sent to the TLS
// port and a handshake that never finishes are closed with their
// counted reasons while a TLS miner keeps mining; a renewed certificate
// read by Reload is shown to new connections while the miner connected
// with the old one keeps mining on its connection.
func TestTLSListener(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	certFile, keyFile, pool1 := testCert(t, dir, 1)
	cfg := testConfig()
	cfg.Listeners[0].TLSCert, cfg.Listeners[0].TLSKey = certFile, keyFile
	cfg.HandshakeTimeout = 300 * time.Millisecond
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 0, 1))

	a, serial := e.dialTLS(e.addr, pool1)
	if serial != 1 {
		t.Fatalf("certificate serial %d, want 1", serial)
	}
	a.queue = append(a.queue, a.handshake("acct.tls"))
	a.mine("acct.tls", 1)

	plain := e.dial()
	plain.send(`{"id":1,"method":"mining.subscribe","params":[]}`)
	if m, err := plain.readLine(); err == nil {
		t.Fatalf("plain Stratum served on the TLS port: %s", m.raw)
	}
	eventually(t, func() bool { return counterValue(e.s.metrics.closedByReason[ClosedTLSPlaintext]) == 1 }, "closed{tls_plaintext} 1")

	silent := e.dial()
	if _, err := silent.readLine(); err == nil {
		t.Fatal("silent client got a line")
	}
	eventually(t, func() bool { return counterValue(e.s.metrics.closedByReason[ClosedTLSTimeout]) == 1 }, "closed{tls_timeout} 1")
	a.mine("acct.tls", 2)

	// Renewal: new files, then the reload SIGHUP triggers.
	_, _, pool2 := testCert(t, dir, 2)
	if err := e.s.Reload(cfg); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	b, serial := e.dialTLS(e.addr, pool2)
	if serial != 2 {
		t.Fatalf("certificate after reload: serial %d, want 2", serial)
	}
	b.queue = append(b.queue, b.handshake("acct.tls2"))
	b.mine("acct.tls2", 1)
	a.mine("acct.tls", 3)

	// A renewal that cannot be read changes nothing.
	os.WriteFile(keyFile, []byte("not a key"), 0o600)
	if err := e.s.Reload(cfg); err == nil {
		t.Fatal("Reload with an unreadable key succeeded")
	}
	if _, serial := e.dialTLS(e.addr, pool2); serial != 2 {
		t.Fatalf("after a failed reload: serial %d, want 2", serial)
	}
	a.mine("acct.tls", 4)
	eventually(t, func() bool { return e.s.openSockets() == 3 }, "3 open sockets")
}

// TestProxyThenTLS: a balancer passing TLS through with a PROXY header
// may send the header and the ClientHello in one segment; the bytes after
// the header reach the TLS handshake, and the miner's address is the
// header's.
func TestProxyThenTLS(t *testing.T) {
	noLeaks(t)
	certFile, keyFile, pool := testCert(t, t.TempDir(), 7)
	cfg := proxyConfig("127.0.0.0/8")
	cfg.Listeners[0].TLSCert, cfg.Listeners[0].TLSKey = certFile, keyFile
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 0, 1))
	raw, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	hc := &headerConn{Conn: raw, header: []byte("PROXY TCP4 203.0.113.50 10.0.0.1 4242 3333\r\n")}
	tc := tls.Client(hc, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	c := &client{t: t, nc: tc, r: bufio.NewReader(tc)}
	c.queue = append(c.queue, c.handshake("acct.behind"))
	if got := e.connRemote(c.en1); got != "203.0.113.50:4242" {
		t.Fatalf("remote %q, want 203.0.113.50:4242", got)
	}
	c.mine("acct.behind", 1)
}

// headerConn writes header in the same write as the first data.
type headerConn struct {
	net.Conn
	header []byte
}

func (h *headerConn) Write(b []byte) (int, error) {
	if h.header != nil {
		buf := append(h.header, b...)
		h.header = nil
		if _, err := h.Conn.Write(buf); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return h.Conn.Write(b)
}

// TestValidateProxyTLS: the configuration errors name their fields.
func TestValidateProxyTLS(t *testing.T) {
	cfg := testConfig()
	cfg.Listeners[0].ProxyProtocol = true
	cfg.Listeners[0].TLSCert = "pool.crt"
	cfg.HandshakeTimeout = 0
	cfg.ProxyTrusted = []netip.Prefix{{}}
	err := cfg.Validate()
	for _, want := range []string{
		"Listeners[0].TLSCert: TLSCert and TLSKey must be set together",
		"HandshakeTimeout: 0s must be positive",
		"ProxyTrusted[0]: invalid Prefix is not a network",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want %q", err, want)
		}
	}
	cfg.ProxyTrusted = nil
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "Listeners[0].ProxyProtocol: needs at least one ProxyTrusted network") {
		t.Errorf("Validate: %v; want the ProxyProtocol error", err)
	}
}

// TestMinersimOverTLS: the simulated fleet's TLS option (CA file from
// the test's self-signed certificate) mines on a TLS port, keeps mining
// on its connection across a certificate reload, and a miner checking
// against another CA is refused by its own handshake.
func TestMinersimOverTLS(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	certFile, keyFile, _ := testCert(t, dir, 11)
	caFile := filepath.Join(dir, "ca.pem")
	ca, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(caFile, ca, 0o600)
	cfg := testConfig()
	cfg.Listeners[0].TLSCert, cfg.Listeners[0].TLSKey = certFile, keyFile
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
	tlsCfg, err := minersim.TLSClientConfig(caFile, false)
	if err != nil {
		t.Fatal(err)
	}
	g, err := minersim.NewGrinder(1, 2, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	m, err := minersim.NewMiner(minersim.MinerConfig{Addr: e.addr, User: "acct.simtls", HashesPerSecond: 200, TLS: tlsCfg,
		ReconnectDelay: time.Millisecond}, g, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.Run(ctx) })
	wg.Go(func() { _ = m.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	eventually(t, func() bool { return m.Accepted() > 0 }, "a share accepted over TLS")
	before := e.s.Connections()[0].ID

	testCert(t, dir, 12) // renewed in place
	if err := e.s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	n := m.Accepted()
	eventually(t, func() bool { return m.Accepted() > n+2 }, "shares after the reload")
	if cs := e.s.Connections(); len(cs) != 1 || cs[0].ID != before {
		t.Fatalf("connections after reload %+v, want the same one (id %d)", cs, before)
	}

	// A miner that trusts only the old certificate refuses the new one.
	stale, err := minersim.NewMiner(minersim.MinerConfig{Addr: e.addr, User: "acct.stale", TLS: tlsCfg,
		ReconnectDelay: time.Hour}, g, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(ctx)
	wg.Go(func() { _ = stale.Run(sctx) })
	eventually(t, func() bool { return counterValue(e.s.metrics.closedByReason[ClosedTLSHandshake]) == 1 }, "closed{tls_handshake} 1")
	scancel()
	if stale.Accepted() != 0 {
		t.Fatal("a miner that does not trust the certificate mined")
	}
}
