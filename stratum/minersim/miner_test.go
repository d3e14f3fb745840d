package minersim

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/internal/leakcheck"
	"github.com/wattpool/wattpool/stratum/work"
)

// TestMain fails the run when goroutines outlive the tests.
func TestMain(m *testing.M) { leakcheck.Main(m) }

// Share difficulties of the tests: diff 2^-28 makes one hash in 16 a
// share, diff 2^-26 one in 64, so grinding is quick but most hashes miss.
var (
	diffEasy = math.Ldexp(1, -28)
	diffHard = math.Ldexp(1, -26)
)

func TestHandshakeSequence(t *testing.T) {
	ln := listen(t)
	startMiner(t, MinerConfig{
		Addr: ln.Addr().String(), User: "alice.rig0", Password: "d=8",
		MinimumDifficulty: 64, SuggestDifficulty: 512,
	})
	f := accept(t, ln)

	var ids []uint64
	id := func(r wireReq) {
		var v uint64
		if err := json.Unmarshal(r.ID, &v); err != nil {
			t.Fatalf("id %s is not numeric: %s", r.ID, r.raw)
		}
		ids = append(ids, v)
	}

	r := f.expect("mining.configure")
	id(r)
	var exts []string
	var params map[string]any
	if err := json.Unmarshal(r.Params[0], &exts); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(r.Params[1], &params); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(exts) != "[version-rolling minimum-difficulty]" {
		t.Errorf("extensions %v", exts)
	}
	want := map[string]any{"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2.0, "minimum-difficulty.value": 64.0}
	if fmt.Sprint(params) != fmt.Sprint(want) {
		t.Errorf("configure params %v, want %v", params, want)
	}
	f.reply(r, `{"version-rolling":true,"version-rolling.mask":"00ffe000","minimum-difficulty":true}`)

	r = f.expect("mining.subscribe")
	id(r)
	if ua := r.str(t, 0); ua != DefaultUserAgent {
		t.Errorf("user agent %q", ua)
	}
	f.reply(r, `[[["mining.notify","1"]],"08000002",4]`)

	r = f.expect("mining.extranonce.subscribe")
	id(r)
	if len(r.Params) != 0 {
		t.Errorf("extranonce.subscribe params %s", r.raw)
	}
	r = f.expect("mining.authorize")
	id(r)
	if r.str(t, 0) != "alice.rig0" || r.str(t, 1) != "d=8" {
		t.Errorf("authorize %s", r.raw)
	}
	r = f.expect("mining.suggest_difficulty")
	id(r)
	var sd []float64
	if err := json.Unmarshal([]byte(`[`+string(r.Params[0])+`]`), &sd); err != nil || sd[0] != 512 {
		t.Errorf("suggest_difficulty %s", r.raw)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Errorf("ids not increasing: %v", ids)
		}
	}
}

// TestSharesMeetTargetAndDifficultyAppliesToLaterJobs grinds with version
// rolling, recomputes every submitted share like a pool, and checks that a
// set_difficulty changes only jobs received after it.
func TestSharesMeetTargetAndDifficultyAppliesToLaterJobs(t *testing.T) {
	ln := listen(t)
	var accepted []AcceptedShare
	acceptedCh := make(chan AcceptedShare, 1000)
	m := startMiner(t, MinerConfig{
		Addr: ln.Addr().String(), User: "alice.rig0", Fast: true,
		NonceSpan:  3, // roll version bits every 3 nonces
		OnAccepted: func(s AcceptedShare) { acceptedCh <- s },
	})
	f := accept(t, ln)
	const mask = 0x00ffe000
	en1, _ := hex.DecodeString("08000002")
	f.handshake("00ffe000", "08000002", 4)
	f.send(`{"id":null,"method":"mining.set_difficulty","params":[%v]}`, diffEasy)
	j1 := testNotify("j1", true)
	f.notify(j1)

	check := func(s submitted, n work.Notify, diff float64) chainhash.Hash {
		t.Helper()
		if !s.hasVBits {
			t.Fatalf("5-parameter submit with version rolling negotiated: %s", s.req.raw)
		}
		if s.vbits&^mask != 0 {
			t.Fatalf("version bits %08x outside mask %08x", s.vbits, uint32(mask))
		}
		if len(s.en2) != 4 || s.worker != "alice.rig0" || s.ntime != 0x6543210f {
			t.Fatalf("submit fields: %s", s.req.raw)
		}
		h, _ := hashOf(t, n, en1, s, mask)
		tgt := work.TargetFromDiff(diff)
		if !tgt.Meets(&h) {
			t.Fatalf("share %s does not meet difficulty %v", s.req.raw, diff)
		}
		return h
	}

	rolled := 0
	var last submitted
	for i := 0; i < 30; i++ {
		s := decodeSubmit(t, f.read())
		if s.jobID != "j1" {
			t.Fatalf("job %s", s.jobID)
		}
		check(s, j1, diffEasy)
		if s.vbits != 0 {
			rolled++
		}
		last = s
		if i < 29 {
			f.reply(s.req, "true")
		}
	}
	if rolled == 0 {
		t.Error("no share carried rolled version bits")
	}

	// The miner waits for the answer to its last submit (one in flight):
	// change the difficulty, prove it was read with a get_version round
	// trip, then let it continue on j1.
	f.send(`{"id":null,"method":"mining.set_difficulty","params":[%v]}`, diffHard)
	f.send(`{"id":77,"method":"client.get_version","params":[]}`)
	var ver struct {
		ID     uint64 `json:"id"`
		Result string `json:"result"`
	}
	line, err := f.r.ReadString('\n')
	if err != nil || json.Unmarshal([]byte(line), &ver) != nil || ver.ID != 77 || ver.Result != DefaultUserAgent {
		t.Fatalf("get_version answer %q: %v", line, err)
	}
	f.reply(last.req, "true")
	easyOnly := 0
	hardTarget := work.TargetFromDiff(diffHard)
	for i := 0; i < 30; i++ {
		s := decodeSubmit(t, f.read())
		h := check(s, j1, diffEasy)
		if !hardTarget.Meets(&h) {
			easyOnly++
		}
		f.reply(s.req, "true")
	}
	if easyOnly == 0 {
		t.Error("set_difficulty was applied to the job received before it")
	}

	j2 := testNotify("j2", true)
	f.notify(j2)
	for seen := 0; seen < 20; {
		s := decodeSubmit(t, f.read())
		f.reply(s.req, "true")
		if s.jobID == "j1" {
			continue // ground before j2 arrived
		}
		if s.jobID != "j2" {
			t.Fatalf("job %s", s.jobID)
		}
		check(s, j2, diffHard)
		seen++
	}
	for len(accepted) < 60 {
		accepted = append(accepted, <-acceptedCh)
	}
	for _, a := range accepted[:30] {
		if a.JobID != "j1" || a.Difficulty != diffEasy || hex.EncodeToString(a.Extranonce1) != "08000002" {
			t.Fatalf("accepted share %+v", a)
		}
		if a.Version != work.MergeVersion(0x20000000, a.VersionBits, mask) {
			t.Fatalf("accepted version %08x bits %08x", a.Version, a.VersionBits)
		}
	}
	if m.Stats().blocksFound.Load() == 0 {
		t.Error("no share met the regtest network target 207fffff (about half should)")
	}
}

func TestWithoutVersionRolling(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  MinerConfig
	}{
		{"disabled", MinerConfig{NoVersionRolling: true}},
		{"pool refuses configure", MinerConfig{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln := listen(t)
			cfg := tc.cfg
			cfg.Addr, cfg.User, cfg.Fast = ln.Addr().String(), "bob.w", true
			startMiner(t, cfg)
			f := accept(t, ln)
			f.handshake("", "0000abcd", 4)
			f.send(`{"id":null,"method":"mining.set_difficulty","params":[%v]}`, diffEasy)
			n := testNotify("j1", true)
			f.notify(n)
			for i := 0; i < 5; i++ {
				s := decodeSubmit(t, f.read())
				if s.hasVBits {
					t.Fatalf("6-parameter submit without version rolling: %s", s.req.raw)
				}
				en1, _ := hex.DecodeString("0000abcd")
				h, _ := hashOf(t, n, en1, s, 0)
				tgt := work.TargetFromDiff(diffEasy)
				if !tgt.Meets(&h) {
					t.Fatalf("share does not meet target")
				}
				f.reply(s.req, "true")
			}
		})
	}
}

func TestSetExtranonceAppliesToNextJob(t *testing.T) {
	ln := listen(t)
	startMiner(t, MinerConfig{Addr: ln.Addr().String(), User: "carol.w", Fast: true})
	f := accept(t, ln)
	f.handshake("1fffe000", "01020304", 4)
	f.send(`{"id":null,"method":"mining.set_difficulty","params":[%v]}`, diffEasy)
	// Same 8-byte extranonce space, split 5 + 3 now.
	f.send(`{"id":null,"method":"mining.set_extranonce","params":["0a0b0c0d0e",3]}`)
	n := testNotify("j9", true)
	f.notify(n)
	en1, _ := hex.DecodeString("0a0b0c0d0e")
	for i := 0; i < 5; i++ {
		s := decodeSubmit(t, f.read())
		if len(s.en2) != 3 {
			t.Fatalf("extranonce2 %x: want 3 bytes after set_extranonce", s.en2)
		}
		h, _ := hashOf(t, n, en1, s, 0x1fffe000)
		tgt := work.TargetFromDiff(diffEasy)
		if !tgt.Meets(&h) {
			t.Fatal("share does not meet target with the new extranonce1")
		}
		f.reply(s.req, "true")
	}
}

func TestReconnect(t *testing.T) {
	ln1, ln2 := listen(t), listen(t)
	m := startMiner(t, MinerConfig{Addr: ln1.Addr().String(), User: "dave.w", ReconnectDelay: time.Millisecond})

	// The pool sends the miner elsewhere.
	f := accept(t, ln1)
	f.handshake("1fffe000", "00000001", 4)
	port := ln2.Addr().(*net.TCPAddr).Port
	f.send(`{"id":null,"method":"client.reconnect","params":["127.0.0.1",%d,0]}`, port)
	f2 := accept(t, ln2)
	f2.handshake("1fffe000", "00000002", 4)

	// The connection drops: the miner comes back to the same address.
	f2.c.Close()
	f3 := accept(t, ln2)
	f3.handshake("1fffe000", "00000003", 4)
	if got := m.Stats().reconnectRequests.Load(); got != 1 {
		t.Errorf("reconnect requests %d, want 1", got)
	}
	if got := m.Stats().connects.Load(); got != 3 {
		t.Errorf("connects %d, want 3", got)
	}
}

func TestBadShares(t *testing.T) {
	ln := listen(t)
	m := startMiner(t, MinerConfig{Addr: ln.Addr().String(), User: "eve.w", Fast: true, MaxInFlight: 4, BadFraction: 0.5})
	f := accept(t, ln)
	const mask = 0x1fffe000
	f.handshake("1fffe000", "0badf00d", 4)
	en1, _ := hex.DecodeString("0badf00d")
	f.send(`{"id":null,"method":"mining.set_difficulty","params":[%v]}`, diffEasy)
	j0 := testNotify("j0", true)
	f.notify(j0)
	s := decodeSubmit(t, f.read())
	f.reply(s.req, "true")
	j1 := testNotify("j1", true) // invalidates j0
	f.notify(j1)

	seen := map[string]bool{}
	kinds := map[BadKind]int{}
	target := work.TargetFromDiff(diffEasy)
	for total := 0; total < 80; total++ {
		s := decodeSubmit(t, f.read())
		key := fmt.Sprint(s.req.Params)
		h, _ := hashOf(t, j1, en1, s, mask)
		h0, _ := hashOf(t, j0, en1, s, mask)
		switch {
		case s.jobID == "j0" && target.Meets(&h0) && !seen[key]:
			f.reply(s.req, "true") // ground before j1 arrived
		case s.jobID != "j1":
			kinds[BadStale]++
			f.send(`{"id":%s,"result":null,"error":[21,"Stale job",null]}`, s.req.ID)
		case seen[key]:
			kinds[BadDuplicate]++
			f.send(`{"id":%s,"result":null,"error":[22,"Duplicate share",null]}`, s.req.ID)
		case s.ntime != 0x6543210f:
			if s.ntime != 0x6543210f+badNTimeOffset {
				t.Fatalf("ntime %08x", s.ntime)
			}
			kinds[BadNTime]++
			f.send(`{"id":%s,"result":null,"error":[20,"Invalid ntime",null]}`, s.req.ID)
		case !target.Meets(&h):
			kinds[BadLowDiff]++
			f.send(`{"id":%s,"result":false,"error":null,"reject-reason":"Above target"}`, s.req.ID)
		default:
			if s.vbits&^mask != 0 {
				t.Fatalf("version bits %08x outside the mask", s.vbits)
			}
			f.reply(s.req, "true")
		}
		seen[key] = true
	}
	for k := BadLowDiff; k < numBadKinds; k++ {
		if kinds[k] == 0 {
			t.Errorf("no %s share among 80 submits with bad fraction 0.5: %v", k, kinds)
		}
	}
	// Stop reading: the miner has at most 4 unanswered submits now, and
	// every answer we sent has been read once the counters settle.
	f.c.Close()
	waitFor(t, func() bool { return !m.connected.Load() })
	st := m.Stats().Snapshot(time.Second)
	if st.GoodRejected != 0 || st.BadAccepted != 0 {
		t.Errorf("good rejected %d, bad accepted %d", st.GoodRejected, st.BadAccepted)
	}
	for _, key := range []string{"21 Stale job", "22 Duplicate share", "20 Invalid ntime", "20 Above target"} {
		if st.RejectsByReason[key] == 0 {
			t.Errorf("no reject counted under %q: %v", key, st.RejectsByReason)
		}
	}
	if st.Accepted+st.Rejected+st.Lost+st.Timeouts != st.Submitted {
		t.Errorf("accepted %d + rejected %d + lost %d + timeouts %d != submitted %d",
			st.Accepted, st.Rejected, st.Lost, st.Timeouts, st.Submitted)
	}
}

// waitFor polls a condition the test cannot otherwise synchronize on (a
// goroutine finishing); it fails only after the safety deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(safetyDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSessionResumeOffered: on reconnect the miner offers the subscription
// id of the last subscribe answer (unless NoSessionResume), and counts a
// resume when the pool gives back the same extranonce1 and a refusal when
// it does not.
func TestSessionResumeOffered(t *testing.T) {
	for _, noResume := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoSessionResume=%v", noResume), func(t *testing.T) {
			ln := listen(t)
			m := startMiner(t, MinerConfig{Addr: ln.Addr().String(), User: "erin.w", NoVersionRolling: true,
				NoSessionResume: noResume, ReconnectDelay: time.Millisecond})
			steps := []struct {
				en1, subID string
				offer      string // session id the miner must offer
				resumed    uint64
				refused    uint64
			}{
				{"07000001", "07000001a1b2c3d4", "", 0, 0},
				{"07000001", "07000001a1b2c3d4", "07000001a1b2c3d4", 1, 0}, // resumed
				{"07000009", "07000009e5f60718", "07000001a1b2c3d4", 1, 1}, // refused
				{"0700000a", "0700000a00000000", "07000009e5f60718", 1, 2},
			}
			for i, st := range steps {
				f := accept(t, ln)
				r := f.expect("mining.subscribe")
				offer := ""
				if len(r.Params) > 1 {
					offer = r.str(t, 1)
				}
				want := st.offer
				if noResume {
					want = ""
				}
				if offer != want {
					t.Fatalf("connection %d offered session %q, want %q: %s", i, offer, want, r.raw)
				}
				f.reply(r, fmt.Sprintf(`[[["mining.set_difficulty","x"],["mining.notify",%q]],%q,4]`, st.subID, st.en1))
				f.expect("mining.extranonce.subscribe")
				// The outcome is counted before authorize is sent.
				f.expect("mining.authorize")
				resumed, refused := m.Resumes()
				if noResume {
					st.resumed, st.refused = 0, 0
				}
				if resumed != st.resumed || refused != st.refused {
					t.Fatalf("connection %d: %d resumed, %d refused; want %d, %d", i, resumed, refused, st.resumed, st.refused)
				}
				f.c.Close()
			}
			rep := m.Stats().Snapshot(time.Second)
			if !noResume && (rep.Resumed != 1 || rep.ResumeRefused != 2) {
				t.Fatalf("report: %d resumed, %d refused", rep.Resumed, rep.ResumeRefused)
			}
		})
	}
}
