package node

import (
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
)

// Template is one validated block template. It is immutable once returned by
// this package: job builders and sessions share it by pointer and never
// modify it.
//
// Byte order: every chainhash.Hash field holds the hash in Bitcoin's internal
// (little-endian) byte order, exactly as it is serialized inside blocks;
// String() shows the usual reversed display form.
type Template struct {
	// Height is the height of the block this template builds.
	Height int64
	// PrevHash is the hash of the block this template builds on.
	PrevHash chainhash.Hash
	// Version is the block version the node asks for (BIP9 bits included).
	Version int32
	// Bits is the compact network target of the block.
	Bits uint32
	// CurTime, MinTime and MaxTime are unix seconds from the template
	// (curtime, mintime, maxtime). MaxTime is 0 when the node does not send
	// it (Bitcoin Core); callers then apply the consensus bound of
	// now + 2 hours.
	CurTime, MinTime, MaxTime int64
	// CoinbaseValue is the subsidy plus all transaction fees, in satoshis.
	CoinbaseValue int64
	// Transactions are the template's transactions in block order, without
	// the coinbase.
	Transactions []Transaction
	// WitnessCommitment is the complete segwit commitment output script
	// (OP_RETURN 0x24 aa21a9ed || 32-byte commitment), normalized from
	// Bitcoin Core's full script or btcd's bare 32-byte hash. It is nil when
	// the node sent none (btcd omits it when no transaction has a witness).
	WitnessCommitment []byte
	// CoinbaseAux is the concatenation of coinbaseaux values the node asks
	// to be placed in the coinbase script (may be empty).
	CoinbaseAux []byte
	// LongPollID is the identifier to send with the next longpoll request;
	// empty when the node does not offer longpoll.
	LongPollID string
	// Rules lists the softfork rules the template uses (may be empty: btcd
	// does not send them). Names are stored without Core's "!" prefix.
	Rules []string
	// VBRequired is the BIP9 vbrequired mask: version bits the node requires
	// set in blocks. They are already OR-ed into Version; miners rolling
	// version bits must leave them set (0 when the node does not send it).
	VBRequired uint32
	// WeightLimit and SigOpLimit are the node's limits (0 when not sent).
	WeightLimit, SigOpLimit int64
	// Source names the node (or file) the template came from, for logs.
	Source string
	// FetchedAt is when this process received the template.
	FetchedAt time.Time
}

// Transaction is one template transaction.
type Transaction struct {
	// Data is the raw transaction serialization as the node sent it
	// (witness serialization when it has a witness).
	Data []byte
	// TxID is the hash without witness data (used in the merkle tree).
	TxID chainhash.Hash
	// WTxID is the hash with witness data (used in the witness commitment);
	// equal to TxID for a transaction without witness.
	WTxID chainhash.Hash
	// Fee is the fee in satoshis (0 when the node does not say).
	Fee int64
	// SigOps and Weight are as reported by the node (0 when not sent).
	SigOps, Weight int64
}
