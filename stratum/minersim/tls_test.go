package minersim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePoolURL(t *testing.T) {
	tests := []struct {
		in      string
		addr    string
		tls     bool
		errHas  string
		plainOK bool // ParseURL accepts it too
	}{
		{in: "stratum+tcp://pool.example:3333", addr: "pool.example:3333", plainOK: true},
		{in: "127.0.0.1:3333", addr: "127.0.0.1:3333", plainOK: true},
		{in: "stratum+ssl://pool.example:4333", addr: "pool.example:4333", tls: true},
		{in: "STRATUM+TLS://[::1]:4333/", addr: "[::1]:4333", tls: true},
		{in: "ssl://h:1", addr: "h:1", tls: true},
		{in: "http://h:1", errHas: `scheme "http" not supported (want stratum+tcp or stratum+ssl)`},
		{in: "stratum+ssl://h:0", errHas: `port "0"`},
	}
	for _, tc := range tests {
		addr, useTLS, err := ParsePoolURL(tc.in)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("ParsePoolURL(%q) = %q, %v, %v; want an error naming %q", tc.in, addr, useTLS, err, tc.errHas)
			}
			continue
		}
		if err != nil || addr != tc.addr || useTLS != tc.tls {
			t.Errorf("ParsePoolURL(%q) = %q, %v, %v; want %q, %v", tc.in, addr, useTLS, err, tc.addr, tc.tls)
		}
		if _, err := ParseURL(tc.in); (err == nil) != tc.plainOK {
			t.Errorf("ParseURL(%q) error %v, want accepted %v", tc.in, err, tc.plainOK)
		}
	}
}

func TestTLSClientConfig(t *testing.T) {
	if c, err := TLSClientConfig("", true); err != nil || !c.InsecureSkipVerify || c.RootCAs != nil {
		t.Fatalf("insecure: %+v %v", c, err)
	}
	if _, err := TLSClientConfig("/nonexistent/ca.pem", false); err == nil || !strings.Contains(err.Error(), "TLS CA file: open /nonexistent/ca.pem") {
		t.Fatalf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(bad, []byte("not PEM"), 0o600)
	if _, err := TLSClientConfig(bad, false); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("not PEM: %v", err)
	}
}
