package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"go.uber.org/zap"
)

// DefaultTimeout bounds every call except a longpoll when Config.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// Config configures one node.
type Config struct {
	// Name identifies the node in logs, errors and metric labels; the URL's
	// host:port when empty.
	Name string
	// URL is http(s)://user:pass@host:port. The credentials are sent as
	// HTTP basic auth and never appear in logs or errors.
	URL string
	// CAFile is a PEM file of the certificate authority (or btcd's
	// self-signed rpc.cert) that signs the node's TLS certificate; https
	// URLs without it use the system roots.
	CAFile string
	// Timeout bounds each call except longpolls (DefaultTimeout when 0).
	Timeout time.Duration
}

// Client calls one node's JSON-RPC interface. It is safe for concurrent
// use; calls do not wait for each other.
type Client struct {
	name     string
	endpoint string // URL without credentials
	user     string
	pass     string
	timeout  time.Duration
	// query carries templates (longpolls included) and queries; submit is
	// reserved for submitblock and its confirmation so that a found block
	// never waits for a connection held by a slow template call.
	query, submit *http.Client
	log           *zap.Logger
}

// NewClient validates cfg and prepares the two transports. It does not
// contact the node.
func NewClient(cfg Config, log *zap.Logger) (*Client, error) {
	if log == nil {
		log = zap.NewNop()
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url.Parse errors quote the whole URL, password included.
		return nil, errors.New("node config: URL does not parse (expected http(s)://user:pass@host:port)")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("node config: URL scheme %q, want http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("node config: URL has no host")
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, fmt.Errorf("node config: URL for %s has no RPC user (http(s)://user:pass@host:port)", u.Host)
	}
	user := u.User.Username()
	pass, _ := u.User.Password()
	u.User = nil
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if timeout < 0 {
		return nil, fmt.Errorf("node config: negative timeout %s", timeout)
	}
	name := cfg.Name
	if name == "" {
		name = u.Host
	}

	var tlsConf *tls.Config
	if cfg.CAFile != "" {
		if u.Scheme != "https" {
			return nil, fmt.Errorf("node config: CA file %s given for a plain http URL of node %s", cfg.CAFile, name)
		}
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("node config: read CA file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("node config: CA file %s holds no PEM certificate", cfg.CAFile)
		}
		tlsConf = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &Client{
		name:     name,
		endpoint: u.String(),
		user:     user,
		pass:     pass,
		timeout:  timeout,
		query:    &http.Client{Transport: newTransport(tlsConf, 4)},
		submit:   &http.Client{Transport: newTransport(tlsConf, 2)},
		log:      log.With(zap.String("node", name)),
	}, nil
}

// newTransport builds a transport that keeps a few idle connections to the
// node. No client-wide timeout is set: each call carries its own deadline
// so that longpolls can wait as long as their context allows.
func newTransport(tlsConf *tls.Config, idle int) *http.Transport {
	return &http.Transport{
		Proxy:               nil, // a node is reached directly, never via HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: idle,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
}

// Name is the node's name from the configuration.
func (c *Client) Name() string { return c.name }

// Close releases idle connections of both transports.
func (c *Client) Close() {
	c.query.CloseIdleConnections()
	c.submit.CloseIdleConnections()
}

// GetBlockTemplate asks for a template with rules ["segwit"]. With a
// longPollID it is a BIP22 longpoll: the node answers when the template
// changes, so no timeout applies and only ctx ends the wait.
func (c *Client) GetBlockTemplate(ctx context.Context, longPollID string) (*Template, error) {
	req := map[string]any{"rules": []string{"segwit"}}
	timeout := c.timeout
	if longPollID != "" {
		req["longpollid"] = longPollID
		timeout = 0
	}
	raw, err := c.call(ctx, c.query, timeout, "getblocktemplate", req)
	if err != nil {
		return nil, err
	}
	t, err := ParseTemplate(raw, c.name, time.Now())
	if err != nil {
		return nil, fmt.Errorf("node %s: getblocktemplate: %w", c.name, err)
	}
	return t, nil
}

// GetBestBlockHash returns the tip of the node's main chain.
func (c *Client) GetBestBlockHash(ctx context.Context) (chainhash.Hash, error) {
	return c.hashCall(ctx, "getbestblockhash")
}

// GetBlockHash returns the hash of the main-chain block at height.
func (c *Client) GetBlockHash(ctx context.Context, height int64) (chainhash.Hash, error) {
	return c.hashCall(ctx, "getblockhash", height)
}

// GetBlockCount returns the height of the node's main-chain tip.
func (c *Client) GetBlockCount(ctx context.Context) (int64, error) {
	raw, err := c.call(ctx, c.query, c.timeout, "getblockcount")
	if err != nil {
		return 0, err
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, c.errorf("getblockcount", "result %q is not an integer", clip(raw))
	}
	return n, nil
}

func (c *Client) hashCall(ctx context.Context, method string, params ...any) (chainhash.Hash, error) {
	raw, err := c.call(ctx, c.query, c.timeout, method, params...)
	if err != nil {
		return chainhash.Hash{}, err
	}
	s, ok := unquote(raw)
	if !ok {
		return chainhash.Hash{}, c.errorf(method, "result %q is not a string", clip(raw))
	}
	h, err := parseHash("result", s)
	if err != nil {
		return chainhash.Hash{}, c.errorf(method, "%w", err)
	}
	return h, nil
}

// BlockHeaderInfo is what the pool needs from getblockheader (verbose).
type BlockHeaderInfo struct {
	// Hash is the block's hash (internal byte order).
	Hash chainhash.Hash
	// Height is the block's height; 0 when btcd reports a side-chain block
	// (btcd does not tell the height of blocks off the main chain).
	Height int64
	// Confirmations counts main-chain blocks from this one to the tip
	// (1 for the tip); -1 when the block is known but not in the main chain.
	Confirmations int64
	// Time is the header timestamp (zero for a btcd side-chain block).
	Time time.Time
	// PrevHash is the parent block's hash (zero for a btcd side-chain block).
	PrevHash chainhash.Hash
}

// InMainChain reports whether the block is part of the node's best chain.
func (h BlockHeaderInfo) InMainChain() bool { return h.Confirmations > 0 }

// ErrBlockNotFound means the node does not know the block (RPC error -5).
var ErrBlockNotFound = errors.New("block not found")

// GetBlockHeader returns a block's height and confirmations. An unknown
// block is ErrBlockNotFound; a side-chain block has Confirmations -1 on
// both btcd and Core.
func (c *Client) GetBlockHeader(ctx context.Context, hash chainhash.Hash) (BlockHeaderInfo, error) {
	return c.getBlockHeader(ctx, c.query, hash)
}

func (c *Client) getBlockHeader(ctx context.Context, hc *http.Client, hash chainhash.Hash) (BlockHeaderInfo, error) {
	info := BlockHeaderInfo{Hash: hash}
	raw, err := c.call(ctx, hc, c.timeout, "getblockheader", hash.String(), true)
	switch {
	case isRPCCode(err, rpcInvalidAddress):
		return info, fmt.Errorf("%w: %s: %w", ErrBlockNotFound, hash, err)
	case isRPCCode(err, rpcInternalError) && isNotInMainChain(err):
		// btcd cannot compute the height of a side-chain block.
		info.Confirmations = -1
		return info, nil
	case err != nil:
		return info, err
	}
	var r struct {
		Hash          string `json:"hash"`
		Height        *int64 `json:"height"`
		Confirmations *int64 `json:"confirmations"`
		Time          int64  `json:"time"`
		PreviousHash  string `json:"previousblockhash"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return info, c.errorf("getblockheader", "result %q: %w", clip(raw), err)
	}
	if r.Height == nil || r.Confirmations == nil {
		return info, c.errorf("getblockheader", "result lacks height or confirmations: %q", clip(raw))
	}
	if r.Hash != hash.String() {
		return info, c.errorf("getblockheader", "asked for %s, got %q", hash, r.Hash)
	}
	info.Height = *r.Height
	info.Confirmations = *r.Confirmations
	info.Time = time.Unix(r.Time, 0)
	if r.PreviousHash != "" { // absent for the genesis block
		if info.PrevHash, err = parseHash("previousblockhash", r.PreviousHash); err != nil {
			return info, c.errorf("getblockheader", "%w", err)
		}
	}
	return info, nil
}

func isNotInMainChain(err error) bool {
	var re *RPCError
	return errors.As(err, &re) && containsFold(re.Message, "not in the main chain")
}
