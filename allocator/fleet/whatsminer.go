package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// Whatsminer drives MicroBT firmware through API v3 on TCP 4433. Every
// message, both ways, is a 4-byte little-endian length followed by that
// many bytes of JSON. Reads are {"cmd": C, "param": P}; writes add "ts"
// (unix seconds), "account" (user, "super" by default) and "token", the
// first 8 characters of base64(SHA-256(cmd + password + salt + ts)), where
// salt comes from get.device.info's msg.salt. Replies are {"code": 0 on
// success, "when": ..., "msg": object or error string}. Curtail sends
// set.miner.service "stop", Resume "start"; Status reads get.device.info
// (msg.miner.working "true"/"false") and get.miner.status "summary"
// (msg.summary["hash-realtime"] in TH/s, ["power-realtime"] in W).
//
// Sources: MicroBT's "WhatsMiner API V3" document as implemented by
// community clients found with the search tool (a Go client whose framing,
// token and get/set shapes are the above; Rust and Python readers of
// msg.summary). What could not be verified without the vendor document or a
// machine: the exact negative codes (this driver treats any non-zero code
// on a write whose message mentions a token, permission or password, or
// code -4, as ErrAuth, and other non-zero codes as ErrRefused), whether
// the token window tolerates clock skew, and whether one connection may
// carry several requests (we send get.device.info and the write on one
// connection, as the Go client does).
type Whatsminer struct{ opts DriverOptions }

// Name is "whatsminer".
func (*Whatsminer) Name() string { return "whatsminer" }

// CanCurtail is true: the mining service can be stopped.
func (*Whatsminer) CanCurtail() bool { return true }

// wmReply is one API v3 reply.
type wmReply struct {
	Code *int            `json:"code"`
	Msg  json.RawMessage `json:"msg"`
}

// wmConn is one API v3 connection.
type wmConn struct {
	conn net.Conn
	ctx  context.Context
	max  int64
}

func (d *Whatsminer) open(ctx context.Context, m Miner) (*wmConn, func(), error) {
	conn, err := dial(ctx, m.Address)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	return &wmConn{conn: conn, ctx: ctx, max: d.opts.MaxReplyBytes}, func() { stop(); conn.Close() }, nil
}

// call writes one framed request and reads one framed reply.
func (c *wmConn) call(req map[string]any) (wmReply, error) {
	cmd, _ := req["cmd"].(string)
	body, err := json.Marshal(req)
	if err != nil {
		return wmReply{}, fmt.Errorf("%s: encode: %w", cmd, err)
	}
	frame := make([]byte, 4+len(body))
	binary.LittleEndian.PutUint32(frame, uint32(len(body)))
	copy(frame[4:], body)
	if _, err := c.conn.Write(frame); err != nil {
		return wmReply{}, fmt.Errorf("%s: send: %w", cmd, ioErr(c.ctx, err))
	}
	raw, err := readFrame(c.conn, c.max)
	if err != nil {
		return wmReply{}, fmt.Errorf("%s: read reply: %w", cmd, ioErr(c.ctx, err))
	}
	r, err := parseWMReply(raw)
	if err != nil {
		return wmReply{}, fmt.Errorf("%s: %w", cmd, err)
	}
	return r, nil
}

// readFrame reads a 4-byte little-endian length and that many bytes.
func readFrame(r io.Reader, max int64) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: connection closed before a length prefix", ErrBadReply)
		}
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if int64(n) > max {
		return nil, fmt.Errorf("%w: length prefix %d over %d bytes", ErrBadReply, n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: connection closed inside a %d-byte reply", ErrBadReply, n)
		}
		return nil, err
	}
	return buf, nil
}

func parseWMReply(raw []byte) (wmReply, error) {
	var r wmReply
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("%w: not a JSON object: %w (%s)", ErrBadReply, err, snippet(raw))
	}
	if r.Code == nil {
		return r, fmt.Errorf("%w: no code (%s)", ErrBadReply, snippet(raw))
	}
	return r, nil
}

// msgString returns msg when it is a string (error replies).
func (r wmReply) msgString() string {
	var s string
	if json.Unmarshal(r.Msg, &s) == nil {
		return clip(s)
	}
	return clip(string(r.Msg))
}

// deviceInfo is the part of get.device.info this driver reads.
type deviceInfo struct {
	Salt  string `json:"salt"`
	Miner struct {
		Working *string `json:"working"`
	} `json:"miner"`
}

func (c *wmConn) deviceInfo() (deviceInfo, error) {
	r, err := c.call(map[string]any{"cmd": "get.device.info"})
	if err != nil {
		return deviceInfo{}, err
	}
	if *r.Code != 0 {
		return deviceInfo{}, fmt.Errorf("get.device.info: %w: code %d %q", ErrRefused, *r.Code, r.msgString())
	}
	var di deviceInfo
	if err := json.Unmarshal(r.Msg, &di); err != nil {
		return deviceInfo{}, fmt.Errorf("get.device.info: %w: msg is not an object (%s)", ErrBadReply, snippet(r.Msg))
	}
	return di, nil
}

// Status reads get.device.info and get.miner.status summary.
func (d *Whatsminer) Status(ctx context.Context, m Miner) (MinerState, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	c, done, err := d.open(ctx, m)
	if err != nil {
		return MinerState{}, err
	}
	defer done()
	di, err := c.deviceInfo()
	if err != nil {
		return MinerState{}, err
	}
	r, err := c.call(map[string]any{"cmd": "get.miner.status", "param": "summary"})
	if err != nil {
		return MinerState{}, err
	}
	if *r.Code != 0 {
		return MinerState{}, fmt.Errorf("get.miner.status: %w: code %d %q", ErrRefused, *r.Code, r.msgString())
	}
	return parseWMStatus(di, r.Msg)
}

// parseWMStatus combines device info and the summary into a state.
func parseWMStatus(di deviceInfo, msg json.RawMessage) (MinerState, error) {
	var s struct {
		Summary *struct {
			Hash  *number `json:"hash-realtime"`
			Power *number `json:"power-realtime"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(msg, &s); err != nil || s.Summary == nil {
		return MinerState{}, fmt.Errorf("get.miner.status: %w: no msg.summary (%s)", ErrBadReply, snippet(msg))
	}
	if s.Summary.Hash == nil {
		return MinerState{}, fmt.Errorf("get.miner.status: %w: no hash-realtime", ErrBadReply)
	}
	st := MinerState{HashrateTHs: float64(*s.Summary.Hash)}
	if err := nonNeg("hash-realtime", st.HashrateTHs); err != nil {
		return MinerState{}, fmt.Errorf("get.miner.status: %w", err)
	}
	if s.Summary.Power != nil {
		st.PowerW, st.HasPower = float64(*s.Summary.Power), true
		if err := nonNeg("power-realtime", st.PowerW); err != nil {
			return MinerState{}, fmt.Errorf("get.miner.status: %w", err)
		}
	}
	switch {
	case di.Miner.Working != nil && strings.EqualFold(*di.Miner.Working, "false"):
		st.State = StateSleeping
	case di.Miner.Working != nil && strings.EqualFold(*di.Miner.Working, "true"):
		st.State = StateMining
	case st.HashrateTHs > 0:
		st.State = StateMining
	default:
		st.State = StateUnknown
	}
	return st, nil
}

// Token computes the API v3 write token: the first 8 characters of
// base64(SHA-256(cmd + password + salt + ts)).
func Token(cmd, password, salt string, ts int64) string {
	sum := sha256.Sum256([]byte(cmd + password + salt + strconv.FormatInt(ts, 10)))
	return base64.StdEncoding.EncodeToString(sum[:])[:8]
}

// Curtail sends set.miner.service stop.
func (d *Whatsminer) Curtail(ctx context.Context, m Miner) error { return d.service(ctx, m, "stop") }

// Resume sends set.miner.service start.
func (d *Whatsminer) Resume(ctx context.Context, m Miner) error { return d.service(ctx, m, "start") }

func (d *Whatsminer) service(ctx context.Context, m Miner, param string) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	c, done, err := d.open(ctx, m)
	if err != nil {
		return err
	}
	defer done()
	di, err := c.deviceInfo()
	if err != nil {
		return err
	}
	if di.Salt == "" {
		return fmt.Errorf("get.device.info: %w: no salt to sign with", ErrBadReply)
	}
	account := m.User
	if account == "" {
		account = "super"
	}
	const cmd = "set.miner.service"
	ts := d.opts.Now().Unix()
	r, err := c.call(map[string]any{"cmd": cmd, "param": param, "ts": ts, "account": account,
		"token": Token(cmd, m.Password(), di.Salt, ts)})
	if err != nil {
		return err
	}
	if *r.Code == 0 {
		return nil
	}
	msg := r.msgString()
	lower := strings.ToLower(msg)
	if *r.Code == -4 || strings.Contains(lower, "token") || strings.Contains(lower, "permission") || strings.Contains(lower, "password") {
		return fmt.Errorf("%s %s: %w: code %d %q (account %q)", cmd, param, ErrAuth, *r.Code, msg, account)
	}
	return fmt.Errorf("%s %s: %w: code %d %q", cmd, param, ErrRefused, *r.Code, msg)
}
