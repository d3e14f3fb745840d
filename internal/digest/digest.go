// Package digest implements HTTP Digest access authentication (RFC 7616)
// with MD5 and qop=auth, the only flavour stock Antminer firmware speaks.
// The client side answers one WWW-Authenticate challenge; the server side
// (used by minersim's simulated firmware) issues challenges and checks
// answers. MD5 is what the firmware demands, not a choice: digest auth
// protects the password on the wire against casual sniffing only.
package digest

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Challenge is a parsed WWW-Authenticate: Digest header.
type Challenge struct {
	Realm  string
	Nonce  string
	Opaque string
	// Algorithm is "MD5" when the header names none.
	Algorithm string
	// QOP lists the offered qop values ("auth", "auth-int").
	QOP []string
}

// ErrNotDigest marks a challenge of another scheme (Basic, Bearer).
var ErrNotDigest = errors.New("not a Digest challenge")

// maxHeader bounds the headers parsed here: a hostile server must not make
// us scan megabytes.
const maxHeader = 4096

// ParseChallenge parses the value of a WWW-Authenticate header.
func ParseChallenge(header string) (Challenge, error) {
	if len(header) > maxHeader {
		return Challenge{}, fmt.Errorf("digest challenge: %d bytes, over %d", len(header), maxHeader)
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(header), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return Challenge{}, fmt.Errorf("%w: scheme %q", ErrNotDigest, scheme)
	}
	params, err := parseParams(rest)
	if err != nil {
		return Challenge{}, fmt.Errorf("digest challenge: %w", err)
	}
	c := Challenge{Realm: params["realm"], Nonce: params["nonce"], Opaque: params["opaque"], Algorithm: params["algorithm"]}
	if c.Nonce == "" {
		return Challenge{}, errors.New("digest challenge: no nonce")
	}
	if c.Algorithm == "" {
		c.Algorithm = "MD5"
	}
	if !strings.EqualFold(c.Algorithm, "MD5") {
		return Challenge{}, fmt.Errorf("digest challenge: algorithm %q not supported (want MD5)", c.Algorithm)
	}
	for q := range strings.SplitSeq(params["qop"], ",") {
		if q = strings.TrimSpace(q); q != "" {
			c.QOP = append(c.QOP, q)
		}
	}
	return c, nil
}

// parseParams reads comma-separated key=value pairs whose values may be
// quoted strings with backslash escapes.
func parseParams(s string) (map[string]string, error) {
	out := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return out, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("parameter %q has no value", s)
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			closed := false
			for i < len(s) {
				ch := s[i]
				if ch == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if ch == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(ch)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("parameter %s: unterminated quoted string", key)
			}
			val, s = b.String(), s[i:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val, s = strings.TrimSpace(s[:end]), s[end:]
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("parameter %s given twice", key)
		}
		out[key] = val
	}
}

// Response computes the RFC 7616 request-digest for qop=auth:
// MD5(HA1:nonce:nc:cnonce:auth:HA2), HA1 = MD5(user:realm:password),
// HA2 = MD5(method:uri).
func Response(user, realm, password, method, uri, nonce, nc, cnonce string) string {
	ha1 := md5hex(user + ":" + realm + ":" + password)
	ha2 := md5hex(method + ":" + uri)
	return md5hex(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":auth:" + ha2)
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Authorization answers challenge c for one request: the value of the
// Authorization header. The nonce count is always 1 because every request
// gets its own challenge (no nonce reuse across requests).
func Authorization(c Challenge, user, password, method, uri string) (string, error) {
	if !offers(c.QOP, "auth") {
		return "", fmt.Errorf("digest challenge offers qop %q, want auth", strings.Join(c.QOP, ","))
	}
	cnonce, err := newNonce()
	if err != nil {
		return "", err
	}
	const nc = "00000001"
	resp := Response(user, c.Realm, password, method, uri, c.Nonce, nc, cnonce)
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username=%s, realm=%s, nonce=%s, uri=%s, algorithm=MD5, response="%s", qop=auth, nc=%s, cnonce="%s"`,
		quote(user), quote(c.Realm), quote(c.Nonce), quote(uri), resp, nc, cnonce)
	if c.Opaque != "" {
		fmt.Fprintf(&b, ", opaque=%s", quote(c.Opaque))
	}
	return b.String(), nil
}

func offers(list []string, v string) bool {
	for _, q := range list {
		if strings.EqualFold(q, v) {
			return true
		}
	}
	return false
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func newNonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("digest nonce: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Credentials is a parsed Authorization: Digest header.
type Credentials struct {
	Username, Realm, Nonce, URI, Response, QOP, NC, CNonce, Opaque string
}

// ParseAuthorization parses the value of an Authorization header.
func ParseAuthorization(header string) (Credentials, error) {
	if len(header) > maxHeader {
		return Credentials{}, fmt.Errorf("digest authorization: %d bytes, over %d", len(header), maxHeader)
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(header), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return Credentials{}, fmt.Errorf("%w: scheme %q", ErrNotDigest, scheme)
	}
	p, err := parseParams(rest)
	if err != nil {
		return Credentials{}, fmt.Errorf("digest authorization: %w", err)
	}
	return Credentials{Username: p["username"], Realm: p["realm"], Nonce: p["nonce"], URI: p["uri"],
		Response: p["response"], QOP: p["qop"], NC: p["nc"], CNonce: p["cnonce"], Opaque: p["opaque"]}, nil
}

// Verify reports whether cr answers a challenge with nonce and realm for
// this request, made by user with password. The comparison is constant
// time.
func Verify(cr Credentials, user, password, realm, nonce, method string) bool {
	if cr.Username != user || cr.Realm != realm || cr.Nonce != nonce || !strings.EqualFold(cr.QOP, "auth") || cr.NC == "" || cr.CNonce == "" {
		return false
	}
	want := Response(user, realm, password, method, cr.URI, nonce, cr.NC, cr.CNonce)
	return subtle.ConstantTimeCompare([]byte(want), []byte(cr.Response)) == 1
}

// NewNonce returns a fresh random server nonce.
func NewNonce() (string, error) { return newNonce() }

// ChallengeHeader renders a WWW-Authenticate value offering qop=auth.
func ChallengeHeader(realm, nonce string) string {
	return fmt.Sprintf(`Digest realm=%s, nonce=%s, algorithm=MD5, qop="auth"`, quote(realm), quote(nonce))
}
