package shares

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

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

// ErrUnknownBlock is returned when a block the ledger does not have is
// asked for. (PPLNS windows are computed exactly by package
// shares/payout.)
var ErrUnknownBlock = errors.New("block not in the ledger")
