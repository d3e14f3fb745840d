package stratum

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestStatsSnapshot: accepted difficulty turns into hashrate per worker,
// group and account, the gauges follow, and the snapshot is valid JSON.
func TestStatsSnapshot(t *testing.T) {
	cfg := testConfig()
	cfg.Groups = []GroupRule{{Pattern: "acme.rack1-*", Group: "rack1"}}
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
	c := e.dial()
	c.handshake("acme.rack1-01")
	job := e.sink.lastJob()
	for i := 0; i < 3; i++ {
		if r := c.call("mining.submit", "acme.rack1-01", job.ID, "00000001", hex32(job.NTime), hex32(uint32(i))); string(r.Result) != "true" {
			t.Fatal(r.raw)
		}
	}
	c.call("mining.submit", "acme.rack1-01", "nope", "00000001", hex32(job.NTime), "00000000")
	e.clock.Add(100 * time.Second)
	ws := e.s.Workers()
	want := 3 * tinyDiff * 4294967296 / 100
	if len(ws) != 1 || ws[0].Group != "rack1" || ws[0].Accepted != 3 || ws[0].Rejects["stale"] != 1 || !near(ws[0].Hashrate, want) {
		t.Fatalf("workers %+v (want hashrate %g)", ws, want)
	}
	st := e.s.Stats()
	if st.SharesAccepted != 3 || st.SharesRejected["stale"] != 1 || len(st.Groups) != 1 || st.Groups[0].Group != "rack1" ||
		len(st.Accounts) != 1 || !near(st.Hashrate, want) || st.Height != 100 {
		t.Fatalf("stats %+v", st)
	}
	e.s.housekeeping()
	if g := counterValue(e.s.metrics.groupHashrate.WithLabelValues("rack1")); !near(g, want) {
		t.Fatalf("group gauge %g", g)
	}
	if v := counterValue(e.s.listeners[0].metrics.connections); v != 1 {
		t.Fatalf("connections gauge %v", v)
	}
	for _, v := range []any{st, ws, e.s.Connections()} {
		b, err := json.Marshal(v)
		if err != nil || !json.Valid(b) {
			t.Fatalf("marshal %T: %v", v, err)
		}
	}
}

func near(a, b float64) bool { return a == b || (a-b)/b < 1e-9 && (b-a)/b < 1e-9 }

func TestLogSink(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	s := NewLogSink(zap.New(core))
	job, err := testBuilder(t).Build(makeTemplate(100, mainnetBits, 0, 1), testNow)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sh := Share{Account: "a", Worker: "w", Job: job, Extranonce1: []byte{7, 0, 0, 1}, Extranonce2: []byte{0, 0, 0, 1}}
	if s.RecordJob(ctx, job) != nil || s.RecordShare(ctx, &sh) != nil || s.RecordBlock(ctx, &FoundBlock{Share: sh, Height: 100}) != nil {
		t.Fatal("LogSink returned an error")
	}
	s.RecordReject(&Reject{Account: "a", Reason: RejectStale})
	var msgs []string
	for _, e := range logs.All() {
		msgs = append(msgs, e.Level.String()+":"+e.Message)
	}
	got := strings.Join(msgs, ",")
	if got != "debug:job,debug:share,debug:share,warn:found block recorded (log sink only),debug:share rejected" {
		t.Fatalf("logged %s", got)
	}
	if f := logs.All()[1].ContextMap(); f["extranonce1"] != "07000001" || f["job"] != job.ID {
		t.Fatalf("share fields %v", f)
	}
}
