//go:build !unix

package stratum

import "math"

// processFileLimit reports no limit where RLIMIT_NOFILE does not exist:
// the derived connection cap is then MaxConnectionsLimit.
func processFileLimit() (uint64, error) { return math.MaxUint64, nil }
