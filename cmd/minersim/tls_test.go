package main

import (
	"io"
	"strings"
	"testing"
)

// TestParseTLSFlags: a stratum+ssl URL or -tls turns TLS on, -tls-ca and
// -tls-insecure are checked, and neither is accepted without TLS.
func TestParseTLSFlags(t *testing.T) {
	o, err := parseFlags([]string{"-url", "stratum+ssl://127.0.0.1:4333", "-user", "a.b", "-tls-insecure"}, io.Discard)
	if err != nil || o.fleet.Miner.TLS == nil || !o.fleet.Miner.TLS.InsecureSkipVerify || o.fleet.Miner.Addr != "127.0.0.1:4333" {
		t.Fatalf("stratum+ssl: %v %+v", err, o.fleet.Miner)
	}
	o, err = parseFlags([]string{"-url", "127.0.0.1:4333", "-user", "a.b", "-tls"}, io.Discard)
	if err != nil || o.fleet.Miner.TLS == nil || o.fleet.Miner.TLS.InsecureSkipVerify {
		t.Fatalf("-tls: %v %+v", err, o.fleet.Miner)
	}
	if o, err := parseFlags([]string{"-url", "127.0.0.1:3333", "-user", "a.b"}, io.Discard); err != nil || o.fleet.Miner.TLS != nil {
		t.Fatalf("plain: %v %+v", err, o.fleet.Miner)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-url", "h:1", "-user", "a", "-tls-insecure"}, "-tls-ca and -tls-insecure need -tls"},
		{[]string{"-url", "h:1", "-user", "a", "-tls", "-tls-ca", "/nonexistent/ca.pem"}, "-tls-ca: TLS CA file: open /nonexistent/ca.pem"},
	} {
		if _, err := parseFlags(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
