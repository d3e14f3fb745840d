package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/wattpool/wattpool/stratum/minersim"
)

// BenchmarkCurtail1000 curtails 1,000 simulated LuxOS miners, each on its
// own loopback address, and reads every one back (logon, curtail, logoff,
// then config, summary and power: six connections a miner), with the
// default 256 in flight. The resume between iterations is not timed.
//
//	go test -run '^$' -bench BenchmarkCurtail1000 ./allocator/fleet/
func BenchmarkCurtail1000(b *testing.B) { benchCurtail(b, 1000) }

// BenchmarkScale10000Miners is issue 8's scale goal in one process: 10,000
// simulated LuxOS miners curtailed and read back (goal: within 30 s). It
// holds about 10,600 descriptors (one listener a miner, 2 × 256 in flight).
//
//	go test -run '^$' -bench BenchmarkScale10000Miners -benchtime 1x ./allocator/fleet/
func BenchmarkScale10000Miners(b *testing.B) { benchCurtail(b, 10000) }

func benchCurtail(b *testing.B, n int) {
	s := newSim(b, minersim.FirmwareLuxOS, n, 0)
	reg := NewRegistry(DriverOptions{})
	defer reg.Close()
	opts := Options{Drivers: reg, Verify: true, CallTimeout: 10 * time.Second}
	ctx := context.Background()
	for b.Loop() {
		rs := Act(ctx, s.miners, ActionCurtail, opts)
		if sum := Summarize(rs); sum.OK != n {
			b.Fatalf("curtail: %+v (first failure: %s)", sum, firstError(rs))
		}
		b.StopTimer()
		if sum := Summarize(Act(ctx, s.miners, ActionResume, opts)); sum.OK != n {
			b.Fatalf("resume: %+v", sum)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "miners/s")
}

func firstError(rs []Result) string {
	for _, r := range rs {
		if !r.OK {
			return r.Address + ": " + r.Error
		}
	}
	return ""
}
