package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wattpool/wattpool/internal/leakcheck"
)

// TestMain fails the run when goroutines outlive the tests.
func TestMain(m *testing.M) { leakcheck.Main(m) }

func open(t *testing.T, dir string, opts Options) (*Spool, []Damaged) {
	t.Helper()
	s, dmg, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dmg
}

func payload(i int) []byte { return []byte(fmt.Sprintf("record-%06d-%s", i, strings.Repeat("x", i%7))) }

// readAll returns every record of every segment in order.
func readAll(t *testing.T, s *Spool) [][]byte {
	t.Helper()
	var out [][]byte
	for _, seg := range s.Segments() {
		r, err := OpenSegment(seg, 0)
		if err != nil {
			t.Fatal(err)
		}
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("segment %d: %v", seg.Seq, err)
			}
			if rec.Type != 7 {
				t.Fatalf("type %d", rec.Type)
			}
			out = append(out, bytes.Clone(rec.Payload))
		}
		r.Close()
	}
	return out
}

func TestAppendSyncReadAcrossRotations(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Options{SegmentBytes: 512})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 200; i += 4 {
				if _, err := s.Append(7, payload(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, s)
	if len(got) != 200 {
		t.Fatalf("read %d records, want 200", len(got))
	}
	seen := map[string]bool{}
	for _, p := range got {
		seen[string(p)] = true
	}
	for i := range 200 {
		if !seen[string(payload(i))] {
			t.Fatalf("record %d missing", i)
		}
	}
	if n := len(s.Segments()); n < 5 {
		t.Fatalf("%d segments; 512-byte segments should have rotated more", n)
	}
	if st := s.Stats(); st.Appended != 200 || st.Unsynced != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Reopen: everything is still there, and new segments continue the
	// numbering.
	s.Close()
	s2, dmg := open(t, dir, Options{SegmentBytes: 512})
	if len(dmg) != 0 {
		t.Fatalf("clean spool reported damage: %+v", dmg)
	}
	if got := readAll(t, s2); len(got) != 200 {
		t.Fatalf("after reopen %d records", len(got))
	}
	last := s2.Segments()[len(s2.Segments())-1].Seq
	pos, err := s2.Append(7, payload(1))
	if err != nil {
		t.Fatal(err)
	}
	if pos.Seq != last+1 || pos.Offset != HeaderSize {
		t.Fatalf("new record at %+v, want seq %d offset %d", pos, last+1, HeaderSize)
	}
}

func TestReadableStopsAtSyncedOffset(t *testing.T) {
	s, _ := open(t, t.TempDir(), Options{SyncInterval: 1 << 40})
	if _, err := s.Append(7, payload(1)); err != nil {
		t.Fatal(err)
	}
	seg := s.Segments()[0]
	if seg.Readable != 0 || seg.Sealed {
		t.Fatalf("unsynced segment readable to %d, sealed %v", seg.Readable, seg.Sealed)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if seg := s.Segments()[0]; seg.Readable != seg.Size {
		t.Fatalf("after sync readable %d of %d", seg.Readable, seg.Size)
	}
}

func TestLimitGivesErrFullAndRemoveFreesSpace(t *testing.T) {
	s, _ := open(t, t.TempDir(), Options{LimitBytes: 1000, SegmentBytes: 300})
	var n int
	var err error
	for ; n < 100; n++ {
		if _, err = s.Append(7, make([]byte, 50)); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("after %d records err = %v, want ErrFull", n, err)
	}
	if st := s.Stats(); st.Bytes > 1000 {
		t.Fatalf("spool holds %d bytes over its 1000 limit", st.Bytes)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	seg := s.Segments()[0]
	if !seg.Sealed {
		t.Fatal("first segment not sealed")
	}
	if err := s.Remove(seg.Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(7, make([]byte, 50)); err != nil {
		t.Fatalf("append after freeing space: %v", err)
	}
}

func TestAppendSyncEveryRecordAndAfterClose(t *testing.T) {
	s, _ := open(t, t.TempDir(), Options{SyncEveryRecord: true})
	if _, err := s.Append(7, payload(3)); err != nil {
		t.Fatal(err)
	}
	if seg := s.Segments()[0]; seg.Readable != seg.Size {
		t.Fatalf("SyncEveryRecord left %d of %d unsynced", seg.Size-seg.Readable, seg.Size)
	}
	s.Close()
	if _, err := s.Append(7, payload(3)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

// writeSegment writes n records through a spool and returns the segment
// path and the offsets of the records.
func writeSegment(t *testing.T, dir string, n int) (string, []int64) {
	t.Helper()
	s, _, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for i := range n {
		pos, err := s.Append(7, payload(i))
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, pos.Offset)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return s.Segments()[0].Path, offs
}

func TestDamagedSegmentsKeepGoodRecords(t *testing.T) {
	tests := []struct {
		name     string
		damage   func(t *testing.T, path string, offs []int64)
		keep     int
		kind     Damage
		noRecord bool
	}{
		{"torn tail mid record", func(t *testing.T, path string, offs []int64) {
			if err := os.Truncate(path, offs[7]+5); err != nil {
				t.Fatal(err)
			}
		}, 7, DamageTorn, false},
		{"torn tail mid frame header", func(t *testing.T, path string, offs []int64) {
			if err := os.Truncate(path, offs[9]+3); err != nil {
				t.Fatal(err)
			}
		}, 9, DamageTorn, false},
		{"flipped payload byte", func(t *testing.T, path string, offs []int64) {
			flip(t, path, offs[4]+12)
		}, 4, DamageChecksum, false},
		{"flipped length byte", func(t *testing.T, path string, offs []int64) {
			flip(t, path, offs[2]+3)
		}, 2, DamageChecksum, false},
		{"zeroed tail", func(t *testing.T, path string, offs []int64) {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			f.Write(make([]byte, 64))
			f.Close()
		}, 10, DamageChecksum, false},
		{"bad header", func(t *testing.T, path string, offs []int64) {
			flip(t, path, 10)
		}, 0, DamageHeader, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path, offs := writeSegment(t, dir, 10)
			tc.damage(t, path, offs)
			s, dmg := open(t, dir, Options{})
			if len(dmg) != 1 {
				t.Fatalf("damage reports %+v, want one", dmg)
			}
			d := dmg[0]
			if d.Cause.Kind != tc.kind {
				t.Fatalf("kind %s, want %s (%v)", d.Cause.Kind, tc.kind, d.Cause)
			}
			if _, err := os.Stat(d.SetAside); err != nil {
				t.Fatalf("set-aside file: %v", err)
			}
			got := readAll(t, s)
			if len(got) != tc.keep {
				t.Fatalf("kept %d records, want %d", len(got), tc.keep)
			}
			for i, p := range got {
				if !bytes.Equal(p, payload(i)) {
					t.Fatalf("record %d = %q", i, p)
				}
			}
			if !tc.noRecord && d.GoodRecords != int64(tc.keep) {
				t.Fatalf("report says %d good records", d.GoodRecords)
			}
			// The spool keeps working, and a second open finds no damage.
			if _, err := s.Append(7, payload(99)); err != nil {
				t.Fatal(err)
			}
			s.Close()
			if _, dmg := open(t, dir, Options{}); len(dmg) != 0 {
				t.Fatalf("damage reported again: %+v", dmg)
			}
			entries, _ := os.ReadDir(dir)
			var aside int
			for _, e := range entries {
				if strings.Contains(e.Name(), ".damaged-") {
					aside++
				}
			}
			if aside != 1 {
				t.Fatalf("%d set-aside files", aside)
			}
		})
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 0x40
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestQuarantineAtRunTime(t *testing.T) {
	dir := t.TempDir()
	_, offs := writeSegment(t, dir, 5)
	s, _ := open(t, dir, Options{})
	seg := s.Segments()[0]
	d, err := s.Quarantine(seg.Seq, &CorruptError{Offset: offs[3], Kind: DamageChecksum})
	if err != nil {
		t.Fatal(err)
	}
	if d.GoodEnd != offs[3] || len(readAll(t, s)) != 3 {
		t.Fatalf("quarantine kept wrong part: %+v", d)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.Base(d.SetAside))); err != nil {
		t.Fatal(err)
	}
}

func FuzzReader(f *testing.F) {
	var seed []byte
	for i := range 3 {
		seed = AppendFrame(seed, byte(i), payload(i))
	}
	f.Add(seed, int64(-1))
	f.Add(seed[:len(seed)-3], int64(-1))
	f.Add(seed, int64(20))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}, int64(-1))
	f.Fuzz(func(t *testing.T, data []byte, limit int64) {
		r := NewReader(bytes.NewReader(data), 0, limit)
		var re []byte
		for i := 0; ; i++ {
			rec, err := r.Next()
			if err != nil {
				var ce *CorruptError
				if !errors.Is(err, io.EOF) && !errors.As(err, &ce) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				if ce != nil && ce.Offset != r.Offset() {
					t.Fatalf("corruption at %d but reader at %d", ce.Offset, r.Offset())
				}
				break
			}
			if i > len(data) {
				t.Fatal("more records than bytes")
			}
			re = AppendFrame(re, rec.Type, rec.Payload)
		}
		// Whatever decoded re-encodes to exactly the consumed prefix.
		if !bytes.Equal(re, data[:r.Offset()]) {
			t.Fatalf("re-encoded %x, consumed %x", re, data[:r.Offset()])
		}
	})
}
