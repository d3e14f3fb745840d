package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fdChildEnv selects the helper mode of TestDescriptorExhaustionIsTransient
// in a re-executed test binary; its value names the mode (a key of
// fdModes).
const fdChildEnv = "WATTPOOL_SPOOL_FD_CHILD"

// fdChildDone is printed by the child when the whole scenario ran, so the
// parent cannot pass on a child that ran no test.
const fdChildDone = "fd-exhaustion scenario complete"

var fdModes = map[string]bool{"group-commit": false, "sync-every-record": true}

// TestDescriptorExhaustionIsTransient runs the scenario of fdScenario in a
// child process (the descriptor limit is lowered and exhausted there, which
// would break any test running next to it) once per sync mode.
func TestDescriptorExhaustionIsTransient(t *testing.T) {
	if mode := os.Getenv(fdChildEnv); mode != "" {
		every, ok := fdModes[mode]
		if !ok {
			t.Fatalf("%s=%q: unknown mode", fdChildEnv, mode)
		}
		fdScenario(t, every)
		fmt.Println(fdChildDone)
		return
	}
	for mode := range fdModes {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestDescriptorExhaustionIsTransient$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), fdChildEnv+"="+mode)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if !bytes.Contains(out, []byte(fdChildDone)) {
				t.Fatalf("child did not run the scenario:\n%s", out)
			}
		})
	}
}

// hog holds descriptors until the process has none left.
type hog struct{ files []*os.File }

// fill opens /dev/null until open fails with EMFILE.
func (h *hog) fill(t *testing.T) {
	t.Helper()
	for {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			return
		}
		if err != nil {
			t.Fatalf("hog: %v", err)
		}
		h.files = append(h.files, f)
	}
}

func (h *hog) release() {
	for _, f := range h.files {
		f.Close()
	}
	h.files = nil
}

// fdScenario exhausts the process's descriptors with records pending in
// the spool and checks that the spool refuses what it cannot store with an
// error naming EMFILE, keeps every record it accepted durable, removes a
// drained segment, never fails for good, and works normally once
// descriptors are free again.
func fdScenario(t *testing.T, syncEvery bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = 128
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("lower RLIMIT_NOFILE: %v", err)
	}
	dir := t.TempDir()
	// No background syncs: the test decides when Sync runs.
	opts := Options{SegmentBytes: 1024, SyncInterval: time.Hour, LimitBytes: 1 << 20, SyncEveryRecord: syncEvery}
	s, _, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	healthy := func(step string) {
		t.Helper()
		s.mu.Lock()
		failed := s.failed
		s.mu.Unlock()
		if failed != nil {
			t.Fatalf("%s: spool failed for good: %v", step, failed)
		}
	}
	var accepted [][]byte
	next := 0
	appendOne := func() error {
		p := payload(next)
		next++
		_, err := s.Append(7, p)
		if err == nil {
			accepted = append(accepted, p)
		}
		return err
	}

	// Segment 1: sealed, synced and closed, the drain's next deletion.
	for range 10 {
		if err := appendOne(); err != nil {
			t.Fatal(err)
		}
	}
	s.Rotate()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	drained := s.Segments()[0]
	drainedRecords := len(accepted)
	// Segment 2: active, not yet synced (nor its directory entry with
	// group commit).
	for range 5 {
		if err := appendOne(); err != nil {
			t.Fatal(err)
		}
	}

	var h hog
	defer h.release()
	h.fill(t)

	// Records fit in segment 2 until it is full; the rotation then needs
	// a new file and the record is refused.
	var refused error
	for i := 0; refused == nil; i++ {
		if i > 100 {
			t.Fatal("segment 2 never rotated")
		}
		refused = appendOne()
	}
	for i := range 3 { // every retry tries to create the file again
		if i > 0 {
			refused = appendOne()
		}
		if !errors.Is(refused, ErrFull) || !errors.Is(refused, syscall.EMFILE) {
			t.Fatalf("refusal %d without descriptors: %v; want ErrFull wrapping EMFILE", i, refused)
		}
		healthy(fmt.Sprintf("refusal %d", i))
	}
	t.Logf("refused: %v", refused)

	if err := s.Sync(); err != nil {
		t.Fatalf("sync without descriptors: %v", err)
	}
	healthy("sync")
	for _, seg := range s.Segments() {
		if seg.Readable != seg.Size {
			t.Fatalf("segment %d: %d of %d bytes synced after Sync", seg.Seq, seg.Readable, seg.Size)
		}
	}
	h.fill(t) // Sync closed the sealed segment 2

	// Setting a damaged segment aside needs a descriptor for its intact
	// copy: without one it fails before renaming anything.
	if _, err := s.Quarantine(drained.Seq, &CorruptError{Offset: drained.Size - 1, Kind: DamageChecksum}); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("quarantine without descriptors: %v; want EMFILE", err)
	}
	if st, err := os.Stat(drained.Path); err != nil || st.Size() != drained.Size {
		t.Fatalf("failed quarantine changed the segment: %v %v", st, err)
	}
	healthy("quarantine")

	if err := s.Remove(drained.Seq); err != nil {
		t.Fatalf("remove drained segment without descriptors: %v", err)
	}
	healthy("remove")
	if _, err := os.Stat(drained.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("removed segment still on disk: %v", err)
	}
	if err := appendOne(); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("append still without descriptors: %v; want EMFILE", err)
	}
	healthy("append after remove")

	h.release()
	for range 60 { // through at least one more rotation
		if err := appendOne(); err != nil {
			t.Fatalf("append with descriptors free again: %v", err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatalf("sync with descriptors free again: %v", err)
	}
	if n := len(s.Segments()); n < 3 {
		t.Fatalf("%d segments after recovery; want segment 2 and at least two new ones", n)
	}
	want := accepted[drainedRecords:]
	checkRecords(t, "running spool", readAll(t, s), want)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, damaged, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if len(damaged) != 0 {
		t.Fatalf("reopen found damage: %+v", damaged)
	}
	checkRecords(t, "reopened spool", readAll(t, s2), want)
}

// checkRecords fails unless got is want: every accepted record exactly
// once (payloads are unique), in order, and nothing else.
func checkRecords(t *testing.T, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: record %d is %q, want %q", what, i, got[i], want[i])
		}
	}
}

func TestPermanent(t *testing.T) {
	_, openErr := os.Open("/nonexistent/spool/dir")
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"fsync failed", &os.PathError{Op: "sync", Path: "a.seg", Err: syscall.EIO}, true},
		{"fsync failed, wrapped", fmt.Errorf("remove spool segment 3: %w", &os.PathError{Op: "sync", Path: "d", Err: syscall.EIO}), true},
		{"close after write failed", fmt.Errorf("close a.seg: %w", &os.PathError{Op: "close", Path: "a.seg", Err: syscall.EDQUOT}), true},
		{"out of descriptors", &os.PathError{Op: "open", Path: "d", Err: syscall.EMFILE}, false},
		{"system out of descriptors, wrapped", fmt.Errorf("sync: %w", &os.PathError{Op: "open", Path: "d", Err: syscall.ENFILE}), false},
		{"real failed open", openErr, false},
		{"unknown origin", errors.New("something"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := permanent(tc.err); got != tc.want {
				t.Fatalf("permanent(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// TestRemoveAfterClose: the recorder drains and removes segments after
// closing the spool, whose directory handle is gone by then.
func TestRemoveAfterClose(t *testing.T) {
	s, _ := open(t, t.TempDir(), Options{})
	if _, err := s.Append(7, payload(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs := s.Segments()
	if len(segs) != 1 || !segs[0].Sealed {
		t.Fatalf("segments after close: %+v", segs)
	}
	if err := s.Remove(segs[0].Seq); err != nil {
		t.Fatalf("remove after close: %v", err)
	}
	if err := s.Sync(); err != nil {
		t.Fatalf("sync after close: %v", err)
	}
	if _, err := os.Stat(segs[0].Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment still there: %v", err)
	}
}

// TestOpenErrorsNameThePath: a spool directory that cannot be used is a
// start-up error that says which path.
func TestOpenErrorsNameThePath(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "sub")} {
		s, _, err := Open(dir, Options{})
		if err == nil {
			s.Close()
			t.Fatalf("open %s: no error", dir)
		}
		if !strings.Contains(err.Error(), dir) {
			t.Fatalf("open %s: error does not name the path: %v", dir, err)
		}
	}
}
