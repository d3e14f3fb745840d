package testenv

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/internal/devstack"
)

// MiningKeyHex is the private key (hex) of the fixed test key whose P2PKH
// address receives the coinbases of blocks made with `generate`. Regtest
// only: it secures nothing.
const MiningKeyHex = "0000000000000000000000000000000000000000000000000000000000000001"

// BtcdOption changes how Btcd starts a node.
type BtcdOption func(*devstack.BtcdOptions)

// WithTLS serves RPC over HTTPS with btcd's self-signed certificate; the
// node's CAFile names it.
func WithTLS() BtcdOption { return func(o *devstack.BtcdOptions) { o.TLS = true } }

// WithPeer connects the new node to another node's P2P address, so that
// blocks mined on one reach the other.
func WithPeer(p2pAddr string) BtcdOption {
	return func(o *devstack.BtcdOptions) { o.Connect = append(o.Connect, p2pAddr) }
}

// Btcd is a regtest node started for one test.
type Btcd struct {
	// RPCURL is "http://user:pass@127.0.0.1:port" ("https" with WithTLS).
	RPCURL string
	// RPCHost is host:port of the RPC server; RPCUser and RPCPass its
	// credentials; CAFile its TLS certificate ("" without TLS).
	RPCHost, RPCUser, RPCPass, CAFile string
	// MiningKey is the fixed test key; coinbases made by Generate pay its
	// P2PKH address MiningAddress.
	MiningKey     *btcec.PrivateKey
	MiningAddress address.Address
	// P2PAddr is host:port of the node's peer-to-peer listener.
	P2PAddr string

	node *devstack.Btcd
}

// MiningKey returns the fixed test key and its regtest P2PKH address.
func MiningKey() (*btcec.PrivateKey, address.Address) {
	raw, _ := hex.DecodeString(MiningKeyHex)
	key, _ := btcec.PrivKeyFromBytes(raw)
	addr, err := address.NewAddressPubKeyHash(address.Hash160(key.PubKey().SerializeCompressed()), &chaincfg.RegressionNetParams)
	if err != nil {
		panic("testenv: fixed mining key: " + err.Error()) // a constant input: cannot fail
	}
	return key, addr
}

// StartBtcd starts a fresh regtest node for this test; it is stopped when
// the test ends. The chain starts at height 0.
func StartBtcd(t testing.TB, opts ...BtcdOption) *Btcd {
	t.Helper()
	dir, err := scratchDir("btcd")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	key, addr := MiningKey()
	o := devstack.BtcdOptions{Dir: dir, MiningAddr: addr.EncodeAddress()}
	for _, opt := range opts {
		opt(&o)
	}
	logf, _ := os.Create(filepath.Join(dir, "btcd.out"))
	if logf != nil {
		o.Log = logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	node, err := devstack.StartBtcd(ctx, o)
	if err != nil {
		t.Fatalf("testenv: cannot start btcd regtest node: %v", err)
	}
	t.Cleanup(func() {
		node.Stop()
		if logf != nil {
			_ = logf.Close()
		}
		if !t.Failed() {
			_ = os.RemoveAll(dir)
		} else {
			t.Logf("testenv: btcd files kept in %s", dir)
		}
	})
	b := &Btcd{RPCURL: node.RPCURL(), RPCHost: node.RPCHost(), RPCUser: node.RPCUser(), RPCPass: node.RPCPass(),
		MiningKey: key, MiningAddress: addr, P2PAddr: node.P2PAddr(), node: node}
	if o.TLS {
		b.CAFile = node.CAFile()
	}
	return b
}

// Call makes one raw JSON-RPC call to the node.
func (b *Btcd) Call(ctx context.Context, method string, params ...any) (json.RawMessage, error) {
	return b.node.Call(ctx, method, params...)
}

// Generate mines n blocks paying MiningAddress and returns their hashes.
func (b *Btcd) Generate(t testing.TB, n int) []chainhash.Hash {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var hashes []chainhash.Hash
	// btcd mines at most a few thousand per call comfortably; chunk anyway
	// so a long run reports progress in the node's log.
	for n > 0 {
		step := min(n, 500)
		raw, err := b.Call(ctx, "generate", step)
		if err != nil {
			t.Fatalf("testenv: generate %d blocks: %v", step, err)
		}
		var hexes []string
		if err := json.Unmarshal(raw, &hexes); err != nil {
			t.Fatalf("testenv: generate: undecodable result %s: %v", raw, err)
		}
		for _, h := range hexes {
			hash, err := chainhash.NewHashFromStr(h)
			if err != nil {
				t.Fatalf("testenv: generate: bad hash %q: %v", h, err)
			}
			hashes = append(hashes, *hash)
		}
		n -= step
	}
	return hashes
}

// Stop kills the node now (for failover tests); cleanup is still automatic.
func (b *Btcd) Stop() { b.node.Stop() }
