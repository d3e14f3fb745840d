package stratum

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// v2 builds a version 2 header from hex pieces (spaces ignored).
func v2(t testing.TB, parts ...string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(strings.Join(parts, ""), " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const v2sig = "0d0a0d0a000d0a515549540a"

// TestParseProxyHeader: the spec's examples (doc/proxy-protocol.txt,
// sections 2.1 and 2.2) and what it says must be refused, with the
// lengths and addresses worked out by hand.
func TestParseProxyHeader(t *testing.T) {
	ap := netip.MustParseAddrPort
	maxV6 := "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
	tests := []struct {
		name    string
		in      []byte
		want    proxyHeader
		n       int
		short   bool   // errProxyShort expected
		errHas  string // a refusal expected, naming this
		notProx bool   // ... wrapping errNotProxy
	}{
		{name: "v1 tcp4 spec example", in: []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /"),
			want: proxyHeader{Version: 1, Src: ap("192.168.0.1:56324"), Dst: ap("192.168.0.11:443")}, n: 47},
		{name: "v1 tcp4 worst case", in: []byte("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"),
			want: proxyHeader{Version: 1, Src: ap("255.255.255.255:65535"), Dst: ap("255.255.255.255:65535")}, n: 56},
		{name: "v1 tcp6 worst case is 104 bytes", in: []byte("PROXY TCP6 " + maxV6 + " " + maxV6 + " 65535 65535\r\n"),
			want: proxyHeader{Version: 1, Src: ap("[" + maxV6 + "]:65535"), Dst: ap("[" + maxV6 + "]:65535")}, n: 104},
		{name: "v1 unknown short form", in: []byte("PROXY UNKNOWN\r\n{"), want: proxyHeader{Version: 1, Local: true}, n: 15},
		{name: "v1 unknown worst case is 107 bytes", in: []byte("PROXY UNKNOWN " + maxV6 + " " + maxV6 + " 65535 65535\r\n"),
			want: proxyHeader{Version: 1, Local: true}, n: 107},
		{name: "v1 prefix only", in: []byte("PROX"), short: true},
		{name: "v1 no CRLF yet", in: []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2"), short: true},
		{name: "v1 no CRLF in 107 bytes", in: []byte("PROXY UNKNOWN " + strings.Repeat("a", 100)), errHas: "no CRLF within 107"},
		{name: "v1 bare LF", in: []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), errHas: "LF without CR"},
		{name: "v1 tcp4 with v6 address", in: []byte("PROXY TCP4 ::1 ::1 1 2\r\n"), errHas: "not a TCP4 address"},
		{name: "v1 tcp6 with v4 address", in: []byte("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"), errHas: "source address \"1.2.3.4\" is not a TCP6"},
		{name: "v1 port above 65535", in: []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), errHas: "source port"},
		{name: "v1 port leading zero", in: []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 02\r\n"), errHas: "destination port"},
		{name: "v1 two spaces", in: []byte("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), errHas: "want 5 fields"},
		{name: "v1 udp", in: []byte("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), errHas: "want TCP4, TCP6 or UNKNOWN"},
		{name: "v1 lower case", in: []byte("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), errHas: "first byte", notProx: true},
		{name: "stratum line", in: []byte(`{"id":1,"method":"mining.subscribe"}` + "\n"), errHas: "first byte 0x7b", notProx: true},
		{name: "P then garbage", in: []byte("PUT / HTTP/1.1\r\n"), errHas: "bad version 1 prefix", notProx: true},
		{name: "empty", in: nil, short: true},

		// Version 2: 12-byte signature, ver_cmd, fam, 2-byte length.
		{name: "v2 tcp4", in: v2(t, v2sig, "21 11 000c", "c0a80001 c0a8000b dc04 01bb", "7b"),
			want: proxyHeader{Version: 2, Src: ap("192.168.0.1:56324"), Dst: ap("192.168.0.11:443")}, n: 28},
		{name: "v2 tcp4 with a TLV after the addresses", in: v2(t, v2sig, "21 11 0010", "0a000001 0a000002 0001 0002", "04 0001 00"),
			want: proxyHeader{Version: 2, Src: ap("10.0.0.1:1"), Dst: ap("10.0.0.2:2")}, n: 32},
		{name: "v2 tcp6", in: v2(t, v2sig, "21 21 0024", "20010db8000000000000000000000001", "20010db8000000000000000000000002", "0050 0bb8"),
			want: proxyHeader{Version: 2, Src: ap("[2001:db8::1]:80"), Dst: ap("[2001:db8::2]:3000")}, n: 52},
		{name: "v2 tcp6 v4-mapped is unmapped", in: v2(t, v2sig, "21 21 0024", "00000000000000000000ffff01020304", "00000000000000000000ffff05060708", "0001 0002"),
			want: proxyHeader{Version: 2, Src: ap("1.2.3.4:1"), Dst: ap("5.6.7.8:2")}, n: 52},
		{name: "v2 local health check", in: v2(t, v2sig, "20 00 0000"), want: proxyHeader{Version: 2, Local: true}, n: 16},
		{name: "v2 local ignores its address block", in: v2(t, v2sig, "20 11 000c", "01020304 05060708 0001 0002"),
			want: proxyHeader{Version: 2, Local: true}, n: 28},
		{name: "v2 proxy unspec family", in: v2(t, v2sig, "21 00 0000"), want: proxyHeader{Version: 2, Local: true}, n: 16},
		{name: "v2 signature prefix", in: v2(t, "0d0a0d0a00"), short: true},
		{name: "v2 header without body", in: v2(t, v2sig, "21 11 000c", "c0a80001"), short: true},
		{name: "v2 bad signature", in: v2(t, "0d0a0d0a000d0a5155495420"), errHas: "bad version 2 signature", notProx: true},
		{name: "v2 version 1 in binary", in: v2(t, v2sig, "11 11 000c", "c0a80001 c0a8000b dc04 01bb"), errHas: "version 1, want 2"},
		{name: "v2 command 2", in: v2(t, v2sig, "22 11 000c", "c0a80001 c0a8000b dc04 01bb"), errHas: "command 0x2"},
		{name: "v2 udp", in: v2(t, v2sig, "21 12 000c", "c0a80001 c0a8000b dc04 01bb"), errHas: "transport 0x2"},
		{name: "v2 family 4", in: v2(t, v2sig, "21 41 000c", "c0a80001 c0a8000b dc04 01bb"), errHas: "address family 0x4"},
		{name: "v2 ipv4 block too short", in: v2(t, v2sig, "21 11 0008", "c0a80001 c0a8000b"), errHas: "IPv4 address block of 8"},
		{name: "v2 ipv6 block too short", in: v2(t, v2sig, "21 21 000c", "c0a80001 c0a8000b dc04 01bb"), errHas: "IPv6 address block of 12"},
		{name: "v2 unix block too short", in: v2(t, v2sig, "21 31 000c", "c0a80001 c0a8000b dc04 01bb"), errHas: "unix address block of 12"},
		{name: "v2 length above the cap", in: v2(t, v2sig, "21 11 0801"), errHas: "length 2049"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, n, err := parseProxyHeader(tc.in)
			switch {
			case tc.short:
				if !errors.Is(err, errProxyShort) {
					t.Fatalf("got %+v, %d, %v; want errProxyShort", h, n, err)
				}
			case tc.errHas != "":
				if err == nil || errors.Is(err, errProxyShort) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("got %+v, %d, %v; want an error naming %q", h, n, err, tc.errHas)
				}
				if errors.Is(err, errNotProxy) != tc.notProx {
					t.Fatalf("errNotProxy %v, want %v: %v", errors.Is(err, errNotProxy), tc.notProx, err)
				}
			default:
				if err != nil || h != tc.want || n != tc.n {
					t.Fatalf("got %+v, %d, %v; want %+v, %d", h, n, err, tc.want, tc.n)
				}
				// Every proper prefix is incomplete, never wrong.
				for i := range n {
					if _, _, err := parseProxyHeader(tc.in[:i]); !errors.Is(err, errProxyShort) {
						t.Fatalf("prefix of %d bytes: %v, want errProxyShort", i, err)
					}
				}
			}
		})
	}
}

// FuzzParseProxyHeader feeds the parser arbitrary bytes split in two, as
// they may arrive in two reads: it never panics, a header never claims
// more bytes than it was given, the first half alone never contradicts
// the whole (a valid header's prefix is incomplete, not wrong), and an
// accepted header re-parses the same from its own bytes.
func FuzzParseProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n{}"), 10)
	f.Add([]byte("PROXY UNKNOWN\r\n"), 3)
	f.Add([]byte("PROXY TCP6 ::1 ::2 1 2\r\n"), 20)
	f.Add(v2(f, v2sig, "21 11 000c", "c0a80001 c0a8000b dc04 01bb"), 14)
	f.Add(v2(f, v2sig, "21 21 0024", "20010db8000000000000000000000001", "20010db8000000000000000000000002", "0050 0bb8"), 30)
	f.Add(v2(f, v2sig, "20 00 0000"), 16)
	f.Add(v2(f, v2sig, "21 31 00d8")[:16], 5)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		h, n, err := parseProxyHeader(b)
		if err == nil {
			if n <= 0 || n > len(b) {
				t.Fatalf("header length %d of %d bytes", n, len(b))
			}
			h2, n2, err2 := parseProxyHeader(b[:n])
			if err2 != nil || h2 != h || n2 != n {
				t.Fatalf("re-parse of its own %d bytes: %+v %d %v, first %+v", n, h2, n2, err2, h)
			}
			if !h.Local && (!h.Src.Addr().IsValid() || !h.Dst.Addr().IsValid()) {
				t.Fatalf("proxied header without addresses: %+v", h)
			}
		}
		if split < 0 {
			split = -split
		}
		if len(b) > 0 {
			split %= len(b) + 1
		} else {
			split = 0
		}
		_, _, perr := parseProxyHeader(b[:split])
		if perr != nil && !errors.Is(perr, errProxyShort) && (err == nil || errors.Is(err, errProxyShort)) {
			t.Fatalf("first %d bytes refused (%v) but all %d bytes give %v", split, perr, len(b), err)
		}
		if err == nil && split < n && !errors.Is(perr, errProxyShort) {
			t.Fatalf("prefix of %d of a %d-byte header: %v, want errProxyShort", split, n, perr)
		}
		if bytes.HasPrefix(b, []byte("{")) && !errors.Is(err, errNotProxy) {
			t.Fatalf("a JSON line is not a header: %v", err)
		}
	})
}
