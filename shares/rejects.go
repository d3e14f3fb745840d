package shares

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wattpool/wattpool/stratum"
)

// maxRejectKeys bounds the in-memory reject aggregate while the database
// is down (one key per worker, reason and minute).
const maxRejectKeys = 200_000

type rejectKey struct {
	minute                 int64 // unix seconds, whole minute
	account, worker, group string
	reason                 stratum.RejectReason
}

type rejectCount struct {
	count int64
	diff  float64
}

// rejects aggregates rejected shares in memory; the run loop upserts the
// aggregate every flush. Counts are statistics, not credit: a crash loses
// at most one flush interval of them, and a commit whose acknowledgement
// was lost may count a batch twice.
type rejects struct {
	mu      sync.Mutex
	m       map[rejectKey]rejectCount
	dropped func()
}

func (a *rejects) add(r *stratum.Reject) {
	k := rejectKey{minute: r.Time.Unix() / 60 * 60, account: r.Account, worker: r.Worker, group: r.Group, reason: r.Reason}
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.m[k]
	if !ok && len(a.m) >= maxRejectKeys {
		a.dropped()
		return
	}
	c.count++
	c.diff += r.Difficulty
	a.m[k] = c
}

func (a *rejects) take() map[rejectKey]rejectCount {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.m
	a.m = make(map[rejectKey]rejectCount)
	return m
}

// giveBack merges an aggregate that could not be stored.
func (a *rejects) giveBack(m map[rejectKey]rejectCount) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, c := range m {
		old, ok := a.m[k]
		if !ok && len(a.m) >= maxRejectKeys {
			a.dropped()
			continue
		}
		a.m[k] = rejectCount{count: old.count + c.count, diff: old.diff + c.diff}
	}
}

const rejectUpsertSQL = `INSERT INTO rejects (minute, account_id, worker_id, group_name, reason, count, diff_sum)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (minute, worker_id, reason) DO UPDATE SET count = rejects.count + excluded.count,
 diff_sum = rejects.diff_sum + excluded.diff_sum, group_name = excluded.group_name`

// flush upserts the aggregate; on failure it is kept for the next try.
func (a *rejects) flush(ctx context.Context, db interface {
	querier
	Begin(context.Context) (pgx.Tx, error)
}, n *names) (int, error) {
	m := a.take()
	if len(m) == 0 {
		return 0, nil
	}
	b := &pgx.Batch{}
	for k, c := range m {
		aid, wid, err := n.resolve(ctx, db, k.account, k.worker)
		if err != nil {
			a.giveBack(m)
			return 0, fmt.Errorf("flush rejects: %w", err)
		}
		b.Queue(rejectUpsertSQL, time.Unix(k.minute, 0).UTC(), aid, wid, k.group, k.reason.String(), c.count, c.diff)
	}
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
	if err != nil {
		a.giveBack(m)
		return 0, fmt.Errorf("flush rejects: %w", err)
	}
	return len(m), nil
}
