package work

import (
	"encoding/binary"

	"github.com/btcsuite/btcd/chainhash/v2"
)

// HeaderSize is the length of a serialized block header.
const HeaderSize = 80

// Hasher recomputes share headers: coinbase = Coinb1 | extranonce1 |
// extranonce2 | Coinb2, its txid, the merkle root folded up the job's
// branch, the 80-byte header and its sha256d. The server's share
// validation and the miner simulator use the same code, so both sides
// agree to the byte.
//
// A Hasher keeps scratch space so that, once warmed up, its methods do not
// allocate. It is not safe for concurrent use: give each goroutine its own
// (the zero value is ready to use).
//
// The methods trust their arguments: callers check extranonce lengths and
// parse ntime, nonce and version before hashing (Job.Block checks them).
type Hasher struct {
	coinbase []byte
}

// CoinbaseTxID returns the txid of the coinbase a share commits to.
func (h *Hasher) CoinbaseTxID(j *Job, en1, en2 []byte) chainhash.Hash {
	h.coinbase = append(h.coinbase[:0], j.Coinb1...)
	h.coinbase = append(h.coinbase, en1...)
	h.coinbase = append(h.coinbase, en2...)
	h.coinbase = append(h.coinbase, j.Coinb2...)
	return sha256d(h.coinbase)
}

// MerkleRoot returns the block's merkle root for a share: the coinbase txid
// folded up the job's branch.
func (h *Hasher) MerkleRoot(j *Job, en1, en2 []byte) chainhash.Hash {
	return foldBranch(h.CoinbaseTxID(j, en1, en2), j.MerkleBranch)
}

// Header returns the 80-byte block header of a share: version, previous
// block hash, merkle root, ntime, bits and nonce, integers little endian
// and hashes in internal byte order. version is the final header version
// (after MergeVersion).
func (h *Hasher) Header(j *Job, en1, en2 []byte, ntime, nonce, version uint32) [HeaderSize]byte {
	root := h.MerkleRoot(j, en1, en2)
	return header(version, &j.PrevHash, &root, ntime, j.Bits, nonce)
}

// HeaderHash returns the block hash of a share (sha256d of its header) in
// internal byte order, ready for Target.Meets and DiffFromHash.
func (h *Hasher) HeaderHash(j *Job, en1, en2 []byte, ntime, nonce, version uint32) chainhash.Hash {
	hdr := h.Header(j, en1, en2, ntime, nonce, version)
	return sha256d(hdr[:])
}

// header serializes a block header.
func header(version uint32, prev, root *chainhash.Hash, ntime, bits, nonce uint32) [HeaderSize]byte {
	var hdr [HeaderSize]byte
	binary.LittleEndian.PutUint32(hdr[0:4], version)
	copy(hdr[4:36], prev[:])
	copy(hdr[36:68], root[:])
	binary.LittleEndian.PutUint32(hdr[68:72], ntime)
	binary.LittleEndian.PutUint32(hdr[72:76], bits)
	binary.LittleEndian.PutUint32(hdr[76:80], nonce)
	return hdr
}

// MergeVersion applies BIP310 version rolling: the bits under mask come
// from the miner's submitted bits, the others from the job's version.
func MergeVersion(jobVersion, bits, mask uint32) uint32 {
	return (jobVersion &^ mask) | (bits & mask)
}
