package main

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/shares"
	"github.com/wattpool/wattpool/stratum"
)

// status is the JSON document of /api/v1/status.
type status struct {
	Instance    string                 `json:"instance"`
	InstanceID  uint8                  `json:"instance_id"`
	Version     string                 `json:"version"`
	Network     string                 `json:"network"`
	Time        time.Time              `json:"time"`
	UptimeSec   float64                `json:"uptime_seconds"`
	Height      int64                  `json:"height"`
	JobID       string                 `json:"job_id,omitempty"`
	NetworkDiff float64                `json:"network_diff"`
	Jobs        map[string]int64       `json:"jobs"`
	Connections int                    `json:"connections"`
	Ready       int                    `json:"ready_connections"`
	Workers     int                    `json:"workers"`
	Hashrate    float64                `json:"hashrate"` // hashes per second
	Groups      []stratum.GroupStats   `json:"groups"`
	Accounts    []stratum.AccountStats `json:"accounts"`
	Shares      shareCounts            `json:"shares"`
	Blocks      blockCounts            `json:"blocks"`
	BannedIPs   int                    `json:"banned_ips"`
	Parked      int                    `json:"parked_sessions"`
	Database    bool                   `json:"database"`
	Spool       *spoolStatus           `json:"spool,omitempty"`
}

type shareCounts struct {
	Accepted uint64            `json:"accepted"`
	Rejected uint64            `json:"rejected"`
	Rejects  map[string]uint64 `json:"rejects_by_reason"`
}

// blockCounts separates what was submitted from what is in the chain: a
// block the node accepted can still end on a side chain.
type blockCounts struct {
	// Found is every block this instance found and submitted since it
	// started; ByResult is the node's verdicts on those submissions.
	Found    uint64           `json:"found"`
	ByResult map[string]int64 `json:"by_result"`
	// Chain is how this instance's stored blocks stand on the chain (all
	// time, from the block tracker); absent without a database or when it
	// could not be read (ChainError says why).
	Chain      *shares.BlockCounts `json:"chain,omitempty"`
	ChainError string              `json:"chain_error,omitempty"`
}

type spoolStatus struct {
	Records    int64   `json:"records"` // not yet in PostgreSQL
	Bytes      int64   `json:"bytes"`
	LagSeconds float64 `json:"lag_seconds"`
}

// handler serves /metrics, /api/v1/status, /api/v1/connections, /api/v1/allocator, /healthz
// (liveness) and /readyz (readiness).
func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", a.serveReady)
	mux.HandleFunc("GET /api/v1/allocator", a.serveAllocator)
	mux.HandleFunc("GET /api/v1/fleet", a.serveFleet)
	// Each open connection with the miner's address (behind a PROXY
	// balancer, the address its header named) and its extranonce1.
	mux.HandleFunc("GET /api/v1/connections", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Connections []stratum.ConnInfo `json:"connections"`
		}{a.server.Connections()})
	})
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		st, err := a.status()
		if err != nil {
			a.log.Warn("status: gather metrics", zap.Error(err))
			http.Error(w, "status unavailable", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	})
	return mux
}

// status assembles the status document from the server's snapshot and
// the metrics the other packages registered.
func (a *app) status() (*status, error) {
	mfs, err := a.reg.Gather()
	if err != nil {
		return nil, err
	}
	m := metricIndex(mfs)
	now := time.Now()
	ss := a.server.Stats()
	st := &status{
		Instance: a.cfg.Instance, InstanceID: a.cfg.InstanceID, Version: versionString(),
		Network: a.cfg.Network.Name, Time: now.UTC(), UptimeSec: now.Sub(a.started).Seconds(),
		Height: ss.Height, JobID: ss.JobID, NetworkDiff: ss.NetworkDiff,
		Jobs:        m.byLabel("wattpool_stratum_jobs_total", "kind", nil),
		Connections: ss.Connections, Ready: ss.Ready, Workers: ss.Workers, Hashrate: ss.Hashrate,
		Groups: ss.Groups, Accounts: ss.Accounts, BannedIPs: ss.BannedIPs, Parked: ss.ParkedSessions,
		Shares:   shareCounts{Accepted: ss.SharesAccepted, Rejects: map[string]uint64{}},
		Blocks:   blockCounts{Found: ss.BlocksFound, ByResult: m.byLabel("wattpool_stratum_blocks_found_total", "result", nil)},
		Database: a.recorder != nil,
	}
	for reason, n := range ss.SharesRejected {
		if n > 0 {
			st.Shares.Rejects[reason] = n
			st.Shares.Rejected += n
		}
	}
	if a.db != nil {
		ctx, cancel := context.WithTimeout(context.Background(), statusQueryTimeout)
		c, err := shares.NewLedger(a.db).BlockCounts(ctx, a.cfg.Instance)
		cancel()
		if err != nil {
			st.Blocks.ChainError = err.Error()
		} else {
			st.Blocks.Chain = &c
		}
	}
	if a.recorder != nil {
		st.Spool = &spoolStatus{Records: m.sum("wattpool_spool_records", nil), Bytes: m.sum("wattpool_spool_bytes", nil),
			LagSeconds: m.value("wattpool_spool_lag_seconds")}
	}
	return st, nil
}

// statusQueryTimeout bounds the status page's database read: the page
// answers with what it has while the database is slow or down.
const statusQueryTimeout = 2 * time.Second

// metrics gathered once, by family name.
type metricSet map[string]*dto.MetricFamily

func metricIndex(mfs []*dto.MetricFamily) metricSet {
	m := make(metricSet, len(mfs))
	for _, mf := range mfs {
		m[mf.GetName()] = mf
	}
	return m
}

func sampleValue(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Untyped != nil:
		return s.Untyped.GetValue()
	}
	return 0
}

func matches(s *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range s.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// sum adds the samples of a family whose labels match want.
func (m metricSet) sum(name string, want map[string]string) int64 {
	var total float64
	if mf := m[name]; mf != nil {
		for _, s := range mf.GetMetric() {
			if matches(s, want) {
				total += sampleValue(s)
			}
		}
	}
	return int64(total)
}

// value is the first sample of an unlabelled family.
func (m metricSet) value(name string) float64 {
	if mf := m[name]; mf != nil && len(mf.GetMetric()) > 0 {
		return sampleValue(mf.GetMetric()[0])
	}
	return 0
}

// byLabel sums a family's matching samples per value of label, leaving out
// zero totals.
func (m metricSet) byLabel(name, label string, want map[string]string) map[string]int64 {
	out := map[string]int64{}
	if mf := m[name]; mf != nil {
		for _, s := range mf.GetMetric() {
			if !matches(s, want) {
				continue
			}
			for _, lp := range s.GetLabel() {
				if lp.GetName() == label {
					out[lp.GetValue()] += int64(sampleValue(s))
				}
			}
		}
	}
	for k, v := range out {
		if v == 0 {
			delete(out, k)
		}
	}
	return out
}
