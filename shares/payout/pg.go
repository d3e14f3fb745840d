package payout

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wattpool/wattpool/stratum/work"
)

// ErrUnknownBlock is returned for a block the ledger does not have.
var ErrUnknownBlock = errors.New("block not in the ledger")

// soloJobPattern matches the job IDs of solo jobs (work.SoloJobPrefix).
const soloJobPattern = work.SoloJobPrefix + "%"

// ErrSoloBlock is returned for a block found on a solo job: its coinbase
// paid the miner's address (less the pool fee) directly, so the pool's
// schemes credit nobody for it.
var ErrSoloBlock = errors.New("block was mined solo: its coinbase paid the finder's address directly and the pool's schemes credit nobody for it")

// DB is what the reader needs of a connection, pool or transaction.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Reader reads blocks and share rows from the ledger's PostgreSQL schema.
type Reader struct {
	db      DB
	archive Archive // retention archives, when set (archive.go)
}

// NewReader returns a Reader over db.
func NewReader(db DB) *Reader { return &Reader{db: db} }

// StoredBlock is a found block as the ledger holds it.
type StoredBlock struct {
	Block
	Hash   chainhash.Hash
	Height int64
	Status string
	// Solo is set for a block found on a solo job (its job's
	// solo_script is set, migration 007).
	Solo bool
}

// Block reads a found block, its job's network difficulty, whether it was
// mined solo, and the pool's previous block that was not orphaned (solo
// blocks are not the pool's: they end no prop round).
func (r *Reader) Block(ctx context.Context, hash chainhash.Hash) (StoredBlock, error) {
	b := StoredBlock{Hash: hash}
	var netDiff *float64
	var prev *time.Time
	err := r.db.QueryRow(ctx, `SELECT b.found_at, b.coinbase_sats, b.height, b.status::text, j.network_diff,
		(SELECT max(p.found_at) FROM blocks p WHERE p.found_at < b.found_at AND p.status <> 'orphaned'
			AND NOT EXISTS (SELECT 1 FROM jobs pj WHERE pj.instance = p.instance AND pj.job_id = p.job_id AND pj.solo_script IS NOT NULL)),
		j.solo_script IS NOT NULL
		FROM blocks b LEFT JOIN jobs j ON j.instance = b.instance AND j.job_id = b.job_id WHERE b.hash = $1`,
		hash[:]).Scan(&b.FoundAt, &b.CoinbaseSats, &b.Height, &b.Status, &netDiff, &prev, &b.Solo)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, fmt.Errorf("block %s: %w", hash, ErrUnknownBlock)
	}
	if err != nil {
		return b, fmt.Errorf("read block %s: %w", hash, err)
	}
	if netDiff != nil {
		b.NetworkDiff = *netDiff
	}
	if prev != nil {
		b.PrevFoundAt = *prev
	}
	return b, nil
}

// Source returns a Source streaming share rows from ctx's database.
func (r *Reader) Source(ctx context.Context) Source {
	return pgSource{ctx: ctx, db: r.db, archive: r.archive}
}

type pgSource struct {
	ctx     context.Context
	db      DB
	archive Archive
}

// Walk streams the shares newest first, served by the shares primary key
// (time, share_id) backwards: memory does not grow with the window. Rows
// carry account and worker ids, named from maps read first (a join per
// row doubles the time of a million-share window). Solo shares are left
// out: they never enter the pool's schemes. They are told by their job ID
// (work.SoloJobPrefix; the job's solo_script is set too), a filter on the
// row itself: an anti-join on jobs made PostgreSQL sort the whole range
// rather than stream it in index order.
func (s pgSource) Walk(end, since time.Time, fn func(Share) (bool, error)) error {
	accounts, err := s.names(`SELECT id, name FROM accounts`)
	if err != nil {
		return err
	}
	workers, err := s.names(`SELECT id, name FROM workers`)
	if err != nil {
		return err
	}
	sql := `SELECT time, share_id, account_id, worker_id, share_diff FROM shares
		WHERE time <= $1 AND ($2::timestamptz IS NULL OR time > $2) AND job_id NOT LIKE '` + soloJobPattern + `'
		ORDER BY time DESC, share_id DESC`
	var lower *time.Time
	if !since.IsZero() {
		lower = &since
	}
	rows, err := s.db.Query(s.ctx, sql, end, lower)
	if err != nil {
		return fmt.Errorf("read shares: %w", err)
	}
	defer rows.Close()
	var sh Share
	var aid, wid int64
	var ok bool
	for rows.Next() {
		if err := rows.Scan(&sh.Time, &sh.ID, &aid, &wid, &sh.Diff); err != nil {
			return fmt.Errorf("read shares: %w", err)
		}
		if sh.Account, ok = accounts[aid]; !ok {
			return fmt.Errorf("read shares: share %x at %s has account id %d, which is not in accounts", sh.ID, sh.Time.UTC().Format(time.RFC3339Nano), aid)
		}
		if sh.Worker, ok = workers[wid]; !ok {
			return fmt.Errorf("read shares: share %x at %s has worker id %d, which is not in workers", sh.ID, sh.Time.UTC().Format(time.RFC3339Nano), wid)
		}
		more, err := fn(sh)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read shares: %w", err)
	}
	return s.walkArchived(end, since, accounts, workers, fn)
}

// names reads an id -> name table.
func (s pgSource) names(sql string) (map[int64]string, error) {
	rows, err := s.db.Query(s.ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("read names: %w", err)
	}
	m := map[int64]string{}
	var id int64
	var name string
	_, err = pgx.ForEachRow(rows, []any{&id, &name}, func() error { m[id] = name; return nil })
	if err != nil {
		return nil, fmt.Errorf("read names: %w", err)
	}
	return m, nil
}

// Explain recomputes the split of the found block hash for p from the
// ledger's raw shares.
func (r *Reader) Explain(ctx context.Context, p Params, hash chainhash.Hash, each func(Share, *big.Rat) error) (StoredBlock, Result, error) {
	if beg, ok := r.db.(interface {
		BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
	}); ok {
		// One snapshot: the hourly sums and the rows of the window's
		// end hours must agree (sums.go).
		tx, err := beg.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return StoredBlock{}, Result{}, fmt.Errorf("block %s: %w", hash, err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		return (&Reader{db: tx, archive: r.archive}).Explain(ctx, p, hash, each)
	}
	b, err := r.Block(ctx, hash)
	if err != nil {
		return b, Result{}, err
	}
	if b.Solo {
		return b, Result{Params: p}, fmt.Errorf("block %s: %w", hash, ErrSoloBlock)
	}
	res, err := Compute(p, b.Block, r.Source(ctx), each)
	if err != nil {
		return b, res, fmt.Errorf("block %s: %w", hash, err)
	}
	return b, res, nil
}
