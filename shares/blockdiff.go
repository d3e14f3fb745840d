package shares

import (
	"context"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/jackc/pgx/v5"
)

// ErrUnknownJob is returned when a found block's job is not in the ledger
// (jobs reach it through the spool, a block at once, so a block can briefly
// precede its job; a block recorded without a job never has one).
var ErrUnknownJob = errors.New("the block's job is not in the ledger")

// BlockNetworkDiff returns the network difficulty of the job the found
// block was made for: the difficulty the block itself met, so a PPLNS
// window can be sized as a multiple of it exactly as the pool saw it.
func (l *Ledger) BlockNetworkDiff(ctx context.Context, block chainhash.Hash) (float64, error) {
	var diff *float64
	err := l.db.QueryRow(ctx, `SELECT j.network_diff FROM blocks b
		LEFT JOIN jobs j ON j.instance = b.instance AND j.job_id = b.job_id WHERE b.hash = $1`, block[:]).Scan(&diff)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("network difficulty of block %s: %w", block, ErrUnknownBlock)
	}
	if err != nil {
		return 0, fmt.Errorf("network difficulty of block %s: %w", block, err)
	}
	if diff == nil {
		return 0, fmt.Errorf("network difficulty of block %s: %w", block, ErrUnknownJob)
	}
	return *diff, nil
}
