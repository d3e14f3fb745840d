package work

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"

	"github.com/wattpool/wattpool/stratum/node"
)

var testNow = time.Unix(1713571800, 0)

// decodeCoinbase joins a job's coinbase around the extranonces and decodes
// it with btcd's wire package.
func decodeCoinbase(t testing.TB, j *Job, en1, en2 []byte) (*wire.MsgTx, []byte) {
	t.Helper()
	raw := bytes.Join([][]byte{j.Coinb1, en1, en2, j.Coinb2}, nil)
	var tx wire.MsgTx
	r := bytes.NewReader(raw)
	if err := tx.DeserializeNoWitness(r); err != nil {
		t.Fatalf("coinbase %x does not decode: %v", raw, err)
	}
	if r.Len() != 0 {
		t.Fatalf("coinbase has %d trailing bytes", r.Len())
	}
	return &tx, raw
}

func TestBuildCoinbase(t *testing.T) {
	tests := []struct {
		name       string
		txs        int
		witness    bool
		commitment bool // template carries the node's commitment
		wantCommit bool
		en2        int
	}{
		{"empty block", 0, false, false, false, 4},
		{"empty block, node commitment", 0, false, true, true, 4},
		{"legacy txs", 7, false, false, false, 2},
		{"witness txs, no node commitment", 7, true, false, true, 8},
		{"witness txs with node commitment", 12, true, true, true, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBuilder(t, func(c *Config) { c.Extranonce2Size = tc.en2 })
			tpl := syntheticTemplate(t, tc.txs, tc.witness)
			if tc.commitment {
				wtxids := make([]chainhash.Hash, len(tpl.Transactions))
				for i, tx := range tpl.Transactions {
					wtxids[i] = tx.WTxID
				}
				tpl.WitnessCommitment = witnessCommitmentScript(wtxids)
			}
			j, err := b.Build(tpl, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if j.Extranonce1Size != 4 || j.Extranonce2Size != tc.en2 {
				t.Fatalf("extranonce sizes %d+%d", j.Extranonce1Size, j.Extranonce2Size)
			}
			en1 := []byte{0xaa, 0xbb, 0xcc, 0xdd}
			en2 := bytes.Repeat([]byte{0xee}, tc.en2)
			tx, raw := decodeCoinbase(t, j, en1, en2)

			if tx.Version != 2 || len(tx.TxIn) != 1 || tx.LockTime != 0 {
				t.Fatalf("coinbase shape: version %d, %d inputs, locktime %d", tx.Version, len(tx.TxIn), tx.LockTime)
			}
			in := tx.TxIn[0]
			if in.PreviousOutPoint.Hash != (chainhash.Hash{}) || in.PreviousOutPoint.Index != 0xffffffff || in.Sequence != 0xffffffff {
				t.Fatalf("coinbase input %v sequence %x", in.PreviousOutPoint, in.Sequence)
			}
			script := in.SignatureScript
			wantPrefix := mustHex(t, "0340d10c") // BIP34 height 840000
			wantPrefix = append(wantPrefix, tpl.CoinbaseAux...)
			wantPrefix = append(wantPrefix, 10)
			wantPrefix = append(wantPrefix, "/wattpool/"...)
			wantPrefix = append(wantPrefix, byte(4+tc.en2))
			wantScript := bytes.Join([][]byte{wantPrefix, en1, en2}, nil)
			if !bytes.Equal(script, wantScript) {
				t.Fatalf("coinbase script %x, want %x", script, wantScript)
			}
			if len(script) < 2 || len(script) > 100 {
				t.Fatalf("coinbase script is %d bytes", len(script))
			}
			if h, ok := parseHeightPush(script); !ok || h != tpl.Height {
				t.Fatalf("height in script = %d %v", h, ok)
			}

			if tx.TxOut[0].Value != tpl.CoinbaseValue || !bytes.Equal(tx.TxOut[0].PkScript, testPayout) {
				t.Fatalf("payout output %d to %x", tx.TxOut[0].Value, tx.TxOut[0].PkScript)
			}
			var total int64
			for _, o := range tx.TxOut {
				total += o.Value
			}
			if total != tpl.CoinbaseValue {
				t.Fatalf("outputs pay %d, template coinbase value %d", total, tpl.CoinbaseValue)
			}
			if tc.wantCommit {
				if len(tx.TxOut) != 2 || !isWitnessCommitment(tx.TxOut[1].PkScript) {
					t.Fatalf("want a commitment output, got %d outputs", len(tx.TxOut))
				}
			} else if len(tx.TxOut) != 1 {
				t.Fatalf("want no commitment, got %d outputs", len(tx.TxOut))
			}

			// The coinbase rebuilt from coinb1+en1+en2+coinb2 hashes to
			// the txid btcd computes, and the Hasher agrees.
			var h Hasher
			if got, want := h.CoinbaseTxID(j, en1, en2), tx.TxHash(); got != want {
				t.Fatalf("Hasher coinbase txid %s, wire %s", got, want)
			}
			if got := chainhash.DoubleHashH(raw); got != tx.TxHash() {
				t.Fatalf("sha256d(raw) %s, wire %s", got, tx.TxHash())
			}

			// The branch folds the coinbase into the full tree's root.
			leaves := []chainhash.Hash{tx.TxHash()}
			for _, ttx := range tpl.Transactions {
				leaves = append(leaves, ttx.TxID)
			}
			if got, want := h.MerkleRoot(j, en1, en2), merkleRoot(leaves); got != want {
				t.Fatalf("merkle root via branch %s, full tree %s", got, want)
			}

			if j.Height != tpl.Height || j.PrevHash != tpl.PrevHash || j.Version != uint32(tpl.Version) ||
				j.Bits != tpl.Bits || j.NTime != uint32(tpl.CurTime) || j.Template != tpl || !j.CreatedAt.Equal(testNow) {
				t.Fatalf("job header fields %+v", j)
			}
			if j.NetworkTarget != TargetFromBits(tpl.Bits) {
				t.Fatalf("network target %s", j.NetworkTarget)
			}
			// Block 840000's difficulty.
			if d := j.NetworkDiff; d < 86_388_558_925_171 || d > 86_388_558_925_172 {
				t.Fatalf("network diff %f", d)
			}
		})
	}
}

// TestBuildPublicPoolTemplate builds a job from a real testnet template
// (Bitcoin Core getblocktemplate) and checks the merkle branch and witness
// commitment against public-pool's notify for the same template.
func TestBuildPublicPoolTemplate(t *testing.T) {
	tpl := loadTemplate(t, "publicpool_gbt.json")
	script, err := PayoutScript("tb1qumezefzdeqqwn5zfvgdrhxjzc5ylr39uhuxcz4", &chaincfg.TestNet3Params)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBuilder(Config{Params: &chaincfg.TestNet3Params, PayoutScript: script})
	if err != nil {
		t.Fatal(err)
	}
	j, err := b.Build(tpl, testNow)
	if err != nil {
		t.Fatal(err)
	}
	share := loadPublicPoolShare(t)
	n := j.Notify(true)
	if strings.Join(n.MerkleBranch, ",") != strings.Join(share.Notify.MerkleBranch, ",") {
		t.Errorf("merkle branch %v, public-pool sent %v", n.MerkleBranch, share.Notify.MerkleBranch)
	}
	if n.PrevHash != share.Notify.PrevHash || n.Version != share.Notify.Version || n.NBits != share.Notify.NBits {
		t.Errorf("header fields %+v, public-pool sent %+v", n, share.Notify)
	}
	if !strings.Contains(n.Coinb2, hex.EncodeToString(tpl.WitnessCommitment)) {
		t.Errorf("coinb2 %s lacks the template's commitment", n.Coinb2)
	}
	if !strings.HasPrefix(n.Coinb1, "02000000010000000000000000000000000000000000000000000000000000000000000000ffffffff") ||
		!strings.HasSuffix(n.Coinb1, "03c9432508") { // height 2442185, then the 8-byte extranonce push
		t.Errorf("coinb1 %s", n.Coinb1)
	}
}

func TestBuildRejects(t *testing.T) {
	good := func() *node.Template { return syntheticTemplate(t, 3, true) }
	tests := []struct {
		name    string
		tpl     func() *node.Template
		wantErr string
	}{
		{"nil", func() *node.Template { return nil }, "template is nil"},
		{"height 0", func() *node.Template { x := good(); x.Height = 0; return x }, "Height"},
		{"height huge", func() *node.Template { x := good(); x.Height = 1 << 31; return x }, "Height"},
		{"negative value", func() *node.Template { x := good(); x.CoinbaseValue = -1; return x }, "CoinbaseValue"},
		{"value over 21M BTC", func() *node.Template { x := good(); x.CoinbaseValue = 21_000_000*100_000_000 + 1; return x }, "CoinbaseValue"},
		{"zero bits", func() *node.Template { x := good(); x.Bits = 0; return x }, "Bits"},
		{"negative bits", func() *node.Template { x := good(); x.Bits = 0x1d80ffff; return x }, "Bits"},
		{"overflow bits", func() *node.Template { x := good(); x.Bits = 0x23ffffff; return x }, "Bits"},
		{"bits above pow limit", func() *node.Template { x := good(); x.Bits = 0x1d01ffff; return x }, "proof-of-work limit"},
		{"zero curtime", func() *node.Template { x := good(); x.CurTime = 0; return x }, "CurTime"},
		{"curtime beyond 2106", func() *node.Template { x := good(); x.CurTime = 1 << 32; return x }, "CurTime"},
		{"short commitment", func() *node.Template { x := good(); x.WitnessCommitment = []byte{0x6a, 0x24}; return x }, "WitnessCommitment"},
		{"wrong commitment", func() *node.Template {
			x := good()
			x.WitnessCommitment = witnessCommitmentScript(nil)
			return x
		}, "differs"},
		{"empty tx data", func() *node.Template { x := good(); x.Transactions[1].Data = nil; return x }, "Transactions[1]"},
		{"aux too long", func() *node.Template { x := good(); x.CoinbaseAux = make([]byte, 80); return x }, "coinbase script would be"},
	}
	b := newTestBuilder(t, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Build(tc.tpl(), testNow)
			if err == nil {
				t.Fatal("Build succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestNewBuilderConfig(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"ok defaults", func(c *Config) {}, ""},
		{"nil params", func(c *Config) { c.Params = nil }, "Params"},
		{"no payout", func(c *Config) { c.PayoutScript = nil }, "PayoutScript"},
		{"nonstandard payout", func(c *Config) { c.PayoutScript = []byte{0x51} }, "PayoutScript"},
		{"op_return payout", func(c *Config) { c.PayoutScript = mustHex(t, "6a0401020304") }, "PayoutScript"},
		{"en1 too big", func(c *Config) { c.Extranonce1Size = 9 }, "Extranonce1Size"},
		{"en2 too small", func(c *Config) { c.Extranonce2Size = 1 }, "Extranonce2Size"},
		{"en2 too big", func(c *Config) { c.Extranonce2Size = 9 }, "Extranonce2Size"},
		{"en2 negative", func(c *Config) { c.Extranonce2Size = -4 }, "Extranonce2Size"},
		// 100 - 5 (height) - 1 (push) - 4 - 8 = 82 bytes for the tag push:
		// OP_PUSHDATA1 + length + 80 bytes.
		{"tag fits exactly", func(c *Config) { c.Extranonce2Size = 8; c.PoolTag = strings.Repeat("x", 80) }, ""},
		{"tag too long", func(c *Config) { c.Extranonce2Size = 8; c.PoolTag = strings.Repeat("x", 81) }, "PoolTag is 81 bytes; at most 80"},
		{"short tag limit", func(c *Config) { c.Extranonce1Size = 8; c.Extranonce2Size = 8; c.PoolTag = strings.Repeat("x", 77) }, "at most 76"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Params: &chaincfg.MainNetParams, PayoutScript: testPayout}
			tc.mutate(&cfg)
			b, err := NewBuilder(cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				// The worst case the config check assumed must build.
				tpl := syntheticTemplate(t, 1, false)
				tpl.Height = maxHeight
				tpl.CoinbaseAux = nil
				if _, err := b.Build(tpl, testNow); err != nil {
					t.Fatalf("Build at the size limit: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("NewBuilder succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

// TestJobIDs checks IDs are lowercase hex, increase within a builder and
// continue above the previous builder's IDs after a "restart".
func TestJobIDs(t *testing.T) {
	seen := map[string]bool{}
	var last uint64
	tpl := syntheticTemplate(t, 0, false)
	for restart := 0; restart < 3; restart++ {
		b := newTestBuilder(t, nil)
		for i := 0; i < 50; i++ {
			j, err := b.Build(tpl, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if seen[j.ID] {
				t.Fatalf("job id %s repeated", j.ID)
			}
			seen[j.ID] = true
			if strings.ToLower(j.ID) != j.ID {
				t.Fatalf("job id %s not lowercase", j.ID)
			}
			v, err := strconv.ParseUint(j.ID, 16, 64)
			if err != nil {
				t.Fatalf("job id %s not hex: %v", j.ID, err)
			}
			if v <= last {
				t.Fatalf("job id %s not above the previous %x", j.ID, last)
			}
			last = v
		}
	}
}

// FuzzBuild builds jobs from random templates and checks the invariants a
// node relies on: the coinbase decodes, its script is 2..100 bytes with the
// BIP34 height first, it pays exactly the coinbase value, the branch folds
// into the full merkle root, and the notify round trip hashes identically.
func FuzzBuild(f *testing.F) {
	f.Add(uint64(1), uint16(0), int64(840000), int64(312500000), []byte{}, uint8(4), true)
	f.Add(uint64(2), uint16(17), int64(16), int64(0), []byte("/P2SH/btcd/"), uint8(2), false)
	f.Add(uint64(3), uint16(300), int64(127), int64(21e14), []byte{1}, uint8(8), true)
	f.Fuzz(func(t *testing.T, seed uint64, ntx uint16, height, value int64, aux []byte, en2 uint8, withCommit bool) {
		rng := rand.New(rand.NewPCG(seed, 99))
		b, err := NewBuilder(Config{
			Params:          &chaincfg.RegressionNetParams,
			PayoutScript:    testPayout,
			PoolTag:         "/fuzz/",
			Extranonce2Size: int(en2),
		})
		if err != nil {
			return // sizes out of range are NewBuilder's to refuse
		}
		tpl := &node.Template{
			Height:        height,
			Version:       int32(rng.Uint32()),
			Bits:          0x207fffff,
			CurTime:       int64(rng.Uint32()),
			CoinbaseValue: value,
			CoinbaseAux:   aux,
		}
		fill(rng, tpl.PrevHash[:])
		n := int(ntx % 600)
		wtxids := make([]chainhash.Hash, n)
		for i := 0; i < n; i++ {
			var tx node.Transaction
			fill(rng, tx.TxID[:])
			tx.WTxID = tx.TxID
			if rng.IntN(4) == 0 {
				fill(rng, tx.WTxID[:])
			}
			tx.Data = []byte{1}
			tpl.Transactions = append(tpl.Transactions, tx)
			wtxids[i] = tx.WTxID
		}
		if withCommit {
			tpl.WitnessCommitment = witnessCommitmentScript(wtxids)
		}
		j, err := b.Build(tpl, testNow)
		if err != nil {
			return
		}
		en1b := make([]byte, j.Extranonce1Size)
		en2b := make([]byte, j.Extranonce2Size)
		fill(rng, en1b)
		fill(rng, en2b)
		tx, _ := decodeCoinbase(t, j, en1b, en2b)
		script := tx.TxIn[0].SignatureScript
		if len(script) < 2 || len(script) > 100 {
			t.Fatalf("script length %d", len(script))
		}
		if h, ok := parseHeightPush(script); !ok || h != height {
			t.Fatalf("height %d in script %x, want %d", h, script, height)
		}
		if tx.TxOut[0].Value != value {
			t.Fatalf("pays %d, want %d", tx.TxOut[0].Value, value)
		}
		leaves := []chainhash.Hash{tx.TxHash()}
		for _, ttx := range tpl.Transactions {
			leaves = append(leaves, ttx.TxID)
		}
		var h Hasher
		if h.MerkleRoot(j, en1b, en2b) != merkleRoot(leaves) {
			t.Fatal("branch does not fold into the merkle root")
		}
		mj, err := ParseNotify(j.Notify(false), j.Extranonce1Size, j.Extranonce2Size)
		if err != nil {
			t.Fatalf("ParseNotify of a built job: %v", err)
		}
		var hm Hasher
		if h.HeaderHash(j, en1b, en2b, 5, 6, 7) != hm.HeaderHash(mj, en1b, en2b, 5, 6, 7) {
			t.Fatal("miner and server hash differently")
		}
	})
}

func fill(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

// BenchmarkBuild builds a job from a template with 3,000 transactions (a
// third with witnesses), the size of a full mainnet block.
func BenchmarkBuild(b *testing.B) {
	tpl := syntheticTemplate(b, 3000, true)
	bld := newTestBuilder(b, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := bld.Build(tpl, testNow); err != nil {
			b.Fatal(err)
		}
	}
}
