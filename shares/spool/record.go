package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Record framing inside a segment, after the segment header:
//
//	length  uint32 little-endian: byte length of body (type + payload)
//	crc     uint32 little-endian: CRC-32C (Castagnoli) of body
//	body    type byte, then payload
//
// A record is valid only when its whole frame is present and the checksum
// matches; anything else ends the readable part of the segment.
const (
	// FrameOverhead is the bytes a frame adds to a payload.
	FrameOverhead = 4 + 4 + 1
	// MaxPayload bounds a record's payload; a length above it is
	// corruption, not a reason to allocate.
	MaxPayload = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendFrame appends the framed record (typ, payload) to dst.
func AppendFrame(dst []byte, typ byte, payload []byte) []byte {
	dst, start := BeginFrame(dst, typ)
	dst = append(dst, payload...)
	return FinishFrame(dst, start)
}

// BeginFrame starts a frame of type typ at the end of dst; the caller
// appends the payload directly (saving a copy) and calls FinishFrame with
// the returned start.
func BeginFrame(dst []byte, typ byte) ([]byte, int) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0, typ)
	return dst, start
}

// FinishFrame fills in the length and checksum of the frame that
// BeginFrame started at start.
func FinishFrame(dst []byte, start int) []byte {
	body := dst[start+8:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(body, castagnoli))
	return dst
}

// Damage says how a segment's data went bad.
type Damage string

// Damage kinds; used as metric labels.
const (
	// DamageTorn is a frame cut short by the end of the file: the normal
	// result of a crash in the middle of a write.
	DamageTorn Damage = "torn"
	// DamageChecksum is a complete frame whose checksum does not match,
	// or a length that cannot be right: the bytes were changed.
	DamageChecksum Damage = "checksum"
	// DamageHeader is a segment whose header is missing or invalid.
	DamageHeader Damage = "header"
)

// CorruptError reports where a segment stops being readable. Every record
// before Offset is intact.
type CorruptError struct {
	Offset int64
	Kind   Damage
	Detail string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("spool record at offset %d: %s (%s)", e.Offset, e.Detail, e.Kind)
}

// Record is one decoded record. Payload is only valid until the next call
// to Reader.Next.
type Record struct {
	// Offset is where the record's frame starts in its segment; together
	// with the segment id it identifies the record forever.
	Offset  int64
	Type    byte
	Payload []byte
}

// Reader decodes the records of a byte stream that starts at a frame
// boundary, up to a limit.
type Reader struct {
	r     *bufio.Reader
	off   int64
	limit int64 // stop at this offset; <0 means read to EOF
	hdr   [8]byte
	buf   []byte
}

// NewReader reads frames from r, whose first byte is at offset start of its
// segment, stopping cleanly at offset limit (limit < 0: at end of input).
func NewReader(r io.Reader, start, limit int64) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 256<<10), off: start, limit: limit}
}

// Offset is where the next frame starts.
func (d *Reader) Offset() int64 { return d.off }

// Next returns the next record, io.EOF at a clean end (the limit, or the
// end of input exactly at a frame boundary), or a *CorruptError.
func (d *Reader) Next() (Record, error) {
	if d.limit >= 0 && d.off >= d.limit {
		return Record{}, io.EOF
	}
	n, err := io.ReadFull(d.r, d.hdr[:])
	if err != nil {
		if n == 0 && errors.Is(err, io.EOF) && d.limit < 0 {
			return Record{}, io.EOF
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Record{}, &CorruptError{Offset: d.off, Kind: DamageTorn, Detail: fmt.Sprintf("frame header cut short after %d of 8 bytes", n)}
		}
		return Record{}, fmt.Errorf("read spool frame at offset %d: %w", d.off, err)
	}
	length := binary.LittleEndian.Uint32(d.hdr[0:4])
	crc := binary.LittleEndian.Uint32(d.hdr[4:8])
	if length == 0 || length > MaxPayload+1 {
		return Record{}, &CorruptError{Offset: d.off, Kind: DamageChecksum, Detail: fmt.Sprintf("impossible frame length %d", length)}
	}
	if d.limit >= 0 && d.off+8+int64(length) > d.limit {
		return Record{}, &CorruptError{Offset: d.off, Kind: DamageChecksum, Detail: fmt.Sprintf("frame of %d bytes crosses the readable end %d", length, d.limit)}
	}
	if cap(d.buf) < int(length) {
		d.buf = make([]byte, length)
	}
	body := d.buf[:length]
	if n, err := io.ReadFull(d.r, body); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Record{}, &CorruptError{Offset: d.off, Kind: DamageTorn, Detail: fmt.Sprintf("frame body cut short after %d of %d bytes", n, length)}
		}
		return Record{}, fmt.Errorf("read spool frame at offset %d: %w", d.off, err)
	}
	if got := crc32.Checksum(body, castagnoli); got != crc {
		return Record{}, &CorruptError{Offset: d.off, Kind: DamageChecksum, Detail: fmt.Sprintf("checksum %08x, frame says %08x", got, crc)}
	}
	rec := Record{Offset: d.off, Type: body[0], Payload: body[1:]}
	d.off += 8 + int64(length)
	return rec, nil
}
