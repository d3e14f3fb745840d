package shares

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// querier is what the ledger needs of a connection or pool.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// names maps account and worker names to their row ids, creating rows on
// first sight. Ids are created outside the ingest transaction (committed at
// once) so a rolled-back batch never leaves a cached id without its row.
type names struct {
	mu       sync.Mutex
	accounts map[string]int64
	workers  map[workerKey]int64
}

type workerKey struct {
	account int64
	name    string
}

func newNames() *names {
	return &names{accounts: map[string]int64{}, workers: map[workerKey]int64{}}
}

const (
	accountSQL = `WITH ins AS (INSERT INTO accounts (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id)
SELECT id FROM ins UNION ALL SELECT id FROM accounts WHERE name = $1 LIMIT 1`
	workerSQL = `WITH ins AS (INSERT INTO workers (account_id, name) VALUES ($1, $2) ON CONFLICT (account_id, name) DO NOTHING RETURNING id)
SELECT id FROM ins UNION ALL SELECT id FROM workers WHERE account_id = $1 AND name = $2 LIMIT 1`
)

// resolve returns the ids of account and worker.
func (n *names) resolve(ctx context.Context, db querier, account, worker string) (accountID, workerID int64, err error) {
	n.mu.Lock()
	aid, ok := n.accounts[account]
	var wid int64
	wok := false
	if ok {
		wid, wok = n.workers[workerKey{aid, worker}]
	}
	n.mu.Unlock()
	if wok {
		return aid, wid, nil
	}
	if !ok {
		if err := queryID(ctx, db, &aid, accountSQL, account); err != nil {
			return 0, 0, fmt.Errorf("account %q: %w", account, err)
		}
	}
	if err := queryID(ctx, db, &wid, workerSQL, aid, worker); err != nil {
		return 0, 0, fmt.Errorf("worker %q of account %q: %w", worker, account, err)
	}
	n.mu.Lock()
	n.accounts[account] = aid
	n.workers[workerKey{aid, worker}] = wid
	n.mu.Unlock()
	return aid, wid, nil
}

// queryID runs an insert-or-select statement. It retries once on no rows:
// when another session inserted the same name concurrently, ON CONFLICT
// waits for it but the statement's snapshot predates its commit.
func queryID(ctx context.Context, db querier, id *int64, sql string, args ...any) error {
	err := db.QueryRow(ctx, sql, args...).Scan(id)
	if errors.Is(err, pgx.ErrNoRows) {
		err = db.QueryRow(ctx, sql, args...).Scan(id)
	}
	return err
}
