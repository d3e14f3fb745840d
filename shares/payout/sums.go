package payout

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"
)

// Hourly sums (migration 008, kept by the share writer): a window's whole
// hours are summed from share_sums, per account, instead of from their
// rows; only the hour of the found time and the hour where N is crossed
// are walked share by share, so a window of millions of shares reads a few
// thousand rows. The result is the row walk's, bit for bit: the sums are
// exact, and an hour is taken whole only when all of it is inside the
// window (its total stays below what N still lacks, and it lies after the
// window's lower bound).

// hourSource is a Source that also has hourly sums.
type hourSource interface {
	Source
	// sumsFrom returns the first hour whose sums are whole (ok false: no
	// hour is).
	sumsFrom() (hour time.Time, ok bool, err error)
	// hours calls fn for every hour lo <= h < hi that has sums, newest
	// first, until fn says stop.
	hours(lo, hi time.Time, fn func(h time.Time, byAccount map[string]*sum, total *sum, shares int64) (bool, error)) error
}

// sub subtracts another exact sum.
func (d *sum) sub(o *sum) {
	if o.m.Sign() == 0 {
		return
	}
	d.align(o.e)
	var t big.Int
	t.Lsh(&o.m, uint(o.e-d.e))
	d.m.Sub(&d.m, &t)
}

// cmp compares two exact sums.
func (d *sum) cmp(o *sum) int {
	e := min(d.e, o.e)
	var a, b big.Int
	a.Lsh(&d.m, uint(d.e-e))
	b.Lsh(&o.m, uint(o.e-e))
	return a.Cmp(&b)
}

// addHour counts a whole hour of shares at once, as Add would one by one:
// the caller has checked that none of them completes the window.
func (w *Window) addHour(hour time.Time, byAccount map[string]*sum, total *sum, shares int64) {
	for a, s := range byAccount {
		acc := w.accounts[a]
		if acc == nil {
			acc = &sum{}
			w.accounts[a] = acc
		}
		acc.add(s)
	}
	w.total.add(total)
	if w.bounded {
		w.rem.sub(total)
	}
	w.shares += shares
	// Every share still to come is older than the hour.
	w.last = Share{Time: hour}
}

// walkWindow feeds w the shares of end's window (since exclusive, zero:
// unbounded), from the hourly sums where src has them and each does not
// need every share.
func walkWindow(w *Window, src Source, end, since time.Time, each func(Share, *big.Rat) error) error {
	rows := func(end, since time.Time) error {
		return src.Walk(end, since, func(s Share) (bool, error) {
			part, err := w.Add(s)
			if err != nil {
				return false, err
			}
			if each != nil {
				if err := each(s, part); err != nil {
					return false, err
				}
			}
			return !w.Complete(), nil
		})
	}
	hs, ok := src.(hourSource)
	if !ok || each != nil {
		return rows(end, since)
	}
	lo, ok, err := hs.sumsFrom()
	if err != nil {
		return err
	}
	if !ok {
		return rows(end, since)
	}
	if !since.IsZero() {
		// The first hour wholly after since (exclusive).
		if f := since.Truncate(time.Hour).Add(time.Hour); f.After(lo) {
			lo = f
		}
	}
	h0 := end.Truncate(time.Hour)
	if !h0.After(lo) {
		return rows(end, since)
	}
	// The found time's hour, row by row.
	if err := rows(end, h0.Add(-time.Nanosecond)); err != nil || w.Complete() {
		return err
	}
	next := lo // the oldest hour taken so far
	var cross time.Time
	err = hs.hours(lo, h0, func(h time.Time, byAccount map[string]*sum, total *sum, shares int64) (bool, error) {
		if w.bounded && total.cmp(&w.rem) >= 0 {
			cross = h
			return false, nil
		}
		w.addHour(h, byAccount, total, shares)
		return true, nil
	})
	if err != nil {
		return err
	}
	if !cross.IsZero() {
		if err := rows(cross.Add(time.Hour-time.Nanosecond), cross.Add(-time.Nanosecond)); err != nil || w.Complete() {
			return err
		}
		next = cross
	}
	return rows(next.Add(-time.Nanosecond), since)
}

func (s pgSource) sumsFrom() (time.Time, bool, error) {
	// Sums and rows are read by several statements: only one snapshot
	// for the whole transaction makes them agree (a share committed in
	// between would otherwise be counted twice or not at all), so under
	// read committed the window is walked row by row.
	var h time.Time
	var iso string
	err := s.db.QueryRow(s.ctx, `SELECT hour, current_setting('transaction_isolation') FROM share_sums_from`).Scan(&h, &iso)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, false, nil
	}
	if err != nil {
		return h, false, fmt.Errorf("read first hour of share sums: %w", err)
	}
	return h, iso == "repeatable read" || iso == "serializable", nil
}

func (s pgSource) hours(lo, hi time.Time, fn func(h time.Time, byAccount map[string]*sum, total *sum, shares int64) (bool, error)) error {
	accounts, err := s.names(`SELECT id, name FROM accounts`)
	if err != nil {
		return err
	}
	rows, err := s.db.Query(s.ctx, `SELECT hour, account_id, diff_sum::text, shares FROM share_sums
		WHERE hour >= $1 AND hour < $2 ORDER BY hour DESC, account_id`, lo, hi)
	if err != nil {
		return fmt.Errorf("read share sums: %w", err)
	}
	defer rows.Close()
	var (
		cur     time.Time
		by      map[string]*sum
		total   sum
		n       int64
		h       time.Time
		aid, sn int64
		text    string
		r       big.Rat
	)
	flush := func() (bool, error) {
		if by == nil {
			return true, nil
		}
		more, err := fn(cur, by, &total, n)
		by, total, n = nil, sum{}, 0
		return more, err
	}
	for rows.Next() {
		if err := rows.Scan(&h, &aid, &text, &sn); err != nil {
			return fmt.Errorf("read share sums: %w", err)
		}
		if !h.Equal(cur) {
			if more, err := flush(); err != nil || !more {
				return err
			}
			cur = h
		}
		name, ok := accounts[aid]
		if !ok {
			return fmt.Errorf("read share sums: hour %s has account id %d, which is not in accounts", h.UTC().Format(time.RFC3339), aid)
		}
		if _, ok := r.SetString(text); !ok {
			return fmt.Errorf("read share sums: hour %s account %s: diff_sum %q is not a decimal", h.UTC().Format(time.RFC3339), name, text)
		}
		d, ok := sumOfRat(&r)
		if !ok || r.Sign() < 0 {
			return fmt.Errorf("read share sums: hour %s account %s: diff_sum %s is not a sum of binary fractions", h.UTC().Format(time.RFC3339), name, text)
		}
		if by == nil {
			by = map[string]*sum{}
		}
		by[name] = &d
		total.add(&d)
		n += sn
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read share sums: %w", err)
	}
	_, err = flush()
	return err
}

// BackfillSums recomputes from the share rows the sums of every hour from
// from's hour up to to's (exclusive; to zero: up to the first hour with
// whole sums or, when there is none, past the newest share) and, when that
// reaches the first whole hour, makes from's hour the first whole one.
// Recomputing an hour already kept is harmless: its sums are replaced by
// the rows' own. Writers are held off share_sums meanwhile (a lock taken
// before the snapshot), so no stored share is summed twice or missed. It
// returns how many (hour, account) sums it wrote.
func BackfillSums(ctx context.Context, db interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}, from, to time.Time) (int, error) {
	from = from.Truncate(time.Hour)
	var written int
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("backfill share sums: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`); err != nil {
		return 0, fmt.Errorf("backfill share sums: %w", err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE share_sums, share_sums_from IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return 0, fmt.Errorf("backfill share sums: lock: %w", err)
	}
	var wholeFrom *time.Time
	if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT hour FROM share_sums_from),
		date_trunc('hour', (SELECT max(time) FROM shares), 'UTC') + interval '1 hour')`).Scan(&wholeFrom); err != nil {
		return 0, fmt.Errorf("backfill share sums: first whole hour: %w", err)
	}
	if to.IsZero() && wholeFrom != nil {
		to = *wholeFrom
	}
	to = to.Truncate(time.Hour)
	if to.After(from) {
		rows, err := tx.Query(ctx, `SELECT time, account_id, share_diff FROM shares
			WHERE time >= $1 AND time < $2 AND job_id NOT LIKE '`+soloJobPattern+`'`, from, to)
		if err != nil {
			return 0, fmt.Errorf("backfill share sums: read shares: %w", err)
		}
		type key struct {
			h   time.Time
			aid int64
		}
		type acc struct {
			s sum
			n int64
		}
		m := map[key]*acc{}
		var t time.Time
		var aid int64
		var d float64
		var tmp big.Int
		_, err = pgx.ForEachRow(rows, []any{&t, &aid, &d}, func() error {
			k := key{t.UTC().Truncate(time.Hour), aid}
			a := m[k]
			if a == nil {
				a = &acc{}
				m[k] = a
			}
			a.s.addFloat(d, &tmp)
			a.n++
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("backfill share sums: read shares: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM share_sums WHERE hour >= $1 AND hour < $2`, from, to); err != nil {
			return 0, fmt.Errorf("backfill share sums: %w", err)
		}
		var hs []time.Time
		var aids, ns []int64
		var ss []string
		for k, a := range m {
			hs, aids, ns, ss = append(hs, k.h), append(aids, k.aid), append(ns, a.n), append(ss, Decimal(a.s.rat()))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO share_sums (hour, account_id, diff_sum, shares)
			SELECT h, a, s::numeric, n FROM unnest($1::timestamptz[], $2::bigint[], $3::text[], $4::bigint[]) AS u(h, a, s, n)`,
			hs, aids, ss, ns); err != nil {
			return 0, fmt.Errorf("backfill share sums: write: %w", err)
		}
		written = len(m)
	}
	if wholeFrom == nil || !to.Before(*wholeFrom) {
		if _, err := tx.Exec(ctx, `INSERT INTO share_sums_from (hour) VALUES ($1)
			ON CONFLICT (one) DO UPDATE SET hour = least(share_sums_from.hour, excluded.hour)`, from); err != nil {
			return 0, fmt.Errorf("backfill share sums: first whole hour: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("backfill share sums: %w", err)
	}
	return written, nil
}

// SumsFrom returns the first hour whose sums are whole (ok false: none
// is, no writer has kept them yet).
func SumsFrom(ctx context.Context, db DB) (hour time.Time, ok bool, err error) {
	err = db.QueryRow(ctx, `SELECT hour FROM share_sums_from`).Scan(&hour)
	if errors.Is(err, pgx.ErrNoRows) {
		return hour, false, nil
	}
	if err != nil {
		return hour, false, fmt.Errorf("read first hour of share sums: %w", err)
	}
	return hour, true, nil
}
