package minersim

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// WriteText writes the report for humans, one fact per line, with reject
// reasons sorted by count.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "elapsed           %v\n", r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "miners            %d (%d connected at stop)\n", r.Miners, r.Connected)
	fmt.Fprintf(&b, "hashes            %d\n", r.Hashes)
	fmt.Fprintf(&b, "submitted         %d\n", r.Submitted)
	fmt.Fprintf(&b, "accepted          %d (%.1f/s)\n", r.Accepted, r.AcceptedPerSecond)
	fmt.Fprintf(&b, "rejected          %d\n", r.Rejected)
	for _, kv := range sortedCounts(r.RejectsByReason) {
		fmt.Fprintf(&b, "  %-15d %s\n", kv.n, kv.k)
	}
	if len(r.BadSent) > 0 {
		fmt.Fprintf(&b, "bad shares sent   %d\n", sum(r.BadSent))
		for _, kv := range sortedCounts(r.BadSent) {
			fmt.Fprintf(&b, "  %-15d %s\n", kv.n, kv.k)
		}
	}
	fmt.Fprintf(&b, "bad accepted      %d\n", r.BadAccepted)
	fmt.Fprintf(&b, "good rejected     %d\n", r.GoodRejected)
	fmt.Fprintf(&b, "timeouts / lost   %d / %d\n", r.Timeouts, r.Lost)
	l := r.Latency
	fmt.Fprintf(&b, "latency           n=%d p50=%v p90=%v p99=%v max=%v mean=%v\n",
		l.Count, l.P50, l.P90, l.P99, l.Max, l.Mean)
	if st := r.Steady; st != nil {
		sl := st.Latency
		fmt.Fprintf(&b, "after warm-up     %v: accepted %d (%.1f/s), rejected %d\n",
			st.Elapsed.Round(time.Millisecond), st.Accepted, st.AcceptedPerSecond, st.Rejected)
		fmt.Fprintf(&b, "  latency         n=%d p50=%v p90=%v p99=%v max=%v mean=%v\n",
			sl.Count, sl.P50, sl.P90, sl.P99, sl.Max, sl.Mean)
	}
	fmt.Fprintf(&b, "blocks            %d found, %d accepted\n", r.BlocksFound, r.BlocksAccepted)
	fmt.Fprintf(&b, "jobs              %d\n", r.Jobs)
	fmt.Fprintf(&b, "connections       %d connects, %d failed, %d disconnects, %d auth failures, %d reconnect requests\n",
		r.Connects, r.ConnectFailures, r.Disconnects, r.AuthFailures, r.ReconnectRequests)
	fmt.Fprintf(&b, "session resume    %d resumed, %d refused\n", r.Resumed, r.ResumeRefused)
	fmt.Fprintf(&b, "malformed lines   %d\n", r.Malformed)
	_, err := io.WriteString(w, b.String())
	return err
}

type countKV struct {
	k string
	n uint64
}

func sortedCounts(m map[string]uint64) []countKV {
	out := make([]countKV, 0, len(m))
	for k, n := range m {
		out = append(out, countKV{k, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].k < out[j].k
	})
	return out
}

func sum(m map[string]uint64) uint64 {
	var t uint64
	for _, n := range m {
		t += n
	}
	return t
}
