package shares

import (
	"context"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/stratum/node"
)

// NodeChain adapts a *node.Client to the tracker's Chain.
type NodeChain struct{ Client *node.Client }

// BlockHash implements Chain.
func (n NodeChain) BlockHash(ctx context.Context, height int64) (chainhash.Hash, error) {
	return n.Client.GetBlockHash(ctx, height)
}

// Confirmations implements Chain.
func (n NodeChain) Confirmations(ctx context.Context, hash chainhash.Hash) (int64, error) {
	info, err := n.Client.GetBlockHeader(ctx, hash)
	if err != nil {
		return 0, err
	}
	return info.Confirmations, nil
}
