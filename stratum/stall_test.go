package stratum

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/shares/spool"
	"github.com/wattpool/wattpool/stratum/work"
)

// hang blocks the next call it is armed for until released: a disk or a
// log pipe that stops answering.
type hang struct {
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func (h *hang) arm() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed, h.entered, h.release = true, make(chan struct{}), make(chan struct{})
}

func (h *hang) hold() {
	h.mu.Lock()
	armed := h.armed
	h.armed = false
	h.mu.Unlock()
	if armed {
		close(h.entered)
		<-h.release
	}
}

// unblock releases a held call, if any, once (cleanup of a failed test).
func (h *hang) unblock() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.release == nil {
		return
	}
	select {
	case <-h.release:
	default:
		close(h.release)
	}
}

func (h *hang) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled call never started")
	}
}

type hangingFile struct {
	*os.File
	h *hang
}

func (f hangingFile) Write(p []byte) (int, error) { f.h.hold(); return f.File.Write(p) }

// spoolSink records shares in a real spool, with the call's context, as
// the share ledger does; jobs and the rest go to recSink.
type spoolSink struct {
	*recSink
	sp *spool.Spool
}

// shareKey names a share in the spool: its extranonce1 and nonce.
func shareKey(en1 []byte, nonce uint32) string { return fmt.Sprintf("%x/%08x", en1, nonce) }

func (s *spoolSink) RecordShare(ctx context.Context, sh *Share) error {
	p := binary.BigEndian.AppendUint32(append([]byte(nil), sh.Extranonce1...), sh.Nonce)
	if _, err := s.sp.AppendContext(ctx, 1, p); err != nil {
		return err
	}
	return s.recSink.RecordShare(ctx, sh)
}

// spooled returns the keys of the shares in sp.
func spooled(t *testing.T, sp *spool.Spool) map[string]int {
	t.Helper()
	if err := sp.Sync(); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, seg := range sp.Segments() {
		r, err := spool.OpenSegment(seg, 0)
		if err != nil {
			t.Fatal(err)
		}
		for {
			rec, err := r.Next()
			if err != nil {
				break
			}
			n := len(rec.Payload)
			got[shareKey(rec.Payload[:n-4], binary.BigEndian.Uint32(rec.Payload[n-4:]))]++
		}
		r.Close()
	}
	return got
}

// TestStalledLedgerWriteStallsOnlyItsMiner: while one miner's share hangs
// in a spool write, the shares of 20 other connections are answered with
// error 20 ("not recorded") within SinkTimeout and never written; the
// stalled miner is answered "true" once its write completes.
func TestStalledLedgerWriteStallsOnlyItsMiner(t *testing.T) {
	noLeaks(t)
	const (
		others      = 20
		sinkTimeout = 200 * time.Millisecond
		slack       = time.Second // scheduling on a loaded two-core -race run
	)
	disk := &hang{}
	sp, _, err := spool.Open(t.TempDir(), spool.Options{SyncInterval: time.Hour,
		WrapFile: func(f *os.File) spool.File { return hangingFile{File: f, h: disk} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.unblock(); sp.Close() })

	cfg := testConfig()
	cfg.SinkTimeout = sinkTimeout
	ev := &events{}
	e := &env{t: t, ev: ev, src: newFakeSource(ev), sink: &recSink{ev: ev}, clock: &fakeClock{now: testNow}, done: make(chan error, 1)}
	s, err := New(cfg, testBuilder(t), e.src, &spoolSink{recSink: e.sink, sp: sp}, zaptest.NewLogger(t), WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- s.Run(ctx) }()
	<-s.Ready()
	e.addr = s.Addr(cfg.Listeners[0].Name).String()
	t.Cleanup(e.stop)
	e.newBlock(makeTemplate(100, mainnetBits, 5, 1))
	job := e.sink.lastJob()

	stalled := e.dial()
	stalled.handshake("acct.stalled")
	submit := func(c *client, worker string, nonce uint32) string {
		c.id++
		c.send(fmt.Sprintf(`{"id":%d,"method":"mining.submit","params":[%q,%q,"00000001",%q,%q]}`,
			c.id, worker, job.ID, hex32(job.NTime), hex32(nonce)))
		return fmt.Sprint(c.id)
	}
	if r := stalled.replyTo(submit(stalled, "acct.stalled", 1)); string(r.Result) != "true" {
		t.Fatalf("share before the stall: %s", r.raw)
	}
	clients := make([]*client, others)
	for i := range clients {
		clients[i] = e.dial()
		clients[i].handshake(fmt.Sprintf("acct.rig%d", i))
	}

	disk.arm()
	stalledID := submit(stalled, "acct.stalled", 2)
	disk.waitEntered(t)

	type answer struct {
		code int
		took time.Duration
		key  string
	}
	answers := make([]answer, others)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			r := c.replyTo(submit(c, fmt.Sprintf("acct.rig%d", i), 3))
			answers[i] = answer{code: errCode(t, r), took: time.Since(start), key: shareKey(c.en1, 3)}
		}()
	}
	wg.Wait() // every one answered while the write still hangs
	for i, a := range answers {
		if a.code != 20 {
			t.Fatalf("connection %d during the stall: error %d, want 20 (not recorded)", i, a.code)
		}
		if a.took > sinkTimeout+slack {
			t.Fatalf("connection %d answered after %v; SinkTimeout %v", i, a.took, sinkTimeout)
		}
	}
	// The stalled miner has had no answer yet.
	stalled.nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if line, err := stalled.r.ReadString('\n'); err == nil {
		t.Fatalf("stalled miner answered during the stall: %s", line)
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("stalled miner's connection: %v", err)
	}

	disk.unblock()
	if r := stalled.replyTo(stalledID); string(r.Result) != "true" {
		t.Fatalf("stalled share once its write completed: %s", r.raw)
	}
	got := spooled(t, sp)
	for _, a := range answers {
		if got[a.key] != 0 {
			t.Fatalf("share %s refused with error 20 but in the spool", a.key)
		}
	}
	if k := shareKey(stalled.en1, 2); got[k] != 1 {
		t.Fatalf("stalled share %s in the spool %d times, want once", k, got[k])
	}
	if len(got) != 2 {
		t.Fatalf("%d shares in the spool, want the stalled miner's 2: %v", len(got), got)
	}
	if n := s.rejected[RejectNotRecorded].Load(); n != others {
		t.Fatalf("%d not-recorded rejects counted, want %d", n, others)
	}
}

// blockingWriter is a log destination that can hang.
type blockingWriter struct {
	h *hang
}

func (w blockingWriter) Write(p []byte) (int, error) { w.h.hold(); return len(p), nil }
func (w blockingWriter) Sync() error                 { return nil }

// TestLogSinkHonoursTheDeadline: while the log writer hangs on one share's
// line, other shares are refused by their deadlines instead of waiting for
// it, and the hanging call returns once the writer does.
func TestLogSinkHonoursTheDeadline(t *testing.T) {
	h := &hang{}
	t.Cleanup(h.unblock)
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(blockingWriter{h: h}), zap.DebugLevel)
	l := NewLogSink(zap.New(core))
	job := testBuilderJob(t)
	share := func(i uint32) *Share { return &Share{Account: "a", Worker: "w", Job: job, Nonce: i} }

	h.arm()
	first := make(chan error, 1)
	go func() { first <- l.RecordShare(context.Background(), share(1)) }()
	h.waitEntered(t)

	const deadline = 30 * time.Millisecond
	var wg sync.WaitGroup
	errs := make([]error, 10)
	took := make([]time.Duration, len(errs))
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			errs[i] = l.RecordShare(ctx, share(uint32(2+i)))
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("share %d while the log writer hangs: %v; want the deadline's error", i, err)
		}
		if took[i] > deadline+time.Second {
			t.Fatalf("share %d refused after %v", i, took[i])
		}
	}
	l.RecordReject(&Reject{Account: "a", Worker: "w", Reason: RejectDuplicate}) // must not block: dropped
	select {
	case err := <-first:
		t.Fatalf("the hanging call returned during the stall: %v", err)
	default:
	}
	h.unblock()
	if err := <-first; err != nil {
		t.Fatalf("hanging call after the writer returned: %v", err)
	}
	if err := l.RecordShare(context.Background(), share(99)); err != nil {
		t.Fatalf("share after the stall: %v", err)
	}
}

// testBuilderJob builds one job from a small template.
func testBuilderJob(t *testing.T) *work.Job {
	t.Helper()
	j, err := testBuilder(t).Build(makeTemplate(100, mainnetBits, 1, 1), testNow)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
