package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Problem kinds a verification reports.
const (
	// KindInserted is a row no segment sealed, or one a segment's
	// locator does not list.
	KindInserted = "inserted"
	// KindChanged is a row whose bytes differ from what was sealed.
	KindChanged = "changed"
	// KindDeleted is a sealed row that is nowhere: not in shares, not in
	// any archive.
	KindDeleted = "deleted"
	// KindSegment is a segment whose rows hash differs although no row
	// can be named (its locator was edited too).
	KindSegment = "segment"
	// KindChain is a break of the chain itself: a segment missing,
	// renumbered or rewritten, or a head that is not the last segment.
	KindChain = "chain"
	// KindArchive is an archive file that is missing, unreadable or not
	// the file that was archived.
	KindArchive = "archive"
)

// Problem is one finding of Verify.
type Problem struct {
	Kind string `json:"kind"`
	// ShareID is the row's share_id (UUID form), for row findings.
	ShareID string `json:"share_id,omitempty"`
	// Segment is the sealing segment's seq (0: none).
	Segment int64 `json:"segment,omitempty"`
	// Time is the row's stored time, when a row was read.
	Time *time.Time `json:"time,omitempty"`
	// Source is the partition or archive file the row was read from.
	Source string `json:"source,omitempty"`
	Detail string `json:"detail"`
}

// Report is what Verify found.
type Report struct {
	Head Head `json:"head"`
	// From and To bound the rows checked ([From, To)); zero: all.
	From *time.Time `json:"from,omitempty"`
	To   *time.Time `json:"to,omitempty"`
	// Segments is how many segments' rows were checked; Chain how many
	// segment headers the chain check covered.
	Segments int64 `json:"segments"`
	Chain    int64 `json:"chain"`
	// Rows is how many rows were read (shares and archives); Archives
	// how many archive files.
	Rows     int64 `json:"rows"`
	Archives int   `json:"archives"`
	// Problems lists every finding; OK is true when there is none.
	Problems []Problem `json:"problems"`
	OK       bool      `json:"ok"`
	Seconds  float64   `json:"seconds"`
}

// openLow and openHigh stand for no bound, in PostgreSQL microseconds.
const (
	openLow  = -1 << 62
	openHigh = 1 << 62
)

// maxProblems bounds a report: a table dropped behind our back would
// otherwise name every row.
const maxProblems = 10_000

// VerifyOptions narrows a verification.
type VerifyOptions struct {
	// From and To (exclusive) select the segments having rows in the
	// range and the rows in it; zero values leave that side open.
	From, To time.Time
	// Streams is how many partitions and archives are read at once
	// (default DefaultStreams); each partition stream beyond the first
	// opens a connection of its own.
	Streams int
}

// DefaultStreams is Verify's parallelism when not set: PostgreSQL sends a
// COPY from one backend, one core, so the streams of several partitions
// are what scales verification with the database server's cores.
const DefaultStreams = 2

// segHeader is a segment's stored header.
type segHeader struct {
	Segment
	selected bool
	found    []rowSeen
	done     bool
}

// rowSeen is a row read back: its id, digest and where it came from.
type rowSeen struct {
	id     [16]byte
	digest [32]byte
	us     int64 // time, PostgreSQL microseconds
	src    int32 // index into verifier.sources
}

type runRef struct {
	Run
	seg int
}

// index maps share ids to segments.
type index struct {
	segs []segHeader
	runs []runRef // sorted by (Prefix, First)
}

func (x *index) lookup(id [16]byte) int {
	p, o := idPrefix(id), idOffset(id)
	i := sort.Search(len(x.runs), func(i int) bool {
		r := &x.runs[i]
		return r.Prefix > p || (r.Prefix == p && r.First > o)
	})
	if i == 0 {
		return -1
	}
	r := &x.runs[i-1]
	if r.Prefix == p && o <= r.Last {
		return r.seg
	}
	return -1
}

// loadIndex reads every segment header and checks the chain.
func loadIndex(ctx context.Context, db Querier, head Head) (*index, []Problem, error) {
	rows, err := db.Query(ctx, `SELECT seq, shares, min_time, max_time, runs, rows_hash, prev_hash, hash
		FROM audit_segments ORDER BY seq`)
	if err != nil {
		return nil, nil, fmt.Errorf("read audit segments: %w", err)
	}
	defer rows.Close()
	x := &index{}
	var problems []Problem
	var prev [32]byte
	var runs, rh, ph, h []byte
	for rows.Next() {
		var s segHeader
		if err := rows.Scan(&s.Seq, &s.Shares, &s.MinTime, &s.MaxTime, &runs, &rh, &ph, &h); err != nil {
			return nil, nil, fmt.Errorf("read audit segments: %w", err)
		}
		copy(s.RowsHash[:], rh)
		copy(s.PrevHash[:], ph)
		copy(s.Hash[:], h)
		want := int64(len(x.segs)) + 1
		switch {
		case s.Seq != want:
			problems = append(problems, Problem{Kind: KindChain, Segment: s.Seq,
				Detail: fmt.Sprintf("segment %d follows segment %d: segments are missing or renumbered", s.Seq, want-1)})
		case s.PrevHash != prev:
			problems = append(problems, Problem{Kind: KindChain, Segment: s.Seq,
				Detail: fmt.Sprintf("prev_hash %x is not segment %d's hash %x", s.PrevHash, want-1, prev)})
		}
		if got := segmentHash(s.PrevHash, s.Seq, s.Shares, s.RowsHash); got != s.Hash {
			problems = append(problems, Problem{Kind: KindChain, Segment: s.Seq,
				Detail: fmt.Sprintf("stored hash %x, recomputed %x: the segment header was rewritten", s.Hash, got)})
		}
		prev = s.Hash
		if s.Runs, err = decodeRuns(runs); err != nil {
			problems = append(problems, Problem{Kind: KindChain, Segment: s.Seq, Detail: err.Error()})
		}
		x.segs = append(x.segs, s)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read audit segments: %w", err)
	}
	if n := int64(len(x.segs)); head.Seq != n || head.Hash != hex.EncodeToString(prev[:]) {
		problems = append(problems, Problem{Kind: KindChain, Segment: head.Seq,
			Detail: fmt.Sprintf("the head (segment %d, %s) is not the last segment (%d, %x)", head.Seq, head.Hash, n, prev)})
	}
	for i := range x.segs {
		for _, r := range x.segs[i].Runs {
			x.runs = append(x.runs, runRef{Run: r, seg: i})
		}
	}
	slices.SortFunc(x.runs, func(a, b runRef) int {
		if a.Prefix != b.Prefix {
			if a.Prefix < b.Prefix {
				return -1
			}
			return 1
		}
		switch {
		case a.First < b.First:
			return -1
		case a.First > b.First:
			return 1
		}
		return 0
	})
	for i := 1; i < len(x.runs); i++ {
		a, b := &x.runs[i-1], &x.runs[i]
		if a.Prefix == b.Prefix && b.First <= a.Last {
			problems = append(problems, Problem{Kind: KindChain, Segment: x.segs[b.seg].Seq,
				Detail: fmt.Sprintf("its share ids overlap segment %d's", x.segs[a.seg].Seq)})
		}
	}
	return x, problems, nil
}

// verifier accumulates rows into their segments.
type verifier struct {
	ctx      context.Context
	db       Querier
	x        *index
	from, to int64 // PostgreSQL microseconds; to exclusive
	sources  []string
	rows     int64
	problems []Problem
	scratch  [][32]byte
	bad      []badSegment
}

func (v *verifier) add(p Problem) {
	if len(v.problems) < maxProblems {
		v.problems = append(v.problems, p)
	} else if len(v.problems) == maxProblems {
		v.problems = append(v.problems, Problem{Kind: KindSegment, Detail: "more problems not listed"})
	}
}

func uuidString(id [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:], id[10:])
	return string(b[:])
}

func (v *verifier) inRange(us int64) bool { return us >= v.from && us < v.to }

func beUint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// finish checks a segment's rows against its rows hash, naming the rows
// from its locator when they differ.
func (v *verifier) finish(s *segHeader) {
	s.done = true
	found := s.found
	s.found = nil
	byID := func(a, b rowSeen) int { return bytes.Compare(a.id[:], b.id[:]) }
	if !slices.IsSortedFunc(found, byID) { // a segment's rows mostly come in order
		slices.SortFunc(found, byID)
	}
	v.scratch = v.scratch[:0]
	for i := range found {
		v.scratch = append(v.scratch, found[i].digest)
	}
	if int64(len(found)) == s.Shares && rowsHashOf(v.scratch) == s.RowsHash {
		return
	}
	// Named once the streams end: the connection is busy with them.
	v.bad = append(v.bad, badSegment{s, found})
}

// badSegment is a segment whose rows differ from its seal.
type badSegment struct {
	s     *segHeader
	found []rowSeen
}

// name reads a bad segment's locator and names the rows that differ.
func (v *verifier) name(s *segHeader, found []rowSeen) error {
	var raw []byte
	if err := v.db.QueryRow(v.ctx, "SELECT locator FROM audit_segments WHERE seq = $1", s.Seq).Scan(&raw); err != nil {
		return fmt.Errorf("read locator of audit segment %d: %w", s.Seq, err)
	}
	loc, err := decodeLocator(raw)
	if err != nil {
		v.add(Problem{Kind: KindSegment, Segment: s.Seq, Detail: fmt.Sprintf("rows differ from the seal; locator unreadable: %v", err)})
		return nil
	}
	named := 0
	i, j := 0, 0
	for i < len(found) || j < len(loc) {
		var c int
		switch {
		case i == len(found):
			c = 1
		case j == len(loc):
			c = -1
		default:
			c = bytes.Compare(found[i].id[:], loc[j].ID[:])
		}
		switch {
		case c < 0:
			f := &found[i]
			tm := pgTime(f.us)
			detail := "a row with this id was never sealed in the segment whose id range holds it"
			if j > 0 && loc[j-1].ID == f.id {
				detail = "a second row with the id of a sealed row"
			}
			v.add(Problem{Kind: KindInserted, ShareID: uuidString(f.id), Segment: s.Seq, Time: &tm, Source: v.sources[f.src], Detail: detail})
			named++
			i++
		case c > 0:
			v.add(Problem{Kind: KindDeleted, ShareID: uuidString(loc[j].ID), Segment: s.Seq, Detail: "sealed, but in neither shares nor an archive"})
			named++
			j++
		default:
			f := &found[i]
			if !bytes.Equal(f.digest[:8], loc[j].Prefix[:]) {
				tm := pgTime(f.us)
				v.add(Problem{Kind: KindChanged, ShareID: uuidString(f.id), Segment: s.Seq, Time: &tm, Source: v.sources[f.src],
					Detail: "the row's bytes differ from the sealed row's"})
				named++
			}
			i++
			if i == len(found) || found[i].id != f.id {
				j++
			}
		}
	}
	if named == 0 {
		v.add(Problem{Kind: KindSegment, Segment: s.Seq, Detail: "the rows hash differs from the seal but every row matches the locator: the locator or the rows hash was edited"})
	}
	return nil
}

// Verify re-reads every share row in PostgreSQL and in the retention
// archives (or those of opts' range) and recomputes the chain of sealed
// segments, naming every row inserted, changed or deleted behind the
// ledger's back. Each partition and archive is a stream of its own: rows
// come with COPY TO in binary form and are hashed as they arrive, without
// decoding, by opts.Streams workers (each partition stream on a
// connection of its own, opened like db), while one goroutine matches
// them to their segments.
func Verify(ctx context.Context, db *pgx.Conn, opts VerifyOptions) (Report, error) {
	start := time.Now()
	var rep Report
	head, err := ReadHead(ctx, db)
	if err != nil {
		return rep, err
	}
	rep.Head = head
	x, problems, err := loadIndex(ctx, db, head)
	if err != nil {
		return rep, err
	}
	rep.Chain = int64(len(x.segs))
	v := &verifier{ctx: ctx, db: db, x: x, from: openLow, to: openHigh, problems: problems}
	lo, hi := v.from, v.to
	if !opts.From.IsZero() {
		v.from = pgMicros(opts.From)
		t := opts.From.UTC()
		rep.From = &t
	}
	if !opts.To.IsZero() {
		v.to = pgMicros(opts.To)
		t := opts.To.UTC()
		rep.To = &t
	}
	ranged := !opts.From.IsZero() || !opts.To.IsZero()
	if ranged {
		lo, hi = v.from, v.to
	}
	for i := range x.segs {
		s := &x.segs[i]
		if pgMicros(s.MaxTime) < v.from || pgMicros(s.MinTime) >= v.to {
			continue
		}
		s.selected = true
		rep.Segments++
		lo, hi = min(lo, pgMicros(s.MinTime)), max(hi, pgMicros(s.MaxTime)+1)
	}
	var jobs []streamJob
	archives, err := listArchives(ctx, db)
	if err != nil {
		return rep, err
	}
	for _, a := range archives {
		if pgMicros(a.To) <= lo || pgMicros(a.From) >= hi {
			continue
		}
		rep.Archives++
		jobs = append(jobs, streamJob{archive: &a, src: int32(len(v.sources))})
		v.sources = append(v.sources, a.Path)
	}
	parts, err := partitions(ctx, db, lo, hi)
	if err != nil {
		return rep, err
	}
	for _, p := range parts {
		jobs = append(jobs, streamJob{partition: p, sql: copySQL(p, lo, hi, ranged), src: int32(len(v.sources))})
		v.sources = append(v.sources, p)
	}
	streams := opts.Streams
	if streams <= 0 {
		streams = DefaultStreams
	}
	if err := v.stream(ctx, db, jobs, streams); err != nil {
		return rep, err
	}
	for i := range x.segs {
		s := &x.segs[i]
		if s.selected && !s.done {
			v.finish(s)
		}
	}
	for _, b := range v.bad {
		if err := v.name(b.s, b.found); err != nil {
			return rep, err
		}
	}
	rep.Rows = v.rows
	rep.Problems = v.problems
	if rep.Problems == nil {
		rep.Problems = []Problem{}
	}
	rep.OK = len(rep.Problems) == 0
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// streamJob is one partition or archive to read.
type streamJob struct {
	archive   *ArchiveInfo
	partition string
	sql       string
	src       int32
}

// seenBatch is what a stream worker hands the matcher: rows hashed, or a
// problem with a whole archive.
type seenBatch struct {
	rows    []rowSeen
	problem *Problem
}

// stream runs the jobs on n workers and matches their rows to segments in
// this goroutine. Worker 0 reads partitions on db; the others open
// connections of their own when there are partitions left for them.
func (v *verifier) stream(ctx context.Context, db *pgx.Conn, jobs []streamJob, n int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan streamJob, len(jobs))
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	out := make(chan seenBatch, 4*n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := range min(n, max(1, len(jobs))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := v.work(ctx, db, w, queue, out)
			if err != nil {
				cancel() // the others stop: the verification failed
			}
			errs <- err
		}()
	}
	go func() { wg.Wait(); close(out) }()
	for b := range out {
		if b.problem != nil {
			v.add(*b.problem)
		}
		for i := range b.rows {
			v.seen(b.rows[i])
		}
	}
	close(errs)
	var first error
	for err := range errs {
		// The cause, not the cancellation it caused in the others.
		if err != nil && (first == nil || errors.Is(first, context.Canceled)) {
			first = err
		}
	}
	return first
}

// work is one stream worker: it takes jobs until none are left.
func (v *verifier) work(ctx context.Context, db *pgx.Conn, w int, queue <-chan streamJob, out chan<- seenBatch) error {
	var conn *pgx.Conn
	if w == 0 {
		conn = db
	}
	defer func() {
		if conn != nil && conn != db {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	var batch []rowSeen
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case out <- seenBatch{rows: batch}:
		case <-ctx.Done():
			return ctx.Err()
		}
		batch = make([]rowSeen, 0, 4096)
		return nil
	}
	for j := range queue {
		fn := func(t []byte) error {
			batch = append(batch, rowSeen{id: TupleID(t), digest: sha256.Sum256(t), src: j.src, us: int64(beUint64(t[timeAt:]))})
			if len(batch) == cap(batch) {
				return flush()
			}
			return nil
		}
		batch = make([]rowSeen, 0, 4096)
		if j.archive != nil {
			if err := readArchive(*j.archive, fn); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				p := Problem{Kind: KindArchive, Source: j.archive.Path, Detail: fmt.Sprintf("partition %s: %v", j.archive.Partition, err)}
				if err := flush(); err != nil {
					return err
				}
				select {
				case out <- seenBatch{problem: &p}:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		if conn == nil {
			c, err := pgx.ConnectConfig(ctx, db.Config().Copy())
			if err != nil {
				return fmt.Errorf("read shares: another connection: %w", err)
			}
			conn = c
		}
		st := newTupleStream(fn)
		if _, err := conn.PgConn().CopyTo(ctx, st, j.sql); err != nil {
			return fmt.Errorf("read shares of %s: %w", j.partition, err)
		}
		if err := st.Close(); err != nil {
			return fmt.Errorf("read shares of %s: %w", j.partition, err)
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return nil
}

// seen takes one row read back.
func (v *verifier) seen(r rowSeen) {
	v.rows++
	i := v.x.lookup(r.id)
	if i < 0 {
		if v.inRange(r.us) {
			tm := pgTime(r.us)
			v.add(Problem{Kind: KindInserted, ShareID: uuidString(r.id), Time: &tm, Source: v.sources[r.src],
				Detail: "no segment sealed this share id"})
		}
		return
	}
	s := &v.x.segs[i]
	if !s.selected {
		return
	}
	if s.done {
		// Every sealed row of the segment was read, and matched or was
		// reported: this one is extra.
		tm := pgTime(r.us)
		v.add(Problem{Kind: KindInserted, ShareID: uuidString(r.id), Segment: s.Seq, Time: &tm, Source: v.sources[r.src],
			Detail: "a row beyond the segment's sealed count (an id never sealed, or a second copy of a sealed row)"})
		return
	}
	s.found = append(s.found, r)
	if int64(len(s.found)) == s.Shares {
		v.finish(s)
	}
}

// partitions lists the shares partitions that may hold rows in [lo, hi):
// daily ones by their name's day, any other (shares_default) always.
func partitions(ctx context.Context, db Querier, lo, hi int64) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'shares'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("list share partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list share partitions: %w", err)
	}
	var out []string
	for _, n := range names {
		if day, err := time.Parse("20060102", strings.TrimPrefix(n, "shares_p")); err == nil && strings.HasPrefix(n, "shares_p") {
			if pgMicros(day.AddDate(0, 0, 1)) <= lo || pgMicros(day) >= hi {
				continue
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// copySQL streams partition p's rows with lo <= time < hi (all when not
// ranged) as binary COPY tuples over Columns.
func copySQL(p string, lo, hi int64, ranged bool) string {
	var conds []string
	if ranged && lo > openLow {
		conds = append(conds, fmt.Sprintf("time >= '%s'", pgTime(lo).Format(time.RFC3339Nano)))
	}
	if ranged && hi < openHigh {
		conds = append(conds, fmt.Sprintf("time < '%s'", pgTime(hi).Format(time.RFC3339Nano)))
	}
	ident := pgx.Identifier{p}.Sanitize()
	if len(conds) == 0 {
		return "COPY " + ident + " (" + columnList + ") TO STDOUT (FORMAT binary)"
	}
	return "COPY (SELECT " + columnList + " FROM " + ident + " WHERE " + strings.Join(conds, " AND ") + ") TO STDOUT (FORMAT binary)"
}
