package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// adoptBatch is how many rows an adopted segment seals, as a drain batch.
const adoptBatch = 20_000

// Adopted is what Adopt sealed.
type Adopted struct {
	Shares   int64 `json:"shares"`
	Segments int64 `json:"segments"`
	// FirstSeq and LastSeq are the segments it added (0 when none).
	FirstSeq int64 `json:"first_seq"`
	LastSeq  int64 `json:"last_seq"`
}

// Adopt seals, as new segments at the end of the chain, every share row
// with time before `before` that no segment sealed: the rows a database
// held when it was migrated to the audit schema (migration 006). It seals
// whatever is there, a row inserted behind the ledger's back included, so
// it is for that upgrade only: run it once, with `before` the time of the
// upgrade, and compare the rows it counts with what the ledger held. It
// holds every adopted row's id and digest in memory (about 60 bytes a
// row) and seals them in share id order, 20,000 a segment.
func Adopt(ctx context.Context, db *pgx.Conn, before, now time.Time) (Adopted, error) {
	var res Adopted
	var x *index
	var rows []Sealed
	skip := map[[16]byte]bool{} // unsealed rows at or after before: they break runs
	// The chain and the rows from one snapshot: a row sealed by a writer
	// meanwhile is either in both or in neither.
	err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		head, err := ReadHead(ctx, tx)
		if err != nil {
			return err
		}
		if x, _, err = loadIndex(ctx, tx, head); err != nil {
			return err
		}
		parts, err := partitions(ctx, tx, openLow, openHigh)
		if err != nil {
			return err
		}
		hi := pgMicros(before)
		for _, p := range parts {
			st := newTupleStream(func(t []byte) error {
				id := TupleID(t)
				if x.lookup(id) >= 0 {
					return nil
				}
				if pgMicros(TupleTime(t)) >= hi {
					skip[id] = true
				}
				rows = append(rows, Sealed{ID: id, Digest: sha256.Sum256(t), Time: TupleTime(t)})
				return nil
			})
			if _, err := tx.Conn().PgConn().CopyTo(ctx, st, copySQL(p, openLow, openHigh, false)); err != nil {
				return fmt.Errorf("read %s: %w", p, err)
			}
			if err := st.Close(); err != nil {
				return fmt.Errorf("read %s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("adopt shares: %w", err)
	}
	slices.SortFunc(rows, func(a, b Sealed) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	adopt := rows[:0]
	gap := false
	for i := range rows {
		r := rows[i]
		if i > 0 && r.ID == rows[i-1].ID {
			return res, fmt.Errorf("adopt shares: share id %s is stored twice", uuidString(r.ID))
		}
		if skip[r.ID] {
			gap = true
			continue
		}
		// A run must not span a share another segment sealed, or one
		// left unsealed here.
		if n := len(adopt); n > 0 {
			r.NewRun = gap || x.sealedBetween(adopt[n-1].ID, r.ID)
		}
		gap = false
		adopt = append(adopt, r)
	}
	for start := 0; start < len(adopt); start += adoptBatch {
		chunk := adopt[start:min(len(adopt), start+adoptBatch)]
		chunk[0].NewRun = false
		var seg Segment
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			var err error
			seg, err = Seal(ctx, tx, "adopt", chunk, now)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("adopt shares: %w", err)
		}
		if res.FirstSeq == 0 {
			res.FirstSeq = seg.Seq
		}
		res.LastSeq = seg.Seq
		res.Segments++
		res.Shares += seg.Shares
	}
	return res, nil
}

// sealedBetween reports whether a segment's run holds an id strictly
// between a and b (a < b, neither sealed).
func (x *index) sealedBetween(a, b [16]byte) bool {
	p := idPrefix(a)
	if idPrefix(b) != p {
		return false // a new run anyway
	}
	lo, hi := idOffset(a), idOffset(b)
	i := sort.Search(len(x.runs), func(i int) bool {
		r := &x.runs[i]
		return r.Prefix > p || (r.Prefix == p && r.First > lo)
	})
	return i < len(x.runs) && x.runs[i].Prefix == p && x.runs[i].First < hi
}
