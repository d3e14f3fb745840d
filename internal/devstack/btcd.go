package devstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BtcdOptions configure a regtest btcd node.
type BtcdOptions struct {
	// Dir holds the node's data, logs, config and TLS files. btcd wipes its
	// regtest chain at every start, so the folder is only scratch.
	Dir string
	// RPCPort and P2PPort are ports on 127.0.0.1; 0 picks free ones.
	RPCPort, P2PPort int
	// RPCUser and RPCPass authenticate RPC calls; empty picks "wattpool"
	// and a random password of this node's own, so that a node that lost
	// its port to another one started in parallel is not mistaken for it.
	RPCUser, RPCPass string
	// TLS serves RPC over HTTPS with btcd's self-signed certificate
	// (written to Dir/rpc.cert).
	TLS bool
	// MiningAddr receives the coinbases of blocks made with `generate`.
	MiningAddr string
	// Connect lists P2P addresses of other nodes to connect to.
	Connect []string
	// Log receives btcd's output; nil discards it.
	Log io.Writer
}

// Btcd is a running regtest node.
type Btcd struct {
	opts   BtcdOptions
	cmd    *exec.Cmd
	exited chan struct{}
	client *http.Client

	stopOnce sync.Once
}

// BtcdBinary returns the path of the btcd binary: $WATTPOOL_BTCD_BIN when
// set, else the one `go tool btcd` runs (built on first use from the
// version go.mod pins).
func BtcdBinary(ctx context.Context) (string, error) {
	btcdBinOnce.Do(func() {
		if p := os.Getenv("WATTPOOL_BTCD_BIN"); p != "" {
			btcdBin = p
			return
		}
		cmd := exec.CommandContext(ctx, "go", "tool", "-n", "btcd")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			btcdBinErr = fmt.Errorf("locate btcd with `go tool -n btcd` (is go on PATH and btcd pinned as a tool in go.mod?): %w: %s",
				err, strings.TrimSpace(stderr.String()))
			return
		}
		btcdBin = strings.TrimSpace(string(out))
	})
	return btcdBin, btcdBinErr
}

var (
	btcdBinOnce sync.Once
	btcdBin     string
	btcdBinErr  error
)

// startAttempts is how often a start is tried with fresh ports when the
// server exits during start-up on ports picked by FreePort: another process
// can take such a port between FreePort and the server's bind.
const startAttempts = 3

// errExitedDuringStartup marks a server that exited before it answered.
var errExitedDuringStartup = errors.New("exited during start-up")

// StartBtcd starts a regtest node and waits until its RPC answers. Ports
// left 0 are picked free; if the node exits during start-up on them (lost
// to another process in the meantime) it is started again on new ones.
func StartBtcd(ctx context.Context, opts BtcdOptions) (*Btcd, error) {
	if opts.Dir == "" {
		return nil, errors.New("start btcd: no directory given")
	}
	bin, err := BtcdBinary(ctx)
	if err != nil {
		return nil, err
	}
	if opts.RPCUser == "" {
		opts.RPCUser = "wattpool"
		if opts.RPCPass == "" {
			opts.RPCPass = rand.Text()
		}
	}
	pickPorts := opts.RPCPort == 0 || opts.P2PPort == 0
	var errs []error
	for attempt := 1; ; attempt++ {
		o := opts
		for _, port := range []*int{&o.RPCPort, &o.P2PPort} {
			if *port == 0 {
				if *port, err = freePort(); err != nil {
					return nil, err
				}
			}
		}
		b, err := startBtcd(ctx, bin, o)
		if err == nil {
			return b, nil
		}
		errs = append(errs, err)
		if !pickPorts || attempt == startAttempts || !errors.Is(err, errExitedDuringStartup) {
			return nil, errors.Join(errs...)
		}
	}
}

// startBtcd starts one btcd process on the ports of opts.
func startBtcd(ctx context.Context, bin string, opts BtcdOptions) (*Btcd, error) {
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("start btcd: %w", err)
	}
	conf := filepath.Join(opts.Dir, "btcd.conf")
	// An empty config file of our own stops btcd from writing one with
	// random credentials into the user's home.
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		return nil, fmt.Errorf("start btcd: %w", err)
	}
	args := []string{"--regtest", "--configfile=" + conf,
		"--datadir=" + filepath.Join(opts.Dir, "data"), "--logdir=" + filepath.Join(opts.Dir, "logs"),
		"--rpcuser=" + opts.RPCUser, "--rpcpass=" + opts.RPCPass,
		"--rpclisten=127.0.0.1:" + strconv.Itoa(opts.RPCPort),
		"--listen=127.0.0.1:" + strconv.Itoa(opts.P2PPort),
		"--rpccert=" + filepath.Join(opts.Dir, "rpc.cert"), "--rpckey=" + filepath.Join(opts.Dir, "rpc.key"),
		"--txindex", "--norelaypriority", "--debuglevel=info"}
	if !opts.TLS {
		args = append(args, "--notls")
	}
	if opts.MiningAddr != "" {
		args = append(args, "--miningaddr="+opts.MiningAddr)
	}
	for _, c := range opts.Connect {
		args = append(args, "--addpeer="+c)
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if opts.Log != nil {
		cmd.Stdout, cmd.Stderr = opts.Log, opts.Log
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start btcd %s: %w", bin, err)
	}
	b := &Btcd{opts: opts, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(b.exited) }()
	if err := b.waitReady(ctx); err != nil {
		b.Stop()
		return nil, err
	}
	return b, nil
}

func (b *Btcd) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	var lastErr error
	for {
		if b.opts.TLS && b.client == nil {
			// btcd writes its certificate during start-up.
			if c, err := b.tlsClient(); err == nil {
				b.client = c
			} else {
				lastErr = err
			}
		}
		if b.client != nil || !b.opts.TLS {
			if b.client == nil {
				b.client = &http.Client{Timeout: 30 * time.Second}
			}
			if _, err := b.Call(ctx, "getblockcount"); err == nil {
				return nil
			} else {
				lastErr = err
			}
		}
		select {
		case <-b.exited:
			return fmt.Errorf("btcd (RPC port %d, P2P port %d) %w (see %s): %v", b.opts.RPCPort, b.opts.P2PPort,
				errExitedDuringStartup, filepath.Join(b.opts.Dir, "logs"), lastErr)
		case <-ctx.Done():
			return fmt.Errorf("start btcd: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("btcd RPC did not answer within 60 s: %v", lastErr)
		}
	}
}

func (b *Btcd) tlsClient() (*http.Client, error) {
	pem, err := os.ReadFile(b.CAFile())
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s yet", b.CAFile())
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// Stop kills the node and waits for it to exit. It is safe to call twice.
func (b *Btcd) Stop() {
	b.stopOnce.Do(func() {
		_ = b.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-b.exited:
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.exited
		}
	})
}

// Exited is closed when the node process has exited.
func (b *Btcd) Exited() <-chan struct{} { return b.exited }

// RPCHost is host:port of the RPC server.
func (b *Btcd) RPCHost() string { return "127.0.0.1:" + strconv.Itoa(b.opts.RPCPort) }

// P2PAddr is host:port of the peer-to-peer listener.
func (b *Btcd) P2PAddr() string { return "127.0.0.1:" + strconv.Itoa(b.opts.P2PPort) }

// RPCUser and RPCPass return the RPC credentials.
func (b *Btcd) RPCUser() string { return b.opts.RPCUser }

// RPCPass returns the RPC password.
func (b *Btcd) RPCPass() string { return b.opts.RPCPass }

// CAFile is the path of the RPC server's certificate (TLS only).
func (b *Btcd) CAFile() string { return filepath.Join(b.opts.Dir, "rpc.cert") }

// RPCURL is the node URL with credentials, as WATTPOOL_NODE_URL takes it.
func (b *Btcd) RPCURL() string {
	scheme := "http"
	if b.opts.TLS {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s:%s@%s", scheme, b.opts.RPCUser, b.opts.RPCPass, b.RPCHost())
}

// RPCError is an error object returned by the node.
type RPCError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *RPCError) Error() string { return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message) }

// Call makes one JSON-RPC 1.0 call and returns the raw result.
func (b *Btcd) Call(ctx context.Context, method string, params ...any) (json.RawMessage, error) {
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "1.0", "id": 1, "method": method, "params": params})
	if err != nil {
		return nil, fmt.Errorf("%s: encode params: %w", method, err)
	}
	scheme := "http"
	if b.opts.TLS {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, scheme+"://"+b.RPCHost(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	req.SetBasicAuth(b.opts.RPCUser, b.opts.RPCPass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: read reply: %w", method, err)
	}
	var reply struct {
		Result json.RawMessage `json:"result"`
		Error  *RPCError       `json:"error"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		return nil, fmt.Errorf("%s: HTTP %d, undecodable reply %q: %w", method, resp.StatusCode, truncate(raw, 200), err)
	}
	if reply.Error != nil {
		return nil, fmt.Errorf("%s: %w", method, reply.Error)
	}
	return reply.Result, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
