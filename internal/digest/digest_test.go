package digest

import (
	"strings"
	"testing"
)

// TestResponseVectors checks the request-digest against the two published
// examples (also recomputed with Python's hashlib while writing this test).
func TestResponseVectors(t *testing.T) {
	tests := []struct {
		name                                                    string
		user, realm, pass, method, uri, nonce, nc, cnonce, want string
	}{
		{
			// RFC 7616 section 3.9.1, the MD5 example.
			name: "rfc7616", user: "Mufasa", realm: "http-auth@example.org", pass: "Circle of Life",
			method: "GET", uri: "/dir/index.html", nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
			nc: "00000001", cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
			want: "8ca523f5e9506fed4657c9700eebdbec",
		},
		{
			// RFC 2617 section 3.5.
			name: "rfc2617", user: "Mufasa", realm: "testrealm@host.com", pass: "Circle Of Life",
			method: "GET", uri: "/dir/index.html", nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
			nc: "00000001", cnonce: "0a4f113b", want: "6629fae49393a05397450978507c4ef1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Response(tc.user, tc.realm, tc.pass, tc.method, tc.uri, tc.nonce, tc.nc, tc.cnonce); got != tc.want {
				t.Fatalf("response %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		header  string
		want    Challenge
		wantErr string
	}{
		{
			header: `Digest realm="antMiner Configuration", nonce="abc", qop="auth", algorithm=MD5`,
			want:   Challenge{Realm: "antMiner Configuration", Nonce: "abc", Algorithm: "MD5", QOP: []string{"auth"}},
		},
		{
			header: `Digest realm="a\"b", nonce="n", qop="auth,auth-int", opaque="o"`,
			want:   Challenge{Realm: `a"b`, Nonce: "n", Opaque: "o", Algorithm: "MD5", QOP: []string{"auth", "auth-int"}},
		},
		{header: `Basic realm="x"`, wantErr: "not a Digest challenge"},
		{header: `Digest realm="x"`, wantErr: "no nonce"},
		{header: `Digest nonce="n", realm="x`, wantErr: "unterminated"},
		{header: `Digest nonce="n", algorithm=SHA-256`, wantErr: "not supported"},
		{header: `Digest nonce="n", nonce="m"`, wantErr: "twice"},
	}
	for _, tc := range tests {
		got, err := ParseChallenge(tc.header)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.header, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.header, err)
			continue
		}
		if got.Realm != tc.want.Realm || got.Nonce != tc.want.Nonce || got.Opaque != tc.want.Opaque ||
			got.Algorithm != tc.want.Algorithm || strings.Join(got.QOP, ",") != strings.Join(tc.want.QOP, ",") {
			t.Errorf("%q: got %+v, want %+v", tc.header, got, tc.want)
		}
	}
}

// TestRoundTrip: what Authorization writes, ParseAuthorization reads and
// Verify accepts; a wrong password or another method is refused.
func TestRoundTrip(t *testing.T) {
	c := Challenge{Realm: "antMiner Configuration", Nonce: "n0nce", Algorithm: "MD5", QOP: []string{"auth"}, Opaque: "op"}
	h, err := Authorization(c, "root", `pa"ss`, "POST", "/cgi-bin/set_miner_conf.cgi")
	if err != nil {
		t.Fatal(err)
	}
	cr, err := ParseAuthorization(h)
	if err != nil {
		t.Fatal(err)
	}
	if cr.Opaque != "op" || cr.URI != "/cgi-bin/set_miner_conf.cgi" {
		t.Fatalf("parsed %+v", cr)
	}
	if !Verify(cr, "root", `pa"ss`, c.Realm, c.Nonce, "POST") {
		t.Fatal("the right password was refused")
	}
	if Verify(cr, "root", "wrong", c.Realm, c.Nonce, "POST") {
		t.Fatal("a wrong password was accepted")
	}
	if Verify(cr, "root", `pa"ss`, c.Realm, c.Nonce, "GET") {
		t.Fatal("a digest for POST was accepted for GET")
	}
	if Verify(cr, "root", `pa"ss`, c.Realm, "other", "POST") {
		t.Fatal("a stale nonce was accepted")
	}
	if _, err := Authorization(Challenge{Nonce: "n", QOP: []string{"auth-int"}}, "u", "p", "GET", "/"); err == nil {
		t.Fatal("a challenge without qop=auth was answered")
	}
}

func FuzzParseChallenge(f *testing.F) {
	f.Add(`Digest realm="antMiner Configuration", nonce="abc", qop="auth"`)
	f.Add(`Digest realm="a\"b", nonce="n"`)
	f.Add(`Digest realm="x`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseChallenge(s)
		if err == nil && c.Nonce == "" {
			t.Fatal("accepted a challenge without nonce")
		}
		_, _ = ParseAuthorization(s)
	})
}
