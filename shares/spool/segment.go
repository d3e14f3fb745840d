package spool

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"strings"
)

// Segment header (HeaderSize bytes at offset 0 of every segment file):
//
//	magic    8 bytes "WPSPOOL1"
//	id       uint64 little-endian, random: names the segment forever, so
//	         (id, record offset) identifies a record across restarts and
//	         even if the spool directory is recreated
//	seq      uint64 little-endian, the file's sequence number
//	crc      uint32 little-endian, CRC-32C of the 24 bytes above
//	reserved 4 zero bytes
const (
	HeaderSize = 32
	magic      = "WPSPOOL1"
	segSuffix  = ".seg"
)

func encodeHeader(id, seq uint64) []byte {
	h := make([]byte, HeaderSize)
	copy(h, magic)
	binary.LittleEndian.PutUint64(h[8:], id)
	binary.LittleEndian.PutUint64(h[16:], seq)
	binary.LittleEndian.PutUint32(h[24:], crc32.Checksum(h[:24], castagnoli))
	return h
}

func decodeHeader(h []byte) (id, seq uint64, err error) {
	if len(h) < HeaderSize {
		return 0, 0, &CorruptError{Offset: 0, Kind: DamageHeader, Detail: fmt.Sprintf("segment header cut short at %d of %d bytes", len(h), HeaderSize)}
	}
	if string(h[:8]) != magic {
		return 0, 0, &CorruptError{Offset: 0, Kind: DamageHeader, Detail: fmt.Sprintf("bad segment magic %q", h[:8])}
	}
	if got, want := crc32.Checksum(h[:24], castagnoli), binary.LittleEndian.Uint32(h[24:]); got != want {
		return 0, 0, &CorruptError{Offset: 0, Kind: DamageHeader, Detail: fmt.Sprintf("segment header checksum %08x, header says %08x", got, want)}
	}
	return binary.LittleEndian.Uint64(h[8:]), binary.LittleEndian.Uint64(h[16:]), nil
}

func randomID() (uint64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("random segment id: %w", err)
	}
	return binary.LittleEndian.Uint64(b[:]) &^ (1 << 63), nil // fits a BIGINT
}

func segmentName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, segSuffix) }

// parseSegmentName returns the sequence number of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(base) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(base, 16, 64)
	return seq, err == nil
}

// syncDir makes a directory's entries (new, renamed or removed files)
// durable, opening the directory for it; a running Spool fsyncs through
// the handle it holds instead (Spool.syncDir).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open spool dir for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync spool dir %s: %w", dir, err)
	}
	return nil
}

// writeFileSync creates path holding data, fsynced and closed; the caller
// renames it into place and fsyncs the directory.
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
