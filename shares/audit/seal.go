package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Sealed is one share row just stored, as sealing needs it.
type Sealed struct {
	// ID is the row's share_id.
	ID [16]byte
	// Digest is SHA-256 of the row's canonical bytes (AppendTuple).
	Digest [32]byte
	// Time is the row's time (for the segment's time span only).
	Time time.Time
	// NewRun says that a share sealed elsewhere lies between this row
	// and the previous one in share id order (a found block's share
	// stored first by RecordBlock, a row an idempotent redo found
	// stored): the segment's id runs break here, so that no two
	// segments' runs overlap and every share id maps to one segment.
	NewRun bool
}

// DigestRow returns SHA-256 of r's canonical bytes; buf is scratch space
// (returned grown, for reuse).
func DigestRow(buf []byte, r *Row) ([32]byte, []byte) {
	buf = AppendTuple(buf[:0], r)
	return sha256.Sum256(buf), buf
}

// Segment is one sealed segment as stored in audit_segments.
type Segment struct {
	Seq      int64
	Shares   int64
	MinTime  time.Time
	MaxTime  time.Time
	Runs     []Run
	RowsHash [32]byte
	PrevHash [32]byte
	Hash     [32]byte
}

// Run is a range of share ids of one segment: ids whose first 8 bytes
// (the spool segment) are Prefix and whose last 8 bytes (the offset) lie
// in [First, Last]. Runs of different segments never overlap.
type Run struct {
	Prefix, First, Last uint64
}

// segmentDomain separates segment hashes from any other SHA-256 use.
const segmentDomain = "wattpool audit segment v1\x00"

// segmentHash chains a segment to its predecessor: SHA-256 of the domain
// string, the previous segment's hash, the sequence number and share
// count (big-endian 64-bit) and the rows hash.
func segmentHash(prev [32]byte, seq, n int64, rowsHash [32]byte) [32]byte {
	var b [len(segmentDomain) + 32 + 16 + 32]byte
	o := copy(b[:], segmentDomain)
	o += copy(b[o:], prev[:])
	binary.BigEndian.PutUint64(b[o:], uint64(seq))
	binary.BigEndian.PutUint64(b[o+8:], uint64(n))
	copy(b[o+16:], rowsHash[:])
	return sha256.Sum256(b[:])
}

// rowsHash is SHA-256 over the rows' digests in share id order.
func rowsHashOf(digests [][32]byte) [32]byte {
	h := sha256.New()
	for i := range digests {
		h.Write(digests[i][:])
	}
	var s [32]byte
	h.Sum(s[:0])
	return s
}

func idPrefix(id [16]byte) uint64 { return binary.BigEndian.Uint64(id[:8]) }
func idOffset(id [16]byte) uint64 { return binary.BigEndian.Uint64(id[8:]) }

// encodeRuns packs runs as 24 bytes each: prefix, first, last.
func encodeRuns(runs []Run) []byte {
	b := make([]byte, 0, 24*len(runs))
	for _, r := range runs {
		b = binary.BigEndian.AppendUint64(b, r.Prefix)
		b = binary.BigEndian.AppendUint64(b, r.First)
		b = binary.BigEndian.AppendUint64(b, r.Last)
	}
	return b
}

func decodeRuns(b []byte) ([]Run, error) {
	if len(b)%24 != 0 {
		return nil, fmt.Errorf("runs of %d bytes are not a multiple of 24", len(b))
	}
	runs := make([]Run, len(b)/24)
	for i := range runs {
		p := b[24*i:]
		runs[i] = Run{binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:]), binary.BigEndian.Uint64(p[16:])}
	}
	return runs, nil
}

// locatorEntry is one sealed row as the locator remembers it: enough to
// name a row that was deleted, inserted or changed.
type locatorEntry struct {
	ID     [16]byte
	Prefix [8]byte // first 8 bytes of the row's digest
}

// encodeLocator packs the rows (in share id order): an id sharing the
// previous id's spool segment is the uvarint of its offset's increase
// (never 0, ids are unique), any other id a 0 byte and its 16 bytes; each
// followed by the first 8 bytes of the row's digest. About 10 bytes a
// share.
func encodeLocator(rows []Sealed) []byte {
	b := make([]byte, 0, 11*len(rows))
	for i := range rows {
		id := rows[i].ID
		if i > 0 && idPrefix(id) == idPrefix(rows[i-1].ID) {
			b = binary.AppendUvarint(b, idOffset(id)-idOffset(rows[i-1].ID))
		} else {
			b = append(b, 0)
			b = append(b, id[:]...)
		}
		b = append(b, rows[i].Digest[:8]...)
	}
	return b
}

// decodeLocator unpacks encodeLocator's bytes (read from the database,
// which a tamperer may have edited: every length is checked).
func decodeLocator(b []byte) ([]locatorEntry, error) {
	var out []locatorEntry
	var prev [16]byte
	for len(b) > 0 {
		var e locatorEntry
		if b[0] == 0 {
			if len(b) < 17 {
				return nil, fmt.Errorf("locator entry %d: truncated id", len(out)+1)
			}
			copy(e.ID[:], b[1:17])
			b = b[17:]
		} else {
			if len(out) == 0 {
				return nil, errors.New("locator entry 1: an offset increase with no id before it")
			}
			d, n := binary.Uvarint(b)
			if n <= 0 {
				return nil, fmt.Errorf("locator entry %d: bad offset increase", len(out)+1)
			}
			e.ID = prev
			binary.BigEndian.PutUint64(e.ID[8:], idOffset(prev)+d)
			b = b[n:]
		}
		if len(b) < 8 {
			return nil, fmt.Errorf("locator entry %d: truncated digest", len(out)+1)
		}
		copy(e.Prefix[:], b[:8])
		b = b[8:]
		out = append(out, e)
		prev = e.ID
	}
	return out, nil
}

// Seal seals rows, just stored in tx, as the next segment of the chain;
// rows must be in ascending share id order. Call it last in the
// transaction that stored the rows: it locks the chain's head row until
// the transaction ends, so segments are numbered, chained and committed
// in one order across every instance sharing the database, and a row is
// sealed exactly when it is committed. No rows, no segment.
func Seal(ctx context.Context, tx pgx.Tx, instance string, rows []Sealed, now time.Time) (Segment, error) {
	var seg Segment
	if len(rows) == 0 {
		return seg, nil
	}
	digests := make([][32]byte, len(rows))
	seg.MinTime, seg.MaxTime = rows[0].Time, rows[0].Time
	for i := range rows {
		r := &rows[i]
		if i > 0 && bytes.Compare(rows[i-1].ID[:], r.ID[:]) >= 0 {
			return seg, fmt.Errorf("seal shares: share %x is not after share %x", r.ID, rows[i-1].ID)
		}
		digests[i] = r.Digest
		if r.Time.Before(seg.MinTime) {
			seg.MinTime = r.Time
		}
		if r.Time.After(seg.MaxTime) {
			seg.MaxTime = r.Time
		}
		p, o := idPrefix(r.ID), idOffset(r.ID)
		if n := len(seg.Runs); n > 0 && !r.NewRun && seg.Runs[n-1].Prefix == p {
			seg.Runs[n-1].Last = o
		} else {
			seg.Runs = append(seg.Runs, Run{Prefix: p, First: o, Last: o})
		}
	}
	seg.Shares = int64(len(rows))
	seg.RowsHash = rowsHashOf(digests)
	var prev []byte
	if err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_head FOR UPDATE").Scan(&seg.Seq, &prev); err != nil {
		return seg, fmt.Errorf("seal shares: lock the chain head: %w", err)
	}
	if len(prev) != 32 {
		return seg, fmt.Errorf("seal shares: the chain head hash is %d bytes, not 32", len(prev))
	}
	copy(seg.PrevHash[:], prev)
	seg.Seq++
	seg.Hash = segmentHash(seg.PrevHash, seg.Seq, seg.Shares, seg.RowsHash)
	if _, err := tx.Exec(ctx, `INSERT INTO audit_segments (seq, instance, sealed_at, shares, min_time, max_time, runs, locator,
		rows_hash, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		seg.Seq, instance, now, seg.Shares, seg.MinTime, seg.MaxTime, encodeRuns(seg.Runs), encodeLocator(rows),
		seg.RowsHash[:], seg.PrevHash[:], seg.Hash[:]); err != nil {
		return seg, fmt.Errorf("seal shares: insert segment %d: %w", seg.Seq, err)
	}
	if _, err := tx.Exec(ctx, "UPDATE audit_head SET seq = $1, hash = $2, updated_at = $3", seg.Seq, seg.Hash[:], now); err != nil {
		return seg, fmt.Errorf("seal shares: move the chain head to segment %d: %w", seg.Seq, err)
	}
	return seg, nil
}

// Head is the chain's latest segment: print it and keep it somewhere
// else, and any later rewrite of the whole chain shows.
type Head struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	UpdatedAt time.Time `json:"updated_at"`
	Shares    int64     `json:"shares"`
}

// Querier is what the audit reads need of a connection or pool.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ReadHead reads the chain head and the number of shares sealed.
func ReadHead(ctx context.Context, db Querier) (Head, error) {
	var h Head
	var hash []byte
	if err := db.QueryRow(ctx, `SELECT h.seq, h.hash, h.updated_at, (SELECT coalesce(sum(shares), 0) FROM audit_segments)
		FROM audit_head h`).Scan(&h.Seq, &hash, &h.UpdatedAt, &h.Shares); err != nil {
		return h, fmt.Errorf("read audit head: %w", err)
	}
	h.Hash = fmt.Sprintf("%x", hash)
	h.UpdatedAt = h.UpdatedAt.UTC()
	return h, nil
}
