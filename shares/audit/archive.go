package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/migrations"
)

// An archive file is two gzip members: the partition's rows as
// PostgreSQL's binary COPY stream over Columns (the canonical bytes, as
// verify reads them from the table), then a JSON Manifest naming the
// segments whose rows it holds and their hashes. audit_archives keeps the
// file's path and SHA-256, so a file rewritten (even recompressed) shows.

// Manifest is an archive's second member.
type Manifest struct {
	Partition string    `json:"partition"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Shares    int64     `json:"shares"`
	// CopySHA256 is SHA-256 of the uncompressed COPY stream.
	CopySHA256 string            `json:"copy_sha256"`
	Segments   []ManifestSegment `json:"segments"`
}

// ManifestSegment is a segment with rows in an archive.
type ManifestSegment struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	// Shares is how many of the segment's rows the archive holds.
	Shares int64 `json:"shares"`
}

// ArchiveInfo is an audit_archives row.
type ArchiveInfo struct {
	Partition  string
	From, To   time.Time
	Path       string
	Shares     int64
	FileSHA256 [32]byte
}

func listArchives(ctx context.Context, db Querier) ([]ArchiveInfo, error) {
	rows, err := db.Query(ctx, `SELECT partition, day_from, day_to, path, shares, file_sha256 FROM audit_archives ORDER BY day_from`)
	if err != nil {
		return nil, fmt.Errorf("list share archives: %w", err)
	}
	var out []ArchiveInfo
	var a ArchiveInfo
	var sum []byte
	_, err = pgx.ForEachRow(rows, []any{&a.Partition, &a.From, &a.To, &a.Path, &a.Shares, &sum}, func() error {
		copy(a.FileSHA256[:], sum)
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list share archives: %w", err)
	}
	return out, nil
}

// readArchive feeds every tuple of archive a to fn and then checks the
// file against what was recorded: its SHA-256, its manifest's row count
// and COPY stream hash. fn sees the rows even of a file that fails, so a
// verification names the rows that changed.
func readArchive(a ArchiveInfo, fn func([]byte) error) error {
	_, err := readArchiveFile(a.Path, a.Shares, &a.FileSHA256, fn)
	return err
}

// readArchiveFile reads the archive at path; wantSum, when not nil, is the
// file's recorded SHA-256, wantShares its recorded row count.
func readArchiveFile(path string, wantShares int64, wantSum *[32]byte, fn func([]byte) error) (Manifest, error) {
	var m Manifest
	f, err := os.Open(path)
	if err != nil {
		return m, fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	fileSum := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(f, fileSum), 1<<16)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return m, fmt.Errorf("archive %s: first member: %w", path, err)
	}
	zr.Multistream(false)
	copySum := sha256.New()
	st := newTupleStream(fn)
	if _, err := io.Copy(io.MultiWriter(copySum, st), zr); err != nil {
		return m, fmt.Errorf("archive %s: rows: %w", path, err)
	}
	if err := st.Close(); err != nil {
		return m, fmt.Errorf("archive %s: rows: %w", path, err)
	}
	if err := zr.Reset(br); err != nil {
		return m, fmt.Errorf("archive %s: manifest member: %w", path, err)
	}
	zr.Multistream(false)
	raw, err := io.ReadAll(io.LimitReader(zr, 256<<20))
	if err != nil {
		return m, fmt.Errorf("archive %s: manifest: %w", path, err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, fmt.Errorf("archive %s: manifest: %w", path, err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return m, fmt.Errorf("archive %s: %w", path, err)
	}
	if got := hex.EncodeToString(copySum.Sum(nil)); got != m.CopySHA256 {
		return m, fmt.Errorf("archive %s: rows hash to %s, the manifest says %s", path, got, m.CopySHA256)
	}
	if st.tuples != m.Shares || (wantShares >= 0 && st.tuples != wantShares) {
		return m, fmt.Errorf("archive %s: %d rows, the manifest says %d, audit_archives %d", path, st.tuples, m.Shares, wantShares)
	}
	if wantSum != nil {
		var got [32]byte
		fileSum.Sum(got[:0])
		if got != *wantSum {
			return m, fmt.Errorf("archive %s: file SHA-256 %x, recorded %x: not the file that was archived", path, got, *wantSum)
		}
	}
	return m, nil
}

// ArchiveOptions configure retention.
type ArchiveOptions struct {
	// Dir receives the archive files.
	Dir string
	// Retention is how long share partitions stay in PostgreSQL; 0
	// keeps them forever.
	Retention time.Duration
	// Now is the current time.
	Now time.Time
	Log *zap.Logger
}

// Archived is one partition moved to an archive.
type Archived struct {
	Partition string  `json:"partition"`
	Path      string  `json:"path"`
	Shares    int64   `json:"shares"`
	Segments  int     `json:"segments"`
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
}

// archiveLockKey serializes archiving across instances
// (pg_advisory_xact_lock): "wattarch".
const archiveLockKey = int64(0x7761747461726368)

// Archive moves every daily share partition whose day ended more than
// opts.Retention before opts.Now to a compressed file in opts.Dir,
// re-reads the file and checks every row against its seal, and only then
// records the archive and drops the partition, all in one transaction
// that holds the partition against writes. Safe from several instances.
func Archive(ctx context.Context, db *pgx.Conn, opts ArchiveOptions) ([]Archived, error) {
	if opts.Retention <= 0 {
		return nil, nil
	}
	if opts.Dir == "" {
		return nil, errors.New("archive share partitions: no archive directory")
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("archive share partitions: %w", err)
	}
	cutoff := opts.Now.Add(-opts.Retention)
	rows, err := db.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'shares'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("archive share partitions: list partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("archive share partitions: list partitions: %w", err)
	}
	var done []Archived
	for _, name := range names {
		day, err := time.Parse("20060102", strings.TrimPrefix(name, "shares_p"))
		if err != nil || migrations.PartitionName(day) != name {
			continue // shares_default and anything not daily
		}
		if day.AddDate(0, 0, 1).After(cutoff) {
			continue
		}
		a, err := archivePartition(ctx, db, opts, name, day)
		if err != nil {
			return done, fmt.Errorf("archive share partition %s: %w", name, err)
		}
		if a.Partition != "" {
			opts.Log.Info("audit: share partition archived and dropped", zap.String("partition", a.Partition),
				zap.String("path", a.Path), zap.Int64("shares", a.Shares), zap.Int64("bytes", a.Bytes))
			done = append(done, a)
		}
	}
	return done, nil
}

func archivePartition(ctx context.Context, db *pgx.Conn, opts ArchiveOptions, name string, day time.Time) (Archived, error) {
	start := time.Now()
	a := Archived{}
	head, err := ReadHead(ctx, db)
	if err != nil {
		return a, err
	}
	x, _, err := loadIndex(ctx, db, head) // the chain's own health is verify's to judge
	if err != nil {
		return a, err
	}
	final := filepath.Join(opts.Dir, name+".pgcopy.gz")
	// Read committed: every statement after the partition's lock sees
	// every row committed before it, and no writer adds one until the
	// partition is gone.
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", archiveLockKey); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", "public."+name).Scan(&exists); err != nil {
			return fmt.Errorf("look up: %w", err)
		}
		if !exists {
			return nil // another instance archived it
		}
		ident := pgx.Identifier{name}.Sanitize()
		// Writers wait from here: a late share for this day cannot land
		// after the copy and vanish with the drop.
		if _, err := tx.Exec(ctx, "LOCK TABLE "+ident+" IN SHARE MODE"); err != nil {
			return fmt.Errorf("lock partition: %w", err)
		}
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+ident).Scan(&n); err != nil {
			return fmt.Errorf("count: %w", err)
		}
		m, size, err := writeArchive(ctx, tx, x, name, day, final)
		if err != nil {
			return err
		}
		if m.Shares != n {
			return fmt.Errorf("copied %d rows of %d", m.Shares, n)
		}
		sum, err := checkArchive(ctx, tx, x, final, m)
		if err != nil {
			return fmt.Errorf("re-read archive %s: %w", final, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_archives (partition, day_from, day_to, path, shares, file_sha256, archived_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, name, m.From, m.To, final, n, sum[:], opts.Now); err != nil {
			return fmt.Errorf("record archive: %w", err)
		}
		if _, err := tx.Exec(ctx, "DROP TABLE "+ident); err != nil {
			return fmt.Errorf("drop: %w", err)
		}
		a = Archived{Partition: name, Path: final, Shares: n, Segments: len(m.Segments), Bytes: size}
		return nil
	})
	a.Seconds = time.Since(start).Seconds()
	return a, err
}

// writeArchive copies partition name into the archive file at path
// (written aside, fsynced, renamed): the COPY stream, then the manifest.
func writeArchive(ctx context.Context, tx pgx.Tx, x *index, name string, day time.Time, path string) (Manifest, int64, error) {
	m := Manifest{Partition: name, From: day.UTC(), To: day.AddDate(0, 0, 1).UTC()}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return m, 0, fmt.Errorf("create archive: %w", err)
	}
	defer os.Remove(tmp)
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<16)
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	copySum := sha256.New()
	perSeg := map[int]int64{}
	unsealed := 0
	st := newTupleStream(func(t []byte) error {
		if i := x.lookup(TupleID(t)); i >= 0 {
			perSeg[i]++
		} else {
			unsealed++
		}
		return nil
	})
	sql := "COPY (SELECT " + columnList + " FROM " + pgx.Identifier{name}.Sanitize() + ") TO STDOUT (FORMAT binary)"
	if _, err := tx.Conn().PgConn().CopyTo(ctx, io.MultiWriter(zw, copySum, st), sql); err != nil {
		return m, 0, fmt.Errorf("copy out: %w", err)
	}
	if err := st.Close(); err != nil {
		return m, 0, fmt.Errorf("copy out: %w", err)
	}
	if unsealed > 0 {
		return m, 0, fmt.Errorf("%d rows no segment sealed: run wattpool audit verify; nothing archived", unsealed)
	}
	m.Shares = st.tuples
	m.CopySHA256 = hex.EncodeToString(copySum.Sum(nil))
	for i, n := range perSeg {
		s := &x.segs[i]
		m.Segments = append(m.Segments, ManifestSegment{Seq: s.Seq, Hash: hex.EncodeToString(s.Hash[:]), Shares: n})
	}
	slices.SortFunc(m.Segments, func(a, b ManifestSegment) int { return int(a.Seq - b.Seq) })
	if err := zw.Close(); err != nil {
		return m, 0, fmt.Errorf("write archive: %w", err)
	}
	raw, _ := json.Marshal(m)
	zw.Reset(bw)
	if _, err := zw.Write(raw); err != nil {
		return m, 0, fmt.Errorf("write archive manifest: %w", err)
	}
	if err := zw.Close(); err != nil {
		return m, 0, fmt.Errorf("write archive manifest: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return m, 0, fmt.Errorf("write archive: %w", err)
	}
	if err := f.Sync(); err != nil {
		return m, 0, fmt.Errorf("sync archive: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		return m, 0, fmt.Errorf("archive: %w", err)
	}
	if err := f.Close(); err != nil {
		return m, 0, fmt.Errorf("close archive: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return m, 0, fmt.Errorf("archive: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return m, 0, fmt.Errorf("sync archive directory: %w", err)
		}
	}
	return m, info.Size(), nil
}

// checkArchive re-reads the written archive: its stream must hash as when
// written and hold as many rows, and every row must match its sealed
// digest in its segment's locator. It returns the file's SHA-256.
func checkArchive(ctx context.Context, db Querier, x *index, path string, want Manifest) ([32]byte, error) {
	var sum [32]byte
	seqs := make([]int64, len(want.Segments))
	for i, s := range want.Segments {
		seqs[i] = s.Seq
	}
	rows, err := db.Query(ctx, "SELECT locator FROM audit_segments WHERE seq = ANY($1)", seqs)
	if err != nil {
		return sum, fmt.Errorf("read locators: %w", err)
	}
	sealed := map[[16]byte][8]byte{}
	var raw []byte
	if _, err := pgx.ForEachRow(rows, []any{&raw}, func() error {
		loc, err := decodeLocator(raw)
		if err != nil {
			return err
		}
		for _, e := range loc {
			sealed[e.ID] = e.Prefix
		}
		return nil
	}); err != nil {
		return sum, fmt.Errorf("read locators: %w", err)
	}
	var h hash.Hash = sha256.New()
	m, err := readArchiveFile(path, want.Shares, nil, func(t []byte) error {
		d := sha256.Sum256(t)
		p, ok := sealed[TupleID(t)]
		if !ok || [8]byte(d[:8]) != p {
			return fmt.Errorf("share %s does not match its seal", uuidString(TupleID(t)))
		}
		return nil
	})
	if err != nil {
		return sum, err
	}
	if m.CopySHA256 != want.CopySHA256 {
		return sum, fmt.Errorf("rows hash to %s, written as %s", m.CopySHA256, want.CopySHA256)
	}
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// archivedShare is a share row read from an archive, as a payout needs it.
type archivedShare struct {
	time                time.Time
	id                  [16]byte
	instance, jobID     string
	accountID, workerID int64
	diff                float64
}

// ArchiveReader reads the share rows of archived partitions, for payouts
// whose windows reach into dropped days (it is a payout.Archive).
type ArchiveReader struct{ db Querier }

// NewArchiveReader returns a reader of the archives audit_archives lists.
func NewArchiveReader(db Querier) *ArchiveReader { return &ArchiveReader{db: db} }

// WalkArchived calls fn with the archived shares since < time <= end
// (since zero: no lower bound), newest first by (time, share_id), until fn
// says stop. Each archive is checked as Verify checks it (file hash, row
// count), and one that fails is an error: a payout is not computed from a
// file that is not the one archived.
func (r *ArchiveReader) WalkArchived(ctx context.Context, end, since time.Time,
	fn func(t time.Time, id [16]byte, instance, jobID string, accountID, workerID int64, diff float64) (bool, error)) error {
	all, err := listArchives(ctx, r.db)
	if err != nil {
		return err
	}
	for i := len(all) - 1; i >= 0; i-- {
		a := all[i]
		if a.From.After(end) || (!since.IsZero() && !a.To.After(since)) {
			continue
		}
		var rows []archivedShare
		err := readArchive(a, func(t []byte) error {
			tm := TupleTime(t)
			if tm.After(end) || (!since.IsZero() && !tm.After(since)) {
				return nil
			}
			rows = append(rows, pickShare(t, tm))
			return nil
		})
		if err != nil {
			return fmt.Errorf("read archived shares of %s: %w", a.Partition, err)
		}
		slices.SortFunc(rows, func(a, b archivedShare) int {
			if c := b.time.Compare(a.time); c != 0 {
				return c
			}
			return bytes.Compare(b.id[:], a.id[:])
		})
		for _, s := range rows {
			more, err := fn(s.time, s.id, s.instance, s.jobID, s.accountID, s.workerID, s.diff)
			if err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// pickShare reads a payout's fields from a tuple checked by splitTuple.
func pickShare(t []byte, tm time.Time) archivedShare {
	s := archivedShare{time: tm, id: TupleID(t)}
	off := idAt + 16
	field := func() []byte {
		l := int(binary.BigEndian.Uint32(t[off:]))
		f := t[off+4 : off+4+l]
		off += 4 + l
		return f
	}
	i64 := func() int64 { return int64(binary.BigEndian.Uint64(field())) }
	s.instance = string(field())
	s.accountID = i64()
	s.workerID = i64()
	field() // group_name
	s.jobID = string(field())
	for range 6 { // extranonce1, extranonce2, ntime, nonce, version_bits, version
		field()
	}
	s.diff = math.Float64frombits(uint64(i64()))
	return s
}
