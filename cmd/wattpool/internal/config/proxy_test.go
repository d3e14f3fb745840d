package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestProxyAndTLSKeys: proxy_trusted (networks and bare addresses),
// handshake_timeout and the listener's proxy_protocol are read; every
// wrong combination is named by its key.
func TestProxyAndTLSKeys(t *testing.T) {
	c, err := Parse([]byte(minimal+`
[stratum]
proxy_trusted = ["10.1.2.0/24", "192.168.7.9", "fd00::/8", "10.9.9.9/8"]
handshake_timeout = "3s"
[[stratum.listener]]
name = "lb"
addr = ":3333"
proxy_protocol = true
`), env())
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("192.168.7.9/32"),
		netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("10.0.0.0/8")}
	if len(c.ProxyTrusted) != len(want) {
		t.Fatalf("proxy_trusted %v, want %v", c.ProxyTrusted, want)
	}
	for i := range want {
		if c.ProxyTrusted[i] != want[i] {
			t.Fatalf("proxy_trusted[%d] %v, want %v", i, c.ProxyTrusted[i], want[i])
		}
	}
	if c.HandshakeTimeout != 3*time.Second || !c.Listeners[0].ProxyProtocol {
		t.Fatalf("handshake_timeout %v, proxy_protocol %v", c.HandshakeTimeout, c.Listeners[0].ProxyProtocol)
	}
	if d, _ := Parse([]byte(minimal), env()); d.HandshakeTimeout != 10*time.Second {
		t.Fatalf("default handshake_timeout %v, want 10s", d.HandshakeTimeout)
	}

	_, err = Parse([]byte(minimal+`
[stratum]
proxy_trusted = ["10.0.0.0/33", "lb.example"]
handshake_timeout = "soon"
[[stratum.listener]]
addr = ":3333"
tls_cert = "/nonexistent/pool.crt"
tls_key = "/nonexistent/pool.key"
[[stratum.listener]]
addr = ":3334"
tls_key = "pool.key"
`), env())
	wantErrs := []string{
		`stratum.proxy_trusted[0]: "10.0.0.0/33": want a network`,
		`stratum.proxy_trusted[1]: "lb.example": want a network`,
		`stratum.handshake_timeout: "soon" is not a duration`,
		`stratum.listener[0].tls_cert: /nonexistent/pool.crt with tls_key /nonexistent/pool.key: open /nonexistent/pool.crt`,
		`stratum.listener[1].tls_cert: tls_cert "" and tls_key "pool.key" must be set together`,
	}
	checkErrs(t, err, wantErrs)

	_, err = Parse([]byte(minimal+"[[stratum.listener]]\naddr = \":3333\"\nproxy_protocol = true\n"), env())
	checkErrs(t, err, []string{"stratum.listener[0].proxy_protocol: needs stratum.proxy_trusted"})
}

func checkErrs(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatal("Parse accepted a bad configuration")
	}
	got := List(err)
	if len(got) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for _, w := range want {
		found := false
		for _, e := range got {
			found = found || strings.Contains(e.Error(), w)
		}
		if !found {
			t.Errorf("no error contains %q; got:\n%v", w, err)
		}
	}
}
