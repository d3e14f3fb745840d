package shares

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/stratum/work"
)

// VerifyFilter selects the shares Verify recomputes. Zero fields do not
// filter.
type VerifyFilter struct {
	// From and To bound share time: From <= time < To.
	From, To time.Time
	// Instance and Account narrow to one pool instance or account.
	Instance, Account string
	// Limit stops after this many shares (0: all).
	Limit int64
}

// Mismatch is a stored share that does not check out.
type Mismatch struct {
	ShareID                 string // hex of the share's unique id
	Time                    time.Time
	Instance, Account       string
	Worker, JobID           string
	Stored, Computed        chainhash.Hash
	StoredAchieved, Correct float64
	Problem                 string
}

// Report is what Verify found.
type Report struct {
	Checked int64
	// Mismatches counts all bad shares; Details holds the first
	// MaxMismatchDetails of them.
	Mismatches int64
	Details    []Mismatch
	// MissingJobs counts shares whose job is not in the ledger (they
	// cannot be recomputed and are also counted as mismatches).
	MissingJobs int64
}

// MaxMismatchDetails bounds Report.Details.
const MaxMismatchDetails = 1000

// OK reports whether every checked share verified.
func (r Report) OK() bool { return r.Mismatches == 0 }

type jobKey struct{ instance, id string }

// Verify recomputes each selected share's block header hash from its
// stored job (coinb1, extranonce1, extranonce2, coinb2, merkle branch,
// prevhash, nbits) and its stored ntime, nonce and version, and compares it
// with the stored hash. It also checks the stored achieved difficulty
// against the recomputed hash and that the hash meets the credited share
// difficulty (or, for a block credited at its job's network difficulty,
// the network target itself). It reads in one streaming pass.
func (l *Ledger) Verify(ctx context.Context, f VerifyFilter) (Report, error) {
	var rep Report
	where, args := "TRUE", []any{}
	add := func(cond string, v any) {
		args = append(args, v)
		where += fmt.Sprintf(" AND "+cond, len(args))
	}
	if !f.From.IsZero() {
		add("s.time >= $%d", f.From)
	}
	if !f.To.IsZero() {
		add("s.time < $%d", f.To)
	}
	if f.Instance != "" {
		add("s.instance = $%d", f.Instance)
	}
	if f.Account != "" {
		add("a.name = $%d", f.Account)
	}
	limit := ""
	if f.Limit > 0 {
		limit = fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	selected := `SELECT s.share_id, s.time, s.instance, a.name AS account, w.name AS worker, s.job_id, s.extranonce1,
		s.extranonce2, s.ntime, s.nonce, s.version, s.share_diff, s.achieved_diff, s.hash
		FROM shares s JOIN workers w ON w.id = s.worker_id JOIN accounts a ON a.id = s.account_id
		WHERE ` + where + ` ORDER BY s.time, s.share_id` + limit
	jobs, err := l.loadJobs(ctx, `SELECT j.job_id, j.instance, j.height, j.prevhash, j.version, j.nbits, j.ntime, j.coinb1, j.coinb2,
		j.merkle_branch, j.extranonce1_size, j.extranonce2_size, j.network_diff, j.created_at
		FROM jobs j WHERE (j.instance, j.job_id) IN (SELECT DISTINCT sel.instance, sel.job_id FROM (`+selected+`) sel)`, args)
	if err != nil {
		return rep, fmt.Errorf("verify shares: %w", err)
	}
	rows, err := l.db.Query(ctx, selected, args...)
	if err != nil {
		return rep, fmt.Errorf("verify shares: %w", err)
	}
	defer rows.Close()
	var h work.Hasher
	for rows.Next() {
		var (
			id                  [16]byte
			m                   Mismatch
			en1, en2, hash      []byte
			ntime, nonce, ver   int64
			shareDiff, achieved float64
		)
		if err := rows.Scan(&id, &m.Time, &m.Instance, &m.Account, &m.Worker, &m.JobID, &en1, &en2,
			&ntime, &nonce, &ver, &shareDiff, &achieved, &hash); err != nil {
			return rep, fmt.Errorf("verify shares: %w", err)
		}
		rep.Checked++
		m.ShareID = hex.EncodeToString(id[:])
		copy(m.Stored[:], hash)
		m.StoredAchieved = achieved
		job := jobs[jobKey{m.Instance, m.JobID}]
		switch {
		case job == nil:
			rep.MissingJobs++
			m.Problem = "job not in the ledger"
		case len(en1) != job.Extranonce1Size || len(en2) != job.Extranonce2Size:
			m.Problem = fmt.Sprintf("extranonce sizes %d/%d, job says %d/%d", len(en1), len(en2), job.Extranonce1Size, job.Extranonce2Size)
		default:
			m.Computed = h.HeaderHash(job, en1, en2, uint32(ntime), uint32(nonce), uint32(ver))
			m.Correct = work.DiffFromHash(&m.Computed)
			target := work.TargetFromDiff(shareDiff)
			switch {
			case len(hash) != chainhash.HashSize || m.Computed != m.Stored:
				m.Problem = "stored hash differs from the recomputed header hash"
			case !closeEnough(achieved, m.Correct):
				m.Problem = fmt.Sprintf("stored achieved difficulty %g, hash gives %g", achieved, m.Correct)
			case !target.Meets(&m.Computed) && !(shareDiff == job.NetworkDiff && job.NetworkTarget.Meets(&m.Computed)):
				// A block whose hash missed the share target is credited
				// at the job's network difficulty (the stratum server's
				// cap): its proof is the network target, exactly.
				m.Problem = fmt.Sprintf("hash does not meet the credited share difficulty %g", shareDiff)
			}
		}
		if m.Problem != "" {
			rep.Mismatches++
			if len(rep.Details) < MaxMismatchDetails {
				rep.Details = append(rep.Details, m)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("verify shares: %w", err)
	}
	return rep, nil
}

// closeEnough compares difficulties computed by different float paths.
func closeEnough(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// loadJobs rebuilds the work.Job of every stored job the query returns.
func (l *Ledger) loadJobs(ctx context.Context, sql string, args []any) (map[jobKey]*work.Job, error) {
	rows, err := l.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("load jobs: %w", err)
	}
	defer rows.Close()
	jobs := map[jobKey]*work.Job{}
	for rows.Next() {
		var (
			j                     work.Job
			instance              string
			prev                  []byte
			version, nbits, ntime int64
			branch                [][]byte
			en1Size, en2Size      int16
		)
		if err := rows.Scan(&j.ID, &instance, &j.Height, &prev, &version, &nbits, &ntime, &j.Coinb1, &j.Coinb2,
			&branch, &en1Size, &en2Size, &j.NetworkDiff, &j.CreatedAt); err != nil {
			return nil, fmt.Errorf("load jobs: %w", err)
		}
		if len(prev) != chainhash.HashSize {
			return nil, fmt.Errorf("load job %s/%s: prevhash of %d bytes", instance, j.ID, len(prev))
		}
		copy(j.PrevHash[:], prev)
		j.Version, j.Bits, j.NTime = uint32(version), uint32(nbits), uint32(ntime)
		j.Extranonce1Size, j.Extranonce2Size = int(en1Size), int(en2Size)
		for i, b := range branch {
			if len(b) != chainhash.HashSize {
				return nil, fmt.Errorf("load job %s/%s: merkle branch step %d of %d bytes", instance, j.ID, i, len(b))
			}
			var hh chainhash.Hash
			copy(hh[:], b)
			j.MerkleBranch = append(j.MerkleBranch, hh)
		}
		j.NetworkTarget = work.TargetFromBits(j.Bits)
		jobs[jobKey{instance, j.ID}] = &j
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load jobs: %w", err)
	}
	return jobs, nil
}
