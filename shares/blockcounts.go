package shares

import (
	"context"
	"fmt"
)

// BlockCounts is how an instance's found blocks stand on the chain, as the
// block tracker last saw them. A block the node took may still lose a race
// and go to a side chain: "submitted" is not "in the main chain".
type BlockCounts struct {
	// Stored is every found block in the ledger.
	Stored int64 `json:"stored"`
	// Pending blocks were submitted and are not (yet) seen in the main
	// chain; InMainChain ones are (confirmed or mature); Orphaned ones
	// lost to another block at their height.
	Pending     int64 `json:"pending"`
	InMainChain int64 `json:"in_main_chain"`
	Mature      int64 `json:"mature"`
	Orphaned    int64 `json:"orphaned"`
}

// BlockCounts counts the found blocks of instance by chain status.
func (l *Ledger) BlockCounts(ctx context.Context, instance string) (BlockCounts, error) {
	rows, err := l.db.Query(ctx, `SELECT status::text, count(*) FROM blocks WHERE instance = $1 GROUP BY 1`, instance)
	if err != nil {
		return BlockCounts{}, fmt.Errorf("count blocks: %w", err)
	}
	defer rows.Close()
	var c BlockCounts
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			return BlockCounts{}, fmt.Errorf("count blocks: %w", err)
		}
		c.Stored += n
		switch status {
		case StatusPending:
			c.Pending += n
		case StatusConfirmed:
			c.InMainChain += n
		case StatusMature:
			c.InMainChain += n
			c.Mature += n
		case StatusOrphaned:
			c.Orphaned += n
		default:
			return BlockCounts{}, fmt.Errorf("count blocks: unknown status %q", status)
		}
	}
	if err := rows.Err(); err != nil {
		return BlockCounts{}, fmt.Errorf("count blocks: %w", err)
	}
	return c, nil
}
