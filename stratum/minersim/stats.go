package minersim

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
)

// BadKind is a kind of deliberately invalid share the simulator sends so
// that the pool's reject paths can be exercised.
type BadKind uint8

// Kinds of bad shares, sent in this rotation.
const (
	BadNone      BadKind = iota
	BadLowDiff           // a hash that does not meet the share target
	BadStale             // a job id the pool invalidated (or never sent)
	BadDuplicate         // the same share submitted a second time
	BadNTime             // ntime three hours past the job's ntime
	numBadKinds
)

var badNames = [...]string{
	BadNone:      "none",
	BadLowDiff:   "low_difficulty",
	BadStale:     "stale",
	BadDuplicate: "duplicate",
	BadNTime:     "bad_ntime",
}

// String returns the stable name used in reports.
func (k BadKind) String() string {
	if int(k) < len(badNames) {
		return badNames[k]
	}
	return "unknown"
}

// AcceptedShare is one share the pool accepted, with everything needed to
// find it in the pool's ledger and to recompute its hash.
type AcceptedShare struct {
	// MinerID is the simulated miner's index in its fleet.
	MinerID int
	// Worker is the name the share was submitted under.
	Worker string
	// JobID is the pool's job id.
	JobID string
	// Extranonce1 is the connection's extranonce1 when the job arrived;
	// Extranonce2 is the miner's.
	Extranonce1, Extranonce2 []byte
	// NTime, Nonce and VersionBits are the submitted values (VersionBits is
	// 0 without version rolling); Version is the merged header version.
	NTime, Nonce, VersionBits, Version uint32
	// Difficulty is the share difficulty the miner worked at.
	Difficulty float64
	// Hash is the header hash in internal byte order.
	Hash chainhash.Hash
	// IsBlock is true when the hash met the network target.
	IsBlock bool
	// Bad is the kind of deliberately bad share this was (BadNone for an
	// honest share); a pool accepting a bad share has a bug.
	Bad BadKind
}

// maxRejectKeys bounds the distinct reject reasons a report keeps; any
// further reasons are counted under "other".
const maxRejectKeys = 64

// Stats aggregates the counters of many miners. All methods are safe for
// concurrent use; a Fleet owns one and passes it to its miners.
type Stats struct {
	// Latency is the submit -> response latency of every answered submit.
	Latency Histogram

	// steady is Latency restricted to answers after the fleet's warm-up
	// (steadyOn set), so a load test's figures exclude the ramp;
	// steadyAccepted and steadyRejected count the same answers. answered
	// reads steadyOn once per answer, so an answer is in all three or in
	// none and the steady counts match the steady latency count exactly.
	steady                         Histogram
	steadyOn                       atomic.Bool
	steadyAccepted, steadyRejected atomic.Uint64

	submitted, accepted, rejected atomic.Uint64
	hashes                        atomic.Uint64
	blocksFound, blocksAccepted   atomic.Uint64
	goodRejected, badAccepted     atomic.Uint64
	timeouts, lost, malformed     atomic.Uint64
	connects, connectFailures     atomic.Uint64
	disconnects, authFailures     atomic.Uint64
	reconnectRequests, jobs       atomic.Uint64
	resumed, resumeRefused        atomic.Uint64
	badSent                       [numBadKinds]atomic.Uint64

	mu      sync.Mutex
	rejects map[string]uint64
}

// addReject counts one reject under its "code message" key.
func (s *Stats) addReject(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rejects == nil {
		s.rejects = make(map[string]uint64)
	}
	if _, ok := s.rejects[key]; !ok && len(s.rejects) >= maxRejectKeys {
		key = "other"
	}
	s.rejects[key]++
}

// Accepted returns the number of accepted shares so far.
func (s *Stats) Accepted() uint64 { return s.accepted.Load() }

// Report is the outcome of a run.
type Report struct {
	// Elapsed is the wall time from the first connection attempt to stop.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Miners is how many miners the fleet ran; Connected how many were
	// connected when the run stopped.
	Miners    int `json:"miners"`
	Connected int `json:"connected"`
	// Hashes is how many header hashes were computed.
	Hashes uint64 `json:"hashes"`
	// Submitted, Accepted and Rejected count submits and their answers.
	Submitted uint64 `json:"submitted"`
	Accepted  uint64 `json:"accepted"`
	Rejected  uint64 `json:"rejected"`
	// AcceptedPerSecond is Accepted / Elapsed.
	AcceptedPerSecond float64 `json:"accepted_per_second"`
	// RejectsByReason counts rejects by the pool's "code message".
	RejectsByReason map[string]uint64 `json:"rejects_by_reason"`
	// BadSent counts deliberately bad shares sent, by kind.
	BadSent map[string]uint64 `json:"bad_sent"`
	// BadAccepted counts deliberately bad shares the pool accepted (a pool
	// bug); GoodRejected counts honest shares the pool rejected.
	BadAccepted  uint64 `json:"bad_accepted"`
	GoodRejected uint64 `json:"good_rejected"`
	// Timeouts counts submits unanswered within the submit timeout; Lost
	// those still unanswered when their connection closed.
	Timeouts uint64 `json:"timeouts"`
	Lost     uint64 `json:"lost"`
	// Latency summarizes submit -> response latency.
	Latency LatencySummary `json:"latency"`
	// Steady covers only the time after the fleet's warm-up (connection
	// ramp excluded); nil when the run had no warm-up or ended inside it.
	Steady *SteadyReport `json:"steady,omitempty"`
	// BlocksFound counts submitted shares whose hash met the network
	// target; BlocksAccepted those the pool accepted.
	BlocksFound    uint64 `json:"blocks_found"`
	BlocksAccepted uint64 `json:"blocks_accepted"`
	// Jobs counts mining.notify messages turned into work.
	Jobs uint64 `json:"jobs"`
	// Connects, ConnectFailures, Disconnects, AuthFailures and
	// ReconnectRequests describe connection churn; Malformed counts server
	// lines the client could not use.
	Connects          uint64 `json:"connects"`
	ConnectFailures   uint64 `json:"connect_failures"`
	Disconnects       uint64 `json:"disconnects"`
	AuthFailures      uint64 `json:"auth_failures"`
	ReconnectRequests uint64 `json:"reconnect_requests"`
	Malformed         uint64 `json:"malformed"`
	// Resumed counts reconnects that offered the previous session id and
	// got the previous extranonce1 back; ResumeRefused those that got a
	// new one.
	Resumed       uint64 `json:"resumed"`
	ResumeRefused uint64 `json:"resume_refused"`
}

// Snapshot builds a report from the counters; elapsed is the run time.
func (s *Stats) Snapshot(elapsed time.Duration) Report {
	r := Report{
		Elapsed:           elapsed,
		Hashes:            s.hashes.Load(),
		Submitted:         s.submitted.Load(),
		Accepted:          s.accepted.Load(),
		Rejected:          s.rejected.Load(),
		BadAccepted:       s.badAccepted.Load(),
		GoodRejected:      s.goodRejected.Load(),
		Timeouts:          s.timeouts.Load(),
		Lost:              s.lost.Load(),
		Latency:           s.Latency.Summary(),
		BlocksFound:       s.blocksFound.Load(),
		BlocksAccepted:    s.blocksAccepted.Load(),
		Jobs:              s.jobs.Load(),
		Connects:          s.connects.Load(),
		ConnectFailures:   s.connectFailures.Load(),
		Disconnects:       s.disconnects.Load(),
		AuthFailures:      s.authFailures.Load(),
		ReconnectRequests: s.reconnectRequests.Load(),
		Malformed:         s.malformed.Load(),
		Resumed:           s.resumed.Load(),
		ResumeRefused:     s.resumeRefused.Load(),
		RejectsByReason:   map[string]uint64{},
		BadSent:           map[string]uint64{},
	}
	if elapsed > 0 {
		r.AcceptedPerSecond = float64(r.Accepted) / elapsed.Seconds()
	}
	s.mu.Lock()
	for k, v := range s.rejects {
		r.RejectsByReason[k] = v
	}
	s.mu.Unlock()
	for k := BadLowDiff; k < numBadKinds; k++ {
		if n := s.badSent[k].Load(); n > 0 {
			r.BadSent[k.String()] = n
		}
	}
	return r
}

// SteadyReport is the part of a run after its warm-up: what a pool
// sustains once every miner is connected.
type SteadyReport struct {
	// Elapsed is the time from the end of the warm-up to stop.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Accepted and Rejected count the answers received in that time.
	Accepted uint64 `json:"accepted"`
	Rejected uint64 `json:"rejected"`
	// AcceptedPerSecond is Accepted / Elapsed.
	AcceptedPerSecond float64 `json:"accepted_per_second"`
	// Latency summarizes submit -> response latency of those answers.
	Latency LatencySummary `json:"latency"`
}

// steadyMark is where the steady window began.
type steadyMark struct {
	at time.Time
}

// startSteady opens the steady window: answers from now on are also
// counted and recorded in the steady part of the report.
func (s *Stats) startSteady(now time.Time) steadyMark {
	s.steadyOn.Store(true)
	return steadyMark{at: now}
}

// steadyReport closes the window opened at m. The fleet calls it after its
// miners stopped, so no answer is still being counted.
func (s *Stats) steadyReport(m steadyMark, now time.Time) *SteadyReport {
	r := &SteadyReport{
		Elapsed:  now.Sub(m.at),
		Accepted: s.steadyAccepted.Load(),
		Rejected: s.steadyRejected.Load(),
		Latency:  s.steady.Summary(),
	}
	if r.Elapsed > 0 {
		r.AcceptedPerSecond = float64(r.Accepted) / r.Elapsed.Seconds()
	}
	return r
}

// answered counts one answered submit (accepted or rejected) and records
// its latency, in the steady window too once that is open. steadyOn is
// read once, so an answer counts in the steady window with its latency or
// not at all: reading the counters when the window opens instead would
// miss or add answers whose latency was recorded on the other side.
func (s *Stats) answered(d time.Duration, accepted bool) {
	s.Latency.Record(d)
	if accepted {
		s.accepted.Add(1)
	} else {
		s.rejected.Add(1)
	}
	if !s.steadyOn.Load() {
		return
	}
	s.steady.Record(d)
	if accepted {
		s.steadyAccepted.Add(1)
	} else {
		s.steadyRejected.Add(1)
	}
}
