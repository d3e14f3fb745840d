package stratum

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// PROXY protocol (HAProxy's doc/proxy-protocol.txt, versions 1 and 2): a
// load balancer in front of the pool writes one header before the
// miner's bytes, naming the miner's address. The pool reads it only on
// listeners configured for it and only from trusted networks: anyone
// else could claim any address and escape its bans.

// proxyV2Sig is the 12-byte signature that opens a version 2 header.
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// proxyV1Prefix opens a version 1 header.
var proxyV1Prefix = []byte("PROXY ")

// Header size bounds from the spec: a version 1 line is at most 107
// bytes with its CRLF; a version 2 header is 16 bytes plus its length.
// Version 2 lengths beyond proxyV2MaxLen (TLVs a pool has no use for,
// far above the 216 of the largest address block) are refused rather
// than buffered for every connection in flight.
const (
	proxyV1MaxLen = 107
	proxyV2HdrLen = 16
	proxyV2MaxLen = 2048
)

// errProxyShort says that the bytes so far are a valid beginning of a
// header that is not complete yet: read more.
var errProxyShort = errors.New("proxy header incomplete")

// errNotProxy says that the bytes cannot begin a PROXY header.
var errNotProxy = errors.New("not a PROXY protocol header")

// proxyHeader is a parsed header.
type proxyHeader struct {
	// Version is 1 or 2.
	Version int
	// Local is set for a version 2 LOCAL command, a version 1 UNKNOWN
	// line, and a version 2 PROXY command of an unspecified or unix
	// family: the connection was made by the balancer itself (a health
	// check) or carries no usable address, and the spec says to use the
	// socket's own endpoints.
	Local bool
	// Src and Dst are the miner's address and the address it connected
	// to, when Local is false.
	Src, Dst netip.AddrPort
}

// parseProxyHeader parses the header at the start of b and returns it
// with its length in bytes (what follows is the miner's data). It
// returns errProxyShort when b is a valid but incomplete beginning, and
// a descriptive error (wrapping errNotProxy when b is no header at all)
// when the connection must be closed.
func parseProxyHeader(b []byte) (proxyHeader, int, error) {
	switch {
	case len(b) == 0:
		return proxyHeader{}, 0, errProxyShort
	case b[0] == proxyV2Sig[0]:
		n := min(len(b), len(proxyV2Sig))
		if !bytes.Equal(b[:n], proxyV2Sig[:n]) {
			return proxyHeader{}, 0, fmt.Errorf("bad version 2 signature: %w", errNotProxy)
		}
		return parseProxyV2(b)
	case b[0] == proxyV1Prefix[0]:
		n := min(len(b), len(proxyV1Prefix))
		if !bytes.Equal(b[:n], proxyV1Prefix[:n]) {
			return proxyHeader{}, 0, fmt.Errorf("bad version 1 prefix: %w", errNotProxy)
		}
		return parseProxyV1(b)
	}
	return proxyHeader{}, 0, fmt.Errorf("first byte %#02x: %w", b[0], errNotProxy)
}

// parseProxyV1 parses "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n".
func parseProxyV1(b []byte) (proxyHeader, int, error) {
	end := bytes.Index(b[:min(len(b), proxyV1MaxLen)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= proxyV1MaxLen {
			return proxyHeader{}, 0, fmt.Errorf("version 1 line has no CRLF within %d bytes", proxyV1MaxLen)
		}
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return proxyHeader{}, 0, fmt.Errorf("version 1 line ends in LF without CR at byte %d", i)
		}
		return proxyHeader{}, 0, errProxyShort
	}
	line := string(b[len(proxyV1Prefix):end])
	n := end + 2
	h := proxyHeader{Version: 1}
	// UNKNOWN: "the receiver must ignore anything presented before the
	// CRLF is found" and use the real endpoints.
	if line == "UNKNOWN" || (len(line) > 8 && line[:8] == "UNKNOWN ") {
		h.Local = true
		return h, n, nil
	}
	var fields [5]string
	n5, ok := splitSpaces(line, &fields)
	if !ok {
		return proxyHeader{}, 0, fmt.Errorf("version 1 line %q: want 5 fields (proto src dst sport dport), got %d", line, n5)
	}
	var want4 bool
	switch fields[0] {
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return proxyHeader{}, 0, fmt.Errorf("version 1 protocol %q: want TCP4, TCP6 or UNKNOWN", fields[0])
	}
	var addrs [2]netip.Addr
	for i := range addrs {
		a, err := netip.ParseAddr(fields[1+i])
		if err != nil || a.Zone() != "" || a.Is4() != want4 {
			return proxyHeader{}, 0, fmt.Errorf("version 1 %s address %q is not a %s address", [2]string{"source", "destination"}[i], fields[1+i], fields[0])
		}
		addrs[i] = a
	}
	var ports [2]uint16
	for i := range ports {
		p, err := parsePort(fields[3+i])
		if err != nil {
			return proxyHeader{}, 0, fmt.Errorf("version 1 %s port: %w", [2]string{"source", "destination"}[i], err)
		}
		ports[i] = p
	}
	h.Src = netip.AddrPortFrom(addrs[0], ports[0])
	h.Dst = netip.AddrPortFrom(addrs[1], ports[1])
	return h, n, nil
}

// splitSpaces splits s at single spaces into exactly len(out) fields and
// reports how many it found; the spec allows exactly one space between
// fields, so two spaces make an empty field and a wrong count. The
// fields share s's memory (no allocation).
func splitSpaces(s string, out *[5]string) (int, bool) {
	n := 0
	for {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			if n < len(out) {
				out[n] = s
			}
			n++
			return n, n == len(out) && !slices.Contains(out[:], "")
		}
		if n < len(out) {
			out[n] = s[:i]
		}
		n++
		s = s[i+1:]
	}
}

// parsePort parses a decimal port 0-65535 without sign or leading zero.
func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%q is not a port", s)
	}
	for i := range len(s) {
		if c := s[i]; c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a port", s)
		}
	}
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port", s)
	}
	return uint16(v), nil
}

// parseProxyV2 parses a binary header whose signature matched so far.
func parseProxyV2(b []byte) (proxyHeader, int, error) {
	if len(b) < proxyV2HdrLen {
		return proxyHeader{}, 0, errProxyShort
	}
	verCmd, fam := b[12], b[13]
	length := int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 {
		return proxyHeader{}, 0, fmt.Errorf("version 2 header: version %d, want 2", verCmd>>4)
	}
	cmd := verCmd & 0x0f
	if cmd > 1 {
		return proxyHeader{}, 0, fmt.Errorf("version 2 header: command %#x, want LOCAL (0) or PROXY (1)", cmd)
	}
	if length > proxyV2MaxLen {
		return proxyHeader{}, 0, fmt.Errorf("version 2 header: length %d above the %d accepted", length, proxyV2MaxLen)
	}
	if len(b) < proxyV2HdrLen+length {
		return proxyHeader{}, 0, errProxyShort
	}
	n := proxyV2HdrLen + length
	body := b[proxyV2HdrLen:n]
	h := proxyHeader{Version: 2}
	if cmd == 0 {
		// LOCAL: the balancer's own connection (health check); the
		// spec says to discard the address block whatever its family.
		h.Local = true
		return h, n, nil
	}
	family, transport := fam>>4, fam&0x0f
	if transport > 1 {
		// DGRAM, or undefined values: not a stream the pool can serve.
		return proxyHeader{}, 0, fmt.Errorf("version 2 header: transport %#x, want STREAM (1) or UNSPEC (0)", transport)
	}
	switch family {
	case 0, 3: // AF_UNSPEC, AF_UNIX: no IP to use; keep the socket's.
		if family == 3 && length < 216 {
			return proxyHeader{}, 0, fmt.Errorf("version 2 header: unix address block of %d bytes, want at least 216", length)
		}
		h.Local = true
	case 1: // AF_INET
		if length < 12 {
			return proxyHeader{}, 0, fmt.Errorf("version 2 header: IPv4 address block of %d bytes, want at least 12", length)
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
	case 2: // AF_INET6
		if length < 36 {
			return proxyHeader{}, 0, fmt.Errorf("version 2 header: IPv6 address block of %d bytes, want at least 36", length)
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])).Unmap(), binary.BigEndian.Uint16(body[32:34]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])).Unmap(), binary.BigEndian.Uint16(body[34:36]))
	default:
		return proxyHeader{}, 0, fmt.Errorf("version 2 header: address family %#x, want 0-3", family)
	}
	return h, n, nil
}
