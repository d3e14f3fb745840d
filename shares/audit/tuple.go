// Package audit makes the share log tamper-evident: share rows are sealed
// in segments, in the order they are committed to PostgreSQL, whose hashes
// chain; Verify re-reads every row (and every retention archive) and names
// any row inserted, changed or deleted behind the ledger's back; Archive
// moves old daily partitions to compressed files carrying their segment
// hashes and drops them only once the file has been re-read and checked.
//
// A row's canonical bytes are its PostgreSQL binary COPY tuple over
// Columns, exactly as `COPY (SELECT <Columns> FROM shares) TO STDOUT
// (FORMAT binary)` sends it: the writer builds the same bytes from the
// values it copies in (AppendTuple), Verify hashes what the server sends
// without decoding it, and an archive is that stream compressed. One
// definition, three readers.
package audit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Columns are the shares columns a row's canonical bytes cover, in order:
// every column of the table, so no stored value can change unseen.
var Columns = []string{"time", "share_id", "instance", "account_id", "worker_id", "group_name", "job_id",
	"extranonce1", "extranonce2", "ntime", "nonce", "version_bits", "version", "share_diff", "achieved_diff",
	"hash", "is_block"}

// columnList is Columns joined for SQL.
const columnList = "time, share_id, instance, account_id, worker_id, group_name, job_id, extranonce1, extranonce2, " +
	"ntime, nonce, version_bits, version, share_diff, achieved_diff, hash, is_block"

// Row is one share row as stored, in Go values.
type Row struct {
	Time                               time.Time
	ID                                 [16]byte
	Instance                           string
	AccountID, WorkerID                int64
	Group, JobID                       string
	Extranonce1, Extranonce2           []byte
	NTime, Nonce, VersionBits, Version int64
	ShareDiff, AchievedDiff            float64
	Hash                               []byte
	IsBlock                            bool
}

// microsFromUnixToY2K is PostgreSQL's timestamp epoch (2000-01-01 UTC) in
// Unix microseconds.
const microsFromUnixToY2K = 946684800 * 1_000_000

// pgMicros is t as PostgreSQL stores a timestamptz sent by pgx:
// microseconds since 2000-01-01 UTC, the nanoseconds truncated.
func pgMicros(t time.Time) int64 {
	return t.Unix()*1_000_000 + int64(t.Nanosecond())/1000 - microsFromUnixToY2K
}

// pgTime is the inverse of pgMicros.
func pgTime(us int64) time.Time {
	us += microsFromUnixToY2K
	return time.Unix(us/1_000_000, (us%1_000_000)*1000).UTC()
}

// AppendTuple appends r's canonical bytes: the binary COPY tuple
// PostgreSQL sends for the row (field count, then each field as a 32-bit
// length and its binary send form, all big-endian).
func AppendTuple(dst []byte, r *Row) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(Columns)))
	i64 := func(v int64) {
		dst = binary.BigEndian.AppendUint32(dst, 8)
		dst = binary.BigEndian.AppendUint64(dst, uint64(v))
	}
	raw := func(b []byte) {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
		dst = append(dst, b...)
	}
	str := func(s string) {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
		dst = append(dst, s...)
	}
	i64(pgMicros(r.Time))
	raw(r.ID[:])
	str(r.Instance)
	i64(r.AccountID)
	i64(r.WorkerID)
	str(r.Group)
	str(r.JobID)
	raw(r.Extranonce1)
	raw(r.Extranonce2)
	i64(r.NTime)
	i64(r.Nonce)
	i64(r.VersionBits)
	i64(r.Version)
	i64(int64(math.Float64bits(r.ShareDiff)))
	i64(int64(math.Float64bits(r.AchievedDiff)))
	raw(r.Hash)
	b := byte(0)
	if r.IsBlock {
		b = 1
	}
	raw([]byte{b})
	return dst
}

// copySignature opens every binary COPY stream.
var copySignature = []byte("PGCOPY\n\xff\r\n\x00")

// ErrBadTuple is wrapped by the errors of ParseTuple and of the stream
// parser: bytes that are not a share row's binary COPY tuple.
var ErrBadTuple = errors.New("not a share row tuple")

// Fixed field offsets inside a tuple: the field count (2), then time's
// length (4) and value (8), then share_id's length (4) and value (16).
const (
	idAt   = 2 + 4 + 8 + 4
	timeAt = 2 + 4
)

// TupleID returns the share id of a tuple checked by ParseTuple or
// splitTuple.
func TupleID(t []byte) (id [16]byte) {
	copy(id[:], t[idAt:idAt+16])
	return id
}

// TupleTime returns the time of a tuple checked by ParseTuple or
// splitTuple.
func TupleTime(t []byte) time.Time {
	return pgTime(int64(binary.BigEndian.Uint64(t[timeAt:])))
}

// fixedWidth is each column's binary width, or -1 for variable length.
var fixedWidth = [...]int{8, 16, -1, 8, 8, -1, -1, -1, -1, 8, 8, 8, 8, 8, 8, -1, 1}

// splitTuple returns the length of the tuple at the start of b, 0 when b
// holds only part of one, or an error naming what is wrong. A field count
// of -1 (0xffff) is the stream's trailer: it returns -1.
func splitTuple(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, nil
	}
	n := int16(binary.BigEndian.Uint16(b))
	if n == -1 {
		return -1, nil
	}
	if int(n) != len(Columns) {
		return 0, fmt.Errorf("%w: %d fields, want %d", ErrBadTuple, n, len(Columns))
	}
	off := 2
	for i, w := range fixedWidth {
		if len(b) < off+4 {
			return 0, nil
		}
		l := int32(binary.BigEndian.Uint32(b[off:]))
		if l < 0 {
			return 0, fmt.Errorf("%w: column %s is NULL", ErrBadTuple, Columns[i])
		}
		if w >= 0 && int(l) != w {
			return 0, fmt.Errorf("%w: column %s is %d bytes, want %d", ErrBadTuple, Columns[i], l, w)
		}
		if l > 1<<20 {
			return 0, fmt.Errorf("%w: column %s is %d bytes long", ErrBadTuple, Columns[i], l)
		}
		off += 4 + int(l)
		if len(b) < off {
			return 0, nil
		}
	}
	return off, nil
}

// ParseTuple decodes one complete canonical tuple (outside input: an
// archive's bytes).
func ParseTuple(t []byte) (Row, error) {
	var r Row
	n, err := splitTuple(t)
	if err != nil {
		return r, err
	}
	if n <= 0 || n != len(t) {
		return r, fmt.Errorf("%w: %d bytes are not one whole tuple", ErrBadTuple, len(t))
	}
	off := 2
	field := func() []byte {
		l := int(binary.BigEndian.Uint32(t[off:]))
		f := t[off+4 : off+4+l]
		off += 4 + l
		return f
	}
	i64 := func() int64 { return int64(binary.BigEndian.Uint64(field())) }
	r.Time = pgTime(i64())
	copy(r.ID[:], field())
	r.Instance = string(field())
	r.AccountID = i64()
	r.WorkerID = i64()
	r.Group = string(field())
	r.JobID = string(field())
	r.Extranonce1 = bytes.Clone(field())
	r.Extranonce2 = bytes.Clone(field())
	r.NTime, r.Nonce, r.VersionBits, r.Version = i64(), i64(), i64(), i64()
	r.ShareDiff = math.Float64frombits(uint64(i64()))
	r.AchievedDiff = math.Float64frombits(uint64(i64()))
	r.Hash = bytes.Clone(field())
	b := field()
	if b[0] > 1 {
		return r, fmt.Errorf("%w: is_block byte %d", ErrBadTuple, b[0])
	}
	r.IsBlock = b[0] == 1
	return r, nil
}

// tupleStream is a push parser of a binary COPY stream of share tuples:
// Write takes bytes as they come (one CopyData message each from the
// server, or blocks of a decompressed archive) and calls fn with every
// complete tuple, the slice valid only during the call.
type tupleStream struct {
	fn      func(tuple []byte) error
	buf     []byte
	header  bool // the signature and header are consumed
	trailer bool // the -1 trailer was seen
	tuples  int64
	bytes   int64
}

func newTupleStream(fn func([]byte) error) *tupleStream { return &tupleStream{fn: fn} }

// Write parses p; it never keeps p.
func (s *tupleStream) Write(p []byte) (int, error) {
	n := len(p)
	s.bytes += int64(n)
	b := p
	if len(s.buf) > 0 {
		s.buf = append(s.buf, p...)
		b = s.buf
	}
	rest, err := s.parse(b)
	if err != nil {
		return 0, err
	}
	// Keep the unparsed tail (copy it: p is the caller's).
	s.buf = append(s.buf[:0], rest...)
	return n, nil
}

func (s *tupleStream) parse(b []byte) ([]byte, error) {
	if !s.header {
		// signature (11), flags (4), header extension length (4) + extension
		if len(b) < 19 {
			return b, nil
		}
		if !bytes.Equal(b[:11], copySignature) {
			return nil, fmt.Errorf("%w: the stream does not start with the binary COPY signature", ErrBadTuple)
		}
		ext := int(binary.BigEndian.Uint32(b[15:19]))
		if ext > 1<<16 {
			return nil, fmt.Errorf("%w: header extension of %d bytes", ErrBadTuple, ext)
		}
		if len(b) < 19+ext {
			return b, nil
		}
		b = b[19+ext:]
		s.header = true
	}
	for len(b) > 0 {
		if s.trailer {
			return nil, fmt.Errorf("%w: %d bytes after the stream's trailer", ErrBadTuple, len(b))
		}
		n, err := splitTuple(b)
		if err != nil {
			return nil, fmt.Errorf("tuple %d: %w", s.tuples+1, err)
		}
		if n == 0 {
			return b, nil
		}
		if n == -1 {
			s.trailer = true
			b = b[2:]
			continue
		}
		if err := s.fn(b[:n]); err != nil {
			return nil, err
		}
		s.tuples++
		b = b[n:]
	}
	return b, nil
}

// Close reports a stream cut short.
func (s *tupleStream) Close() error {
	if !s.trailer || len(s.buf) > 0 {
		return fmt.Errorf("%w: the stream ends without its trailer after %d tuples", ErrBadTuple, s.tuples)
	}
	return nil
}

// appendHeader appends a binary COPY stream's header (no flags, no
// extension), for the archives a test or a tool writes itself.
func appendHeader(dst []byte) []byte {
	dst = append(dst, copySignature...)
	return append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
}

// appendTrailer appends a binary COPY stream's trailer.
func appendTrailer(dst []byte) []byte { return append(dst, 0xff, 0xff) }
