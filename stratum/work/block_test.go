package work

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/blockchain"
	"github.com/btcsuite/btcd/btcutil/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/wire/v2"
)

// grind finds a nonce whose header meets the job's network target (easy on
// regtest: about two tries).
func grind(t testing.TB, j *Job, en1, en2 []byte) uint32 {
	t.Helper()
	var h Hasher
	for nonce := uint32(0); nonce < 1<<20; nonce++ {
		hash := h.HeaderHash(j, en1, en2, j.NTime, nonce, j.Version)
		if j.NetworkTarget.Meets(&hash) {
			return nonce
		}
	}
	t.Fatal("no nonce found")
	return 0
}

func regtestJob(t testing.TB, ntx int, witness bool) *Job {
	t.Helper()
	tpl := syntheticTemplate(t, ntx, witness)
	tpl.Bits = 0x207fffff
	tpl.Height = 500
	b := newTestBuilder(t, func(c *Config) { c.Params = &chaincfg.RegressionNetParams })
	j, err := b.Build(tpl, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestBlockSanity assembles blocks for solved shares and runs btcd's own
// context-free consensus checks on them: proof of work, merkle root,
// coinbase shape, witness commitment, BIP34 height encoding.
func TestBlockSanity(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ntx     int
		witness bool
	}{{"coinbase only", 0, false}, {"legacy", 5, false}, {"witness", 9, true}, {"many", 300, true}} {
		t.Run(tc.name, func(t *testing.T) {
			j := regtestJob(t, tc.ntx, tc.witness)
			en1, en2 := []byte{9, 8, 7, 6}, []byte{1, 2, 3, 4}
			nonce := grind(t, j, en1, en2)
			version := MergeVersion(j.Version, 0x00ffe000, 0x1fffe000)
			block, err := j.Block(en1, en2, j.NTime, nonce, j.Version)
			if err != nil {
				t.Fatal(err)
			}
			if version == j.Version {
				t.Fatal("test needs a rolled version")
			}
			var h Hasher
			if got, want := block.Header.BlockHash(), h.HeaderHash(j, en1, en2, j.NTime, nonce, j.Version); got != want {
				t.Fatalf("block hash %s, share hash %s", got, want)
			}
			if len(block.Transactions) != 1+tc.ntx {
				t.Fatalf("%d transactions", len(block.Transactions))
			}
			blk := btcutil.NewBlock(block)
			if err := blockchain.CheckBlockSanity(blk, chaincfg.RegressionNetParams.PowLimit, blockchain.NewMedianTime()); err != nil {
				t.Fatalf("btcd CheckBlockSanity: %v", err)
			}
			if err := blockchain.ValidateWitnessCommitment(blk); err != nil {
				t.Fatalf("btcd ValidateWitnessCommitment: %v", err)
			}
			height, err := blockchain.ExtractCoinbaseHeight(blk.Transactions()[0])
			if err != nil || height != 500 {
				t.Fatalf("btcd reads coinbase height %d, %v", height, err)
			}
			cb := block.Transactions[0]
			hasCommit := len(cb.TxOut) == 2
			if hasCommit != tc.witness {
				t.Fatalf("commitment output present = %v", hasCommit)
			}
			if hasCommit != (len(cb.TxIn[0].Witness) == 1 && bytes.Equal(cb.TxIn[0].Witness[0], make([]byte, 32))) {
				t.Fatalf("coinbase witness %x", cb.TxIn[0].Witness)
			}
			// The block survives a serialization round trip unchanged.
			var buf bytes.Buffer
			if err := block.Serialize(&buf); err != nil {
				t.Fatal(err)
			}
			var back wire.MsgBlock
			if err := back.Deserialize(bytes.NewReader(buf.Bytes())); err != nil {
				t.Fatal(err)
			}
			if back.BlockHash() != block.BlockHash() || len(back.Transactions) != len(block.Transactions) {
				t.Fatal("round trip changed the block")
			}

			// Version rolling reaches the header.
			rolled, err := j.Block(en1, en2, j.NTime, nonce, version)
			if err != nil {
				t.Fatal(err)
			}
			if uint32(rolled.Header.Version) != version {
				t.Fatalf("header version %08x, want %08x", rolled.Header.Version, version)
			}
		})
	}
}

// TestBlockPublicPool assembles the real testnet block of the public-pool
// share (a share, not a solution) and checks it against btcd's merkle and
// witness commitment code and the expected header hash.
func TestBlockPublicPool(t *testing.T) {
	s := loadPublicPoolShare(t)
	en1 := mustHex(t, s.Extranonce1)
	j, err := ParseNotify(s.Notify, len(en1), s.Extranonce2Size)
	if err != nil {
		t.Fatal(err)
	}
	en2 := mustHex(t, s.Submit.Extranonce2)
	version := MergeVersion(j.Version, hexU32(t, s.Submit.VersionBits), hexU32(t, s.VersionMask))
	ntime, nonce := hexU32(t, s.Submit.NTime), hexU32(t, s.Submit.Nonce)
	if _, err := j.Block(en1, en2, ntime, nonce, version); !errors.Is(err, ErrNoTemplate) {
		t.Fatalf("Block without template: %v", err)
	}
	j.Template = loadTemplate(t, "publicpool_gbt.json")
	block, err := j.Block(en1, en2, ntime, nonce, version)
	if err != nil {
		t.Fatal(err)
	}
	if got := block.BlockHash().String(); got != s.ExpectedHash {
		t.Fatalf("block hash %s, want %s", got, s.ExpectedHash)
	}
	blk := btcutil.NewBlock(block)
	if err := blockchain.ValidateWitnessCommitment(blk); err != nil {
		t.Fatalf("btcd ValidateWitnessCommitment: %v", err)
	}
	if root := blockchain.CalcMerkleRoot(blk.Transactions(), false); root != block.Header.MerkleRoot {
		t.Fatalf("btcd merkle root %s, header %s", root, block.Header.MerkleRoot)
	}
	if err := blockchain.CheckProofOfWork(blk, chaincfg.TestNet3Params.PowLimit); err == nil {
		t.Fatal("a share below the network difficulty passed btcd's proof-of-work check")
	}
}

func TestBlockRejects(t *testing.T) {
	en1, en2 := []byte{9, 8, 7, 6}, []byte{1, 2, 3, 4}
	tests := []struct {
		name     string
		mutate   func(j *Job)
		en1, en2 []byte
		wantErr  string
	}{
		{"short extranonce1", func(j *Job) {}, en1[:3], en2, "extranonce lengths"},
		{"long extranonce2", func(j *Job) {}, en1, append(en2, 0), "extranonce lengths"},
		{"tx data does not match txid", func(j *Job) {
			j.Template.Transactions[2].Data = j.Template.Transactions[3].Data
		}, en1, en2, "data hashes to txid"},
		{"undecodable tx", func(j *Job) { j.Template.Transactions[0].Data = []byte{1, 0, 0} }, en1, en2, "transaction 0"},
		{"trailing bytes", func(j *Job) {
			j.Template.Transactions[1].Data = append(bytes.Clone(j.Template.Transactions[1].Data), 0)
		}, en1, en2, "trailing"},
		{"wtxid mismatch", func(j *Job) { j.Template.Transactions[0].WTxID[0] ^= 1 }, en1, en2, "wtxid"},
		{"branch from another template", func(j *Job) { j.MerkleBranch[0][0] ^= 1 }, en1, en2, "merkle branch does not match"},
		{"witness without commitment", func(j *Job) {
			// Give a transaction a witness after the job was built
			// without a commitment: its txid stays, the wtxid is updated.
			var tx wire.MsgTx
			if err := tx.Deserialize(bytes.NewReader(j.Template.Transactions[0].Data)); err != nil {
				t.Fatal(err)
			}
			tx.TxIn[0].Witness = wire.TxWitness{{1, 2, 3}}
			var buf bytes.Buffer
			if err := tx.Serialize(&buf); err != nil {
				t.Fatal(err)
			}
			j.Template.Transactions[0].Data = buf.Bytes()
			j.Template.Transactions[0].WTxID = tx.WitnessHash()
		}, en1, en2, "no witness commitment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := regtestJob(t, 6, false)
			tc.mutate(j)
			_, err := j.Block(tc.en1, tc.en2, j.NTime, 0, j.Version)
			if err == nil {
				t.Fatal("Block succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

// BenchmarkBlock assembles a 3,000-transaction block (what a found block
// costs before submission).
func BenchmarkBlock(b *testing.B) {
	j := regtestJob(b, 3000, true)
	en1, en2 := []byte{9, 8, 7, 6}, []byte{1, 2, 3, 4}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := j.Block(en1, en2, j.NTime, uint32(i), j.Version); err != nil {
			b.Fatal(err)
		}
	}
}
