// Package leakcheck fails tests whose goroutines outlive them. It wraps
// goleak with a longer wait: goleak's own retries last about 0.4 s, and a
// loaded -race run on two cores (CI) can take longer than that to let a
// closed server's or spool's goroutines finish. A goroutine still running
// after Wait is a real leak.
package leakcheck

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Wait bounds how long a check waits for goroutines to end.
const Wait = 10 * time.Second

// Main runs the package's tests and then fails the run (exit code 1) if
// goroutines are left. Use it as TestMain: func TestMain(m *testing.M) {
// leakcheck.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := find(Wait); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines left %v after the tests: %v\n", Wait, err)
			code = 1
		}
	}
	os.Exit(code)
}

// Test fails t if goroutines started during t (and not ended by its
// cleanups, which run first when Test is called at the start of the test)
// are still running Wait after it.
func Test(t testing.TB) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if err := find(Wait, before); err != nil {
			t.Errorf("goroutines left %v after the test: %v", Wait, err)
		}
	})
}

// find returns goleak's report of the goroutines still running after
// wait, or nil as soon as none are left. Each goleak.Find call retries for
// a while itself before reporting, so the loop does not spin.
func find(wait time.Duration, opts ...goleak.Option) error {
	deadline := time.Now().Add(wait)
	for {
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}
