//go:build unix

package minersim

import (
	"fmt"
	"syscall"
)

// checkFileLimit fails early, with the numbers, when the process may not
// open need files. Go raises the soft RLIMIT_NOFILE to the hard limit at
// start-up, so the soft limit is what is available.
func checkFileLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read open file limit: %w", err)
	}
	if uint64(lim.Cur) < need {
		return fmt.Errorf("open file limit %d is below the %d needed (raise ulimit -n or run fewer miners)", lim.Cur, need)
	}
	return nil
}
