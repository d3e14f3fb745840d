package shares

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/shares/audit"
	"github.com/wattpool/wattpool/shares/spool"
)

// writer drains spool segments into PostgreSQL. Each batch commits in one
// transaction together with the segment's new committed offset
// (spool_segments), so after any crash the next drain resumes exactly
// after the last committed record: nothing is lost and nothing counted
// twice. As a second line of defence every share row carries a unique id
// (segment id, offset): should the offset ever be lost, the COPY fails on
// the primary key and the batch is redone through a staging table with ON
// CONFLICT DO NOTHING.
//
// A segment's spool_segments row is kept while its file may still be on
// disk and deleted once it cannot be: after Spool.Remove returned (the
// deletion is fsynced), or, for segments deleted by an earlier process
// that crashed before pruning, by a sweep of this instance's rows before
// the first removal of this process (Spool.Open fsynced the directory, so
// a segment absent then stays absent). The sweep relies on instance names
// being unique to one spool, as job ids already do.
//
// Only the Recorder's run goroutine (and Close after it stopped) drains.
type writer struct {
	r         *Recorder
	committed map[uint64]int64 // segment id -> committed offset, once loaded
	swept     bool             // rows of segments gone before Open deleted
	prune     []int64          // removed segments whose rows are still to delete

	// beforeRemove, when set (tests), runs before a fully committed segment
	// is removed; an error ends the drain there, as a crash would.
	beforeRemove func() error

	consumed atomic.Uint64 // records committed or found committed

	lagMu       sync.Mutex
	checkpoints []checkpoint
	caughtUp    time.Time

	jobs   []jobRec
	shares []shareRow
	blocks []blockRow

	sealRows []audit.Sealed // scratch of seal (seal.go)
	// sumsFrom is set once this writer has made sure share_sums_from
	// holds the first hour of whole sums (sums.go).
	sumsFrom bool
	sealBuf  []byte
}

type blockRow struct {
	rec      blockRec
	aid, wid int64
	// share is the share that found the block, stored in the same
	// transaction (hasShare: a recFoundBlock record; old recBlock records
	// carry none, their share came as a record of its own).
	share    shareRow
	hasShare bool
}

type shareRow struct {
	rec       shareRec
	id        [16]byte
	aid, wid  int64
	segOffset int64
	stored    bool // stored by the transaction being committed: to be sealed (seal.go)
}

// checkpoint remembers how many records had been appended when a drain
// pass started, to bound the age of what is still pending.
type checkpoint struct {
	at       time.Time
	appended uint64
}

func newWriter(r *Recorder) *writer {
	return &writer{r: r, committed: map[uint64]int64{}, caughtUp: r.opts.now()}
}

// recordID is the share's unique id: its segment's random id and its
// offset there, big-endian, as a UUID.
func recordID(segID uint64, off int64) (id [16]byte) {
	binary.BigEndian.PutUint64(id[:8], segID)
	binary.BigEndian.PutUint64(id[8:], uint64(off))
	return id
}

// drain commits every readable record of every segment, removes the
// segments that are sealed and fully committed, and deletes the
// spool_segments rows of removed segments.
func (w *writer) drain(ctx context.Context) error {
	if !w.swept {
		if err := w.sweep(ctx); err != nil {
			return err
		}
	}
	for _, seg := range w.r.spool.Segments() {
		if err := w.drainSegment(ctx, seg); err != nil {
			return err
		}
	}
	if st := w.r.spool.Stats(); st.Segments == 0 {
		// Nothing is left on disk, so nothing is pending, whatever
		// records damage took with it.
		w.consumed.Store(st.Appended)
	}
	if len(w.prune) > 0 {
		if _, err := w.r.db.Exec(ctx, "DELETE FROM spool_segments WHERE segment_id = ANY($1)", w.prune); err != nil {
			return fmt.Errorf("prune committed offsets of removed spool segments: %w", err)
		}
		w.prune = w.prune[:0]
	}
	return nil
}

// sweep deletes this instance's spool_segments rows whose segments are not
// on disk. It runs before this process removes any segment, so every
// segment it sees missing was missing at Open, durably.
func (w *writer) sweep(ctx context.Context) error {
	segs := w.r.spool.Segments()
	ids := make([]int64, len(segs))
	for i, seg := range segs {
		ids[i] = int64(seg.ID)
	}
	if _, err := w.r.db.Exec(ctx, "DELETE FROM spool_segments WHERE instance = $1 AND NOT (segment_id = ANY($2))",
		w.r.opts.instance, ids); err != nil {
		return fmt.Errorf("prune committed offsets of spool segments gone before start: %w", err)
	}
	w.swept = true
	return nil
}

func (w *writer) drainSegment(ctx context.Context, seg spool.SegmentInfo) error {
	off, known := w.committed[seg.ID]
	if !known {
		var err error
		if off, err = w.loadCommitted(ctx, seg.ID); err != nil {
			return err
		}
	} else if off >= seg.Readable && !seg.Sealed {
		return w.sealIfCrowded(ctx, seg)
	}
	from := off
	if !known {
		from = spool.HeaderSize // count the records committed earlier as consumed
	}
	rd, err := spool.OpenSegment(seg, from)
	if err != nil {
		return err
	}
	defer rd.Close()
	var corrupt *spool.CorruptError
	for {
		w.jobs, w.shares, w.blocks = w.jobs[:0], w.shares[:0], w.blocks[:0]
		n := 0
		for n < w.r.opts.batchSize {
			rec, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				if errors.As(err, &corrupt) {
					break
				}
				return err
			}
			if rec.Offset < off {
				w.consumed.Add(1)
				continue
			}
			n++
			if err := w.add(seg.ID, rec); err != nil {
				// A checksummed record that does not decode is a bug
				// or a foreign file; keep draining, say so loudly.
				w.r.metrics.errors.WithLabelValues("decode").Inc()
				w.r.log.Error("ledger: undecodable spool record skipped", zap.String("segment", seg.Path),
					zap.Int64("offset", rec.Offset), zap.Error(err))
			}
		}
		end := rd.Offset()
		if end > off {
			if err := w.commit(ctx, seg, end); err != nil {
				return err
			}
			off = end
			w.committed[seg.ID] = off
			w.consumed.Add(uint64(n))
		}
		if corrupt != nil || n < w.r.opts.batchSize {
			break
		}
	}
	if corrupt != nil {
		w.r.metrics.corrupt.WithLabelValues(string(corrupt.Kind)).Inc()
		if !seg.Sealed {
			w.r.log.Error("ledger: damaged record in the active spool segment; it is set aside once sealed",
				zap.String("segment", seg.Path), zap.Error(corrupt))
			w.r.spool.Rotate()
			return nil
		}
		d, err := w.r.spool.Quarantine(seg.Seq, corrupt)
		if err != nil {
			return fmt.Errorf("set damaged segment aside: %w", err)
		}
		w.r.reportDamage(d)
		seg.Size = d.GoodEnd
	}
	if seg.Sealed && off >= seg.Size {
		if w.beforeRemove != nil {
			if err := w.beforeRemove(); err != nil {
				return err
			}
		}
		if err := w.r.spool.Remove(seg.Seq); err != nil {
			return err
		}
		delete(w.committed, seg.ID)
		w.prune = append(w.prune, int64(seg.ID))
		return nil
	}
	if !seg.Sealed {
		return w.sealIfCrowded(ctx, seg)
	}
	return nil
}

// sealIfCrowded frees the room of the active segment seg, just drained,
// when the spool is filling up: it seals the segment, fsyncs it so that
// all of it is readable, drains the records appended since and removes
// it. Without it a spool limit smaller than a segment would be reached
// however fast the database took the records.
func (w *writer) sealIfCrowded(ctx context.Context, seg spool.SegmentInfo) error {
	if !w.r.spool.SealIfCrowded(seg.Seq) {
		return nil
	}
	if err := w.r.spool.Sync(); err != nil {
		return fmt.Errorf("sync sealed spool segment %s: %w", seg.Path, err)
	}
	for _, s := range w.r.spool.Segments() {
		if s.Seq == seg.Seq && s.Sealed {
			return w.drainSegment(ctx, s)
		}
	}
	return nil
}

func (w *writer) add(segID uint64, rec spool.Record) error {
	switch rec.Type {
	case recShare:
		w.shares = append(w.shares, shareRow{})
		row := &w.shares[len(w.shares)-1]
		if err := decodeShare(rec.Payload, &row.rec); err != nil {
			w.shares = w.shares[:len(w.shares)-1]
			return err
		}
		row.id = recordID(segID, rec.Offset)
		row.segOffset = rec.Offset
	case recJob, recSoloJob:
		var j jobRec
		decode := decodeJob
		if rec.Type == recSoloJob {
			decode = decodeSoloJob
		}
		if err := decode(rec.Payload, &j); err != nil {
			return err
		}
		w.jobs = append(w.jobs, j)
	case recBlock:
		var b blockRow
		if err := decodeBlock(rec.Payload, &b.rec); err != nil {
			return err
		}
		w.blocks = append(w.blocks, b)
	case recFoundBlock:
		var b blockRow
		if err := decodeFoundBlock(rec.Payload, &b.share.rec, &b.rec); err != nil {
			return err
		}
		b.hasShare = true
		b.share.id = recordID(segID, rec.Offset)
		b.share.segOffset = rec.Offset
		w.blocks = append(w.blocks, b)
	default:
		return fmt.Errorf("unknown record type %d", rec.Type)
	}
	return nil
}

func (w *writer) loadCommitted(ctx context.Context, segID uint64) (int64, error) {
	var off int64
	err := w.r.db.QueryRow(ctx, "SELECT committed_offset FROM spool_segments WHERE segment_id = $1", int64(segID)).Scan(&off)
	if errors.Is(err, pgx.ErrNoRows) {
		return spool.HeaderSize, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load committed offset of spool segment %016x: %w", segID, err)
	}
	return off, nil
}

// commit stores the current batch and the segment's new offset end.
func (w *writer) commit(ctx context.Context, seg spool.SegmentInfo, end int64) error {
	for i := range w.shares {
		row := &w.shares[i]
		var err error
		if row.aid, row.wid, err = w.r.names.resolve(ctx, w.r.db, row.rec.Account, row.rec.Worker); err != nil {
			return fmt.Errorf("flush shares: %w", err)
		}
	}
	for i := range w.blocks {
		b := &w.blocks[i]
		var err error
		if b.aid, b.wid, err = w.r.names.resolve(ctx, w.r.db, b.rec.Account, b.rec.Worker); err != nil {
			return fmt.Errorf("flush blocks: %w", err)
		}
		b.share.aid, b.share.wid = b.aid, b.wid
	}
	start := time.Now()
	err := w.commitTx(ctx, seg, end, false)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		w.r.log.Warn("ledger: spooled shares already stored (committed offset lost?); redoing batch idempotently",
			zap.String("segment", seg.Path), zap.Int64("offset", end))
		err = w.commitTx(ctx, seg, end, true)
	}
	if err != nil {
		return fmt.Errorf("flush spool segment %s: %w", seg.Path, err)
	}
	w.r.metrics.flush.Observe(time.Since(start).Seconds())
	w.r.metrics.rows.WithLabelValues("shares").Add(float64(len(w.shares)))
	w.r.metrics.rows.WithLabelValues("jobs").Add(float64(len(w.jobs)))
	w.r.metrics.rows.WithLabelValues("blocks").Add(float64(len(w.blocks)))
	return nil
}

// shareInsertSQL stores one share unless a row of its id is already there:
// a found block's share may reach PostgreSQL twice, from RecordBlock at
// once and from the drain of its spooled record.
const shareInsertSQL = `INSERT INTO shares (time, share_id, instance, account_id, worker_id, group_name, job_id,
 extranonce1, extranonce2, ntime, nonce, version_bits, version, share_diff, achieved_diff, hash, is_block)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT DO NOTHING`

// insertShare stores a found block's share row (account and worker ids
// resolved) and sets r.stored when this call stored it.
func insertShare(ctx context.Context, db querier, r *shareRow) error {
	src := shareSource{rows: []shareRow{*r}}
	vals, _ := src.Values()
	tag, err := db.Exec(ctx, shareInsertSQL, vals...)
	if err != nil {
		return fmt.Errorf("insert share %s of found block: %w", r.rec.Hash, err)
	}
	r.stored = tag.RowsAffected() == 1
	return nil
}

const (
	jobInsertSQL = `INSERT INTO jobs (instance, job_id, height, prevhash, version, nbits, ntime, coinb1, coinb2,
 merkle_branch, extranonce1_size, extranonce2_size, network_diff, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (instance, job_id) DO NOTHING`
	// soloJobInsertSQL stores a solo job with the script it pays
	// (migration 007); pool jobs keep jobInsertSQL.
	soloJobInsertSQL = `INSERT INTO jobs (instance, job_id, height, prevhash, version, nbits, ntime, coinb1, coinb2,
 merkle_branch, extranonce1_size, extranonce2_size, network_diff, created_at, solo_script)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (instance, job_id) DO NOTHING`
	progressSQL = `INSERT INTO spool_segments (segment_id, instance, committed_offset, updated_at) VALUES ($1, $2, $3, now())
ON CONFLICT (segment_id) DO UPDATE SET committed_offset = excluded.committed_offset, updated_at = excluded.updated_at`
	stageSQL = `CREATE TEMP TABLE IF NOT EXISTS shares_stage (LIKE shares INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`
)

var shareColumns = []string{"time", "share_id", "instance", "account_id", "worker_id", "group_name", "job_id",
	"extranonce1", "extranonce2", "ntime", "nonce", "version_bits", "version", "share_diff", "achieved_diff",
	"hash", "is_block"}

func (w *writer) commitTx(ctx context.Context, seg spool.SegmentInfo, end int64, idempotent bool) error {
	err := pgx.BeginFunc(ctx, w.r.db, func(tx pgx.Tx) error {
		if !w.sumsFrom {
			if _, err := tx.Exec(ctx, sumsFromSQL); err != nil {
				return fmt.Errorf("first hour of share sums: %w", err)
			}
		}
		if len(w.jobs) > 0 {
			b := &pgx.Batch{}
			for i := range w.jobs {
				j := &w.jobs[i]
				branch := make([][]byte, len(j.MerkleBranch))
				for k := range j.MerkleBranch {
					branch[k] = j.MerkleBranch[k][:]
				}
				args := []any{j.Instance, j.ID, j.Height, j.PrevHash[:], int64(j.Version), int64(j.Bits),
					int64(j.NTime), j.Coinb1, j.Coinb2, branch, j.Extranonce1Size, j.Extranonce2Size, j.NetworkDiff, j.CreatedAt}
				if j.SoloScript != nil {
					b.Queue(soloJobInsertSQL, append(args, j.SoloScript)...)
				} else {
					b.Queue(jobInsertSQL, args...)
				}
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return fmt.Errorf("insert jobs: %w", err)
			}
		}
		if len(w.shares) > 0 {
			table := "shares"
			if idempotent {
				if _, err := tx.Exec(ctx, stageSQL); err != nil {
					return fmt.Errorf("staging table: %w", err)
				}
				table = "shares_stage"
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{table}, shareColumns, &shareSource{rows: w.shares, i: -1}); err != nil {
				return fmt.Errorf("copy shares: %w", err)
			}
			if idempotent {
				if err := w.mergeStaged(ctx, tx); err != nil {
					return err
				}
			} else {
				for i := range w.shares {
					w.shares[i].stored = true
				}
			}
		}
		for i := range w.blocks {
			b := &w.blocks[i]
			if b.hasShare {
				if err := insertShare(ctx, tx, &b.share); err != nil {
					return err
				}
			}
			if err := insertBlock(ctx, tx, &b.rec, b.aid, b.wid); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, progressSQL, int64(seg.ID), w.r.opts.instance, end); err != nil {
			return fmt.Errorf("record committed offset: %w", err)
		}
		blockShares := make([]shareRow, 0, len(w.blocks))
		for i := range w.blocks {
			if w.blocks[i].hasShare {
				blockShares = append(blockShares, w.blocks[i].share)
			}
		}
		if err := addSums(ctx, tx, w.shares, blockShares); err != nil {
			return err
		}
		return w.seal(ctx, tx)
	})
	if err == nil {
		w.sumsFrom = true
	}
	return err
}

// shareSource feeds a batch to CopyFrom without building all rows first.
type shareSource struct {
	rows []shareRow
	i    int
	vals [17]any
}

func (s *shareSource) Next() bool { s.i++; return s.i < len(s.rows) }
func (s *shareSource) Err() error { return nil }
func (s *shareSource) Values() ([]any, error) {
	r := &s.rows[s.i]
	v := &s.vals
	v[0], v[1], v[2], v[3], v[4] = r.rec.Time, r.id, r.rec.Instance, r.aid, r.wid
	v[5], v[6], v[7], v[8] = r.rec.Group, r.rec.JobID, r.rec.Extranonce1, r.rec.Extranonce2
	v[9], v[10], v[11], v[12] = int64(r.rec.NTime), int64(r.rec.Nonce), int64(r.rec.VersionBits), int64(r.rec.Version)
	v[13], v[14], v[15], v[16] = r.rec.Diff, r.rec.Achieved, r.rec.Hash[:], r.rec.IsBlock
	return v[:], nil
}

const blockInsertSQL = `WITH ins AS (
 INSERT INTO blocks (hash, height, coinbase_sats, instance, account_id, worker_id, job_id, submit_result,
  status, confirmations, found_at, updated_at)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $9)
 ON CONFLICT (hash) DO NOTHING RETURNING hash, found_at)
INSERT INTO block_status_history (hash, status, confirmations, changed_at)
SELECT hash, 'pending', 0, found_at FROM ins`

// insertBlock stores a found block as pending unless it is already stored;
// aid and wid are the finder's account and worker ids.
func insertBlock(ctx context.Context, db querier, b *blockRec, aid, wid int64) error {
	if _, err := db.Exec(ctx, blockInsertSQL, b.Hash[:], b.Height, b.CoinbaseSats, b.Instance, aid, wid,
		b.JobID, b.SubmitResult, b.FoundAt); err != nil {
		return fmt.Errorf("insert block %s: %w", b.Hash, err)
	}
	return nil
}

// beginPass records a checkpoint for the lag gauge.
func (w *writer) beginPass(now time.Time, appended uint64) {
	w.lagMu.Lock()
	defer w.lagMu.Unlock()
	if len(w.checkpoints) < 4096 { // when full the oldest stay: lag only overestimates
		w.checkpoints = append(w.checkpoints, checkpoint{at: now, appended: appended})
	}
}

// endPass drops the checkpoints whose records are all committed.
func (w *writer) endPass() {
	consumed := w.consumed.Load()
	w.lagMu.Lock()
	defer w.lagMu.Unlock()
	i := 0
	for i < len(w.checkpoints) && w.checkpoints[i].appended <= consumed {
		w.caughtUp = w.checkpoints[i].at
		i++
	}
	w.checkpoints = append(w.checkpoints[:0], w.checkpoints[i:]...)
}

func (w *writer) caughtUpAt() time.Time {
	w.lagMu.Lock()
	defer w.lagMu.Unlock()
	return w.caughtUp
}
