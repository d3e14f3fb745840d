package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// maxResponseBytes bounds a JSON-RPC answer. The largest legitimate one is a
// getblocktemplate of a full block: 4 MB of transactions as hex plus ids and
// fields, well under 32 MiB.
const maxResponseBytes = 32 << 20

// Sentinel errors callers match with errors.Is.
var (
	// ErrUnauthorized means the node refused the RPC user or password
	// (HTTP 401). Retrying does not help; the configuration is wrong.
	ErrUnauthorized = errors.New("wrong RPC user or password")
	// ErrNodeSyncing means the node is still downloading blocks (RPC error
	// -10) and will not hand out templates until it is current.
	ErrNodeSyncing = errors.New("node is downloading blocks")
	// ErrEmptyResponse means the node answered HTTP 200 without a body;
	// btcd does that for a request without "jsonrpc":"1.0".
	ErrEmptyResponse = errors.New("empty response body")
)

// RPC error codes from Bitcoin Core's rpc/protocol.h, shared by btcd.
const (
	rpcInternalError   = -32603
	rpcMiscError       = -1
	rpcInvalidAddress  = -5 // also "block not found"
	rpcDeserialization = -22
	rpcNotConnected    = -9
	rpcInInitialDL     = -10
	rpcInvalidParams   = -8
)

// RPCError is an error object a node returned for a call.
type RPCError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Error formats the code with the node's message so logs show both.
func (e *RPCError) Error() string {
	return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message)
}

// Unwrap maps a syncing node's code to ErrNodeSyncing, so callers can test
// errors.Is(err, ErrNodeSyncing) whatever the node's wording.
func (e *RPCError) Unwrap() error {
	if e.Code == rpcInInitialDL {
		return ErrNodeSyncing
	}
	return nil
}

// rpcRequest is a JSON-RPC 1.0 request. btcd refuses (with an empty 200)
// requests that do not say "jsonrpc":"1.0".
type rpcRequest struct {
	JSONRPC string `json:"jsonrpc"`
	ID      uint64 `json:"id"`
	Method  string `json:"method"`
	Params  []any  `json:"params"`
}

type rpcResponse struct {
	Result json.RawMessage `json:"result"`
	Error  *RPCError       `json:"error"`
}

// readBody reads at most maxResponseBytes+1 bytes of body. With the length
// the node announced it reads into one buffer of that size: io.ReadAll
// grows its buffer by doubling, which for a full block's template means
// some ten copies and twice the memory.
func readBody(body io.Reader, contentLength int64) ([]byte, error) {
	limited := io.LimitReader(body, maxResponseBytes+1)
	if contentLength <= 0 || contentLength > maxResponseBytes {
		return io.ReadAll(limited)
	}
	// bytes.Buffer wants bytes.MinRead free before each read, the last
	// one (which sees EOF) included.
	buf := bytes.NewBuffer(make([]byte, 0, contentLength+bytes.MinRead))
	_, err := buf.ReadFrom(limited)
	return buf.Bytes(), err
}

// decodeResponse decodes a JSON-RPC answer as json.Unmarshal into an
// rpcResponse would (FuzzDecodeResponse compares them), but in one pass and
// without copying the result: encoding/json validates, then decodes, then
// copies a result of megabytes (a full block's template), which cost more
// than parsing the template itself. Result aliases data.
func decodeResponse(data []byte) (rpcResponse, error) {
	var r rpcResponse
	s := jsonScanner{b: data}
	switch s.peek() {
	case '{':
	case 'n': // null: no result, no error
		if _, err := s.literal("null"); err != nil {
			return r, err
		}
		return r, s.end()
	default:
		v, err := s.value(0)
		if err == nil {
			err = s.end()
		}
		if err != nil {
			return r, err
		}
		return r, fmt.Errorf("answer is not a JSON object: %s", clip(v))
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return r, s.end()
	}
	// Like encoding/json, a wrongly typed member does not stop the scan
	// (a syntax error later wins) and keys match case-insensitively.
	var typeErr error
	for {
		if s.peek() != '"' {
			return r, s.syntaxError("looking for beginning of object key string")
		}
		tok, escaped, err := s.str()
		if err != nil {
			return r, err
		}
		key := tok[1 : len(tok)-1]
		if escaped {
			k, err := (jsonString{tok: tok, escaped: true}).decode()
			if err != nil {
				return r, err
			}
			key = []byte(k)
		}
		if err := s.expect(':', "after object key"); err != nil {
			return r, err
		}
		v, err := s.value(1)
		if err != nil {
			return r, err
		}
		switch {
		case bytes.EqualFold(key, []byte("result")):
			r.Result = v
		case bytes.EqualFold(key, []byte("error")):
			switch {
			case string(v) == "null":
				r.Error = nil
			case typeErr == nil:
				// Into the same RPCError, as encoding/json does for a
				// repeated key.
				if r.Error == nil {
					r.Error = new(RPCError)
				}
				typeErr = json.Unmarshal(v, r.Error)
			}
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			if err := s.end(); err != nil {
				return r, err
			}
			return r, typeErr
		default:
			return r, s.syntaxError("after object key:value pair")
		}
	}
}

// requestIDs numbers requests process-wide so node logs can be correlated.
var requestIDs atomic.Uint64

// call performs one JSON-RPC call on hc. timeout bounds the whole call (0:
// only ctx bounds it, for longpolls). The result is the raw "result" value
// (JSON null included).
func (c *Client) call(ctx context.Context, hc *http.Client, timeout time.Duration, method string, params ...any) (json.RawMessage, error) {
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(rpcRequest{JSONRPC: "1.0", ID: requestIDs.Add(1), Method: method, Params: params})
	if err != nil {
		return nil, c.errorf(method, "encode request: %w", err)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, c.errorf(method, "build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(c.user, c.pass)

	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, method, timeout, err)
	}
	defer resp.Body.Close()
	data, err := readBody(resp.Body, resp.ContentLength)
	if err != nil {
		return nil, c.transportError(ctx, method, timeout, fmt.Errorf("read response: %w", err))
	}
	if len(data) > maxResponseBytes {
		return nil, c.errorf(method, "response larger than %d bytes", maxResponseBytes)
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("%w for node %s (%s)", ErrUnauthorized, c.name, method)
	case http.StatusForbidden:
		return nil, c.errorf(method, "HTTP 403 forbidden: the node does not allow RPC from this address (rpcallowip)")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if resp.StatusCode == http.StatusOK {
			return nil, c.errorf(method, "%w (HTTP 200)", ErrEmptyResponse)
		}
		return nil, c.errorf(method, "HTTP %d with an empty body", resp.StatusCode)
	}
	// Core answers RPC errors with HTTP 500 (404 for an unknown method) and
	// a JSON body; decode the body whatever the status.
	r, err := decodeResponse(data)
	if err != nil {
		return nil, c.errorf(method, "HTTP %d, undecodable answer %q: %w", resp.StatusCode, clip(data), err)
	}
	if r.Error != nil {
		return nil, c.errorf(method, "%w", r.Error)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, c.errorf(method, "HTTP %d without an error object: %q", resp.StatusCode, clip(data))
	}
	if r.Result == nil {
		// "result" absent altogether: not a JSON-RPC answer.
		return nil, c.errorf(method, "answer has no result: %q", clip(data))
	}
	return r.Result, nil
}

// transportError explains why no answer came back: our deadline, the
// caller's cancellation, or the network.
func (c *Client) transportError(ctx context.Context, method string, timeout time.Duration, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && timeout > 0 {
		return c.errorf(method, "no answer within %s: %w", timeout, err)
	}
	if ctx.Err() != nil {
		return c.errorf(method, "%w", err)
	}
	return c.errorf(method, "node unreachable: %w", err)
}

func (c *Client) errorf(method, format string, args ...any) error {
	return fmt.Errorf("node %s: %s: %w", c.name, method, fmt.Errorf(format, args...))
}

// isRPCCode reports whether err carries a node error object with code.
func isRPCCode(err error, code int) bool {
	var re *RPCError
	return errors.As(err, &re) && re.Code == code
}

// unquote decodes a JSON string result.
func unquote(raw json.RawMessage) (string, bool) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// isNull reports whether a raw result is JSON null.
func isNull(raw json.RawMessage) bool {
	return strings.TrimSpace(string(raw)) == "null"
}
