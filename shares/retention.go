package shares

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/shares/audit"
)

// retention is when and where share partitions go to archives.
type retention struct {
	dir  string
	keep time.Duration
	last time.Time // the last archive run (run goroutine state, under drainMu)
}

// WithRetention archives, once a day, the share partitions whose day ended
// more than keep ago to compressed files in dir, checks them and drops the
// partitions (audit.Archive). keep 0 keeps every partition. The run holds
// the ledger's drain while it copies a day; the spool takes the shares
// meanwhile.
func WithRetention(dir string, keep time.Duration) Option {
	return func(o *options) { o.retention = retention{dir: dir, keep: keep} }
}

// archiveIfDue runs retention when a day has passed since the last run.
// The caller holds drainMu.
func (r *Recorder) archiveIfDue(ctx context.Context, now time.Time) {
	rt := &r.opts.retention
	if rt.keep <= 0 || (!rt.last.IsZero() && now.Sub(rt.last) < 24*time.Hour) {
		return
	}
	conn, err := r.db.Acquire(ctx)
	if err != nil {
		r.metrics.errors.WithLabelValues("archive").Inc()
		return // the database is down: the drain says so; retry next hour
	}
	defer conn.Release()
	done, err := audit.Archive(ctx, conn.Conn(), audit.ArchiveOptions{Dir: rt.dir, Retention: rt.keep, Now: now, Log: r.log})
	if err != nil {
		r.metrics.errors.WithLabelValues("archive").Inc()
		r.log.Error("ledger: share retention failed; the partition stays in PostgreSQL, retried in an hour",
			zap.Int("archived", len(done)), zap.Error(err))
		return
	}
	rt.last = now
}
