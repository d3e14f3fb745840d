package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/wattpool/wattpool/shares/payout"
)

// cmdPayoutsBackfillSums sums the hours stored before the share writer
// kept hourly sums (migration 008), a day per transaction, newest first,
// so that windows reaching back into them are summed too (explain reads
// those hours row by row until then). Each day holds the writers off
// share_sums while it is summed.
func cmdPayoutsBackfillSums(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("payouts backfill-sums", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	fromS := fs.String("from", "", "the oldest hour to sum (RFC 3339 or a UTC date), inclusive")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// parsePeriod checks --from; the end is the first hour already whole.
	from, _, err := parsePeriod("payouts backfill-sums", *fromS, "9999-12-31")
	if err != nil {
		return err
	}
	from = from.Truncate(time.Hour)
	conn, err := connectConfigured(ctx, path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	total := 0
	for {
		upper, ok, err := payout.SumsFrom(ctx, conn)
		if err != nil {
			return fmt.Errorf("payouts backfill-sums: %w", err)
		}
		if ok && !upper.After(from) {
			break
		}
		lo := from
		if ok && upper.Add(-24*time.Hour).After(from) {
			lo = upper.Add(-24 * time.Hour)
		}
		n, err := payout.BackfillSums(ctx, conn, lo, time.Time{})
		if err != nil {
			return fmt.Errorf("payouts backfill-sums: from %s: %w", lo.Format(time.RFC3339), err)
		}
		total += n
		fmt.Fprintf(stdout, "summed %s onwards: %d (hour, account) sums\n", lo.Format(time.RFC3339), n)
		if !ok {
			break
		}
	}
	fmt.Fprintf(stdout, "hours from %s on are summed (%d sums written)\n", from.Format(time.RFC3339), total)
	return nil
}
