package minersim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// The cgminer API as LuxOS and cgminer speak it on TCP 4028: one JSON
// request {"command", "parameter"} per connection, one JSON reply followed
// by a NUL byte, then the server closes. Replies start with a STATUS array
// (STATUS S/I/W/E/F, When, Code, Msg, Description); cgminer's code 14 is
// "Invalid command".

// maxAPIRequest bounds a request: commands are a few dozen bytes.
const maxAPIRequest = 8 << 10

// apiIdle bounds how long a connection may take to send its request.
const apiIdle = 10 * time.Second

type cgRequest struct {
	Command   string `json:"command"`
	Parameter string `json:"parameter"`
}

func (f *Firmware) serveCGMiner(conn net.Conn) error {
	_ = conn.SetDeadline(f.cfg.Now().Add(apiIdle))
	var req cgRequest
	dec := json.NewDecoder(io.LimitReader(conn, maxAPIRequest))
	var reply map[string]any
	if err := dec.Decode(&req); err != nil {
		reply = f.cgStatus("E", 23, "Invalid JSON")
	} else if f.cfg.Kind == FirmwareLuxOS {
		reply = f.luxos(req)
	} else {
		reply = f.cgminer(req)
	}
	b, err := json.Marshal(reply)
	if err != nil {
		return fmt.Errorf("encode reply: %w", err)
	}
	b = append(b, 0)
	if _, err := conn.Write(b); err != nil {
		return fmt.Errorf("write reply: %w", err)
	}
	return nil
}

// cgStatus is a reply with only its STATUS section.
func (f *Firmware) cgStatus(status string, code int, msg string) map[string]any {
	desc := "cgminer 4.11.1"
	if f.cfg.Kind == FirmwareLuxOS {
		desc = "LUXminer 2024.5.1.155432-minersim"
	}
	return map[string]any{
		"STATUS": []map[string]any{{"STATUS": status, "When": f.unixNow(), "Code": code, "Msg": msg, "Description": desc}},
		"id":     1,
	}
}

func (f *Firmware) with(reply map[string]any, section string, v any) map[string]any {
	reply[section] = []any{v}
	return reply
}

// cgminer answers the read-only commands of stock cgminer.
func (f *Firmware) cgminer(req cgRequest) map[string]any {
	v := f.view()
	switch req.Command {
	case "summary":
		return f.with(f.cgStatus("S", 11, "Summary"), "SUMMARY", map[string]any{
			"Elapsed": 0, "MHS av": v.ths * 1e6, "MHS 5s": v.ths * 1e6,
			"Accepted": v.accepted, "Rejected": v.rejected, "Hardware Errors": 0,
		})
	case "devs":
		status := "Alive"
		if v.ths == 0 {
			status = "Dead"
		}
		return f.with(f.cgStatus("S", 9, "1 ASC(s)"), "DEVS", map[string]any{
			"ASC": 0, "Name": "BTM", "ID": 0, "Enabled": "Y", "Status": status, "MHS 5s": v.ths * 1e6,
		})
	case "version":
		return f.with(f.cgStatus("S", 22, "CGMiner versions"), "VERSION", map[string]any{"CGMiner": "4.11.1", "API": "3.7"})
	}
	return f.cgStatus("E", 14, "Invalid command")
}

// luxos answers LuxOS's session, curtail and read commands.
func (f *Firmware) luxos(req cgRequest) map[string]any {
	switch req.Command {
	case "logon":
		if f.faulty(FaultWrongPassword) {
			return f.cgStatus("E", 45, "Access denied to 'logon' command")
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.session != "" {
			return f.cgStatus("E", 402, "Another session is active")
		}
		sid, err := randomToken(8)
		if err != nil {
			return f.cgStatus("E", 1, "internal error")
		}
		f.session = sid
		return f.with(f.cgStatus("S", 400, "Session created"), "SESSION", map[string]any{"SessionID": sid})
	case "session":
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.with(f.cgStatus("S", 404, "Session info"), "SESSION", map[string]any{"SessionID": f.session})
	case "logoff":
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.session == "" || req.Parameter != f.session {
			return f.cgStatus("E", 403, "Invalid session id")
		}
		f.session = ""
		return f.cgStatus("S", 401, "Session closed")
	case "curtail":
		sid, mode, _ := strings.Cut(req.Parameter, ",")
		f.mu.Lock()
		valid := f.session != "" && sid == f.session
		f.mu.Unlock()
		if !valid {
			return f.cgStatus("E", 403, "Invalid session id")
		}
		switch mode {
		case "sleep":
			f.setSleep(true)
			return f.cgStatus("S", 312, "Curtail sleep")
		case "wakeup":
			f.setSleep(false)
			return f.cgStatus("S", 312, "Curtail wakeup")
		}
		return f.cgStatus("E", 311, "Invalid curtail mode")
	case "config":
		v := f.view()
		mode := "None"
		if v.sleeping {
			mode = "Sleep"
		}
		return f.with(f.cgStatus("S", 33, "Config"), "CONFIG", map[string]any{
			"CurtailMode": mode, "Profile": "default", "IsAtmEnabled": false, "Model": v.modelName,
		})
	case "summary":
		v := f.view()
		return f.with(f.cgStatus("S", 11, "Summary"), "SUMMARY", map[string]any{
			"Elapsed": 0, "GHS 5s": v.ths * 1e3, "GHS av": v.ths * 1e3, "Accepted": v.accepted, "Rejected": v.rejected,
		})
	case "power":
		v := f.view()
		return f.with(f.cgStatus("S", 336, "Power"), "POWER", map[string]any{"Watts": v.watts, "PSU": true})
	case "version":
		return f.with(f.cgStatus("S", 22, "LUXminer versions"), "VERSION", map[string]any{"API": "3.7", "LUXminer": "2024.5.1.155432-minersim"})
	}
	return f.cgStatus("E", 14, "Invalid command")
}

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
