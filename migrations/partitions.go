package migrations

import (
	"context"

	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPartitionDaysAhead is how many days of share partitions past today
// EnsurePartitions keeps ready when asked for 0 or less.
const DefaultPartitionDaysAhead = 7

// partitionLockKey serializes partition creation across pool instances
// (pg_advisory_xact_lock); an arbitrary constant private to this purpose.
const partitionLockKey = int64(0x7761747470617274) // "wattpart"

// TxStarter is what EnsurePartitions needs from a connection: *pgx.Conn,
// *pgxpool.Pool and pgx.Tx all satisfy it.
type TxStarter interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// PartitionName returns the name of the daily shares partition holding day
// (UTC): shares_pYYYYMMDD.
func PartitionName(day time.Time) string {
	return "shares_p" + day.UTC().Format("20060102")
}

// EnsurePartitions creates the daily partitions of the shares table from
// the day of now (UTC) through daysAhead days later, skipping those that
// exist. Call it at start-up and at least daily; it is idempotent and safe
// to run from several instances at once (an advisory transaction lock
// serializes them).
//
// Shares that already landed in shares_default for a day being created
// (because the partition was missing when they were written) are moved into
// the new partition in the same transaction, since PostgreSQL refuses to
// attach a partition whose range the default partition still holds rows of.
// It returns the names of the partitions it created.
func EnsurePartitions(ctx context.Context, db TxStarter, now time.Time, daysAhead int) ([]string, error) {
	if daysAhead <= 0 {
		daysAhead = DefaultPartitionDaysAhead
	}
	first := now.UTC().Truncate(24 * time.Hour)
	var created []string
	for i := 0; i <= daysAhead; i++ {
		from := first.AddDate(0, 0, i)
		ok, err := ensurePartition(ctx, db, from)
		if err != nil {
			return created, err
		}
		if ok {
			created = append(created, PartitionName(from))
		}
	}
	return created, nil
}

// ensurePartition creates the partition for the day starting at from (UTC
// midnight) unless it exists; it reports whether it created it.
func ensurePartition(ctx context.Context, db TxStarter, from time.Time) (created bool, err error) {
	name := PartitionName(from)
	to := from.AddDate(0, 0, 1)
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionLockKey); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", "public."+name).Scan(&exists); err != nil {
			return fmt.Errorf("look up: %w", err)
		}
		if exists {
			return nil
		}
		ident := pgx.Identifier{name}.Sanitize()
		// A standalone table shaped like the parent, filled from the
		// default partition, then attached: the attach check then finds no
		// overlapping rows left in shares_default.
		if _, err := tx.Exec(ctx, "CREATE TABLE "+ident+" (LIKE shares INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"); err != nil {
			return fmt.Errorf("create: %w", err)
		}
		moveSQL := "WITH moved AS (DELETE FROM shares_default WHERE time >= $1 AND time < $2 RETURNING *) " +
			"INSERT INTO " + ident + " SELECT * FROM moved"
		if _, err := tx.Exec(ctx, moveSQL, from, to); err != nil {
			return fmt.Errorf("move rows from shares_default: %w", err)
		}
		attach := fmt.Sprintf("ALTER TABLE shares ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')",
			ident, from.Format(time.RFC3339), to.Format(time.RFC3339))
		if _, err := tx.Exec(ctx, attach); err != nil {
			return fmt.Errorf("attach: %w", err)
		}
		created = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("ensure share partition %s: %w", name, err)
	}
	return created, nil
}
