package work

import (
	"bytes"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
)

// TestHeaderBlock125552 serializes and hashes mainnet block 125552's header
// (the Bitcoin wiki's block hashing example) and cross-checks the bytes
// with btcd's wire encoding.
func TestHeaderBlock125552(t *testing.T) {
	prev := mustHash(t, "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81")
	root := mustHash(t, "2b12fcf1b09288fcaff797d71e950e71ae42b91e8bdb2304758dfcffc2b620e3")
	hdr := header(1, &prev, &root, 1305998791, 0x1a44b9f2, 2504433986)
	want := "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d"
	if got := sha256d(hdr[:]); got.String() != want {
		t.Errorf("hash %s, want %s", got, want)
	}
	w := wire.BlockHeader{Version: 1, PrevBlock: prev, MerkleRoot: root,
		Timestamp: time.Unix(1305998791, 0), Bits: 0x1a44b9f2, Nonce: 2504433986}
	var buf bytes.Buffer
	if err := w.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), hdr[:]) {
		t.Errorf("header %x, wire %x", hdr, buf.Bytes())
	}
	h := sha256d(hdr[:])
	if tgt := TargetFromBits(0x1a44b9f2); !tgt.Meets(&h) {
		t.Error("block 125552 does not meet its own target")
	}
}

// genesisJob splits the real genesis coinbase around an 8-byte "extranonce"
// taken from its own script, so the Hasher must rebuild it byte for byte.
func genesisJob(t testing.TB) (*Job, []byte, []byte) {
	t.Helper()
	g := chaincfg.MainNetParams.GenesisBlock
	var buf bytes.Buffer
	if err := g.Transactions[0].SerializeNoWitness(&buf); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	// Script starts at 42; take bytes 50..58 as en1 (4) and en2 (4).
	j := &Job{
		ID:              "genesis",
		PrevHash:        g.Header.PrevBlock,
		Version:         uint32(g.Header.Version),
		Bits:            g.Header.Bits,
		NTime:           uint32(g.Header.Timestamp.Unix()),
		Coinb1:          raw[:50],
		Coinb2:          raw[58:],
		Extranonce1Size: 4,
		Extranonce2Size: 4,
	}
	return j, raw[50:54], raw[54:58]
}

func TestHasherGenesis(t *testing.T) {
	j, en1, en2 := genesisJob(t)
	g := chaincfg.MainNetParams.GenesisBlock
	var h Hasher
	if got, want := h.CoinbaseTxID(j, en1, en2), g.Header.MerkleRoot; got != want {
		t.Fatalf("genesis coinbase txid %s, want %s", got, want)
	}
	hash := h.HeaderHash(j, en1, en2, j.NTime, g.Header.Nonce, j.Version)
	if want := "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"; hash.String() != want {
		t.Fatalf("genesis hash %s, want %s", hash, want)
	}
	if tgt := TargetFromBits(j.Bits); !tgt.Meets(&hash) {
		t.Error("genesis does not meet its target")
	}
	// A different extranonce must change the hash.
	other := h.HeaderHash(j, []byte{0, 0, 0, 0}, en2, j.NTime, g.Header.Nonce, j.Version)
	if other == hash {
		t.Error("extranonce1 does not affect the hash")
	}
}

func TestMergeVersion(t *testing.T) {
	tests := []struct{ job, bits, mask, want uint32 }{
		{0x20000000, 0x00002000, 0x1fffe000, 0x20002000},
		{0x20000000, 0xffffffff, 0x1fffe000, 0x3fffe000},
		{0x20000000, 0x00000000, 0x1fffe000, 0x20000000},
		{0x20000004, 0x00002000, 0x00000000, 0x20000004}, // no rolling negotiated
		{0x3fffe000, 0x00000000, 0x1fffe000, 0x20000000},
	}
	for _, tc := range tests {
		if got := MergeVersion(tc.job, tc.bits, tc.mask); got != tc.want {
			t.Errorf("MergeVersion(%08x, %08x, %08x) = %08x, want %08x", tc.job, tc.bits, tc.mask, got, tc.want)
		}
	}
}

// branchJob is a job on a 3,000-transaction template: a 12-step branch.
func branchJob(t testing.TB) *Job {
	t.Helper()
	b := newTestBuilder(t, nil)
	tpl := syntheticTemplate(t, 3000, true)
	j, err := b.Build(tpl, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.MerkleBranch) != 12 {
		t.Fatalf("branch has %d steps, want 12", len(j.MerkleBranch))
	}
	return j
}

func TestHasherZeroAlloc(t *testing.T) {
	j := branchJob(t)
	var h Hasher
	en1 := []byte{1, 2, 3, 4}
	en2 := []byte{5, 6, 7, 8}
	nonce := uint32(0)
	allocs := testing.AllocsPerRun(200, func() {
		nonce++
		_ = h.HeaderHash(j, en1, en2, j.NTime, nonce, j.Version)
	})
	if allocs != 0 {
		t.Errorf("HeaderHash allocates %v times per call", allocs)
	}
}

// BenchmarkHeaderHash is the server's per-share hashing cost on a full
// block's job (12-step branch).
func BenchmarkHeaderHash(b *testing.B) {
	j := branchJob(b)
	var h Hasher
	en1 := []byte{1, 2, 3, 4}
	en2 := []byte{5, 6, 7, 8}
	var sink chainhash.Hash
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sink = h.HeaderHash(j, en1, en2, j.NTime, uint32(i), j.Version)
	}
	_ = sink
}

// BenchmarkCoinbaseTxID isolates the coinbase part of a share's hashing
// (what a sha256 midstate of Coinb1 could shorten).
func BenchmarkCoinbaseTxID(b *testing.B) {
	j := branchJob(b)
	var h Hasher
	en1 := []byte{1, 2, 3, 4}
	en2 := []byte{5, 6, 7, 8}
	var sink chainhash.Hash
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		en2[0] = byte(i)
		sink = h.CoinbaseTxID(j, en1, en2)
	}
	_ = sink
}
