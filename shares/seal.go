package shares

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/wattpool/wattpool/shares/audit"
)

// Sealing (package audit): every share row is sealed in the transaction
// that stores it, so a committed row is always sealed, exactly once, and
// segments follow commit order. The digest of a row is computed from the
// values sent to PostgreSQL, in the same canonical form verify reads back.

// auditRow is r as the audit package sees the stored row.
func auditRow(r *shareRow) audit.Row {
	return audit.Row{Time: r.rec.Time, ID: r.id, Instance: r.rec.Instance, AccountID: r.aid, WorkerID: r.wid,
		Group: r.rec.Group, JobID: r.rec.JobID, Extranonce1: r.rec.Extranonce1, Extranonce2: r.rec.Extranonce2,
		NTime: int64(r.rec.NTime), Nonce: int64(r.rec.Nonce), VersionBits: int64(r.rec.VersionBits),
		Version: int64(r.rec.Version), ShareDiff: r.rec.Diff, AchievedDiff: r.rec.Achieved, Hash: r.rec.Hash[:],
		IsBlock: r.rec.IsBlock}
}

// mergeStaged moves the staged batch into shares, skipping rows already
// stored, and marks the rows it stored.
func (w *writer) mergeStaged(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, "INSERT INTO shares SELECT * FROM shares_stage ON CONFLICT DO NOTHING RETURNING share_id")
	if err != nil {
		return fmt.Errorf("merge staged shares: %w", err)
	}
	stored := map[[16]byte]bool{}
	var id [16]byte
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { stored[id] = true; return nil }); err != nil {
		return fmt.Errorf("merge staged shares: %w", err)
	}
	for i := range w.shares {
		w.shares[i].stored = stored[w.shares[i].id]
	}
	return nil
}

// seal seals the batch's shares this transaction stored, in spool offset
// order (the batch is one spool segment, so that is share id order):
// plain shares and found blocks' shares merged.
func (w *writer) seal(ctx context.Context, tx pgx.Tx) error {
	w.sealRows = w.sealRows[:0]
	gap := false
	add := func(r *shareRow) {
		if !r.stored {
			gap = true
			return
		}
		var d [32]byte
		row := auditRow(r)
		d, w.sealBuf = audit.DigestRow(w.sealBuf, &row)
		w.sealRows = append(w.sealRows, audit.Sealed{ID: r.id, Digest: d, Time: r.rec.Time, NewRun: gap})
		gap = false
	}
	i := 0
	for b := range w.blocks {
		if !w.blocks[b].hasShare {
			continue
		}
		bs := &w.blocks[b].share
		for ; i < len(w.shares) && w.shares[i].segOffset < bs.segOffset; i++ {
			add(&w.shares[i])
		}
		add(bs)
	}
	for ; i < len(w.shares); i++ {
		add(&w.shares[i])
	}
	if len(w.sealRows) == 0 {
		return nil
	}
	if _, err := audit.Seal(ctx, tx, w.r.opts.instance, w.sealRows, w.r.opts.now()); err != nil {
		return err
	}
	return nil
}

// sealBlockShare seals a found block's share that RecordBlock's
// transaction stored (none when the drain stored it first).
func (r *Recorder) sealBlockShare(ctx context.Context, tx pgx.Tx, s *shareRow) error {
	if !s.stored {
		return nil
	}
	row := auditRow(s)
	d, _ := audit.DigestRow(nil, &row)
	_, err := audit.Seal(ctx, tx, r.opts.instance, []audit.Sealed{{ID: s.id, Digest: d, Time: s.rec.Time}}, r.opts.now())
	return err
}
