package minersim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wattpool/wattpool/stratum/work"
)

// TestAppendSubmitMatchesJSON: the hand-written submit encoding is byte
// for byte what encoding/json makes of the same request.
func TestAppendSubmitMatchesJSON(t *testing.T) {
	tests := []struct {
		user, job string
		en2       []byte
		rolling   bool
	}{
		{"acct.rig1", "1a2b", []byte{0, 0, 0, 1}, true},
		{"acct.rig1", "1a2b", []byte{0xff, 0xfe}, false},
		{"a.w", "", []byte{1, 2, 3, 4, 5, 6, 7, 8}, true},
		{`we"ird\name`, "job<&>", []byte{9}, true},
		{"ünï.cödé", "tab\there", []byte{}, false},
		{"ctl\x01.x", "\u2028", []byte{0xab, 0xcd}, true},
	}
	for i, tc := range tests {
		for _, id := range []uint64{0, 7, 1 << 40, ^uint64(0)} {
			ntime, nonce, vbits := uint32(0x5f5e1000)+uint32(i), uint32(0xdeadbeef)-uint32(i), uint32(0x1fffe000)
			params := []any{tc.user, tc.job, fmt.Sprintf("%x", tc.en2), fmt.Sprintf("%08x", ntime), fmt.Sprintf("%08x", nonce)}
			if tc.rolling {
				params = append(params, fmt.Sprintf("%08x", vbits))
			}
			want, err := encodeRequest(id, "mining.submit", params...)
			if err != nil {
				t.Fatal(err)
			}
			got := appendSubmit(nil, id, tc.user, tc.job, tc.en2, ntime, nonce, vbits, tc.rolling)
			if !bytes.Equal(got, want) {
				t.Errorf("case %d id %d:\n got %s\nwant %s", i, id, got, want)
			}
		}
	}
}

// TestParseAcceptedFast: the fast path takes exactly the canonical accept
// line and agrees with the general JSON parse; everything else is left to
// the general path.
func TestParseAcceptedFast(t *testing.T) {
	tests := []struct {
		line string
		id   uint64
		ok   bool
	}{
		{`{"id":1,"result":true,"error":null}`, 1, true},
		{`{"id":0,"result":true,"error":null}`, 0, true},
		{`{"id":18446744073709551615,"result":true,"error":null}`, 1<<64 - 1, false}, // 20 digits: general path
		{`{"id":1234567890123456789,"result":true,"error":null}`, 1234567890123456789, true},
		{`{"id":01,"result":true,"error":null}`, 0, false},
		{`{"id":-1,"result":true,"error":null}`, 0, false},
		{`{"id":"1","result":true,"error":null}`, 0, false},
		{`{"id":,"result":true,"error":null}`, 0, false},
		{`{"id":1,"result":false,"error":null}`, 0, false},
		{`{"id":1, "result":true,"error":null}`, 0, false},
		{`{"id":1,"result":true,"error":[23,"x",null]}`, 0, false},
		{`{"id":1,"result":true,"error":null}x`, 0, false},
	}
	for _, tc := range tests {
		id, ok := parseAcceptedFast([]byte(tc.line))
		if ok != tc.ok || (ok && id != tc.id) {
			t.Errorf("%s: got %d %v, want %d %v", tc.line, id, ok, tc.id, tc.ok)
		}
		msg, err := parseLine([]byte(tc.line))
		if tc.ok && (err != nil || !msg.HasID || msg.ID != tc.id || string(msg.Result) != "true" || msg.Err != nil) {
			t.Errorf("%s: parseLine %+v %v", tc.line, msg, err)
		}
	}
}

// TestNotifyCache: a line is parsed once, its jobs are shared per
// extranonce sizes, and old lines are evicted.
func TestNotifyCache(t *testing.T) {
	c := newNotifyCache()
	n := testNotify("j1", true)
	params, _ := json.Marshal([]any{n.JobID, n.PrevHash, n.Coinb1, n.Coinb2, n.MerkleBranch, n.Version, n.NBits, n.NTime, n.CleanJobs})
	line := []byte(`{"id":null,"method":"mining.notify","params":` + string(params) + `}`)
	if c.get(line) != nil {
		t.Fatal("empty cache hit")
	}
	p, err := parseNotifyParams(params)
	if err != nil {
		t.Fatal(err)
	}
	e := c.put(line, p)
	if c.get(line) != e || c.put(line, p) != e {
		t.Fatal("line not found after put")
	}
	line[0] = ' ' // the cache keeps its own copy
	if c.get([]byte(`{`+string(line[1:]))) != e {
		t.Fatal("cache aliased the caller's buffer")
	}
	j1, err := e.job(4, 4)
	if err != nil {
		t.Fatal(err)
	}
	if j2, _ := e.job(4, 4); j2 != j1 {
		t.Error("same sizes parsed twice")
	}
	if j3, err := e.job(2, 6); err != nil || j3 == j1 || j3.Extranonce2Size != 6 {
		t.Errorf("other sizes: %v %v", j3, err)
	}
	if _, err := e.job(4, 1); err == nil {
		t.Error("extranonce2 size 1 accepted")
	}
	for i := range notifyCacheSize {
		c.put([]byte(fmt.Sprintf("other %d", i)), p)
	}
	if c.get([]byte(`{`+string(line[1:]))) != nil {
		t.Error("oldest line not evicted")
	}
}

// TestNotifyCachePutOnce: miners that miss the same line at the same
// moment share one entry (put looks again under the write lock), so the
// line is parsed once.
func TestNotifyCachePutOnce(t *testing.T) {
	c := newNotifyCache()
	n := testNotify("j1", true)
	p := notifyParams{JobID: n.JobID, PrevHash: n.PrevHash, Coinb1: n.Coinb1, Coinb2: n.Coinb2,
		MerkleBranch: n.MerkleBranch, Version: n.Version, NBits: n.NBits, NTime: n.NTime, CleanJobs: true}
	line := []byte("the same line")
	start := make(chan struct{})
	got := make(chan *notifyEntry, 16)
	var wg sync.WaitGroup
	for range cap(got) {
		wg.Go(func() {
			<-start
			got <- c.put(line, p)
		})
	}
	close(start)
	wg.Wait()
	close(got)
	first := <-got
	for e := range got {
		if e != first {
			t.Fatal("two entries for one line")
		}
	}
	n0 := 0
	for _, e := range c.entries {
		if e != nil {
			n0++
		}
	}
	if n0 != 1 {
		t.Fatalf("%d cache entries for one line", n0)
	}
}

// TestNotifyCacheConcurrent is for -race: many miners look up and add
// lines and build jobs at once.
func TestNotifyCacheConcurrent(t *testing.T) {
	c := newNotifyCache()
	n := testNotify("j1", true)
	p := notifyParams{JobID: n.JobID, PrevHash: n.PrevHash, Coinb1: n.Coinb1, Coinb2: n.Coinb2,
		MerkleBranch: n.MerkleBranch, Version: n.Version, NBits: n.NBits, NTime: n.NTime, CleanJobs: true}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				line := []byte(fmt.Sprintf("line %d", (g+i)%12))
				e := c.get(line)
				if e == nil {
					e = c.put(line, p)
				}
				if _, err := e.job(4, 4); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestFleetSharesParsedJobs: two miners of one fleet that receive the same
// notify line work on the same parsed job.
func TestFleetSharesParsedJobs(t *testing.T) {
	pool := newAutoPool(t)
	f, err := NewFleet(FleetConfig{
		Miner:  MinerConfig{Addr: pool.ln.Addr().String(), User: "acct.sim", Fast: true},
		Miners: 2, Workers: 1,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The run lasts until both miners have the job and shares came back:
	// with a share limit instead, a loaded machine could let the first
	// miner finish the run before the second one got its job.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := f.Run(ctx); done <- err }()
	waitFor(t, func() bool { rep := f.Stats().Snapshot(0); return rep.Jobs >= 2 && rep.Accepted >= 20 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rep := f.Stats().Snapshot(0); rep.Jobs < 2 || rep.Malformed != 0 {
		t.Fatalf("jobs %d malformed %d", rep.Jobs, rep.Malformed)
	}
	var jobs int
	for _, e := range f.grinder.notifies.entries {
		if e != nil {
			e.mu.Lock()
			jobs += len(e.jobs)
			e.mu.Unlock()
		}
	}
	if jobs != 1 {
		t.Errorf("%d parsed jobs for one notify line sent to two miners", jobs)
	}
}

// FuzzParseAcceptedFast: whatever the fast path accepts, encoding/json
// reads the same way (numeric id, result true, error null).
func FuzzParseAcceptedFast(f *testing.F) {
	for _, s := range []string{`{"id":1,"result":true,"error":null}`, `{"id":01,"result":true,"error":null}`,
		`{"id":99999999999999999999,"result":true,"error":null}`, `{"id":1,"result":true,"error":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		id, ok := parseAcceptedFast(line)
		if !ok {
			return
		}
		var raw struct {
			ID     *uint64         `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(line, &raw); err != nil || raw.ID == nil || *raw.ID != id ||
			string(raw.Result) != "true" || string(raw.Error) != "null" {
			t.Fatalf("fast path read %q as id %d; encoding/json: %+v %v", line, id, raw, err)
		}
	})
}

// TestFastMinerBatchesShares: a fast miner with room for 8 unanswered
// submits sends 8 valid shares in one write (one read gets them all), and
// each is answered and counted.
func TestFastMinerBatchesShares(t *testing.T) {
	ln := listen(t)
	m := startMiner(t, MinerConfig{Addr: ln.Addr().String(), User: "acct.batch", Fast: true, MaxInFlight: 8})
	f := accept(t, ln)
	f.handshake("1fffe000", "0a0b0c0d", 4)
	if f.r.Buffered() != 0 {
		t.Fatal("miner sent more than the handshake")
	}
	n := testNotify("b1", true)
	f.send(`{"id":null,"method":"mining.set_difficulty","params":[%v]}`, diffEasy)
	f.notify(n)
	buf := make([]byte, 64<<10)
	k, err := f.c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(buf[:k]), "\n"), "\n")
	if len(lines) != 8 {
		t.Fatalf("first write held %d lines, want 8 submits: %q", len(lines), lines)
	}
	for _, l := range lines {
		var r wireReq
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Method != "mining.submit" {
			t.Fatalf("line %q: %v", l, err)
		}
		s := decodeSubmit(t, r)
		hash, _ := hashOf(t, n, []byte{0x0a, 0x0b, 0x0c, 0x0d}, s, 0x1fffe000)
		if target := work.TargetFromDiff(diffEasy); !target.Meets(&hash) {
			t.Fatalf("batched share does not meet the target: %s", l)
		}
		f.reply(r, "true")
	}
	for deadline := time.Now().Add(safetyDeadline); m.Accepted() < 8; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 8 shares counted accepted", m.Accepted())
		}
	}
}
