package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wattpool/wattpool/allocator"
)

var _ allocator.ConfirmStore = (*Store)(nil)

// RecordConfirmation stores one change of a group's confirmation and the
// miners not confirmed at that moment (migrations/005_allocator_confirm).
func (s *Store) RecordConfirmation(ctx context.Context, c allocator.Confirmation) error {
	return pgx.BeginFunc(ctx, beginner{s.db}, func(tx pgx.Tx) error {
		var id int64
		var msg *string
		if c.Message != "" {
			msg = &c.Message
		}
		err := tx.QueryRow(ctx, `INSERT INTO allocator_confirmations (group_name, instance, decision_time, action, state,
			since, time, attempt, window_seconds, rate_before, rate_reference, rate_now, threshold, pool_ok, machines_ok,
			miners, miners_failed, message)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id`,
			c.Group, c.Instance, c.DecisionTime, string(c.Action), string(c.State), c.Since, c.Updated, c.Attempt,
			c.Window.Seconds(), c.RateBefore, c.RateReference, c.RateNow, c.Threshold, c.PoolOK, c.MachinesOK,
			c.Miners, len(c.Failed), msg).Scan(&id)
		if err != nil {
			return err
		}
		if len(c.Failed) == 0 {
			return nil
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"allocator_action_results"},
			[]string{"confirmation_id", "address", "driver", "reason", "error", "attempts", "state"},
			pgx.CopyFromSlice(len(c.Failed), func(i int) ([]any, error) {
				m := c.Failed[i]
				return []any{id, m.Address, m.Driver, m.Reason, nullable(m.Error), m.Attempts, nullable(m.State)}, nil
			}))
		return err
	})
}

// beginner lets pgx.BeginFunc open a transaction on a DB that can.
type beginner struct{ db DB }

func (b beginner) Begin(ctx context.Context) (pgx.Tx, error) {
	t, ok := b.db.(interface {
		Begin(context.Context) (pgx.Tx, error)
	})
	if !ok {
		return nil, fmt.Errorf("allocator store: %T cannot begin a transaction", b.db)
	}
	return t.Begin(ctx)
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// LatestConfirmations returns each group's newest confirmation row with
// its failed miners: what a follower shows, and what a new leader shows
// before its own first action.
func (s *Store) LatestConfirmations(ctx context.Context) (map[string]allocator.Confirmation, error) {
	rows, err := s.db.Query(ctx, `SELECT DISTINCT ON (group_name) id, group_name, instance, decision_time, action, state,
		since, time, attempt, window_seconds, rate_before, rate_reference, rate_now, threshold, pool_ok, machines_ok,
		miners, COALESCE(message, '')
		FROM allocator_confirmations ORDER BY group_name, time DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("read latest allocator confirmations: %w", err)
	}
	out := map[string]allocator.Confirmation{}
	ids := map[int64]string{}
	var idList []int64
	for rows.Next() {
		var c allocator.Confirmation
		var id int64
		var action, state string
		var window float64
		if err := rows.Scan(&id, &c.Group, &c.Instance, &c.DecisionTime, &action, &state, &c.Since, &c.Updated,
			&c.Attempt, &window, &c.RateBefore, &c.RateReference, &c.RateNow, &c.Threshold, &c.PoolOK, &c.MachinesOK,
			&c.Miners, &c.Message); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read latest allocator confirmations: %w", err)
		}
		c.Action, c.State = allocator.Action(action), allocator.ConfirmState(state)
		c.Window = time.Duration(window * float64(time.Second))
		c.Failed = []allocator.MinerResult{}
		out[c.Group] = c
		ids[id] = c.Group
		idList = append(idList, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read latest allocator confirmations: %w", err)
	}
	if len(idList) == 0 {
		return out, nil
	}
	rows, err = s.db.Query(ctx, `SELECT confirmation_id, address, driver, reason, COALESCE(error, ''), attempts,
		COALESCE(state, '') FROM allocator_action_results WHERE confirmation_id = ANY($1) ORDER BY confirmation_id, address`, idList)
	if err != nil {
		return nil, fmt.Errorf("read allocator action results: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var m allocator.MinerResult
		if err := rows.Scan(&id, &m.Address, &m.Driver, &m.Reason, &m.Error, &m.Attempts, &m.State); err != nil {
			return nil, fmt.Errorf("read allocator action results: %w", err)
		}
		g := ids[id]
		c := out[g]
		c.Failed = append(c.Failed, m)
		out[g] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read allocator action results: %w", err)
	}
	return out, nil
}
