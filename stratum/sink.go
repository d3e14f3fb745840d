package stratum

import (
	"context"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/stratum/work"
)

// Share is one accepted share, with everything needed to recompute its hash
// later from the stored job: extranonce1, extranonce2, ntime, nonce and the
// version bits the miner rolled.
type Share struct {
	// Time is when the server accepted the share.
	Time time.Time
	// Instance names the pool instance that accepted it.
	Instance string
	// Account, Worker and Group identify who submitted it. Group is the
	// worker group the allocator acts on ("" when none matched).
	Account, Worker, Group string
	// Job is the job the share was made for.
	Job *work.Job
	// Extranonce1 is the connection's extranonce1; Extranonce2 the miner's.
	Extranonce1, Extranonce2 []byte
	// NTime and Nonce are the header fields the miner chose.
	NTime, Nonce uint32
	// VersionBits are the bits the miner submitted (0 without version
	// rolling); Version is the header version after the BIP310 merge
	// (jobVersion &^ mask) | (bits & mask).
	VersionBits, Version uint32
	// Difficulty is what the share is credited at: the share difficulty
	// in force when the job was sent to the miner or, for a block whose
	// hash misses that share target (share difficulty above the
	// network's), the job's network difficulty, the target it met.
	Difficulty float64
	// Achieved is the difficulty the share's hash actually reached.
	Achieved float64
	// Hash is the block header hash (internal byte order).
	Hash chainhash.Hash
	// IsBlock is true when the hash met the network target.
	IsBlock bool
}

// FoundBlock is a block the pool found and submitted to the node.
type FoundBlock struct {
	// Share is the share that solved the block.
	Share Share
	// Height and Hash identify the block.
	Height int64
	Hash   chainhash.Hash
	// CoinbaseValue is the reward the coinbase claims, in satoshis.
	CoinbaseValue int64
	// SubmitResult is the node's verdict ("accepted", "duplicate",
	// "inconclusive" or "rejected: reason").
	SubmitResult string
	// Accepted is true when the node confirmed it has the block.
	Accepted bool
}

// Reject is one rejected share, aggregated by the sink per worker, reason
// and minute.
type Reject struct {
	Time                   time.Time
	Account, Worker, Group string
	Reason                 RejectReason
	Difficulty             float64
}

// Sink receives the server's share events. The share ledger implements it;
// a logging sink serves until a ledger is configured.
//
// Implementations must be safe for concurrent use and must not retain the
// pointers they are given after a call returns (the server reuses them,
// RecordShare's context included).
type Sink interface {
	// RecordJob is called once for every job before it is sent to any
	// miner, so that every stored share can reference its job.
	RecordJob(ctx context.Context, job *work.Job) error
	// RecordShare is called before the miner is told the share was
	// accepted. When it returns an error the miner is told the share was
	// not recorded, and the share is not counted. It is not called for a
	// share that found a block: RecordBlock records that one.
	RecordShare(ctx context.Context, share *Share) error
	// RecordBlock is called after a found block was submitted to the
	// node, before the miner is answered. It records the block and its
	// share (block.Share) as one record: both or neither, so that a block
	// is never credited without the share that found it. When it returns
	// an error the miner is told the share was not recorded.
	RecordBlock(ctx context.Context, block *FoundBlock) error
	// RecordReject counts a rejected share; it must not block.
	RecordReject(reject *Reject)
}
