package stratum

// RejectReason says why a share was rejected. Its String() is used in logs,
// metric labels and the database, so values are stable.
type RejectReason uint8

// Reject reasons. Codes follow the common Stratum v1 error codes.
const (
	RejectNone          RejectReason = iota
	RejectStale                      // job unknown or from before the current block (21)
	RejectDuplicate                  // same extranonce1, extranonce2, ntime, nonce, version bits (22)
	RejectLowDifficulty              // hash above the share target (23)
	RejectUnauthorized               // worker not authorized (24)
	RejectNotSubscribed              // submit before subscribe (25)
	RejectMalformed                  // bad hex, lengths, ntime or version bits (20)
	RejectNotRecorded                // the share ledger could not record it (20)
)

var rejectNames = [...]string{
	RejectNone:          "none",
	RejectStale:         "stale",
	RejectDuplicate:     "duplicate",
	RejectLowDifficulty: "low_difficulty",
	RejectUnauthorized:  "unauthorized",
	RejectNotSubscribed: "not_subscribed",
	RejectMalformed:     "malformed",
	RejectNotRecorded:   "not_recorded",
}

var rejectCodes = [...]int{
	RejectNone:          0,
	RejectStale:         21,
	RejectDuplicate:     22,
	RejectLowDifficulty: 23,
	RejectUnauthorized:  24,
	RejectNotSubscribed: 25,
	RejectMalformed:     20,
	RejectNotRecorded:   20,
}

// String returns the stable name of the reason.
func (r RejectReason) String() string {
	if int(r) < len(rejectNames) {
		return rejectNames[r]
	}
	return "unknown"
}

// Code returns the Stratum v1 error code sent to the miner.
func (r RejectReason) Code() int {
	if int(r) < len(rejectCodes) {
		return rejectCodes[r]
	}
	return 20
}

// AllRejectReasons lists every reason a share can be rejected for, for
// metrics that want a zero-valued series per reason.
func AllRejectReasons() []RejectReason {
	return []RejectReason{RejectStale, RejectDuplicate, RejectLowDifficulty,
		RejectUnauthorized, RejectNotSubscribed, RejectMalformed, RejectNotRecorded}
}
