package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
	"go.uber.org/zap"
)

// SubmitStatus is a node's verdict on a submitted block. The zero value is
// not a verdict, so a forgotten assignment never reads as "accepted".
type SubmitStatus int

const (
	// SubmitAccepted: the node took the block (submitblock answered null).
	SubmitAccepted SubmitStatus = iota + 1
	// SubmitDuplicate: the node already had the block.
	SubmitDuplicate
	// SubmitInconclusive: the node stored the block without deciding on it,
	// or no verdict could be obtained.
	SubmitInconclusive
	// SubmitRejected: the node refused the block; Reason says why.
	SubmitRejected
)

// String is the status as used in logs, metric labels and the database.
func (s SubmitStatus) String() string {
	switch s {
	case SubmitAccepted:
		return "accepted"
	case SubmitDuplicate:
		return "duplicate"
	case SubmitInconclusive:
		return "inconclusive"
	case SubmitRejected:
		return "rejected"
	default:
		return "unknown"
	}
}

// SubmitResult is the outcome of submitting one block to one node (or, from
// Pool.SubmitBlock, the best outcome over all nodes).
type SubmitResult struct {
	// Status is the node's verdict.
	Status SubmitStatus
	// Reason is the node's words for a rejection ("bad-txnmrklroot",
	// "rejected: already have block ...") or what kept the verdict open.
	Reason string
	// Hash is the submitted block's hash (internal byte order).
	Hash chainhash.Hash
	// Confirmed is true when the node, asked after an accepted submission,
	// reports the block in its main chain.
	Confirmed bool
	// Node names the node that gave this verdict.
	Node string
}

// rank orders results so that the most useful verdict wins when several
// nodes answer: a confirmed acceptance, then acceptance, duplicate,
// inconclusive, rejected.
func (r SubmitResult) rank() int {
	switch r.Status {
	case SubmitAccepted:
		if r.Confirmed {
			return 5
		}
		return 4
	case SubmitDuplicate:
		return 3
	case SubmitInconclusive:
		return 2
	case SubmitRejected:
		return 1
	default:
		return 0
	}
}

// SubmitBlock sends the block (witness serialization) with submitblock on
// the connection reserved for blocks and interprets the answer:
//
//   - null: accepted. The node is then asked for the block's header: in
//     the main chain sets Confirmed; a side-chain block stays accepted with
//     Reason "accepted on a side chain"; a node that does not know the block
//     it just accepted makes the result inconclusive.
//   - "duplicate", "duplicate-inconclusive" (Core) and "rejected: already
//     have block ..." (btcd): duplicate. Core's "duplicate-invalid" means the
//     node has the block and knows it is invalid: rejected.
//   - "inconclusive": inconclusive.
//   - any other string ("rejected: ...", "bad-...", "high-hash"): rejected
//     with the string as Reason.
//   - RPC error -22 (block does not decode): rejected.
//
// Any other failure (network, other RPC errors) returns an error together
// with an inconclusive result naming the block, so callers can log both.
func (c *Client) SubmitBlock(ctx context.Context, block *wire.MsgBlock) (SubmitResult, error) {
	res := SubmitResult{Hash: block.BlockHash(), Node: c.name, Status: SubmitInconclusive}
	var buf bytes.Buffer
	buf.Grow(block.SerializeSize())
	if err := block.Serialize(&buf); err != nil {
		res.Reason = "block does not serialize"
		return res, fmt.Errorf("node %s: submitblock %s: serialize: %w", c.name, res.Hash, err)
	}
	raw, err := c.call(ctx, c.submit, c.timeout, "submitblock", hex.EncodeToString(buf.Bytes()))
	if err != nil {
		var re *RPCError
		if errors.As(err, &re) && re.Code == rpcDeserialization {
			res.Status = SubmitRejected
			res.Reason = "undecodable: " + re.Message
			return res, nil
		}
		res.Reason = "no verdict: " + err.Error()
		return res, fmt.Errorf("submit block %s: %w", res.Hash, err)
	}
	if !isNull(raw) {
		s, ok := unquote(raw)
		if !ok {
			res.Reason = "unexpected answer " + clip(raw)
			return res, fmt.Errorf("node %s: submitblock %s: answer %q is neither null nor a string", c.name, res.Hash, clip(raw))
		}
		res.Status, res.Reason = classifySubmitAnswer(s)
		return res, nil
	}
	res.Status = SubmitAccepted
	c.confirm(ctx, &res)
	return res, nil
}

// confirm asks the node where the block it accepted ended up. btcd answers
// null for side-chain blocks too, so acceptance alone does not say the
// block extends the chain.
func (c *Client) confirm(ctx context.Context, res *SubmitResult) {
	info, err := c.getBlockHeader(ctx, c.submit, res.Hash)
	switch {
	case errors.Is(err, ErrBlockNotFound):
		res.Status = SubmitInconclusive
		res.Reason = "node answered null but does not know the block"
	case err != nil:
		res.Reason = "accepted, confirmation lookup failed: " + err.Error()
		c.log.Warn("submitted block accepted but not confirmed", zap.Stringer("hash", res.Hash), zap.Error(err))
	case info.InMainChain():
		res.Confirmed = true
	default:
		res.Reason = "accepted on a side chain"
	}
}

// classifySubmitAnswer maps a BIP22 submitblock string to a status.
func classifySubmitAnswer(s string) (SubmitStatus, string) {
	switch {
	case s == "inconclusive":
		return SubmitInconclusive, s
	case s == "duplicate-invalid":
		return SubmitRejected, s
	case s == "duplicate" || strings.HasPrefix(s, "duplicate-"):
		return SubmitDuplicate, s
	case strings.HasPrefix(s, "rejected: already have block"):
		return SubmitDuplicate, s
	case s == "":
		return SubmitRejected, "rejected without a reason"
	default:
		return SubmitRejected, s
	}
}

// containsFold reports whether substr is in s, ignoring case.
func containsFold(s, substr string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(substr))
}
