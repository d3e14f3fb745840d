package shares

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/jackc/pgx/v5"
)

// By chooses how Hashrate groups shares.
type By int

// Hashrate groupings.
const (
	ByWorker  By = iota // key "account.worker"
	ByAccount           // key "account"
	ByGroup             // key: the worker group ("" for none)
)

// Hashrate is the hashrate one key showed over a window.
type Hashrate struct {
	Key     string
	Shares  int64
	DiffSum float64
	// HashesPerSecond is DiffSum * 2^32 / window seconds.
	HashesPerSecond float64
}

// Ledger answers questions from the stored shares. It needs only a
// database (pgxpool.Pool, pgx.Conn or pgx.Tx).
type Ledger struct {
	db querier
}

// NewLedger returns a Ledger reading db.
func NewLedger(db interface {
	querier
}) *Ledger {
	return &Ledger{db: db}
}

// Hashrate returns the hashrate per key over [from, to), from the ledger:
// sum(share difficulty) * 2^32 / seconds, in byte order of the key
// whatever the server's collation. Keys without shares are absent.
func (l *Ledger) Hashrate(ctx context.Context, by By, from, to time.Time) ([]Hashrate, error) {
	secs := to.Sub(from).Seconds()
	if secs <= 0 {
		return nil, fmt.Errorf("hashrate: window %s..%s is empty", from, to)
	}
	var key string
	switch by {
	case ByWorker:
		key = "a.name || '.' || w.name"
	case ByAccount:
		key = "a.name"
	case ByGroup:
		key = "s.group_name"
	default:
		return nil, fmt.Errorf("hashrate: unknown grouping %d", by)
	}
	rows, err := l.db.Query(ctx, `SELECT k, n, d FROM (SELECT `+key+` AS k, count(*) AS n, sum(s.share_diff) AS d
		FROM shares s JOIN workers w ON w.id = s.worker_id JOIN accounts a ON a.id = s.account_id
		WHERE s.time >= $1 AND s.time < $2 GROUP BY 1) g ORDER BY k COLLATE "C"`, from, to)
	if err != nil {
		return nil, fmt.Errorf("hashrate: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Hashrate, error) {
		var h Hashrate
		err := row.Scan(&h.Key, &h.Shares, &h.DiffSum)
		h.HashesPerSecond = h.DiffSum * math.Exp2(32) / secs
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("hashrate: %w", err)
	}
	return out, nil
}

// WindowShare is one share of a PPLNS window.
type WindowShare struct {
	Time            time.Time
	Account, Worker string
	// Diff is the share's difficulty; Credited the part of it inside the
	// window (less than Diff only for the oldest share).
	Diff, Credited float64
}

// Window is the result of a PPLNS window walk.
type Window struct {
	// End is the time the window ends at (the block's found_at).
	End time.Time
	// Shares counts the shares walked; DiffSum sums their credit.
	Shares  int64
	DiffSum float64
	// Complete is false when the ledger ran out of shares before the
	// window's difficulty N was reached.
	Complete bool
	// ByAccount sums credited difficulty per account.
	ByAccount map[string]float64
}

// ErrUnknownBlock is returned when a window is asked for a block the
// ledger does not have.
var ErrUnknownBlock = errors.New("block not in the ledger")

// PPLNSWindow walks the shares ending at the found block hash (those at or
// before its found_at, newest first) until their difficulty sums to n, the
// oldest share credited only in part. fn, when not nil, sees every share;
// the per-account sums are always returned. Shares stream from the
// database: memory does not grow with the window.
func (l *Ledger) PPLNSWindow(ctx context.Context, block chainhash.Hash, n float64, fn func(WindowShare) error) (Window, error) {
	if !(n > 0) || math.IsInf(n, 0) {
		return Window{}, fmt.Errorf("pplns window: difficulty %v must be positive and finite", n)
	}
	w := Window{ByAccount: map[string]float64{}}
	err := l.db.QueryRow(ctx, "SELECT found_at FROM blocks WHERE hash = $1", block[:]).Scan(&w.End)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, fmt.Errorf("pplns window for %s: %w", block, ErrUnknownBlock)
	}
	if err != nil {
		return w, fmt.Errorf("pplns window for %s: %w", block, err)
	}
	rows, err := l.db.Query(ctx, `SELECT s.time, a.name, w.name, s.share_diff FROM shares s
		JOIN workers w ON w.id = s.worker_id JOIN accounts a ON a.id = s.account_id
		WHERE s.time <= $1 ORDER BY s.time DESC, s.share_id DESC`, w.End)
	if err != nil {
		return w, fmt.Errorf("pplns window for %s: %w", block, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s WindowShare
		if err := rows.Scan(&s.Time, &s.Account, &s.Worker, &s.Diff); err != nil {
			return w, fmt.Errorf("pplns window for %s: %w", block, err)
		}
		s.Credited = min(s.Diff, n-w.DiffSum)
		w.Shares++
		w.DiffSum += s.Credited
		w.ByAccount[s.Account] += s.Credited
		if fn != nil {
			if err := fn(s); err != nil {
				return w, err
			}
		}
		if w.DiffSum >= n {
			w.Complete = true
			break
		}
	}
	if err := rows.Err(); err != nil {
		return w, fmt.Errorf("pplns window for %s: %w", block, err)
	}
	return w, nil
}
