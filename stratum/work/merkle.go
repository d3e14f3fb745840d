package work

import (
	"crypto/sha256"

	"github.com/btcsuite/btcd/chainhash/v2"
)

// witnessMagic starts the payload of the segwit commitment output (BIP141):
// the complete script is OP_RETURN OP_DATA_36 aa21a9ed <32-byte commitment>.
var witnessMagic = []byte{0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed}

// witnessCommitmentLen is the length of the complete commitment script.
const witnessCommitmentLen = 38

// sha256d is Bitcoin's double SHA-256; it does not allocate.
func sha256d(b []byte) chainhash.Hash {
	first := sha256.Sum256(b)
	return sha256.Sum256(first[:])
}

// hashPair is one merkle tree step: sha256d(left || right).
func hashPair(left, right *chainhash.Hash) chainhash.Hash {
	var buf [64]byte
	copy(buf[:32], left[:])
	copy(buf[32:], right[:])
	return sha256d(buf[:])
}

// merkleBranch returns the siblings, bottom up, that combine the first
// leaf (the coinbase, not known yet) with the others into the merkle root.
// others are the leaves after the first, in block order. The first leaf's
// own value never enters a sibling, so a zero placeholder stands in for it.
// Odd levels duplicate their last hash, as Bitcoin's merkle tree does.
func merkleBranch(others []chainhash.Hash) []chainhash.Hash {
	if len(others) == 0 {
		return nil
	}
	level := make([]chainhash.Hash, len(others)+1, len(others)+2)
	copy(level[1:], others)
	var branch []chainhash.Hash
	for len(level) > 1 {
		branch = append(branch, level[1])
		if len(level)%2 == 1 {
			level = append(level, level[len(level)-1])
		}
		// Level i+1 reuses the front of level i's slice: entry k is
		// written only after entries 2k and 2k+1 were read.
		next := level[:1]
		for i := 2; i < len(level); i += 2 {
			next = append(next, hashPair(&level[i], &level[i+1]))
		}
		level = next
	}
	return branch
}

// foldBranch combines a leaf with its branch, bottom up, into the root for
// the first leaf position (the leaf is always the left operand).
func foldBranch(leaf chainhash.Hash, branch []chainhash.Hash) chainhash.Hash {
	for i := range branch {
		leaf = hashPair(&leaf, &branch[i])
	}
	return leaf
}

// merkleRoot computes the root of the full tree over leaves (at least one).
// It works on a copy and leaves the argument unchanged.
func merkleRoot(leaves []chainhash.Hash) chainhash.Hash {
	if len(leaves) == 0 {
		return chainhash.Hash{}
	}
	level := make([]chainhash.Hash, len(leaves), len(leaves)+1)
	copy(level, leaves)
	for len(level) > 1 {
		if len(level)%2 == 1 {
			level = append(level, level[len(level)-1])
		}
		next := level[:0]
		for i := 0; i < len(level); i += 2 {
			next = append(next, hashPair(&level[i], &level[i+1]))
		}
		level = next
	}
	return level[0]
}

// witnessCommitmentScript returns the complete BIP141 commitment output
// script for a block whose non-coinbase transactions have the given wtxids:
// the witness root is taken over the coinbase's wtxid (defined as 32 zero
// bytes) followed by wtxids, and committed together with the coinbase's
// witness reserved value (32 zero bytes).
func witnessCommitmentScript(wtxids []chainhash.Hash) []byte {
	leaves := make([]chainhash.Hash, len(wtxids)+1)
	copy(leaves[1:], wtxids)
	root := merkleRoot(leaves)
	var preimage [64]byte
	copy(preimage[:32], root[:])
	commitment := sha256d(preimage[:])
	script := make([]byte, 0, witnessCommitmentLen)
	script = append(script, witnessMagic...)
	return append(script, commitment[:]...)
}

// isWitnessCommitment reports whether an output script has the shape of a
// segwit commitment (BIP141 allows trailing bytes after the 38 used ones).
func isWitnessCommitment(script []byte) bool {
	if len(script) < witnessCommitmentLen {
		return false
	}
	for i, b := range witnessMagic {
		if script[i] != b {
			return false
		}
	}
	return true
}
