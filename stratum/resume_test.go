package stratum

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/minersim"
	"github.com/wattpool/wattpool/stratum/work"
)

// subscribeOffering subscribes offering session as params[1] (no second
// param when session is nil) and returns the subscription id of the
// mining.notify subscription and the extranonce1, both hex.
func (c *client) subscribeOffering(session any) (subID, en1 string) {
	c.t.Helper()
	params := []any{"cgminer/4.11.1"}
	if session != nil {
		params = append(params, session)
	}
	r := c.call("mining.subscribe", params...)
	var res []json.RawMessage
	if err := json.Unmarshal(r.Result, &res); err != nil || len(res) != 3 {
		c.t.Fatalf("subscribe result %s", r.raw)
	}
	var subs [][2]string
	if err := json.Unmarshal(res[0], &subs); err != nil || len(subs) != 2 || subs[1][0] != "mining.notify" {
		c.t.Fatalf("subscriptions %s", res[0])
	}
	json.Unmarshal(res[1], &en1)
	c.en1, _ = hex.DecodeString(en1)
	return subs[1][1], en1
}

// authorizeAndWork authorizes and reads the difficulty and job that follow.
func (c *client) authorizeAndWork(worker string) (diff string, notify rpc) {
	c.t.Helper()
	if a := c.call("mining.authorize", worker, "x"); string(a.Result) != "true" {
		c.t.Fatalf("authorize: %s", a.raw)
	}
	d := c.next("mining.set_difficulty")
	json.Unmarshal(d.Params[0], &c.diff)
	return string(d.Params[0]), c.next("mining.notify")
}

func (c *client) submitShare(job *work.Job, en2 string, nonce uint32) rpc {
	c.t.Helper()
	return c.call("mining.submit", "acct.rig1", job.ID, en2, hex32(job.NTime), hex32(nonce))
}

// dropAndWaitParked closes the client's connection and waits until the
// server parked its session.
func (e *env) dropAndWaitParked(c *client, parked int) {
	e.t.Helper()
	c.nc.Close()
	eventually(e.t, func() bool { return e.s.Stats().ParkedSessions == parked }, "%d parked sessions", parked)
}

func (e *env) outcomes() map[resumeOutcome]float64 {
	out := map[resumeOutcome]float64{}
	for o := resumeOutcome(0); o < resumeOutcomeCount; o++ {
		if v := counterValue(e.s.metrics.subscribes[o]); v > 0 {
			out[o] = v
		}
	}
	return out
}

// TestSessionResume: a miner that reconnects offering its session id gets
// the same extranonce1 and subscription id; a share it found before the
// drop is accepted on the still-current job, one it already submitted
// before the drop is a duplicate, and a new block makes the old job stale.
func TestSessionResume(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	a := e.dial()
	subID, en1 := a.subscribeOffering(nil)
	if len(subID) != 16 || subID[:8] != en1 || en1[:2] != "07" {
		t.Fatalf("subscription id %s for extranonce1 %s: want the extranonce1 and 8 more hex digits", subID, en1)
	}
	a.authorizeAndWork("acct.rig1")
	job := e.sink.lastJob()
	if r := a.submitShare(job, "00000001", 1); string(r.Result) != "true" {
		t.Fatalf("share before the drop: %s", r.raw)
	}
	e.dropAndWaitParked(a, 1)

	b := e.dial()
	gotID, gotEn1 := b.subscribeOffering(subID)
	if gotID != subID || gotEn1 != en1 {
		t.Fatalf("resume gave session %s extranonce1 %s, want %s %s", gotID, gotEn1, subID, en1)
	}
	_, n := b.authorizeAndWork("acct.rig1")
	var jobID string
	json.Unmarshal(n.Params[0], &jobID)
	if jobID != job.ID || string(n.Params[8]) != "true" {
		t.Fatalf("after resume got %s, want job %s again with clean_jobs", n.raw, job.ID)
	}
	if r := b.submitShare(job, "00000002", 2); string(r.Result) != "true" {
		t.Fatalf("in-flight share after resume: %s", r.raw)
	}
	if r := b.submitShare(job, "00000001", 1); errCode(t, r) != 22 {
		t.Fatalf("share submitted before the drop and again after it: %s, want code 22", r.raw)
	}
	e.sink.mu.Lock()
	credited := hex.EncodeToString(e.sink.shares[len(e.sink.shares)-1].Extranonce1)
	e.sink.mu.Unlock()
	if credited != en1 {
		t.Fatalf("resumed share recorded with extranonce1 %s, want %s", credited, en1)
	}
	if info := e.s.Connections(); len(info) != 1 || !info[0].Resumed || info[0].Extranonce1 != en1 {
		t.Fatalf("Connections %+v", info)
	}
	if st := e.s.Stats(); st.ParkedSessions != 0 {
		t.Fatalf("%d parked sessions after resume", st.ParkedSessions)
	}
	if got := e.outcomes(); got[resumeOK] != 1 || got[resumeNone] != 1 || len(got) != 2 {
		t.Fatalf("subscribe outcomes %v", got)
	}

	e.newBlock(makeTemplate(101, mainnetBits, 3, 2))
	b.next("mining.notify")
	if r := b.submitShare(job, "00000003", 3); errCode(t, r) != 21 {
		t.Fatalf("share on the previous block's job: %s, want code 21", r.raw)
	}

	// The resumed session parks again and resumes again.
	e.dropAndWaitParked(b, 1)
	c := e.dial()
	if id, got := c.subscribeOffering(subID); id != subID || got != en1 {
		t.Fatalf("second resume gave %s %s", id, got)
	}
}

// TestSessionResumeKeepsJobDifficulty: each job is still judged at the
// difficulty it was sent at. The miner had job A at a tiny difficulty and
// job B at a huge one; after the resume it gets B's difficulty again, a
// share on A is judged at A's, and B's tiny share is low difficulty.
func TestSessionResumeKeepsJobDifficulty(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	a := e.dial()
	subID, _ := a.subscribeOffering(nil)
	a.authorizeAndWork("acct.rig1")
	jobA := e.sink.lastJob()
	a.call("mining.suggest_difficulty", 1e6)
	e.s.refreshJob()
	a.next("mining.set_difficulty")
	a.next("mining.notify")
	jobB := e.sink.lastJob()
	e.dropAndWaitParked(a, 1)

	b := e.dial()
	b.subscribeOffering(subID)
	diff, n := b.authorizeAndWork("acct.rig1")
	var jobID string
	json.Unmarshal(n.Params[0], &jobID)
	if diff != "1e+06" || jobID != jobB.ID {
		t.Fatalf("after resume: difficulty %s job %s, want 1e+06 and %s", diff, jobID, jobB.ID)
	}
	if r := b.submitShare(jobA, "00000001", 1); string(r.Result) != "true" {
		t.Fatalf("share on the job sent at the tiny difficulty: %s", r.raw)
	}
	if r := b.submitShare(jobB, "00000001", 1); errCode(t, r) != 23 {
		t.Fatalf("tiny share on the job sent at 1e6: %s, want code 23", r.raw)
	}
	e.sink.mu.Lock()
	credited := e.sink.shares[0].Difficulty
	e.sink.mu.Unlock()
	if credited != tinyDiff {
		t.Fatalf("share on job A credited at %v, want %v", credited, tinyDiff)
	}
}

// TestSessionResumeNewJobWhileAway: a job published while the miner was
// away is sent after a set_difficulty, and the jobs from before the drop
// keep their slots.
func TestSessionResumeNewJobWhileAway(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	a := e.dial()
	subID, en1 := a.subscribeOffering(nil)
	a.authorizeAndWork("acct.rig1")
	old := e.sink.lastJob()
	if r := a.submitShare(old, "00000001", 1); string(r.Result) != "true" {
		t.Fatalf("share: %s", r.raw)
	}
	e.dropAndWaitParked(a, 1)
	e.s.refreshJob()
	fresh := e.waitJobs(2)

	b := e.dial()
	if _, got := b.subscribeOffering(subID); got != en1 {
		t.Fatalf("extranonce1 %s, want %s", got, en1)
	}
	_, n := b.authorizeAndWork("acct.rig1")
	var jobID string
	json.Unmarshal(n.Params[0], &jobID)
	if jobID != fresh.ID || string(n.Params[8]) != "true" {
		t.Fatalf("first job after resume %s, want %s with clean_jobs", n.raw, fresh.ID)
	}
	for _, tc := range []struct {
		job  *work.Job
		en2  string
		code int
	}{
		{old, "00000001", 22}, {old, "00000002", 0}, {fresh, "00000001", 0},
	} {
		r := b.submitShare(tc.job, tc.en2, 1)
		if code := errCode(t, r); code != tc.code {
			t.Errorf("job %s en2 %s: %s, want code %d", tc.job.ID, tc.en2, r.raw, tc.code)
		}
	}
}

// TestSessionResumeRefused: every session id that must not be resumed
// gets a fresh extranonce1 (never one a live connection or a parked
// session holds) and a new session id, and the subscribe still succeeds.
func TestSessionResumeRefused(t *testing.T) {
	other := testConfig()
	other.InstanceID = 8
	otherEnv := startServer(t, other, nil)
	oc := otherEnv.dial()
	otherID, _ := oc.subscribeOffering(nil)

	tests := []struct {
		name string
		cfg  func(*Config)
		// offer prepares the server (e.g. parks a session) and returns
		// the session param to offer.
		offer func(e *env) any
		want  resumeOutcome
	}{
		{name: "no session id", offer: func(*env) any { return nil }, want: resumeNone},
		{name: "empty string", offer: func(*env) any { return "" }, want: resumeNone},
		{name: "null", offer: func(*env) any { return json.RawMessage("null") }, want: resumeNone},
		{name: "number", offer: func(*env) any { return 123 }, want: resumeMalformed},
		{name: "object", offer: func(*env) any { return map[string]int{"a": 1} }, want: resumeMalformed},
		{name: "not hex", offer: func(*env) any { return "07000001zz000000" }, want: resumeMalformed},
		{name: "too short", offer: func(*env) any { return "07000001" }, want: resumeMalformed},
		{name: "too long", offer: func(*env) any { return "0700000100000000ff" }, want: resumeMalformed},
		{name: "huge", offer: func(*env) any { return strings.Repeat("ab", 5000) }, want: resumeMalformed},
		{name: "escaped", offer: func(*env) any { return "07\u00000001aabbccdd" }, want: resumeMalformed},
		{name: "never issued", offer: func(*env) any { return "0700000100000000" }, want: resumeUnknown},
		{name: "other instance", offer: func(*env) any { return otherID }, want: resumeOtherInstance},
		{name: "in use by a live connection without work", offer: func(e *env) any {
			// Live sessions with work are taken over (takeover_test.go).
			a := e.dial()
			id, _ := a.subscribeOffering(nil)
			return id
		}, want: resumeInUse},
		{name: "expired", offer: func(e *env) any {
			id := parkOne(e)
			e.clock.Add(e.s.cfg.Load().SessionResumeWindow + time.Second)
			return id
		}, want: resumeExpired},
		{name: "evicted", cfg: func(c *Config) { c.MaxParkedSessions = 1 }, offer: func(e *env) any {
			id := parkOne(e)
			parkOne(e) // evicts the first
			return id
		}, want: resumeUnknown},
		{name: "disabled", cfg: func(c *Config) { c.SessionResumeWindow = 0 }, offer: func(e *env) any {
			id := parkOneNoWait(e)
			return id
		}, want: resumeDisabled},
		{name: "other listener", cfg: func(c *Config) {
			c.Listeners = append(c.Listeners, ListenerConfig{Name: "second", Addr: "127.0.0.1:0", StartDiff: tinyDiff, MinDiff: tinyDiff, MaxDiff: hugeDiff})
		}, offer: func(e *env) any {
			main := e.addr
			e.addr = e.s.Addr("second").String()
			id := parkOne(e)
			e.addr = main
			return id
		}, want: resumeOtherListener},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
			offer := tc.offer(e)
			parkedBefore := e.s.Stats().ParkedSessions
			reserved := map[string]bool{}
			for _, ci := range e.s.Connections() {
				reserved[ci.Extranonce1] = true
			}
			e.s.mu.Lock()
			for _, p := range e.s.sessions.parked {
				reserved[hex.EncodeToString(p.en1[:])] = true
			}
			e.s.mu.Unlock()
			before := e.outcomes()[tc.want]

			c := e.dial()
			id, en1 := c.subscribeOffering(offer)
			if s, ok := offer.(string); ok && id == s {
				t.Fatalf("session %s resumed", s)
			}
			if reserved[en1] || en1[:2] != "07" || id[:8] != en1 {
				t.Fatalf("fresh extranonce1 %s (session %s); held elsewhere: %v", en1, id, reserved)
			}
			if got := e.outcomes()[tc.want]; got != before+1 {
				t.Fatalf("outcome %v counted %v times, want %v", tc.want, got, before+1)
			}
			if got := e.outcomes()[resumeOK]; got != 0 {
				t.Fatalf("%v resumes counted", got)
			}
			// A refused resume does not consume a parked session (it may
			// still be the real miner's), except an expired one.
			wantParked := parkedBefore
			if tc.want == resumeExpired {
				wantParked--
			}
			if n := e.s.Stats().ParkedSessions; n != wantParked {
				t.Fatalf("%d parked sessions, want %d", n, wantParked)
			}
			_, n := c.authorizeAndWork("acct.rig1")
			var jobID string
			json.Unmarshal(n.Params[0], &jobID)
			job := e.sink.lastJob()
			if r := c.submitShare(job, "00000001", 1); jobID != job.ID || string(r.Result) != "true" {
				t.Fatalf("share on a fresh session: %s", r.raw)
			}
		})
	}
}

// parkOne runs a miner through one share and drops it; it returns the
// session id once the session is parked.
func parkOne(e *env) string {
	e.t.Helper()
	before := e.s.Stats().ParkedSessions
	id := parkOneNoWait(e)
	limit := e.s.cfg.Load().MaxParkedSessions
	eventually(e.t, func() bool {
		e.s.mu.Lock()
		defer e.s.mu.Unlock()
		var sid sessionID
		hex.Decode(sid[:], []byte(id))
		return e.s.sessions.parked[sid] != nil
	}, "session %s parked", id)
	if n := e.s.Stats().ParkedSessions; n != min(before+1, limit) {
		e.t.Fatalf("%d parked sessions, want %d", n, min(before+1, limit))
	}
	return id
}

// parkOneNoWait is parkOne for servers that do not park: it waits until
// the connection is gone.
func parkOneNoWait(e *env) string {
	e.t.Helper()
	a := e.dial()
	id, _ := a.subscribeOffering(nil)
	a.authorizeAndWork("acct.rig1")
	if r := a.submitShare(e.sink.lastJob(), "000000ff", 1); string(r.Result) != "true" {
		e.t.Fatalf("share: %s", r.raw)
	}
	conns := len(e.s.Connections())
	a.nc.Close()
	eventually(e.t, func() bool { return len(e.s.Connections()) == conns-1 }, "connection closed")
	return id
}

// TestParkedSessionBounds: housekeeping expires parked sessions after the
// window and frees their extranonce1s, a lowered cap evicts the oldest,
// jobs of a past block are let go, and a parked extranonce1 is never
// handed to a new connection.
func TestParkedSessionBounds(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	first := parkOne(e)
	second := parkOne(e)

	// The allocator skips a parked extranonce1 even when its counter
	// comes round to it.
	var sid sessionID
	hex.Decode(sid[:], []byte(first))
	e.s.mu.Lock()
	p := e.s.sessions.parked[sid]
	e.s.en1Next = (en1Value(p.en1) - 1) & 0xffffff
	e.s.mu.Unlock()
	c := e.dial()
	if _, en1 := c.subscribeOffering(nil); en1 == hex.EncodeToString(p.en1[:]) {
		t.Fatalf("new connection got parked extranonce1 %s", en1)
	}

	// A new block strips parked jobs at the next housekeeping.
	e.newBlock(makeTemplate(101, mainnetBits, 3, 2))
	e.s.pruneParked(e.clock.Now())
	e.s.mu.Lock()
	for _, p := range e.s.sessions.parked {
		if p.jobs != nil || p.lastJob != nil {
			t.Errorf("parked session %x keeps jobs of a past block", p.id)
		}
	}
	e.s.mu.Unlock()

	cfg := *e.s.cfg.Load()
	cfg.MaxParkedSessions = 1
	if err := e.s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	e.s.pruneParked(e.clock.Now())
	if n := e.s.Stats().ParkedSessions; n != 1 {
		t.Fatalf("%d parked after lowering the cap to 1", n)
	}
	if v := counterValue(e.s.metrics.parkedDropped.WithLabelValues("evicted")); v != 1 {
		t.Fatalf("evictions counted %v", v)
	}

	e.clock.Add(cfg.SessionResumeWindow) // not past it yet
	e.s.pruneParked(e.clock.Now())
	if n := e.s.Stats().ParkedSessions; n != 1 {
		t.Fatalf("%d parked at the window's end", n)
	}
	e.clock.Add(time.Second)
	e.s.pruneParked(e.clock.Now())
	if n := e.s.Stats().ParkedSessions; n != 0 {
		t.Fatalf("%d parked after the window", n)
	}
	if v := counterValue(e.s.metrics.parkedDropped.WithLabelValues("expired")); v != 1 {
		t.Fatalf("expiries counted %v", v)
	}
	e.s.mu.Lock()
	reserved := len(e.s.en1Used)
	e.s.mu.Unlock()
	if reserved != 1 { // the live connection c
		t.Fatalf("%d extranonce1s reserved, want 1", reserved)
	}
	d := e.dial()
	if id, _ := d.subscribeOffering(second); id == second {
		t.Fatalf("expired session %s resumed", second)
	}
}

func TestParseSessionID(t *testing.T) {
	tests := []struct {
		param string
		want  resumeOutcome
		id    string
	}{
		{``, resumeNone, ""},
		{`null`, resumeNone, ""},
		{`""`, resumeNone, ""},
		{`"07a1b2c3d4e5f607"`, resumeOK, "07a1b2c3d4e5f607"},
		{`"07A1B2C3D4E5F607"`, resumeOK, "07a1b2c3d4e5f607"},
		{`"\u0030\u0037a1b2c3d4e5f607"`, resumeOK, "07a1b2c3d4e5f607"},
		{`"07a1b2c3d4e5f6"`, resumeMalformed, ""},
		{`"07a1b2c3d4e5f6070"`, resumeMalformed, ""},
		{`"07a1b2c3d4e5f6g7"`, resumeMalformed, ""},
		{`" 7a1b2c3d4e5f607"`, resumeMalformed, ""},
		{`7`, resumeMalformed, ""},
		{`true`, resumeMalformed, ""},
		{`["07a1b2c3d4e5f607"]`, resumeMalformed, ""},
		{`{}`, resumeMalformed, ""},
	}
	for _, tc := range tests {
		line := `{"id":1,"method":"mining.subscribe","params":["a"]}`
		if tc.param != "" {
			line = `{"id":1,"method":"mining.subscribe","params":["a",` + tc.param + `]}`
		}
		var m Message
		if err := ParseMessage([]byte(line), &m); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		id, got := parseSessionID(m.Param(1))
		if got != tc.want || (got == resumeOK && hex.EncodeToString(id[:]) != tc.id) {
			t.Errorf("param %s: %v %x, want %v %s", tc.param, got, id, tc.want, tc.id)
		}
	}
}

// FuzzSessionID checks parseSessionID against encoding/json: a param is a
// session id exactly when it decodes to a string of 16 hex digits, and
// "no session" exactly when it is absent, null or "".
func FuzzSessionID(f *testing.F) {
	for _, s := range []string{`"07a1b2c3d4e5f607"`, `""`, `null`, `"zz"`, `1`, `"\u0030\u0037a1b2c3d4e5f607"`, `["x"]`, `"07a1b2c3d4e5f60"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, param []byte) {
		line := append([]byte(`{"id":1,"method":"mining.subscribe","params":["a",`), param...)
		line = append(line, "]}"...)
		var m Message
		if ParseMessage(line, &m) != nil || m.NParams != 2 {
			return
		}
		id, got := parseSessionID(m.Param(1))
		var s *string
		want := resumeMalformed
		if err := json.Unmarshal(param, &s); err == nil {
			switch {
			case s == nil || *s == "":
				want = resumeNone
			case len(*s) == 16:
				if b, err := hex.DecodeString(*s); err == nil {
					want = resumeOK
					if string(b) != string(id[:]) {
						t.Fatalf("%s: id %x, want %x", param, id, b)
					}
				}
			}
		}
		if got != want {
			t.Fatalf("%s: %v, want %v", param, got, want)
		}
	})
}

// TestSubscribeAnswerNamesSession: both subscriptions of the answer carry
// the session id, and a second subscribe changes nothing.
func TestSubscribeAnswerNamesSession(t *testing.T) {
	e := startServer(t, testConfig(), nil)
	c := e.dial()
	r := c.call("mining.subscribe", "x")
	var res []json.RawMessage
	json.Unmarshal(r.Result, &res)
	var subs [][2]string
	json.Unmarshal(res[0], &subs)
	if len(subs) != 2 || subs[0][0] != "mining.set_difficulty" || subs[0][1] != subs[1][1] {
		t.Fatalf("subscriptions %s", res[0])
	}
	// A second subscribe on the same connection keeps the session and
	// ignores any offered id.
	r2 := c.call("mining.subscribe", "x", "07"+strings.Repeat("0", 14))
	if string(r2.Result) != string(r.Result) {
		t.Fatalf("second subscribe %s, first %s", r2.Result, r.Result)
	}
}

// TestMinersimResumesSession: the simulator, like firmware, offers its
// session id when it reconnects after a dropped connection and gets its
// extranonce1 back; with NoSessionResume it gets a fresh one.
func TestMinersimResumesSession(t *testing.T) {
	for _, noResume := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoSessionResume=%v", noResume), func(t *testing.T) {
			e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
			g, err := minersim.NewGrinder(1, 1, 10*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			m, err := minersim.NewMiner(minersim.MinerConfig{Addr: e.addr, User: "acct.sim", HashesPerSecond: 200,
				NoSessionResume: noResume, ReconnectDelay: time.Millisecond}, g, nil, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { _ = g.Run(ctx) })
			wg.Go(func() { _ = m.Run(ctx) })
			t.Cleanup(func() { cancel(); wg.Wait() })

			eventually(t, func() bool { return m.Accepted() > 0 }, "a first accepted share")
			// A few more jobs, and shares on the last one, before the drop:
			// after the resume the miner gets that job again and must not
			// grind (and submit) the same shares a second time.
			for range 2 {
				e.s.refreshJob()
			}
			last := e.sink.lastJob()
			eventually(t, func() bool {
				e.sink.mu.Lock()
				defer e.sink.mu.Unlock()
				return e.sink.shares[len(e.sink.shares)-1].Job == last
			}, "a share on the last job")
			first := e.s.Connections()[0]
			// The network drops the connection (the server sees a failed write).
			e.s.mu.Lock()
			c := e.s.conns[first.ID]
			e.s.mu.Unlock()
			c.close(ClosedWriteError)
			var second ConnInfo
			eventually(t, func() bool {
				cs := e.s.Connections()
				if len(cs) != 1 || cs[0].ID == first.ID || len(cs[0].Workers) == 0 {
					return false
				}
				second = cs[0]
				return true
			}, "the miner back")
			resumed, refused := m.Resumes()
			if noResume {
				if second.Extranonce1 == first.Extranonce1 || second.Resumed || resumed+refused != 0 {
					t.Fatalf("without resume: extranonce1 %s -> %s, resumed %v, counted %d/%d",
						first.Extranonce1, second.Extranonce1, second.Resumed, resumed, refused)
				}
			} else if second.Extranonce1 != first.Extranonce1 || !second.Resumed || resumed != 1 || refused != 0 {
				t.Fatalf("extranonce1 %s -> %s, resumed %v, counted %d resumed %d refused",
					first.Extranonce1, second.Extranonce1, second.Resumed, resumed, refused)
			}
			before := m.Accepted()
			eventually(t, func() bool { return m.Accepted() > before+20 }, "shares accepted after the reconnect")
			if r := m.Stats().Snapshot(time.Second); r.GoodRejected != 0 {
				t.Fatalf("honest shares rejected: %v", r.RejectsByReason)
			}
		})
	}
}
