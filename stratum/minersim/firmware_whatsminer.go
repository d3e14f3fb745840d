package minersim

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// Whatsminer API v3 (TCP 4433): every message is a 4-byte little-endian
// length and that many bytes of JSON; one connection carries any number of
// requests. Writes carry ts, account and token = first 8 characters of
// base64(SHA-256(cmd + password + salt + ts)), salt from get.device.info.
// Replies are {"code": 0 | negative, "when", "msg", "desc"}.

const (
	// maxWMFrame bounds a request frame.
	maxWMFrame = 64 << 10
	// wmTokenWindow is how far a write's ts may be from the firmware clock.
	wmTokenWindow = 300
)

type wmRequest struct {
	Cmd     string          `json:"cmd"`
	Param   json.RawMessage `json:"param"`
	TS      int64           `json:"ts"`
	Account string          `json:"account"`
	Token   string          `json:"token"`
}

func (f *Firmware) serveWhatsminer(conn net.Conn) error {
	for {
		_ = conn.SetDeadline(f.cfg.Now().Add(apiIdle))
		var hdr [4]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read frame length: %w", err)
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n > maxWMFrame {
			return fmt.Errorf("frame of %d bytes over %d", n, maxWMFrame)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(conn, body); err != nil {
			return fmt.Errorf("read frame: %w", err)
		}
		var req wmRequest
		var reply map[string]any
		if err := json.Unmarshal(body, &req); err != nil {
			reply = f.wmError(-3, "invalid json", "")
		} else {
			reply = f.whatsminer(req)
		}
		out, err := json.Marshal(reply)
		if err != nil {
			return fmt.Errorf("encode reply: %w", err)
		}
		frame := make([]byte, 4+len(out))
		binary.LittleEndian.PutUint32(frame, uint32(len(out)))
		copy(frame[4:], out)
		if _, err := conn.Write(frame); err != nil {
			return fmt.Errorf("write reply: %w", err)
		}
	}
}

func (f *Firmware) wmError(code int, msg, cmd string) map[string]any {
	return map[string]any{"code": code, "when": f.unixNow(), "msg": msg, "desc": cmd}
}

func (f *Firmware) wmOK(msg any, cmd string) map[string]any {
	return map[string]any{"code": 0, "when": f.unixNow(), "msg": msg, "desc": cmd}
}

// wmToken is the firmware's side of the write token.
func wmToken(cmd, password, salt string, ts int64) string {
	sum := sha256.Sum256([]byte(cmd + password + salt + strconv.FormatInt(ts, 10)))
	return base64.StdEncoding.EncodeToString(sum[:])[:8]
}

func (f *Firmware) whatsminer(req wmRequest) map[string]any {
	v := f.view()
	switch req.Cmd {
	case "get.device.info":
		working := "true"
		if v.sleeping {
			working = "false"
		}
		return f.wmOK(map[string]any{
			"salt":   f.salt,
			"miner":  map[string]any{"working": working, "type": v.modelName},
			"system": map[string]any{"api": "3.0.1"},
		}, req.Cmd)
	case "get.miner.status":
		var param string
		_ = json.Unmarshal(req.Param, &param)
		if param != "summary" {
			return f.wmError(-1, "unsupported param", req.Cmd)
		}
		return f.wmOK(map[string]any{"summary": map[string]any{
			"elapsed": 0, "hash-realtime": v.ths, "hash-average": v.ths,
			"factory-hash": v.nominalTHs, "power-realtime": v.watts,
		}}, req.Cmd)
	case "set.miner.service":
		now := f.unixNow()
		pw := f.cfg.Password
		if f.faulty(FaultWrongPassword) {
			pw = "\x00not-the-password"
		}
		if req.Account != f.cfg.User || req.TS < now-wmTokenWindow || req.TS > now+wmTokenWindow ||
			req.Token != wmToken(req.Cmd, pw, f.salt, req.TS) {
			return f.wmError(-4, "permission denied: invalid token", req.Cmd)
		}
		var param string
		_ = json.Unmarshal(req.Param, &param)
		switch param {
		case "stop":
			f.setSleep(true)
		case "start":
			f.setSleep(false)
		default:
			return f.wmError(-1, "invalid param", req.Cmd)
		}
		return f.wmOK("ok", req.Cmd)
	}
	return f.wmError(-2, "invalid command", req.Cmd)
}
