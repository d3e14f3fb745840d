//go:build unix

package stratum

import (
	"fmt"
	"syscall"
)

// processFileLimit returns the soft RLIMIT_NOFILE of this process: the
// number of descriptors it may hold. Go raises the soft limit to the hard
// one at start-up, so this is usually `ulimit -Hn` of the shell or the
// service manager's LimitNOFILE.
func processFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	return uint64(lim.Cur), nil
}
