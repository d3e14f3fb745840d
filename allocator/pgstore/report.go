package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReportRow is one group's UTC day in the allocator report.
type ReportRow struct {
	// Day is the UTC day (midnight) the rows' evaluation times fall in.
	Day   time.Time
	Group string
	// Evaluations is how many decision rows the day holds.
	Evaluations int64
	// MWhMining and MWhCurtailed are the group's power × the time each
	// row speaks for (its interval, cut short at the group's next row),
	// by state after the evaluation. Idle time counts as curtailed.
	MWhMining, MWhCurtailed float64
	// USDMining is what the mining MWh earned net of energy (each row's
	// mining value × its MWh); USDCurtailed what the curtailed MWh earned
	// (the curtailed value, 0 while idle).
	USDMining, USDCurtailed float64
	// USDIfCurtailed is what the mining MWh would have earned curtailed;
	// USDIfMining what the curtailed MWh would have earned mining. Their
	// sum against USDMining + USDCurtailed is what the choices gained.
	USDIfCurtailed, USDIfMining float64
}

// reportSQL: each row speaks for its interval, cut short where the
// group's next row in the range starts (a restart or a new leader does
// not count time twice); a row is wholly in the UTC day of its time.
const reportSQL = `
WITH d AS (
    SELECT group_name, time, state_after, idle, mining_usd_per_mwh, curtailed_usd_per_mwh,
        power_kw * LEAST(interval_seconds,
            COALESCE(EXTRACT(EPOCH FROM lead(time) OVER (PARTITION BY group_name ORDER BY time, id) - time),
                     interval_seconds)) / 3600000.0 AS mwh
    FROM allocator_decisions
    WHERE time >= $1 AND time < $2
)
SELECT (time AT TIME ZONE 'UTC')::date AS day, group_name, count(*),
    COALESCE(sum(mwh) FILTER (WHERE state_after = 'mining'), 0),
    COALESCE(sum(mwh) FILTER (WHERE state_after = 'curtailed'), 0),
    COALESCE(sum(mwh * mining_usd_per_mwh) FILTER (WHERE state_after = 'mining'), 0),
    COALESCE(sum(mwh * CASE WHEN idle THEN 0 ELSE curtailed_usd_per_mwh END) FILTER (WHERE state_after = 'curtailed'), 0),
    COALESCE(sum(mwh * curtailed_usd_per_mwh) FILTER (WHERE state_after = 'mining'), 0),
    COALESCE(sum(mwh * mining_usd_per_mwh) FILTER (WHERE state_after = 'curtailed'), 0)
FROM d
GROUP BY 1, 2
ORDER BY day, group_name COLLATE "C"`

// Report sums the decision rows of [from, to) per UTC day and group.
func (s *Store) Report(ctx context.Context, from, to time.Time) ([]ReportRow, error) {
	if !to.After(from) {
		return nil, fmt.Errorf("allocator report: --to %s is not after --from %s",
			to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	rows, err := s.db.Query(ctx, reportSQL, from, to)
	if err != nil {
		return nil, fmt.Errorf("allocator report: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReportRow, error) {
		var r ReportRow
		err := row.Scan(&r.Day, &r.Group, &r.Evaluations, &r.MWhMining, &r.MWhCurtailed,
			&r.USDMining, &r.USDCurtailed, &r.USDIfCurtailed, &r.USDIfMining)
		r.Day = r.Day.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("allocator report: %w", err)
	}
	return out, nil
}
