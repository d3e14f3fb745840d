package spool

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSealIfCrowdedSealsOnlyTheActiveSegmentNearTheLimit(t *testing.T) {
	// Segments far larger than the limit: only SealIfCrowded can end one.
	s, _ := open(t, t.TempDir(), Options{LimitBytes: 1000, SyncInterval: 1 << 40})
	rec := make([]byte, 41) // 50-byte frames
	if s.SealIfCrowded(1) {
		t.Fatal("sealed a segment that does not exist yet")
	}
	for s.Stats().Bytes+50 < 500 {
		if _, err := s.Append(7, rec); err != nil {
			t.Fatal(err)
		}
		if s.SealIfCrowded(1) {
			t.Fatalf("sealed at %d bytes, under half the limit", s.Stats().Bytes)
		}
	}
	if _, err := s.Append(7, rec); err != nil {
		t.Fatal(err)
	}
	if s.SealIfCrowded(2) {
		t.Fatal("sealed segment 2, which is not the active one")
	}
	if !s.SealIfCrowded(1) {
		t.Fatalf("did not seal at %d of 1000 bytes", s.Stats().Bytes)
	}
	if s.SealIfCrowded(1) {
		t.Fatal("sealed twice")
	}
	pos, err := s.Append(7, rec)
	if err != nil {
		t.Fatal(err)
	}
	if pos.Seq != 2 || pos.Offset != HeaderSize {
		t.Fatalf("append after seal went to %+v, want the start of segment 2", pos)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	before := s.Stats().Bytes
	seg := s.Segments()[0]
	if !seg.Sealed || seg.Readable != seg.Size {
		t.Fatalf("sealed segment after sync: %+v", seg)
	}
	if err := s.Remove(seg.Seq); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Bytes; got != before-seg.Size {
		t.Fatalf("%d bytes after removing %d of %d", got, seg.Size, before)
	}
	if _, err := os.Stat(seg.Path); !os.IsNotExist(err) {
		t.Fatalf("removed segment still on disk: %v", err)
	}
}

func TestSealIfCrowdedIgnoresASmallActiveSegment(t *testing.T) {
	// Crowded by a sealed segment (the database is behind): sealing the
	// small active one would free nothing and only make files.
	s, _ := open(t, t.TempDir(), Options{LimitBytes: 1000, SyncInterval: 1 << 40})
	rec := make([]byte, 41)
	for range 12 {
		if _, err := s.Append(7, rec); err != nil {
			t.Fatal(err)
		}
	}
	s.Rotate()
	if _, err := s.Append(7, rec); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Bytes < 500 {
		t.Fatalf("only %d bytes", st.Bytes)
	}
	if s.SealIfCrowded(2) {
		t.Fatal("sealed an active segment holding under a quarter of the limit")
	}
}

func TestRemoveThatCannotUnlinkKeepsTheSegment(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Options{})
	if _, err := s.Append(7, payload(1)); err != nil {
		t.Fatal(err)
	}
	s.Rotate()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	seg := s.Segments()[0]
	before := s.Stats()
	// A non-empty directory in the file's place cannot be unlinked (root
	// ignores permissions, so they cannot make the failure).
	if err := os.Remove(seg.Path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(seg.Path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(seg.Seq); err == nil {
		t.Fatal("remove succeeded")
	}
	if after := s.Stats(); after.Segments != before.Segments || after.Bytes != before.Bytes {
		t.Fatalf("failed remove changed the spool: %+v -> %+v", before, after)
	}
	if err := os.RemoveAll(seg.Path); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(seg.Seq); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if st := s.Stats(); st.Segments != 0 || st.Bytes != 0 {
		t.Fatalf("after retry %+v", st)
	}
	if _, err := s.Append(7, payload(2)); err != nil {
		t.Fatalf("spool unusable after a failed remove: %v", err)
	}
}
