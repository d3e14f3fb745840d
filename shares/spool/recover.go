package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Damaged reports a segment found damaged. The original file was renamed
// to SetAside (kept for inspection, not counted against the limit) and a
// copy holding only the intact records [0, GoodEnd) took its place, so
// record offsets, and with them record ids, do not change.
type Damaged struct {
	Path     string
	SetAside string
	// GoodEnd is the offset where readable data ends; GoodRecords the
	// intact records before it (-1 when not counted); LostBytes the bytes
	// after it.
	GoodEnd     int64
	GoodRecords int64
	LostBytes   int64
	Cause       *CorruptError
}

// recover loads the segments in s.dir; all are sealed after it.
func (s *Spool) recover() ([]Damaged, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			// An interrupted set-aside copy; the original is intact.
			_ = os.Remove(filepath.Join(s.dir, name))
			continue
		}
		if seq, ok := parseSegmentName(name); ok && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	var damaged []Damaged
	for _, seq := range seqs {
		path := filepath.Join(s.dir, segmentName(seq))
		seg, records, dmg, err := s.checkSegment(path, seq)
		if err != nil {
			return damaged, err
		}
		if dmg != nil {
			damaged = append(damaged, *dmg)
		}
		if seq >= s.nextSeq {
			s.nextSeq = seq + 1
		}
		if seg != nil {
			s.segs = append(s.segs, seg)
			s.bytes += seg.size
			s.appended.Add(uint64(records))
		}
	}
	return damaged, nil
}

// checkSegment reads a segment to its end, setting it aside when damaged.
// A segment whose header is unreadable has no records: it is set aside
// whole and no segment is returned.
func (s *Spool) checkSegment(path string, seq uint64) (*segment, int64, *Damaged, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("check segment: %w", err)
	}
	hdr := make([]byte, HeaderSize)
	n, _ := io.ReadFull(f, hdr)
	id, hseq, herr := decodeHeader(hdr[:n])
	if herr == nil && hseq != seq {
		herr = &CorruptError{Kind: DamageHeader, Detail: fmt.Sprintf("header says sequence %d, file name %d", hseq, seq)}
	}
	if herr != nil {
		f.Close()
		var ce *CorruptError
		errors.As(herr, &ce)
		aside, err := s.setAside(path, 0)
		if err != nil {
			return nil, 0, nil, err
		}
		st, _ := os.Stat(aside)
		var lost int64
		if st != nil {
			lost = st.Size()
		}
		return nil, 0, &Damaged{Path: path, SetAside: aside, LostBytes: lost, Cause: ce}, nil
	}
	r := NewReader(f, HeaderSize, -1)
	var records int64
	var cause *CorruptError
	for {
		_, err := r.Next()
		if err == nil {
			records++
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if !errors.As(err, &cause) {
			f.Close()
			return nil, 0, nil, fmt.Errorf("check segment %s: %w", path, err)
		}
		break
	}
	f.Close()
	good := r.Offset()
	seg := &segment{seq: seq, id: id, path: path, size: good, synced: good, sealed: true, dirSynced: true}
	if cause == nil {
		return seg, records, nil, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("check segment: %w", err)
	}
	aside, err := s.setAside(path, good)
	if err != nil {
		return nil, 0, nil, err
	}
	return seg, records, &Damaged{Path: path, SetAside: aside, GoodEnd: good, GoodRecords: records,
		LostBytes: st.Size() - good, Cause: cause}, nil
}

// setAside renames path to path.damaged-<unix nanos> and, when keep > 0,
// writes its first keep bytes back to path.
func (s *Spool) setAside(path string, keep int64) (string, error) {
	aside := fmt.Sprintf("%s.damaged-%d", path, time.Now().UnixNano())
	// The intact copy is written before anything is renamed: when it
	// cannot be (no descriptor left, EMFILE, or no room) the segment is
	// untouched and Quarantine can be tried again.
	var tmp string
	if keep > 0 {
		data := make([]byte, keep)
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("read damaged segment: %w", err)
		}
		_, err = io.ReadFull(f, data)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("read damaged segment %s: %w", path, err)
		}
		tmp = path + ".tmp"
		if err := writeFileSync(tmp, data); err != nil {
			os.Remove(tmp)
			return "", fmt.Errorf("write intact part of damaged segment: %w", err)
		}
	}
	if err := os.Rename(path, aside); err != nil {
		if tmp != "" {
			os.Remove(tmp)
		}
		return "", fmt.Errorf("set damaged segment aside: %w", err)
	}
	if tmp != "" {
		if err := os.Rename(tmp, path); err != nil {
			return aside, fmt.Errorf("put intact part of damaged segment in place: %w", err)
		}
	}
	if err := s.syncDir(); err != nil {
		return aside, fmt.Errorf("set damaged segment aside: %w", err)
	}
	s.opts.Log.Warn("spool: damaged segment set aside", zap.String("path", path), zap.String("set_aside", aside), zap.Int64("kept_bytes", keep))
	return aside, nil
}

// Quarantine handles damage found while reading a sealed segment at run
// time: the segment is set aside like at Open, keeping the records before
// cause.Offset.
func (s *Spool) Quarantine(seq uint64, cause *CorruptError) (Damaged, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.segs, func(seg *segment) bool { return seg.seq == seq })
	if i < 0 {
		return Damaged{}, fmt.Errorf("quarantine spool segment %d: not found", seq)
	}
	seg := s.segs[i]
	if !seg.sealed || seg.f != nil {
		return Damaged{}, fmt.Errorf("quarantine spool segment %d: still open", seq)
	}
	good := cause.Offset
	if good < HeaderSize || good > seg.size {
		return Damaged{}, fmt.Errorf("quarantine spool segment %d: offset %d outside [%d, %d]", seq, good, HeaderSize, seg.size)
	}
	aside, err := s.setAside(seg.path, good)
	if err != nil {
		return Damaged{}, err
	}
	lost := seg.size - good
	s.bytes -= lost
	seg.size, seg.synced = good, good
	return Damaged{Path: seg.path, SetAside: aside, GoodEnd: good, LostBytes: lost, GoodRecords: -1, Cause: cause}, nil
}
