// Package pgstore keeps the allocator's record in PostgreSQL (tables of
// migrations/003_allocator.sql): the decision rows of the live loop, the
// operators' overrides, the leader election of the instances sharing a
// database, and the per-day report. Package allocator stays free of I/O;
// this package implements its Store and Elector.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wattpool/wattpool/allocator"
)

// DB is what the store needs of a connection: *pgxpool.Pool (the pool's
// serve) and *pgx.Conn (one-shot commands) both have it.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

var (
	_ DB = (*pgxpool.Pool)(nil)
	_ DB = (*pgx.Conn)(nil)
)

// Store is the allocator's record in a database.
type Store struct {
	db DB
}

var _ allocator.Store = (*Store)(nil)

// New returns a store on db (migrated to 003 or later).
func New(db DB) *Store { return &Store{db: db} }

// decisionColumns are the columns Record writes, in CopyFrom order.
var decisionColumns = []string{
	"time", "instance", "group_name", "mode", "policy",
	"btc_usd", "network_difficulty", "fees_btc_per_block", "height", "subsidy_btc",
	"energy_usd_per_mwh", "lease_usd_per_mwh",
	"measured_hashrate_ths", "nominal_hashrate_ths", "joules_per_th", "power_kw", "interval_seconds",
	"mining_usd_per_mwh", "curtailed_usd_per_mwh",
	"state_before", "state_after", "idle", "rule", "action", "outcome", "error",
	"last_switch", "next_switch",
}

// Record stores one evaluation's rows with one COPY.
func (s *Store) Record(ctx context.Context, rows []allocator.Record) error {
	_, err := s.db.CopyFrom(ctx, pgx.Identifier{"allocator_decisions"}, decisionColumns,
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := &rows[i]
			var errText *string
			if r.Error != "" {
				errText = &r.Error
			}
			m := &r.Market
			return []any{
				r.Time, r.Instance, r.Group, string(r.Mode), r.Policy,
				m.BTCUSD, m.NetworkDifficulty, m.FeesBTCPerBlock, m.Height, m.SubsidyBTC,
				m.EnergyUSDPerMWh, m.LeaseUSDPerMWh,
				r.MeasuredTHs, r.NominalTHs, r.JoulesPerTH, r.PowerKW, r.Interval.Seconds(),
				r.MiningUSDPerMWh, r.CurtailedUSDPerMWh,
				r.Before.String(), r.After.String(), r.Idle, string(r.Rule), string(r.Action), string(r.Outcome), errText,
				r.LastSwitch, r.NextSwitch,
			}, nil
		}))
	if err != nil {
		return fmt.Errorf("insert %d allocator decisions: %w", len(rows), err)
	}
	return nil
}

// latestSQL reads the newest row of every group: a skip scan over the
// (group_name, time, id) index walks the groups, then takes each one's
// newest row, so it stays cheap however long the record grows.
const latestSQL = `
WITH RECURSIVE g AS (
    (SELECT group_name FROM allocator_decisions ORDER BY group_name LIMIT 1)
    UNION ALL
    SELECT (SELECT d.group_name FROM allocator_decisions d WHERE d.group_name > g.group_name ORDER BY d.group_name LIMIT 1)
    FROM g WHERE g.group_name IS NOT NULL
)
SELECT r.* FROM g CROSS JOIN LATERAL (
    SELECT ` + selectColumns + `
    FROM allocator_decisions d WHERE d.group_name = g.group_name
    ORDER BY d.time DESC, d.id DESC LIMIT 1
) r
ORDER BY r.group_name COLLATE "C"`

const selectColumns = `d.time, d.instance, d.group_name, d.mode, d.policy,
    d.btc_usd, d.network_difficulty, d.fees_btc_per_block, d.height, d.subsidy_btc,
    d.energy_usd_per_mwh, d.lease_usd_per_mwh,
    d.measured_hashrate_ths, d.nominal_hashrate_ths, d.joules_per_th, d.power_kw, d.interval_seconds,
    d.mining_usd_per_mwh, d.curtailed_usd_per_mwh,
    d.state_before, d.state_after, d.idle, d.rule, d.action, d.outcome, d.error,
    d.last_switch, d.next_switch`

// LatestRecords returns every group's newest row, by group name: what a
// follower serves as the leader's view.
func (s *Store) LatestRecords(ctx context.Context) ([]allocator.Record, error) {
	rows, err := s.db.Query(ctx, latestSQL)
	if err != nil {
		return nil, fmt.Errorf("read newest allocator decisions: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanRecord)
	if err != nil {
		return nil, fmt.Errorf("read newest allocator decisions: %w", err)
	}
	return out, nil
}

// LatestStates implements allocator.Store from LatestRecords.
func (s *Store) LatestStates(ctx context.Context) (map[string]allocator.GroupState, error) {
	recs, err := s.LatestRecords(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]allocator.GroupState, len(recs))
	for _, r := range recs {
		out[r.Group] = allocator.GroupState{State: r.After, LastSwitch: r.LastSwitch}
	}
	return out, nil
}

// Decisions returns the rows recorded in [from, to), oldest first (the
// audit trail and the tests' view of it).
func (s *Store) Decisions(ctx context.Context, from, to time.Time) ([]allocator.Record, error) {
	rows, err := s.db.Query(ctx, `SELECT `+selectColumns+` FROM allocator_decisions d
		WHERE d.time >= $1 AND d.time < $2 ORDER BY d.time, d.id`, from, to)
	if err != nil {
		return nil, fmt.Errorf("read allocator decisions: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanRecord)
	if err != nil {
		return nil, fmt.Errorf("read allocator decisions: %w", err)
	}
	return out, nil
}

func scanRecord(row pgx.CollectableRow) (allocator.Record, error) {
	var r allocator.Record
	var mode, before, after, rule, action, outcome string
	var errText *string
	var intervalSec float64
	m := &r.Market
	if err := row.Scan(&r.Time, &r.Instance, &r.Group, &mode, &r.Policy,
		&m.BTCUSD, &m.NetworkDifficulty, &m.FeesBTCPerBlock, &m.Height, &m.SubsidyBTC,
		&m.EnergyUSDPerMWh, &m.LeaseUSDPerMWh,
		&r.MeasuredTHs, &r.NominalTHs, &r.JoulesPerTH, &r.PowerKW, &intervalSec,
		&r.MiningUSDPerMWh, &r.CurtailedUSDPerMWh,
		&before, &after, &r.Idle, &rule, &action, &outcome, &errText,
		&r.LastSwitch, &r.NextSwitch); err != nil {
		return r, err
	}
	var err error
	if r.Before, err = allocator.ParseState(before); err != nil {
		return r, fmt.Errorf("state_before: %w", err)
	}
	if r.After, err = allocator.ParseState(after); err != nil {
		return r, fmt.Errorf("state_after: %w", err)
	}
	m.Time = r.Time
	r.Mode, r.Rule, r.Action, r.Outcome = allocator.Mode(mode), allocator.Rule(rule), allocator.Action(action), allocator.Outcome(outcome)
	r.Interval = time.Duration(intervalSec * float64(time.Second))
	if errText != nil {
		r.Error = *errText
	}
	return r, nil
}

// Overrides returns the override in force at now for each group: created
// by then, not cancelled, not expired; the newest wins.
func (s *Store) Overrides(ctx context.Context, now time.Time) (map[string]allocator.Override, error) {
	rows, err := s.db.Query(ctx, `
		SELECT DISTINCT ON (group_name) group_name, state, reason, expires_at, created_by
		FROM allocator_overrides
		WHERE cancelled_at IS NULL AND created_at <= $1 AND (expires_at IS NULL OR expires_at > $1)
		ORDER BY group_name, created_at DESC, id DESC`, now)
	if err != nil {
		return nil, fmt.Errorf("read allocator overrides: %w", err)
	}
	out := map[string]allocator.Override{}
	for rows.Next() {
		var o allocator.Override
		var state string
		var expires *time.Time
		if err := rows.Scan(&o.Group, &state, &o.Reason, &expires, &o.CreatedBy); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read allocator overrides: %w", err)
		}
		if o.State, err = allocator.ParseState(state); err != nil {
			rows.Close()
			return nil, fmt.Errorf("allocator override of group %q: %w", o.Group, err)
		}
		if expires != nil {
			o.ExpiresAt = *expires
		}
		out[o.Group] = o
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read allocator overrides: %w", err)
	}
	return out, nil
}

// AddOverride puts o in force from createdAt (until o.ExpiresAt, or until
// cleared when that is zero) and returns its id.
func (s *Store) AddOverride(ctx context.Context, o allocator.Override, createdAt time.Time) (int64, error) {
	if o.Group == "" || o.Reason == "" || o.CreatedBy == "" {
		return 0, errors.New("allocator override: group, reason and created_by are required")
	}
	var expires *time.Time
	if !o.ExpiresAt.IsZero() {
		if !o.ExpiresAt.After(createdAt) {
			return 0, fmt.Errorf("allocator override: expires_at %s is not after created_at %s",
				o.ExpiresAt.UTC().Format(time.RFC3339), createdAt.UTC().Format(time.RFC3339))
		}
		expires = &o.ExpiresAt
	}
	var id int64
	err := s.db.QueryRow(ctx, `INSERT INTO allocator_overrides (group_name, state, reason, created_at, expires_at, created_by)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		o.Group, o.State.String(), o.Reason, createdAt, expires, o.CreatedBy).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert allocator override for group %q: %w", o.Group, err)
	}
	return id, nil
}

// ClearOverrides cancels, at now, every override of group still in force
// or yet to start, and returns how many it cancelled.
func (s *Store) ClearOverrides(ctx context.Context, group string, now time.Time) (int64, error) {
	tag, err := s.db.Exec(ctx, `UPDATE allocator_overrides SET cancelled_at = $2
		WHERE group_name = $1 AND cancelled_at IS NULL AND (expires_at IS NULL OR expires_at > $2)`, group, now)
	if err != nil {
		return 0, fmt.Errorf("cancel allocator overrides of group %q: %w", group, err)
	}
	return tag.RowsAffected(), nil
}
