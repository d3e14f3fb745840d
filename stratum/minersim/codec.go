package minersim

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// maxLineBytes bounds one server line. A mining.notify for a full block
// (coinbase plus ~13 merkle branch hashes) is under 4 KiB; anything near
// this limit is a broken or hostile server.
const maxLineBytes = 64 << 10

// Server notification methods the client understands.
const (
	methodNotify         = "mining.notify"
	methodSetDifficulty  = "mining.set_difficulty"
	methodSetVersionMask = "mining.set_version_mask"
	methodSetExtranonce  = "mining.set_extranonce"
	methodReconnect      = "client.reconnect"
	methodShowMessage    = "client.show_message"
	methodGetVersion     = "client.get_version"
)

// errNotAMessage is wrapped by every parse error of a server line.
var errNotAMessage = errors.New("invalid stratum message")

// rpcError is a JSON-RPC error as Stratum v1 servers send it: either the
// classic array [code, "message", traceback] or an object
// {"code": c, "message": m}.
type rpcError struct {
	Code    int
	Message string
}

// String renders "code message", the key rejects are counted under.
func (e *rpcError) String() string {
	return strconv.Itoa(e.Code) + " " + e.Message
}

// serverMsg is one parsed line from the server: a response to one of our
// requests (IsResponse) or a notification/request with a method.
type serverMsg struct {
	// ID is the numeric id; HasID is false for null or missing ids.
	ID    uint64
	HasID bool
	// Method is set for notifications and server requests.
	Method string
	// Params holds the raw params of a notification.
	Params json.RawMessage
	// Result is the raw result of a response; Err is nil on success.
	Result json.RawMessage
	Err    *rpcError
}

// IsResponse reports whether the line answers a request of ours.
func (m *serverMsg) IsResponse() bool { return m.Method == "" }

// rawMsg is the wire shape of any JSON-RPC line.
type rawMsg struct {
	ID           json.RawMessage `json:"id"`
	Method       *string         `json:"method"`
	Params       json.RawMessage `json:"params"`
	Result       json.RawMessage `json:"result"`
	Error        json.RawMessage `json:"error"`
	RejectReason *string         `json:"reject-reason"`
}

// parseLine parses one newline-free server line. It never panics on any
// input; every failure wraps errNotAMessage.
func parseLine(line []byte) (serverMsg, error) {
	var msg serverMsg
	line = bytes.TrimSpace(line)
	if id, ok := parseAcceptedFast(line); ok {
		return serverMsg{ID: id, HasID: true, Result: trueResult}, nil
	}
	if len(line) == 0 || line[0] != '{' {
		return msg, fmt.Errorf("%w: not a JSON object", errNotAMessage)
	}
	var raw rawMsg
	if err := json.Unmarshal(line, &raw); err != nil {
		return msg, fmt.Errorf("%w: %w", errNotAMessage, err)
	}
	id, hasID, err := parseID(raw.ID)
	if err != nil {
		return msg, err
	}
	msg.ID, msg.HasID = id, hasID
	if raw.Method != nil {
		if *raw.Method == "" {
			return msg, fmt.Errorf("%w: empty method", errNotAMessage)
		}
		msg.Method = *raw.Method
		msg.Params = raw.Params
		return msg, nil
	}
	if !hasID {
		return msg, fmt.Errorf("%w: response without a numeric id", errNotAMessage)
	}
	msg.Result = raw.Result
	e, err := parseRPCError(raw.Error)
	if err != nil {
		return msg, err
	}
	if e == nil && raw.RejectReason != nil && isFalse(raw.Result) {
		// Some pools answer a rejected submit with result false and a
		// separate "reject-reason" member instead of an error.
		e = &rpcError{Code: 20, Message: *raw.RejectReason}
	}
	msg.Err = e
	return msg, nil
}

// parseID accepts a non-negative integer id, null or a missing id. Our
// requests carry numeric ids, so a string id can only be the server's own
// request or garbage; both are treated as "no id we know".
func parseID(raw json.RawMessage) (uint64, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	if raw[0] == '"' {
		return 0, false, nil
	}
	id, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%w: id %.20s is not a non-negative integer", errNotAMessage, raw)
	}
	return id, true, nil
}

// parseRPCError decodes the error member; null or absent means no error.
func parseRPCError(raw json.RawMessage) (*rpcError, error) {
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "false" {
		return nil, nil
	}
	switch raw[0] {
	case '[':
		var parts []json.RawMessage
		if err := json.Unmarshal(raw, &parts); err != nil {
			return nil, fmt.Errorf("%w: error array: %w", errNotAMessage, err)
		}
		e := &rpcError{Code: 20}
		if len(parts) > 0 {
			var c float64
			if json.Unmarshal(parts[0], &c) == nil && c == math.Trunc(c) && math.Abs(c) < 1e9 {
				e.Code = int(c)
			}
		}
		if len(parts) > 1 {
			var s string
			if json.Unmarshal(parts[1], &s) == nil {
				e.Message = s
			}
		}
		return e, nil
	case '{':
		var obj struct {
			Code    *float64 `json:"code"`
			Message string   `json:"message"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("%w: error object: %w", errNotAMessage, err)
		}
		e := &rpcError{Code: 20, Message: obj.Message}
		if obj.Code != nil && *obj.Code == math.Trunc(*obj.Code) && math.Abs(*obj.Code) < 1e9 {
			e.Code = int(*obj.Code)
		}
		return e, nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%w: error string: %w", errNotAMessage, err)
		}
		return &rpcError{Code: 20, Message: s}, nil
	default:
		return &rpcError{Code: 20, Message: "error " + truncate(string(raw), 40)}, nil
	}
}

func isFalse(raw json.RawMessage) bool { return string(raw) == "false" }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// notifyParams is mining.notify's params in wire order: job id, prevhash
// (word-swapped hex), coinb1, coinb2, merkle branch, version, nbits, ntime
// (big-endian hex) and clean_jobs.
type notifyParams struct {
	JobID, PrevHash, Coinb1, Coinb2 string
	MerkleBranch                    []string
	Version, NBits, NTime           string
	CleanJobs                       bool
}

// parseNotifyParams checks the shape and types of mining.notify params; the
// hex content is validated by work.ParseNotify.
func parseNotifyParams(raw json.RawMessage) (notifyParams, error) {
	var n notifyParams
	var p []json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil {
		return n, fmt.Errorf("%w: mining.notify params: %w", errNotAMessage, err)
	}
	if len(p) < 9 {
		return n, fmt.Errorf("%w: mining.notify has %d params, want 9", errNotAMessage, len(p))
	}
	strs := []*string{&n.JobID, &n.PrevHash, &n.Coinb1, &n.Coinb2}
	for i, dst := range strs {
		if err := json.Unmarshal(p[i], dst); err != nil {
			return n, fmt.Errorf("%w: mining.notify param %d: %w", errNotAMessage, i, err)
		}
	}
	if err := json.Unmarshal(p[4], &n.MerkleBranch); err != nil {
		return n, fmt.Errorf("%w: mining.notify merkle branch: %w", errNotAMessage, err)
	}
	for i, dst := range []*string{&n.Version, &n.NBits, &n.NTime} {
		if err := json.Unmarshal(p[5+i], dst); err != nil {
			return n, fmt.Errorf("%w: mining.notify param %d: %w", errNotAMessage, 5+i, err)
		}
	}
	if err := json.Unmarshal(p[8], &n.CleanJobs); err != nil {
		return n, fmt.Errorf("%w: mining.notify clean_jobs: %w", errNotAMessage, err)
	}
	if n.JobID == "" {
		return n, fmt.Errorf("%w: mining.notify with an empty job id", errNotAMessage)
	}
	return n, nil
}

// parseSetDifficulty returns the positive, finite difficulty in
// mining.set_difficulty params.
func parseSetDifficulty(raw json.RawMessage) (float64, error) {
	var p []float64
	if err := json.Unmarshal(raw, &p); err != nil || len(p) < 1 {
		return 0, fmt.Errorf("%w: mining.set_difficulty params %.40s", errNotAMessage, raw)
	}
	d := p[0]
	if math.IsNaN(d) || math.IsInf(d, 0) || d <= 0 {
		return 0, fmt.Errorf("%w: mining.set_difficulty %v: must be finite and > 0", errNotAMessage, d)
	}
	return d, nil
}

// parseMask decodes a BIP310 TMask: exactly 8 hex digits, any case.
func parseMask(s string) (uint32, error) {
	if len(s) != 8 {
		return 0, fmt.Errorf("%w: version mask %q: want 8 hex digits", errNotAMessage, truncate(s, 20))
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: version mask %q: %w", errNotAMessage, s, err)
	}
	return uint32(v), nil
}

// parseSetVersionMask returns the mask in mining.set_version_mask params.
func parseSetVersionMask(raw json.RawMessage) (uint32, error) {
	var p []string
	if err := json.Unmarshal(raw, &p); err != nil || len(p) < 1 {
		return 0, fmt.Errorf("%w: mining.set_version_mask params %.40s", errNotAMessage, raw)
	}
	return parseMask(p[0])
}

// maxExtranonceBytes bounds extranonce1 and extranonce2 sizes we accept.
const maxExtranonceBytes = 16

// parseExtranonce validates an extranonce1 hex string and extranonce2 size
// as subscribe results and mining.set_extranonce carry them.
func parseExtranonce(en1Hex json.RawMessage, en2Size json.RawMessage) ([]byte, int, error) {
	var s string
	if err := json.Unmarshal(en1Hex, &s); err != nil {
		return nil, 0, fmt.Errorf("%w: extranonce1 is not a string", errNotAMessage)
	}
	en1, err := hex.DecodeString(s)
	if err != nil || len(en1) > maxExtranonceBytes {
		return nil, 0, fmt.Errorf("%w: extranonce1 %q: want up to %d bytes of hex", errNotAMessage, truncate(s, 40), maxExtranonceBytes)
	}
	var size float64
	if err := json.Unmarshal(en2Size, &size); err != nil || size != math.Trunc(size) || size < 1 || size > maxExtranonceBytes {
		return nil, 0, fmt.Errorf("%w: extranonce2 size %.20s: want an integer 1..%d", errNotAMessage, en2Size, maxExtranonceBytes)
	}
	return en1, int(size), nil
}

// parseSetExtranonce decodes mining.set_extranonce params [en1hex, en2size].
func parseSetExtranonce(raw json.RawMessage) ([]byte, int, error) {
	var p []json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil || len(p) < 2 {
		return nil, 0, fmt.Errorf("%w: mining.set_extranonce params %.40s", errNotAMessage, raw)
	}
	return parseExtranonce(p[0], p[1])
}

// parseSubscribeResult decodes [[subscriptions...], en1hex, en2size].
func parseSubscribeResult(raw json.RawMessage) ([]byte, int, error) {
	var p []json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil || len(p) < 3 {
		return nil, 0, fmt.Errorf("%w: mining.subscribe result %.60s", errNotAMessage, raw)
	}
	return parseExtranonce(p[1], p[2])
}

// maxSessionIDLength bounds the subscription id kept for session resume.
const maxSessionIDLength = 128

// subscriptionID returns the session id in a mining.subscribe result: the
// id of its "mining.notify" subscription, which cgminer-based firmware
// sends back when it reconnects. Results with subscriptions in another
// shape, or ids that are not short strings, give "" (nothing to resume).
func subscriptionID(raw json.RawMessage) string {
	var p []json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil || len(p) < 1 {
		return ""
	}
	var pairs [][]json.RawMessage
	if err := json.Unmarshal(p[0], &pairs); err != nil {
		// Some pools send one flat ["mining.notify", id] pair.
		var flat []json.RawMessage
		if json.Unmarshal(p[0], &flat) != nil {
			return ""
		}
		pairs = [][]json.RawMessage{flat}
	}
	for _, pair := range pairs {
		var method, id string
		if len(pair) != 2 || json.Unmarshal(pair[0], &method) != nil || json.Unmarshal(pair[1], &id) != nil {
			continue
		}
		if method == "mining.notify" && len(id) <= maxSessionIDLength {
			return id
		}
	}
	return ""
}

// reconnectParams are client.reconnect's [host, port, wait seconds]; every
// member is optional (empty means "the same server, now").
type reconnectParams struct {
	Host string
	Port int
	Wait float64
}

// parseReconnect decodes client.reconnect params. Ports arrive as numbers or
// strings depending on the pool; both are accepted.
func parseReconnect(raw json.RawMessage) (reconnectParams, error) {
	var r reconnectParams
	if len(raw) == 0 || string(raw) == "null" {
		return r, nil
	}
	var p []json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil {
		return r, fmt.Errorf("%w: client.reconnect params: %w", errNotAMessage, err)
	}
	if len(p) > 0 && string(p[0]) != "null" {
		if err := json.Unmarshal(p[0], &r.Host); err != nil || len(r.Host) > 253 {
			return r, fmt.Errorf("%w: client.reconnect host %.40s", errNotAMessage, p[0])
		}
	}
	if len(p) > 1 && string(p[1]) != "null" {
		port, err := parseLooseInt(p[1])
		if err != nil || port < 0 || port > 65535 {
			return r, fmt.Errorf("%w: client.reconnect port %.20s", errNotAMessage, p[1])
		}
		r.Port = port
	}
	if len(p) > 2 && string(p[2]) != "null" {
		w, err := parseLooseInt(p[2])
		if err != nil || w < 0 {
			return r, fmt.Errorf("%w: client.reconnect wait %.20s", errNotAMessage, p[2])
		}
		r.Wait = float64(w)
	}
	return r, nil
}

// parseLooseInt reads an integer sent as a JSON number or a decimal string.
func parseLooseInt(raw json.RawMessage) (int, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		v, err := strconv.Atoi(s)
		return v, err
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1e9 {
		return 0, fmt.Errorf("not an integer: %v", f)
	}
	return int(f), nil
}

// configureResult is what we need from the mining.configure result.
type configureResult struct {
	VersionRolling bool
	Mask           uint32
	MinDiffOK      bool
}

// parseConfigureResult decodes the BIP310 result map. A "version-rolling"
// value other than true (false or an error string) disables rolling.
func parseConfigureResult(raw json.RawMessage) (configureResult, error) {
	var c configureResult
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return c, fmt.Errorf("%w: mining.configure result: %w", errNotAMessage, err)
	}
	if string(obj["minimum-difficulty"]) == "true" {
		c.MinDiffOK = true
	}
	if string(obj["version-rolling"]) != "true" {
		return c, nil
	}
	var maskHex string
	if err := json.Unmarshal(obj["version-rolling.mask"], &maskHex); err != nil {
		return c, fmt.Errorf("%w: mining.configure: version-rolling true without a mask", errNotAMessage)
	}
	mask, err := parseMask(maskHex)
	if err != nil {
		return c, err
	}
	c.VersionRolling, c.Mask = true, mask
	return c, nil
}

// request is one line we send. Params are marshalled by encoding/json, which
// escapes worker names and passwords correctly.
type request struct {
	ID     uint64 `json:"id"`
	Method string `json:"method"`
	Params []any  `json:"params"`
}

// encodeRequest returns the newline-terminated JSON of a request.
func encodeRequest(id uint64, method string, params ...any) ([]byte, error) {
	if params == nil {
		params = []any{}
	}
	b, err := json.Marshal(request{ID: id, Method: method, Params: params})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", method, err)
	}
	return append(b, '\n'), nil
}

// response is our answer to a server request such as client.get_version.
type response struct {
	ID     uint64 `json:"id"`
	Result any    `json:"result"`
	Error  any    `json:"error"`
}

// encodeResponse returns the newline-terminated JSON of a response.
func encodeResponse(id uint64, result any) ([]byte, error) {
	b, err := json.Marshal(response{ID: id, Result: result})
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	return append(b, '\n'), nil
}
