package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// cgminer-style API (LuxOS and cgminer on TCP 4028): the client sends one
// JSON object {"command": C, "parameter": P}; the server answers one JSON
// object, often followed by a NUL byte, and closes the connection. Every
// reply starts with a STATUS array whose first entry has STATUS one of
// S (success), I (info), W (warning), E (error), F (fatal), a numeric Code
// and a Msg (cgminer API-README; pyasic pyasic/rpc/base.py strips the NUL).

// cgStatus is the first STATUS entry of a reply.
type cgStatus struct {
	Status string `json:"STATUS"`
	Code   int    `json:"Code"`
	Msg    string `json:"Msg"`
}

// cgReply is one parsed reply: its status and every other top-level
// section, undecoded.
type cgReply struct {
	status   cgStatus
	sections map[string]json.RawMessage
}

// ok reports a success, info or warning status.
func (r cgReply) ok() bool {
	return r.status.Status == "S" || r.status.Status == "I" || r.status.Status == "W"
}

// cgCall sends one command and reads its reply on a fresh connection.
func cgCall(ctx context.Context, addr, command, parameter string, maxReply int64) (cgReply, error) {
	raw, err := cgRoundTrip(ctx, addr, command, parameter, maxReply)
	if err != nil {
		return cgReply{}, err
	}
	r, err := parseCGReply(raw)
	if err != nil {
		return cgReply{}, fmt.Errorf("%s: %w", command, err)
	}
	return r, nil
}

func cgRoundTrip(ctx context.Context, addr, command, parameter string, maxReply int64) ([]byte, error) {
	req := map[string]string{"command": command}
	if parameter != "" {
		req["parameter"] = parameter
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%s: encode request: %w", command, err)
	}
	conn, err := dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", command, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write(body); err != nil {
		return nil, fmt.Errorf("%s: send: %w", command, ioErr(ctx, err))
	}
	raw, err := readUntilNUL(conn, maxReply)
	if err != nil {
		return nil, fmt.Errorf("%s: read reply: %w", command, ioErr(ctx, err))
	}
	return raw, nil
}

// dial opens a TCP connection within ctx; every failure is ErrUnreachable.
func dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrUnreachable, addr, err)
	}
	return conn, nil
}

// ioErr classifies a read or write failure: a deadline or a cancelled
// context is a miner that did not answer in time (ErrUnreachable); a
// reply that ended early or overflowed was already wrapped as ErrBadReply.
func ioErr(ctx context.Context, err error) error {
	if errors.Is(err, ErrBadReply) {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: no answer before the deadline: %w", ErrUnreachable, ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: no answer before the deadline: %w", ErrUnreachable, err)
	}
	return fmt.Errorf("%w: %w", ErrUnreachable, err)
}

// readUntilNUL reads a reply that ends with a NUL byte or the server
// closing the connection, up to max bytes.
func readUntilNUL(r io.Reader, max int64) ([]byte, error) {
	var buf bytes.Buffer
	chunk := make([]byte, 4096)
	for {
		n, err := r.Read(chunk)
		if n > 0 {
			if i := bytes.IndexByte(chunk[:n], 0); i >= 0 {
				buf.Write(chunk[:i])
				return buf.Bytes(), nil
			}
			buf.Write(chunk[:n])
			if int64(buf.Len()) > max {
				return nil, fmt.Errorf("%w: reply over %d bytes", ErrBadReply, max)
			}
		}
		if errors.Is(err, io.EOF) {
			if buf.Len() == 0 {
				return nil, fmt.Errorf("%w: connection closed without a reply", ErrBadReply)
			}
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// parseCGReply validates and splits one cgminer-style reply.
func parseCGReply(raw []byte) (cgReply, error) {
	raw = bytes.TrimRight(raw, "\x00 \t\r\n")
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return cgReply{}, fmt.Errorf("%w: not a JSON object: %w (%s)", ErrBadReply, err, snippet(raw))
	}
	st, ok := top["STATUS"]
	if !ok {
		return cgReply{}, fmt.Errorf("%w: no STATUS section (%s)", ErrBadReply, snippet(raw))
	}
	var sts []cgStatus
	if err := json.Unmarshal(st, &sts); err != nil || len(sts) == 0 {
		return cgReply{}, fmt.Errorf("%w: STATUS is not a non-empty array (%s)", ErrBadReply, snippet(st))
	}
	switch sts[0].Status {
	case "S", "I", "W", "E", "F":
	default:
		return cgReply{}, fmt.Errorf("%w: STATUS %q is none of S, I, W, E, F", ErrBadReply, sts[0].Status)
	}
	delete(top, "STATUS")
	return cgReply{status: sts[0], sections: top}, nil
}

// section decodes the first entry of an array section such as SUMMARY.
func (r cgReply) first(name string, into any) error {
	raw, ok := r.sections[name]
	if !ok {
		return fmt.Errorf("%w: no %s section", ErrBadReply, name)
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(raw, &arr); err != nil || len(arr) == 0 {
		return fmt.Errorf("%w: %s is not a non-empty array (%s)", ErrBadReply, name, snippet(raw))
	}
	if err := json.Unmarshal(arr[0], into); err != nil {
		return fmt.Errorf("%w: %s[0]: %w", ErrBadReply, name, err)
	}
	return nil
}

// statusErr turns an E or F status into an error of the given kind.
func (r cgReply) statusErr(command string, kind error) error {
	return fmt.Errorf("%w: %s: firmware answered %s code %d %q", kind, command, r.status.Status, r.status.Code, clip(r.status.Msg))
}

// snippet shows the start of a bad reply in an error, bounded.
func snippet(b []byte) string {
	const n = 64
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "…"
	}
	return strconv.Quote(string(b))
}

func clip(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return s
}

// number reads a JSON number that firmware may also send as a string.
type number float64

// UnmarshalJSON accepts 12.5 and "12.5"; anything else is an error.
func (n *number) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", snippet(b))
	}
	*n = number(v)
	return nil
}

// nonNeg rejects NaN, infinities and negatives in a reported figure.
func nonNeg(name string, v float64) error {
	if v != v || v < 0 || v > 1e12 {
		return fmt.Errorf("%w: %s %v out of range", ErrBadReply, name, v)
	}
	return nil
}

// callTimeoutDefault bounds a driver call when the caller's context has no
// deadline: a miner that never answers must not hold a worker forever.
const callTimeoutDefault = 10 * time.Second

// bounded gives ctx a deadline when it has none.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, callTimeoutDefault)
}
