package stratum

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Name limits. Account names are payout identifiers (a Bitcoin address is
// at most 90 characters), worker names are the miner's label.
const (
	maxAccountLen = 90
	maxWorkerLen  = 64
	// DefaultWorker names the worker of a miner that authorized with a
	// bare account name.
	DefaultWorker = "default"
)

// validName reports whether s uses only [A-Za-z0-9_-] (and '.' when dot).
func validName(s string, dot bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		case c == '.' && dot:
		default:
			return false
		}
	}
	return true
}

// parseWorkerName splits "account.worker" (or a bare "account") at the
// first dot and checks both parts' length and characters.
func parseWorkerName(full string) (account, worker string, err error) {
	account, worker, _ = strings.Cut(full, ".")
	if account == "" || len(account) > maxAccountLen || !validName(account, false) {
		return "", "", fmt.Errorf("account %q must be 1-%d characters of [A-Za-z0-9_-]", clipName(account), maxAccountLen)
	}
	if worker == "" {
		worker = DefaultWorker
	}
	if len(worker) > maxWorkerLen || !validName(worker, true) {
		return "", "", fmt.Errorf("worker %q must be 1-%d characters of [A-Za-z0-9._-]", clipName(worker), maxWorkerLen)
	}
	return account, worker, nil
}

// passwordOptions reads the comma-separated options miners put in the
// password field. Only "d=N" (start and minimum difficulty) is understood;
// other words (the customary "x", unknown options) are ignored, as miners
// expect. An unusable d= value is reported so it can be logged.
func passwordOptions(pw string) (diff float64, err error) {
	for _, opt := range strings.Split(pw, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(opt), "=")
		if !ok || k != "d" {
			continue
		}
		f, perr := strconv.ParseFloat(v, 64)
		if perr != nil || !(f > 0) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("password option d=%q is not a positive difficulty", clipName(v))
		}
		diff = f
	}
	return diff, nil
}

// clipName shortens hostile input before it goes into logs and errors.
func clipName(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}
