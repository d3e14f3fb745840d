package webhook

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// The expected MACs were computed outside Go, e.g.
//
//	printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
func TestSignVectors(t *testing.T) {
	for _, tc := range []struct {
		secret string
		t      int64
		body   string
		want   string
	}{
		{"secret", 1700000000, `{"a":1}`, "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"},
		{"secret", 1700000000, ``, "t=1700000000,v1=4bc5f74d868b97888288889c5d9d65df02526f94c1592a79fdf4fe8b26e311e5"},
		{"k3y with spaces", 1700000300, `{"group":"rack1"}`, "t=1700000300,v1=e8f131250d7d48905a94d3bad45edc450b4ee15a01fa6553767fc2ae863d149f"},
	} {
		got := Sign([]byte(tc.secret), time.Unix(tc.t, 0), []byte(tc.body))
		if got != tc.want {
			t.Errorf("Sign(%q, %d, %q) = %s, want %s", tc.secret, tc.t, tc.body, got, tc.want)
		}
		if err := Verify(tc.want, []byte(tc.body), []byte(tc.secret), time.Unix(tc.t+10, 0), MaxAge); err != nil {
			t.Errorf("Verify(%s): %v", tc.want, err)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	secret := []byte("secret")
	body := []byte(`{"a":1}`)
	good := "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
	mac := "49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
	at := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		name   string
		header string
		body   string
		secret string
		now    time.Time
		want   error
	}{
		{"fresh", good, "", "", at, nil},
		{"exactly 5 minutes old", good, "", "", at.Add(MaxAge), nil},
		{"replayed after 5 minutes", good, "", "", at.Add(MaxAge + time.Second), ErrExpired},
		{"replayed a day later", good, "", "", at.Add(24 * time.Hour), ErrExpired},
		{"a minute ahead", good, "", "", at.Add(-MaxFuture), nil},
		{"from the future", good, "", "", at.Add(-MaxFuture - time.Second), ErrFuture},
		{"tampered body", good, `{"a":2}`, "", at, ErrMismatch},
		{"wrong secret", good, "", "Secret", at, ErrMismatch},
		{"tampered t", "t=1700000001,v1=" + mac, "", "", at, ErrMismatch},
		{"t with leading zero", "t=01700000000,v1=" + mac, "", "", at, ErrMismatch},
		{"flipped mac", "t=1700000000,v1=59f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686", "", "", at, ErrMismatch},
		{"upper-case hex", "t=1700000000,v1=" + strings.ToUpper(mac), "", "", at, nil},
		{"reordered", "v1=" + mac + ",t=1700000000", "", "", at, nil},
		{"empty", "", "", "", at, ErrMalformed},
		{"no t", "v1=" + mac, "", "", at, ErrMalformed},
		{"no v1", "t=1700000000", "", "", at, ErrMalformed},
		{"t twice", "t=1700000000,t=1700000000,v1=" + mac, "", "", at, ErrMalformed},
		{"v1 twice", good + ",v1=" + mac, "", "", at, ErrMalformed},
		{"negative t", "t=-1,v1=" + mac, "", "", at, ErrMalformed},
		{"t with sign", "t=+1700000000,v1=" + mac, "", "", at, ErrMalformed},
		{"t overflows", "t=99999999999999999999,v1=" + mac, "", "", at, ErrMalformed},
		{"t in milliseconds", "t=1700000000000,v1=" + mac, "", "", at, ErrFuture}, // about 52,000 years ahead
		{"short mac", "t=1700000000,v1=49f2", "", "", at, ErrMalformed},
		{"non-hex mac", "t=1700000000,v1=" + strings.Repeat("zz", 32), "", "", at, ErrMalformed},
		{"space", "t=1700000000, v1=" + mac, "", "", at, ErrMalformed},
		{"unknown key", good + ",v0=abc", "", "", at, ErrMalformed},
		{"no equals", "t1700000000,v1=" + mac, "", "", at, ErrMalformed},
		{"huge", good + strings.Repeat(",", 600), "", "", at, ErrMalformed},
	} {
		b, s := body, secret
		if tc.body != "" {
			b = []byte(tc.body)
		}
		if tc.secret != "" {
			s = []byte(tc.secret)
		}
		err := Verify(tc.header, b, s, tc.now, MaxAge)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: Verify(%q) = %v, want %v", tc.name, tc.header, err, tc.want)
		}
	}
}

// TestReplay: a request captured and sent again once the window passed is
// rejected, though every byte of it is authentic.
func TestReplay(t *testing.T) {
	secret := []byte("s3cr3t")
	body := []byte(`{"group":"rack1","after":"curtailed"}`)
	sent := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := Sign(secret, sent, body)
	if err := Verify(h, body, secret, sent.Add(30*time.Second), MaxAge); err != nil {
		t.Fatalf("original delivery: %v", err)
	}
	err := Verify(h, body, secret, sent.Add(6*time.Minute), MaxAge)
	if !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "6m0s old") {
		t.Fatalf("replay 6 minutes later: %v, want ErrExpired naming the age", err)
	}
}

func TestClientPostsSigned(t *testing.T) {
	secret := []byte("fleet-secret-value")
	now := time.Unix(1700000000, 0)
	var mu sync.Mutex
	var got []error
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := Verify(r.Header.Get(Header), body, secret, now.Add(2*time.Second), MaxAge)
		if ct := r.Header.Get("Content-Type"); ct != "application/json" && err == nil {
			err = errors.New("content type " + ct)
		}
		if r.Method != http.MethodPost && err == nil {
			err = errors.New("method " + r.Method)
		}
		mu.Lock()
		got = append(got, err)
		mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL, secret, 2*time.Second, func() time.Time { return now }, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Post(context.Background(), []byte(`{"a":1}`)); err != nil {
		t.Fatalf("post: %v", err)
	}
	// A client holding the wrong secret is refused, and the error quotes
	// the receiver's reason.
	bad, _ := NewClient(srv.URL, []byte("wrong"), 2*time.Second, func() time.Time { return now }, nil)
	err = bad.Post(context.Background(), []byte(`{"a":1}`))
	if err == nil || !strings.Contains(err.Error(), "status 401") || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("error leaks the secret: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != nil || !errors.Is(got[1], ErrMismatch) {
		t.Fatalf("receiver saw %v", got)
	}
}

func TestClientErrors(t *testing.T) {
	long := strings.Repeat("x", 5000)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			http.Error(w, "<html>boom</html>", http.StatusInternalServerError)
		case "/long":
			http.Error(w, long, http.StatusBadGateway)
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/redirect":
			w.WriteHeader(http.StatusMultipleChoices)
		}
	}))
	defer srv.Close()
	defer close(release)
	secret := []byte("hunter2-secret")
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/500", []string{"status 500", "<html>boom</html>", srv.URL + "/500"}},
		{"/long", []string{"status 502", strings.Repeat("x", maxSnippet) + "…"}},
		{"/slow", []string{"no reply within the timeout", srv.URL + "/slow"}},
		{"/redirect", []string{"status 300"}},
	} {
		timeout := 10 * time.Second // only /slow is meant to time out
		if tc.path == "/slow" {
			timeout = 200 * time.Millisecond
		}
		c, err := NewClient(srv.URL+tc.path+"?token=tok3n", secret, timeout, nil, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		err = c.Post(context.Background(), []byte(`{}`))
		if err == nil {
			t.Errorf("%s: no error", tc.path)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", tc.path, err, w)
			}
		}
		if len(err.Error()) > 600 {
			t.Errorf("%s: error of %d bytes is not bounded", tc.path, len(err.Error()))
		}
		if strings.Contains(err.Error(), string(secret)) || strings.Contains(err.Error(), "tok3n") {
			t.Errorf("%s: error %q leaks the secret or the URL's token", tc.path, err)
		}
	}
}

func TestNewClientValidates(t *testing.T) {
	for name, tc := range map[string]struct {
		url     string
		secret  string
		timeout time.Duration
	}{
		"empty secret": {"http://127.0.0.1:1/", "", time.Second},
		"no timeout":   {"http://127.0.0.1:1/", "s", 0},
		"not http":     {"ftp://127.0.0.1/", "s", time.Second},
		"relative":     {"/hooks", "s", time.Second},
	} {
		if _, err := NewClient(tc.url, []byte(tc.secret), tc.timeout, nil, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzVerify: any header either verifies (only when it is what Sign made)
// or fails with one of the named errors; it never panics.
func FuzzVerify(f *testing.F) {
	f.Add("t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686", []byte(`{"a":1}`))
	f.Add("t=,v1=", []byte{})
	f.Add("v1=00,t=1", []byte("x"))
	f.Add("t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae41168g", []byte{})
	f.Add(",,,==", []byte{})
	secret := []byte("secret")
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := Verify(header, body, secret, now, MaxAge)
		if err == nil {
			p, perr := parseHeader(header)
			if perr != nil {
				t.Fatalf("verified %q that does not parse: %v", header, perr)
			}
			want := Sign(secret, time.Unix(p.t, 0), body)
			if p.ts == strconv.FormatInt(p.t, 10) && want != "t="+p.ts+",v1="+hex.EncodeToString(p.sig) {
				t.Fatalf("verified %q; Sign would have made %q", header, want)
			}
			return
		}
		for _, e := range []error{ErrMalformed, ErrExpired, ErrFuture, ErrMismatch} {
			if errors.Is(err, e) {
				return
			}
		}
		t.Fatalf("Verify(%q) = %v: not one of the named errors", header, err)
	})
}
