// Package webhook signs, verifies and sends wattpool's outgoing webhooks.
//
// Every webhook wattpool sends (allocator decisions now, block and health
// notifications later) carries one pinned signature so that a receiver can
// check it came from the pool and is fresh:
//
//	X-Wattpool-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
//
// The secret is shared out of band (wattpool reads it from an environment
// variable). Receivers reject a t older than five minutes, so a captured
// request cannot be replayed later, and one too far in the future, so a
// sender with a wrong clock is noticed instead of minting long-lived
// requests.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
)

// Header is the request header that carries the signature.
const Header = "X-Wattpool-Signature"

// MaxAge is how old a signature's t may be before receivers reject it
// (the pinned replay window).
const MaxAge = 5 * time.Minute

// MaxFuture is how far ahead of the receiver's clock a t may be: a little
// clock skew is normal, a signature from the future is not.
const MaxFuture = time.Minute

// maxHeaderLen bounds what Verify parses: a valid header is about 80 bytes.
const maxHeaderLen = 512

// Errors Verify returns (wrapped with detail), so receivers can count
// rejections by cause.
var (
	ErrMalformed = errors.New("malformed signature header")
	ErrExpired   = errors.New("signature too old")
	ErrFuture    = errors.New("signature from the future")
	ErrMismatch  = errors.New("signature does not match")
)

// Sign returns the header value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// parsed is a header's fields.
type parsed struct {
	ts  string // the digits, exactly as sent: the MAC covers them
	t   int64
	sig []byte
}

// parseHeader splits "t=<digits>,v1=<64 hex>". It is strict: each key once,
// nothing else, so two parsers (ours and a receiver's) cannot disagree on
// what was signed.
func parseHeader(header string) (parsed, error) {
	var p parsed
	if len(header) > maxHeaderLen {
		return p, fmt.Errorf("%w: %d bytes, want at most %d", ErrMalformed, len(header), maxHeaderLen)
	}
	var haveT, haveV1 bool
	for i, part := range strings.Split(header, ",") {
		key, val, ok := strings.Cut(part, "=")
		if !ok {
			return p, fmt.Errorf("%w: part %d %q has no '='", ErrMalformed, i+1, clip(part))
		}
		switch key {
		case "t":
			if haveT {
				return p, fmt.Errorf("%w: t given twice", ErrMalformed)
			}
			haveT = true
			if val == "" || len(val) > 19 || strings.Trim(val, "0123456789") != "" {
				return p, fmt.Errorf("%w: t %q is not unix seconds", ErrMalformed, clip(val))
			}
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return p, fmt.Errorf("%w: t %q: %v", ErrMalformed, clip(val), err)
			}
			p.ts, p.t = val, n
		case "v1":
			if haveV1 {
				return p, fmt.Errorf("%w: v1 given twice", ErrMalformed)
			}
			haveV1 = true
			if len(val) != 2*sha256.Size {
				return p, fmt.Errorf("%w: v1 has %d hex digits, want %d", ErrMalformed, len(val), 2*sha256.Size)
			}
			sig, err := hex.DecodeString(val)
			if err != nil {
				return p, fmt.Errorf("%w: v1: %v", ErrMalformed, err)
			}
			p.sig = sig
		default:
			return p, fmt.Errorf("%w: unknown key %q", ErrMalformed, clip(key))
		}
	}
	if !haveT {
		return p, fmt.Errorf("%w: no t", ErrMalformed)
	}
	if !haveV1 {
		return p, fmt.Errorf("%w: no v1", ErrMalformed)
	}
	return p, nil
}

// Verify checks a received header against body: well formed, t no older
// than maxAge (MaxAge for the pinned window) and no more than MaxFuture
// ahead of now, and the MAC right (compared in constant time).
func Verify(header string, body, secret []byte, now time.Time, maxAge time.Duration) error {
	p, err := parseHeader(header)
	if err != nil {
		return err
	}
	t := time.Unix(p.t, 0)
	if age := now.Sub(t); age > maxAge {
		return fmt.Errorf("%w: t=%d is %v old, limit %v", ErrExpired, p.t, age.Truncate(time.Second), maxAge)
	}
	if ahead := t.Sub(now); ahead > MaxFuture {
		return fmt.Errorf("%w: t=%d is %v ahead of this clock, limit %v", ErrFuture, p.t, ahead.Truncate(time.Second), MaxFuture)
	}
	if !hmac.Equal(p.sig, mac(secret, p.ts, body)) {
		return ErrMismatch
	}
	return nil
}

// clip bounds what an error quotes of outside input.
func clip(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	return clipTo(s, n) + "…"
}

// Client POSTs signed JSON documents to one receiver.
type Client struct {
	url     string
	display string // url without its query, which may hold a token: what errors and logs show
	secret  []byte
	http    *http.Client
	now     func() time.Time
	log     *zap.Logger
}

// maxSnippet bounds how much of a failed reply an error quotes.
const maxSnippet = 256

// NewClient returns a client for url. timeout bounds each request (the
// whole exchange, body included); now is the clock the signature's t comes
// from (time.Now when nil). The secret is kept only to sign: it is never
// logged nor put in an error.
func NewClient(rawURL string, secret []byte, timeout time.Duration, now func() time.Time, log *zap.Logger) (*Client, error) {
	if len(secret) == 0 {
		return nil, errors.New("webhook: empty secret")
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("webhook: timeout %v, want > 0", timeout)
	}
	u, err := neturl.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhook: url is not an absolute http(s) URL")
	}
	display := (&neturl.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Client{
		url:     rawURL,
		display: display,
		secret:  bytes.Clone(secret),
		http:    &http.Client{Timeout: timeout},
		now:     now,
		log:     log,
	}, nil
}

// URL is the receiver's address without its query (safe to log).
func (c *Client) URL() string { return c.display }

// Post sends body (a JSON document) signed at the client's now. A reply
// outside 2xx is an error that quotes the status and the start of the
// reply, so an operator sees the receiver's complaint.
func (c *Client) Post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w", c.display, scrub(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(Header, Sign(c.secret, c.now(), body))
	start := time.Now()
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", c.display, scrub(err))
	}
	defer res.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(res.Body, maxSnippet+1))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) // let the connection be reused
	if res.StatusCode < 200 || res.StatusCode > 299 {
		s := string(snippet)
		if len(snippet) > maxSnippet {
			s = clipTo(s, maxSnippet) + "…"
		}
		return fmt.Errorf("webhook %s: status %d: %q", c.display, res.StatusCode, strings.TrimSpace(s))
	}
	c.log.Debug("webhook delivered", zap.String("url", c.display), zap.Int("status", res.StatusCode),
		zap.Int("bytes", len(body)), zap.Duration("took", time.Since(start)))
	return nil
}

// scrub drops the URL (and any token in its query) from a *url.Error,
// keeping the cause; a timeout stays recognisable (net.Error).
func scrub(err error) error {
	var ue *neturl.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("no reply within the timeout (Client.Timeout exceeded): %w", ue.Err)
		}
		return ue.Err
	}
	return err
}

func clipTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) && len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s
}
