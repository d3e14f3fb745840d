package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/stratum/minersim"
)

// writeCert writes a fresh self-signed certificate for 127.0.0.1 with
// serial to certFile and keyFile (each written beside and renamed, as
// renewal tools do) and returns it.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "wattpool serve test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for path, blk := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: kder}} {
		if err := os.WriteFile(path+".new", pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// servedSerial dials addr over TLS trusting any certificate and returns
// the serial of the one the pool shows.
func servedSerial(addr string) (int64, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestServeTLSReloadOnSIGHUP runs `wattpool serve` with a stratum+ssl
// listener from its configuration file; a minersim miner trusting the
// certificate (as a CA file) mines over TLS. The certificate files are
// renewed and the process gets SIGHUP: new connections are shown the new
// certificate, while the miner stays on its connection and keeps getting
// shares accepted.
func TestServeTLSReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "pool.crt"), filepath.Join(dir, "pool.key")
	writeCert(t, certFile, keyFile, 1)
	caFile := filepath.Join(dir, "ca.pem")
	ca, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "wattpool.toml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
[[stratum.listener]]
name = "ssl"
addr = "127.0.0.1:0"
tls_cert = %q
tls_key = %q
`, certFile, keyFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	tpl, err := filepath.Abs(filepath.Join("..", "..", "stratum", "node", "testdata", "btcd_regtest_height4.json"))
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	vars := map[string]string{
		"WATTPOOL_CONFIG": cfgFile, "WATTPOOL_NETWORK": "regtest", "WATTPOOL_PAYOUT_ADDRESS": "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
		"WATTPOOL_TEMPLATE_FILE": tpl, "WATTPOOL_STRATUM_ADDR": fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"WATTPOOL_HTTP_ADDR": fmt.Sprintf("127.0.0.1:%d", ports[1]), "WATTPOOL_START_DIFF": "1e-10", "WATTPOOL_MIN_DIFF": "1e-10",
		"WATTPOOL_SPOOL_DIR": filepath.Join(dir, "spool"), "WATTPOOL_LOG_LEVEL": "info",
	}
	p := serveInProcess(t, vars) // SIGHUP is caught by serve from here on
	addr := vars["WATTPOOL_STRATUM_ADDR"]
	if s, err := servedSerial(addr); err != nil || s != 1 {
		t.Fatalf("served certificate serial %d (%v), want 1", s, err)
	}

	tlsCfg, err := minersim.TLSClientConfig(caFile, false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := minersim.NewMiner(minersim.MinerConfig{Addr: addr, User: "alice.ssl", HashesPerSecond: 50, TLS: tlsCfg,
		ReconnectDelay: 50 * time.Millisecond}, mustGrinder(t), nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = m.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	waitFor(t, time.Minute, "shares accepted over TLS", func() (bool, error) { return m.Accepted() >= 5, nil })
	conns, err := p.http.connections()
	if err != nil || len(conns) != 1 {
		t.Fatalf("connections %+v (%v), want the miner's one", conns, err)
	}

	writeCert(t, certFile, keyFile, 2)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the renewed certificate served", func() (bool, error) {
		s, err := servedSerial(addr)
		return s == 2, err
	})
	n := m.Accepted()
	waitFor(t, time.Minute, "shares after the reload", func() (bool, error) { return m.Accepted() >= n+5, nil })
	after, err := p.http.connections()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 1 || after[0].ID != conns[0].ID || after[0].Extranonce1 != conns[0].Extranonce1 {
		t.Fatalf("after the reload: connections %+v, want the miner still on connection %d", after, conns[0].ID)
	}
	if st := m.Stats().Snapshot(time.Second); st.Connects != 1 {
		t.Fatalf("the miner connected %d times, want once (never dropped)", st.Connects)
	}
}

// TestRestartNeededProxyTLS: renewed certificate paths are reloaded,
// while PROXY on or off and TLS on or off are named as needing a restart
// and kept as running by the reloadable configuration.
func TestRestartNeededProxyTLS(t *testing.T) {
	dir := t.TempDir()
	c1, k1 := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	c2, k2 := filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key")
	writeCert(t, c1, k1, 1)
	writeCert(t, c2, k2, 2)
	load := func(listener string) *config.Config {
		t.Helper()
		c, err := config.Parse([]byte("[stratum]\nproxy_trusted = [\"10.0.0.0/8\"]\n[[stratum.listener]]\nname = \"a\"\naddr = \":3333\"\n"+listener),
			mapEnv(map[string]string{"WATTPOOL_NETWORK": "regtest", "WATTPOOL_PAYOUT_ADDRESS": "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
				"WATTPOOL_NODE_URL": "http://u:p@127.0.0.1:18443"}))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tls1 := fmt.Sprintf("tls_cert = %q\ntls_key = %q\n", c1, k1)
	tls2 := fmt.Sprintf("tls_cert = %q\ntls_key = %q\n", c2, k2)
	for _, tc := range []struct {
		name, from, to string
		want           string
	}{
		{"renewed paths", tls1, tls2, ""},
		{"tls off", tls1, "", "stratum.listener[0].tls_cert (TLS on or off)"},
		{"proxy on", "", "proxy_protocol = true\n", "stratum.listener[0].proxy_protocol"},
	} {
		old, next := load(tc.from), load(tc.to)
		got := strings.Join(restartNeeded(old, next), ",")
		if got != tc.want {
			t.Errorf("%s: restartNeeded %q, want %q", tc.name, got, tc.want)
		}
		sc := reloadableStratumConfig(old, next)
		if tc.name == "renewed paths" && (sc.Listeners[0].TLSCert != c2 || sc.Listeners[0].TLSKey != k2) {
			t.Errorf("renewed paths not passed on: %+v", sc.Listeners[0])
		}
	}
}
