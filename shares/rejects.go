package shares

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wattpool/wattpool/stratum"
)

// maxRejectKeys bounds the in-memory reject aggregate while the database
// is down (one key per worker, reason and minute), counting the keys of a
// flush whose outcome is not known yet.
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

// rejectFlush is an aggregate taken for storing, with the id that makes
// storing it idempotent.
type rejectFlush struct {
	id     int64
	counts map[rejectKey]rejectCount
}

// rejects aggregates rejected shares in memory; the run loop stores the
// aggregate every flush. Counts are statistics, not credit: a crash loses
// what was aggregated since the last stored flush (one flush interval while
// the database is up, everything since it went down otherwise), and while
// the aggregate is full new keys are dropped (and counted). They are never
// counted twice: a flush that failed, even after its commit (the
// acknowledgement was lost), is retried as is, with its id, before anything
// newer, and the database applies each id of an instance once
// (reject_flushes, migration 002).
type rejects struct {
	instance string
	limit    int
	now      func() time.Time
	dropped  func()

	mu          sync.Mutex
	m           map[rejectKey]rejectCount
	pendingKeys int // len(pending.counts), for add's bound

	// Used by flush only, which the drain lock serializes.
	pending *rejectFlush // taken, outcome unknown: retried before anything else
	lastID  int64        // largest flush id used or found in the database
	loaded  bool         // lastID holds the database's value

	// afterCommit, when set (tests), runs after a flush committed; an error
	// stands for an acknowledgement lost on the way back.
	afterCommit func() error
}

func newRejects(instance string, now func() time.Time, dropped func()) *rejects {
	return &rejects{instance: instance, limit: maxRejectKeys, now: now, dropped: dropped, m: map[rejectKey]rejectCount{}}
}

func (a *rejects) add(r *stratum.Reject) {
	k := rejectKey{minute: r.Time.Unix() / 60 * 60, account: r.Account, worker: r.Worker, group: r.Group, reason: r.Reason}
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.m[k]
	if !ok && len(a.m)+a.pendingKeys >= a.limit {
		a.dropped()
		return
	}
	c.count++
	c.diff += r.Difficulty
	a.m[k] = c
}

// take moves the aggregate into a new pending flush.
func (a *rejects) take() *rejectFlush {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.m) == 0 {
		return nil
	}
	f := &rejectFlush{counts: a.m}
	a.m = make(map[rejectKey]rejectCount)
	a.pendingKeys = len(f.counts)
	return f
}

func (a *rejects) settle() {
	a.mu.Lock()
	a.pending, a.pendingKeys = nil, 0
	a.mu.Unlock()
}

// nextID returns a flush id larger than every earlier one of this
// instance: microseconds of the clock, or one more than the last id when
// the clock is behind it. Ids grow across restarts too, so a transaction
// of a crashed process still running in the database cannot take an id
// this process uses.
func (a *rejects) nextID() int64 {
	id := a.now().UnixMicro()
	if id <= a.lastID {
		id = a.lastID + 1
	}
	a.lastID = id
	return id
}

const (
	rejectUpsertSQL = `INSERT INTO rejects (minute, account_id, worker_id, group_name, reason, count, diff_sum)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (minute, worker_id, reason) DO UPDATE SET count = rejects.count + excluded.count,
 diff_sum = rejects.diff_sum + excluded.diff_sum, group_name = excluded.group_name`
	// rejectClaimSQL returns no row when the flush (or a later one) was
	// applied already; it waits for a concurrent transaction holding the
	// row and then judges by what that one committed.
	rejectClaimSQL = `INSERT INTO reject_flushes (instance, flush_id, flushed_at) VALUES ($1, $2, now())
ON CONFLICT (instance) DO UPDATE SET flush_id = excluded.flush_id, flushed_at = excluded.flushed_at
 WHERE reject_flushes.flush_id < excluded.flush_id
RETURNING flush_id`
)

type rejectDB interface {
	querier
	Begin(context.Context) (pgx.Tx, error)
}

// flush stores the pending flush, if any, then the aggregate; whatever
// fails stays pending, to be retried with the same id. It returns the
// number of aggregate rows stored.
func (a *rejects) flush(ctx context.Context, db rejectDB, n *names) (int, error) {
	stored := 0
	if a.pending != nil {
		if err := a.store(ctx, db, n, a.pending); err != nil {
			return 0, err
		}
		stored += len(a.pending.counts)
		a.settle()
	}
	if !a.loaded {
		var last int64
		err := db.QueryRow(ctx, "SELECT flush_id FROM reject_flushes WHERE instance = $1", a.instance).Scan(&last)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return stored, fmt.Errorf("flush rejects: last flush id: %w", err)
		}
		a.lastID, a.loaded = max(a.lastID, last), true
	}
	f := a.take()
	if f == nil {
		return stored, nil
	}
	f.id = a.nextID()
	a.pending = f
	if err := a.store(ctx, db, n, f); err != nil {
		return stored, err
	}
	stored += len(f.counts)
	a.settle()
	return stored, nil
}

// store applies f in one transaction unless its id was applied already.
func (a *rejects) store(ctx context.Context, db rejectDB, n *names, f *rejectFlush) error {
	b := &pgx.Batch{}
	for k, c := range f.counts {
		aid, wid, err := n.resolve(ctx, db, k.account, k.worker)
		if err != nil {
			return fmt.Errorf("flush rejects: %w", err)
		}
		b.Queue(rejectUpsertSQL, time.Unix(k.minute, 0).UTC(), aid, wid, k.group, k.reason.String(), c.count, c.diff)
	}
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, rejectClaimSQL, a.instance, f.id).Scan(&id); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return nil // stored by an earlier try whose answer was lost
			}
			return fmt.Errorf("claim flush %d: %w", f.id, err)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err == nil && a.afterCommit != nil {
		err = a.afterCommit()
	}
	if err != nil {
		return fmt.Errorf("flush rejects (kept for retry as flush %d): %w", f.id, err)
	}
	return nil
}
