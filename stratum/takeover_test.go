package stratum

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wattpool/wattpool/stratum/work"
)

// submitHeld sends acct.rig1's share (extranonce2 en2, nonce) on job over c
// and returns once the sink holds it; the share is recorded when release
// is closed, whatever the sink timeout says.
func submitHeld(e *env, c *client, job *work.Job, en2 string, nonce uint32) (release chan struct{}) {
	entered, release := make(chan struct{}), make(chan struct{})
	e.sink.mu.Lock()
	e.sink.hold = func() { close(entered); <-release }
	e.sink.mu.Unlock()
	c.send(fmt.Sprintf(`{"id":99,"method":"mining.submit","params":["acct.rig1",%q,%q,%q,%q]}`, job.ID, en2, hex32(job.NTime), hex32(nonce)))
	<-entered
	e.sink.mu.Lock()
	e.sink.hold = nil
	e.sink.mu.Unlock()
	return release
}

// sharesWithEn2 counts the recorded shares made with extranonce2 en2.
func (s *recSink) sharesWithEn2(en2 string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sh := range s.shares {
		if hex.EncodeToString(sh.Extranonce2) == en2 {
			n++
		}
	}
	return n
}

// TestSessionTakeover: a miner whose old connection still looks live
// (half-open) reconnects offering its session id and takes the session
// over: the old connection is closed (taken_over), the new one has the
// same extranonce1 and subscription id, a share found on the old job
// before the reconnect is accepted, one already submitted on the old
// connection is a duplicate, and the session can be taken over again.
func TestSessionTakeover(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	a := e.dial()
	subID, en1 := a.subscribeOffering(nil)
	a.authorizeAndWork("acct.rig1")
	job := e.sink.lastJob()
	if r := a.submitShare(job, "00000001", 1); string(r.Result) != "true" {
		t.Fatalf("share on the old connection: %s", r.raw)
	}

	b := e.dial()
	gotID, gotEn1 := b.subscribeOffering(subID)
	if gotID != subID || gotEn1 != en1 {
		t.Fatalf("takeover gave session %s extranonce1 %s, want %s %s", gotID, gotEn1, subID, en1)
	}
	a.expectClosed()
	if n := counterValue(e.s.metrics.closedByReason[ClosedTakenOver]); n != 1 {
		t.Fatalf("%v connections closed as taken_over, want 1", n)
	}
	if got := e.outcomes(); got[resumeTakenOver] != 1 || got[resumeNone] != 1 || len(got) != 2 {
		t.Fatalf("subscribe outcomes %v", got)
	}
	_, n := b.authorizeAndWork("acct.rig1")
	var jobID string
	json.Unmarshal(n.Params[0], &jobID)
	if jobID != job.ID || string(n.Params[8]) != "true" {
		t.Fatalf("after takeover got %s, want job %s again with clean_jobs", n.raw, job.ID)
	}
	if r := b.submitShare(job, "00000002", 2); string(r.Result) != "true" {
		t.Fatalf("share on the old job after takeover: %s", r.raw)
	}
	if r := b.submitShare(job, "00000001", 1); errCode(t, r) != 22 {
		t.Fatalf("share submitted before the takeover and again after it: %s, want code 22", r.raw)
	}
	if info := e.s.Connections(); len(info) != 1 || !info[0].Resumed || info[0].Extranonce1 != en1 {
		t.Fatalf("Connections %+v", info)
	}
	if st := e.s.Stats(); st.ParkedSessions != 0 {
		t.Fatalf("%d parked sessions after takeover", st.ParkedSessions)
	}

	// The taken-over session is taken over again.
	c := e.dial()
	if id, got := c.subscribeOffering(subID); id != subID || got != en1 {
		t.Fatalf("second takeover gave %s %s", id, got)
	}
	b.expectClosed()
	c.authorizeAndWork("acct.rig1")
	if r := c.submitShare(job, "00000002", 2); errCode(t, r) != 22 {
		t.Fatalf("share of the first takeover resubmitted after the second: %s, want code 22", r.raw)
	}
	if r := c.submitShare(job, "00000003", 3); string(r.Result) != "true" {
		t.Fatalf("share after the second takeover: %s", r.raw)
	}
}

// TestSessionTakeoverRefused: a live session is not taken over with a
// wrong random part, from another port, while its connection closes for a
// ban, or when no job was sent on it; the offering connection gets a
// fresh extranonce1 and the live one keeps working.
func TestSessionTakeoverRefused(t *testing.T) {
	tests := []struct {
		name string
		// mangle turns the live session's id into the one offered.
		mangle func(id string) string
		// prepare runs on the server after the live connection set up.
		prepare     func(e *env, live *conn)
		second      bool // offer from a second listener
		noAuthorize bool // the live connection never got a job
		want        resumeOutcome
	}{
		{name: "wrong random part", mangle: func(id string) string { return id[:14] + fmt.Sprintf("%02x", ^mustByte(id[14:])) }, want: resumeUnknown},
		{name: "wrong extranonce1 part", mangle: func(id string) string { return id[:6] + fmt.Sprintf("%02x", ^mustByte(id[6:8])) + id[8:] }, want: resumeUnknown},
		{name: "other listener", second: true, want: resumeOtherListener},
		{name: "closing for a ban", prepare: func(e *env, live *conn) { live.setReason(ClosedBanned) }, want: resumeBanned},
		{name: "no job sent", noAuthorize: true, want: resumeInUse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Listeners = append(cfg.Listeners, ListenerConfig{Name: "second", Addr: "127.0.0.1:0", StartDiff: tinyDiff, MinDiff: tinyDiff, MaxDiff: hugeDiff})
			e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
			a := e.dial()
			id, en1 := a.subscribeOffering(nil)
			if !tc.noAuthorize {
				a.authorizeAndWork("acct.rig1")
			}
			e.s.mu.Lock()
			var live *conn
			for _, c := range e.s.conns {
				live = c
			}
			e.s.mu.Unlock()
			if tc.prepare != nil {
				tc.prepare(e, live)
			}
			offer := id
			if tc.mangle != nil {
				offer = tc.mangle(id)
			}
			if tc.second {
				e.addr = e.s.Addr("second").String()
			}
			b := e.dial()
			gotID, gotEn1 := b.subscribeOffering(offer)
			if gotID == id || gotEn1 == en1 {
				t.Fatalf("offering %s gave session %s extranonce1 %s: the live session's", offer, gotID, gotEn1)
			}
			if got := e.outcomes(); got[tc.want] != 1 || got[resumeTakenOver] != 0 {
				t.Fatalf("subscribe outcomes %v, want one %v", got, tc.want)
			}
			if n := counterValue(e.s.metrics.closedByReason[ClosedTakenOver]); n != 0 {
				t.Fatalf("%v connections closed as taken_over", n)
			}
			if tc.prepare != nil {
				return // the live connection is closing
			}
			if tc.noAuthorize {
				a.authorizeAndWork("acct.rig1")
			}
			if r := a.submitShare(e.sink.lastJob(), "00000001", 1); string(r.Result) != "true" {
				t.Fatalf("share on the live connection after the refused takeover: %s", r.raw)
			}
		})
	}
}

func mustByte(h string) byte {
	b, err := hex.DecodeString(h[:2])
	if err != nil {
		panic(err)
	}
	return b[0]
}

// TestSessionTakeoverWaitsForSubmit: the old connection is in the middle
// of recording a share when the miner takes its session over. The
// takeover waits until that share is recorded and in the session's
// duplicate set: resubmitted on the new connection it is a duplicate,
// and it is recorded exactly once.
func TestSessionTakeoverWaitsForSubmit(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	a := e.dial()
	subID, en1 := a.subscribeOffering(nil)
	a.authorizeAndWork("acct.rig1")
	job := e.sink.lastJob()

	release := submitHeld(e, a, job, "000000aa", 7)

	b := e.dial()
	type subscribed struct{ id, en1 string }
	got := make(chan subscribed, 1)
	go func() {
		// b.subscribeOffering would call t.Fatal off the test goroutine.
		b.send(fmt.Sprintf(`{"id":1,"method":"mining.subscribe","params":["cgminer/4.11.1",%q]}`, subID))
		m, err := b.readLine()
		var res []json.RawMessage
		var s subscribed
		if err == nil && json.Unmarshal(m.Result, &res) == nil && len(res) == 3 {
			var subs [][2]string
			json.Unmarshal(res[0], &subs)
			json.Unmarshal(res[1], &s.en1)
			if len(subs) == 2 {
				s.id = subs[1][1]
			}
		}
		got <- s
	}()
	// Whenever the subscribe gets there, it cannot finish before the
	// share in flight: the old connection's reader is still in it.
	close(release)
	s := <-got
	if s.id != subID || s.en1 != en1 {
		t.Fatalf("takeover gave session %q extranonce1 %q, want %s %s", s.id, s.en1, subID, en1)
	}
	b.en1, _ = hex.DecodeString(s.en1)
	if n := e.sink.sharesWithEn2("000000aa"); n != 1 {
		t.Fatalf("share in flight at the takeover recorded %d times before the new connection submitted, want 1", n)
	}
	b.authorizeAndWork("acct.rig1")
	if r := b.submitShare(job, "000000aa", 7); errCode(t, r) != 22 {
		t.Fatalf("share recorded by the old connection, resubmitted after the takeover: %s, want code 22", r.raw)
	}
	if n := e.sink.sharesWithEn2("000000aa"); n != 1 {
		t.Fatalf("share recorded %d times, want 1", n)
	}
	a.expectClosed()
}

// TestSessionTakeoverRace races the old connection's last submit against
// the takeover, round after round (each round's new connection is the
// next round's old one). Whichever wins, the share is recorded exactly
// once: when the old connection recorded it, the miner's resubmission is
// a duplicate, otherwise it is accepted. No two open connections ever
// hold the same extranonce1. Run it with -race -count=20.
func TestSessionTakeoverRace(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	old := e.dial()
	subID, en1 := old.subscribeOffering(nil)
	old.authorizeAndWork("acct.rig1")
	job := e.sink.lastJob()

	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	var shared string
	go func() {
		defer watch.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			// One consistent snapshot of the open connections and parked
			// sessions (Connections reads each connection at its own
			// moment, so a connection it listed may be gone by then).
			seen := map[[extranonce1Size]byte]bool{}
			hold := func(en1 [extranonce1Size]byte) {
				if seen[en1] && shared == "" {
					shared = hex.EncodeToString(en1[:])
				}
				seen[en1] = true
			}
			e.s.mu.Lock()
			for _, c := range e.s.conns {
				c.mu.Lock()
				hold(c.en1)
				c.mu.Unlock()
			}
			for _, p := range e.s.sessions.parked {
				hold(p.en1)
			}
			e.s.mu.Unlock()
		}
	}()

	const rounds = 8
	for round := 0; round < rounds; round++ {
		en2 := fmt.Sprintf("%08x", 0x100+round)
		line := fmt.Sprintf(`{"id":99,"method":"mining.submit","params":["acct.rig1",%q,%q,%q,%q]}`+"\n",
			job.ID, en2, hex32(job.NTime), hex32(uint32(round)))
		start := make(chan struct{})
		sent := make(chan struct{})
		go func(nc interface{ Write([]byte) (int, error) }) {
			defer close(sent)
			<-start
			nc.Write([]byte(line)) // may fail once the takeover closed it
		}(old.nc)
		var next *client
		if round%2 == 0 {
			close(start)
			next = e.dial()
		} else {
			next = e.dial()
			close(start)
		}
		id, got := next.subscribeOffering(subID)
		if id != subID || got != en1 {
			t.Fatalf("round %d: takeover gave %s %s, want %s %s", round, id, got, subID, en1)
		}
		<-sent
		// The old connection's reader is gone: what it recorded is final.
		before := e.sink.sharesWithEn2(en2)
		next.authorizeAndWork("acct.rig1")
		r := next.submitShare(job, en2, uint32(round))
		switch {
		case before == 0 && string(r.Result) != "true":
			t.Fatalf("round %d: share the old connection did not record, resubmitted: %s, want accepted", round, r.raw)
		case before == 1 && errCode(t, r) != 22:
			t.Fatalf("round %d: share the old connection recorded, resubmitted: %s, want code 22", round, r.raw)
		case before > 1:
			t.Fatalf("round %d: share recorded %d times by the old connection", round, before)
		}
		if n := e.sink.sharesWithEn2(en2); n != 1 {
			t.Fatalf("round %d: share recorded %d times, want 1", round, n)
		}
		old.expectClosed()
		old = next
	}
	close(stop)
	watch.Wait()
	if shared != "" {
		t.Fatalf("two open connections (or one and a parked session) held extranonce1 %s at once", shared)
	}
	if n := counterValue(e.s.metrics.closedByReason[ClosedTakenOver]); n != rounds {
		t.Fatalf("%v connections closed as taken_over, want %d", n, rounds)
	}
}

// TestSessionTakeoverTimeout: when the old connection's reader does not let
// go within the takeover wait (its sink call outlives the sink timeout),
// the new connection is not kept waiting for ever: it gets a fresh
// extranonce1 (takeover_timeout) while the old one keeps the session.
// Once the old reader finishes, its share is recorded once, the session is
// parked, and the miner can take it back on a later connection.
func TestSessionTakeoverTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.SinkTimeout, cfg.BlockSubmitTimeout = 50*time.Millisecond, 50*time.Millisecond // wait = 1.15 s
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
	a := e.dial()
	subID, en1 := a.subscribeOffering(nil)
	a.authorizeAndWork("acct.rig1")
	job := e.sink.lastJob()

	release := submitHeld(e, a, job, "000000bb", 7)

	b := e.dial()
	gotID, gotEn1 := b.subscribeOffering(subID)
	if gotEn1 == en1 || gotID == subID {
		close(release)
		t.Fatalf("takeover past the wait gave session %s extranonce1 %s, the held session's", gotID, gotEn1)
	}
	if got := e.outcomes(); got[resumeTakeoverTimeout] != 1 {
		close(release)
		t.Fatalf("subscribe outcomes %v, want one takeover_timeout", got)
	}
	close(release)
	a.expectClosed()
	eventually(t, func() bool { return e.s.Stats().ParkedSessions == 1 }, "the held session to be parked")
	if n := e.sink.sharesWithEn2("000000bb"); n != 1 {
		t.Fatalf("share held at the takeover recorded %d times, want 1", n)
	}

	c := e.dial()
	if id, got := c.subscribeOffering(subID); id != subID || got != en1 {
		t.Fatalf("later resume gave session %s extranonce1 %s, want %s %s", id, got, subID, en1)
	}
	c.authorizeAndWork("acct.rig1")
	if r := c.submitShare(job, "000000bb", 7); errCode(t, r) != 22 {
		t.Fatalf("held share resubmitted after the resume: %s, want code 22", r.raw)
	}
	if r := b.call("mining.authorize", "acct.rig2", "x"); string(r.Result) != "true" {
		t.Fatalf("the fresh connection stays usable: %s", r.raw)
	}
}
