package payout

import (
	"context"
	"fmt"
	"time"
)

// Archive reads the share rows of daily partitions that retention moved
// to archive files and dropped (package shares/audit's ArchiveReader
// implements it), so that a block's window stays computable, and its
// split provable, after its shares left PostgreSQL.
type Archive interface {
	// WalkArchived calls fn with the archived shares since < time <= end
	// (since zero: unbounded), newest first by (time, share_id), until fn
	// says stop.
	WalkArchived(ctx context.Context, end, since time.Time,
		fn func(t time.Time, id [16]byte, instance, jobID string, accountID, workerID int64, diff float64) (bool, error)) error
}

// WithArchive makes the reader continue a walk into a's archived shares
// once the rows in PostgreSQL run out. Archived partitions are the oldest
// days (retention drops nothing newer), so the order stays (time,
// share_id) descending.
func (r *Reader) WithArchive(a Archive) *Reader {
	r.archive = a
	return r
}

// walkArchived continues Walk into the archives, naming accounts and
// workers from the same maps and leaving out solo shares as the query on
// shares does.
func (s pgSource) walkArchived(end, since time.Time, accounts, workers map[int64]string, fn func(Share) (bool, error)) error {
	if s.archive == nil {
		return nil
	}
	solo, err := s.soloJobs()
	if err != nil {
		return err
	}
	var sh Share
	var ok bool
	err = s.archive.WalkArchived(s.ctx, end, since, func(t time.Time, id [16]byte, instance, jobID string, aid, wid int64, diff float64) (bool, error) {
		if solo[[2]string{instance, jobID}] {
			return true, nil
		}
		sh.Time, sh.ID, sh.Diff = t, id, diff
		if sh.Account, ok = accounts[aid]; !ok {
			return false, fmt.Errorf("read archived shares: share %x at %s has account id %d, which is not in accounts", id, t.UTC().Format(time.RFC3339Nano), aid)
		}
		if sh.Worker, ok = workers[wid]; !ok {
			return false, fmt.Errorf("read archived shares: share %x at %s has worker id %d, which is not in workers", id, t.UTC().Format(time.RFC3339Nano), wid)
		}
		return fn(sh)
	})
	if err != nil {
		return fmt.Errorf("read archived shares: %w", err)
	}
	return nil
}

// soloJobs returns the (instance, job id) of solo jobs, whose shares no
// scheme credits; none before the schema has jobs.solo_script.
func (s pgSource) soloJobs() (map[[2]string]bool, error) {
	var has bool
	if err := s.db.QueryRow(s.ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'jobs' AND column_name = 'solo_script')`).Scan(&has); err != nil {
		return nil, fmt.Errorf("read solo jobs: %w", err)
	}
	m := map[[2]string]bool{}
	if !has {
		return m, nil
	}
	rows, err := s.db.Query(s.ctx, `SELECT instance, job_id FROM jobs WHERE solo_script IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("read solo jobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k [2]string
		if err := rows.Scan(&k[0], &k[1]); err != nil {
			return nil, fmt.Errorf("read solo jobs: %w", err)
		}
		m[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read solo jobs: %w", err)
	}
	return m, nil
}
