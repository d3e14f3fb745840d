// Package work turns block templates into stratum jobs and stratum shares
// back into headers and blocks: the coinbase split around the extranonce
// (coinb1 | extranonce1 | extranonce2 | coinb2), the merkle branch, header
// fields, share and network targets, and block assembly. It does no I/O.
package work

import (
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/stratum/node"
)

// Job is one unit of work sent to miners with mining.notify. A Job is
// immutable once built: sessions hold the pointer and never patch it.
type Job struct {
	// ID is the job identifier sent to miners (lowercase hex; a solo
	// job's is SoloJobPrefix, then hex). IDs never repeat within one pool
	// instance, across restarts included.
	ID string
	// Template is the template the job was built from.
	Template *node.Template
	// Height is the height of the block this job builds.
	Height int64
	// PrevHash is the previous block hash in internal byte order.
	PrevHash chainhash.Hash
	// Version is the block version before any miner version rolling.
	Version uint32
	// Bits is the compact network target.
	Bits uint32
	// NTime is the job's header time (template curtime at build).
	NTime uint32
	// Coinb1 is the coinbase transaction serialization (no witness) up to
	// the extranonce; Coinb2 follows the extranonce to the end.
	Coinb1, Coinb2 []byte
	// Extranonce1Size and Extranonce2Size are the byte lengths of the space
	// between Coinb1 and Coinb2 (extranonce1 is chosen by the pool per
	// connection, extranonce2 by the miner).
	Extranonce1Size, Extranonce2Size int
	// MerkleBranch holds the sibling hashes, bottom up, that combine the
	// coinbase txid into the merkle root (internal byte order).
	MerkleBranch []chainhash.Hash
	// NetworkTarget is the block target as a 256-bit big-endian number.
	NetworkTarget Target
	// NetworkDiff is the network difficulty relative to the difficulty-1
	// target 0x00000000FFFF0000...
	NetworkDiff float64
	// CreatedAt is when the job was built.
	CreatedAt time.Time
	// SoloScript is the output script a solo job's coinbase pays the
	// miner (Builder.BuildFor); nil for a pool job, whose coinbase pays
	// the pool. Shares of solo jobs never enter the pool's schemes.
	SoloScript []byte
}

// Target is a 256-bit target as a big-endian byte array, so that targets
// and hashes compare with bytes.Compare and without allocation.
type Target [32]byte
