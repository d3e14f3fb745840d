//go:build unix

package stratum

import (
	"syscall"
	"testing"

	"go.uber.org/zap"
)

// TestProcessConnectionBound: the derived default of this process is below
// its open-file limit and leaves the reserve.
func TestProcessConnectionBound(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	bound, nofile, err := ProcessConnectionBound()
	if err != nil {
		t.Fatal(err)
	}
	if nofile != uint64(lim.Cur) || uint64(bound)+FileReserve(nofile) > nofile || bound < 1 {
		t.Fatalf("bound %d of RLIMIT_NOFILE %d (reported %d), reserve %d", bound, lim.Cur, nofile, FileReserve(nofile))
	}
	s, err := New(testConfig(), testBuilder(t), newFakeSource(&events{}), &recSink{ev: &events{}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if got := s.maxConns.Load(); got != int64(bound) {
		t.Fatalf("MaxConnections 0 put %d in force, want the derived %d", got, bound)
	}
}
