package work

import (
	"encoding/hex"
	"testing"

	"github.com/btcsuite/btcd/chainhash/v2"
)

// TestMerkleBlock100000 recomputes mainnet block 100000's merkle root from
// its four txids, both over the full tree and by folding the coinbase up
// the branch.
func TestMerkleBlock100000(t *testing.T) {
	txids := []chainhash.Hash{
		mustHash(t, "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87"),
		mustHash(t, "fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4"),
		mustHash(t, "6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4"),
		mustHash(t, "e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d"),
	}
	want := mustHash(t, "f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766")
	if got := merkleRoot(txids); got != want {
		t.Errorf("merkle root %s, want %s", got, want)
	}
	branch := merkleBranch(txids[1:])
	if len(branch) != 2 || branch[0] != txids[1] {
		t.Fatalf("branch %v", branch)
	}
	if got := foldBranch(txids[0], branch); got != want {
		t.Errorf("folded root %s, want %s", got, want)
	}
	// merkleRoot must not touch its argument.
	if txids[0] != mustHash(t, "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87") {
		t.Error("merkleRoot modified its input")
	}
}

// TestMerkleBranchSizes folds pseudo-random coinbases up branches for every
// tree size up to 70 (odd levels, single transactions, powers of two) and
// compares with the full tree.
func TestMerkleBranchSizes(t *testing.T) {
	for n := 1; n <= 70; n++ {
		leaves := make([]chainhash.Hash, n)
		for i := range leaves {
			leaves[i] = chainhash.DoubleHashH([]byte{byte(n), byte(i)})
		}
		others := append([]chainhash.Hash(nil), leaves[1:]...)
		branch := merkleBranch(others)
		if got, want := foldBranch(leaves[0], branch), merkleRoot(leaves); got != want {
			t.Fatalf("n=%d: folded %s, full tree %s", n, got, want)
		}
		for i := range others {
			if others[i] != leaves[i+1] {
				t.Fatalf("n=%d: merkleBranch modified its input", n)
			}
		}
		wantLen := 0
		for w := 1; w < n; w <<= 1 {
			wantLen++
		}
		if len(branch) != wantLen {
			t.Fatalf("n=%d: branch length %d, want %d", n, len(branch), wantLen)
		}
	}
}

// TestWitnessCommitment checks commitments against two real ones: the
// commitment of a block with only a coinbase (as in every btcd and Core
// regtest block without witness transactions), and Bitcoin Core's
// default_witness_commitment for testnet3 block 2442185's template.
func TestWitnessCommitment(t *testing.T) {
	empty := witnessCommitmentScript(nil)
	if got, want := hex.EncodeToString(empty), "6a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9"; got != want {
		t.Errorf("empty block commitment %s, want %s", got, want)
	}
	tpl := loadTemplate(t, "publicpool_gbt.json")
	wtxids := make([]chainhash.Hash, len(tpl.Transactions))
	for i, tx := range tpl.Transactions {
		wtxids[i] = tx.WTxID
	}
	if got := witnessCommitmentScript(wtxids); hex.EncodeToString(got) != hex.EncodeToString(tpl.WitnessCommitment) {
		t.Errorf("commitment %x, Bitcoin Core sent %x", got, tpl.WitnessCommitment)
	}
	if !isWitnessCommitment(tpl.WitnessCommitment) || isWitnessCommitment(tpl.WitnessCommitment[:37]) ||
		isWitnessCommitment(append([]byte{0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xee}, make([]byte, 32)...)) {
		t.Error("isWitnessCommitment misclassifies")
	}
}
