package minersim

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/stratum/work"
)

// autoPool answers any number of miners on its own: handshake, one job at
// diffEasy, and a verdict on every submit computed with work.Hasher. It
// records what it accepted so tests can compare it with what the client
// reported.
type autoPool struct {
	t   *testing.T
	ln  net.Listener
	wg  sync.WaitGroup
	mu  sync.Mutex
	acc map[string]bool // worker/en2/ntime/nonce/vbits of accepted shares
	cs  []net.Conn
}

func newAutoPool(t *testing.T) *autoPool {
	p := &autoPool{t: t, ln: listen(t), acc: map[string]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		p.ln.Close()
		p.mu.Lock()
		for _, c := range p.cs {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *autoPool) accept() {
	for n := uint32(1); ; n++ {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.cs = append(p.cs, c)
		p.mu.Unlock()
		p.wg.Go(func() { p.serve(c, n) })
	}
}

func shareKey(worker string, en2 []byte, ntime, nonce, vbits uint32) string {
	return fmt.Sprintf("%s/%x/%08x/%08x/%08x", worker, en2, ntime, nonce, vbits)
}

func (p *autoPool) serve(c net.Conn, n uint32) {
	defer c.Close()
	en1 := binary.BigEndian.AppendUint32(nil, n)
	notify := testNotify("a1", true)
	job, err := work.ParseNotify(notify, 4, 4)
	if err != nil {
		p.t.Error(err)
		return
	}
	target := work.TargetFromDiff(diffEasy)
	var h work.Hasher
	seen := map[string]bool{}
	r := bufio.NewReader(c)
	w := func(format string, args ...any) { fmt.Fprintf(c, format+"\n", args...) }
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		var req struct {
			ID     json.RawMessage
			Method string
			Params []json.RawMessage
		}
		if err := json.Unmarshal([]byte(line), &req); err != nil {
			p.t.Errorf("auto pool: %q: %v", line, err)
			return
		}
		switch req.Method {
		case "mining.configure":
			w(`{"id":%s,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}`, req.ID)
		case "mining.subscribe":
			w(`{"id":%s,"result":[[],"%x",4],"error":null}`, req.ID, en1)
		case "mining.authorize":
			w(`{"id":%s,"result":true,"error":null}`, req.ID)
			w(`{"id":null,"method":"mining.set_difficulty","params":[%v]}`, diffEasy)
			b, _ := json.Marshal(notify)
			w(`{"id":null,"method":"mining.notify","params":%s}`, b)
		case "mining.submit":
			var s [6]string
			for i := range req.Params {
				json.Unmarshal(req.Params[i], &s[i])
			}
			en2, _ := hex.DecodeString(s[2])
			var ntime, nonce, vbits uint32
			fmt.Sscanf(s[3], "%08x", &ntime)
			fmt.Sscanf(s[4], "%08x", &nonce)
			fmt.Sscanf(s[5], "%08x", &vbits)
			key := shareKey(s[0], en2, ntime, nonce, vbits)
			hash := h.HeaderHash(job, en1, en2, ntime, nonce, work.MergeVersion(job.Version, vbits, 0x1fffe000))
			switch {
			case s[1] != "a1" || len(en2) != 4 || seen[key]:
				w(`{"id":%s,"result":null,"error":[21,"Stale",null]}`, req.ID)
			case !target.Meets(&hash):
				w(`{"id":%s,"result":null,"error":[23,"Low difficulty share",null]}`, req.ID)
			default:
				seen[key] = true
				p.mu.Lock()
				p.acc[key] = true
				p.mu.Unlock()
				w(`{"id":%s,"result":true,"error":null}`, req.ID)
			}
		default:
			w(`{"id":%s,"result":true,"error":null}`, req.ID)
		}
	}
}

func TestFleetReportsWhatThePoolAccepted(t *testing.T) {
	pool := newAutoPool(t)
	var mu sync.Mutex
	told := map[string]bool{}
	f, err := NewFleet(FleetConfig{
		Miner: MinerConfig{
			Addr: pool.ln.Addr().String(), User: "acct.sim", Fast: true,
			OnAccepted: func(s AcceptedShare) {
				mu.Lock()
				told[shareKey(s.Worker, s.Extranonce2, s.NTime, s.Nonce, s.VersionBits)] = true
				mu.Unlock()
			},
		},
		Groups: []GroupSpec{
			{Name: "a", Count: 3, Model: AntminerS19},
			{Name: "b", Count: 1, Model: BitaxeGamma},
		},
		Shares:  60,
		Workers: 2,
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	f.Miners()[3].SetCurtailed(true) // group b never hashes
	rep, err := f.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted < 60 || rep.Miners != 4 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Rejected != 0 || rep.GoodRejected != 0 {
		t.Errorf("rejects: %v", rep.RejectsByReason)
	}
	if rep.Latency.Count != rep.Accepted+rep.Rejected {
		t.Errorf("latency samples %d, answers %d", rep.Latency.Count, rep.Accepted+rep.Rejected)
	}
	if rep.Accepted+rep.Rejected+rep.Lost+rep.Timeouts != rep.Submitted {
		t.Errorf("submitted %d != accepted %d + rejected %d + lost %d + timeouts %d",
			rep.Submitted, rep.Accepted, rep.Rejected, rep.Lost, rep.Timeouts)
	}
	mu.Lock()
	defer mu.Unlock()
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if uint64(len(told)) != rep.Accepted {
		t.Errorf("callback saw %d distinct shares, report says %d accepted", len(told), rep.Accepted)
	}
	for k := range told {
		if !pool.acc[k] {
			t.Errorf("client reported %s accepted, the pool did not accept it", k)
		}
	}
	if missing := uint64(len(pool.acc) - len(told)); missing > rep.Lost {
		t.Errorf("pool accepted %d shares the client never heard about, only %d lost", missing, rep.Lost)
	}
	if st := f.Miners()[3].Status(); st.Hashes != 0 || st.Submitted != 0 || st.State != StateCurtailed {
		t.Errorf("curtailed miner worked: %+v", st)
	}
	for _, m := range f.Miners()[:3] {
		if !strings.HasPrefix(m.Status().Worker, "acct.sim") {
			t.Errorf("worker %q", m.Status().Worker)
		}
	}
	var sb strings.Builder
	if err := rep.WriteText(&sb); err != nil || !strings.Contains(sb.String(), "accepted") {
		t.Errorf("text report %q %v", sb.String(), err)
	}
}

func TestControlAPI(t *testing.T) {
	f, err := NewFleet(FleetConfig{
		Miner: MinerConfig{Addr: "127.0.0.1:1", User: "x.y"},
		Groups: []GroupSpec{
			{Name: "hot", Count: 2, Model: AntminerS19},
			{Name: "cool", Count: 1, Model: AntminerS21},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.Handler()) // 127.0.0.1
	defer srv.Close()
	call := func(method, path string, wantCode int, out any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != wantCode {
			t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, body, wantCode)
		}
		if out != nil {
			if err := json.Unmarshal(body, out); err != nil {
				t.Fatalf("%s %s: %v in %s", method, path, err, body)
			}
		}
	}
	var miners []MinerStatus
	call("GET", "/api/v1/miners", 200, &miners)
	if len(miners) != 3 || miners[0].State != StateMining || miners[0].TerahashPerSecond != 95 || miners[2].Model != "antminer-s21" {
		t.Fatalf("miners %+v", miners)
	}
	var st MinerStatus
	call("POST", "/api/v1/miners/1/curtail", 200, &st)
	if st.State != StateCurtailed || st.TerahashPerSecond != 0 || st.PowerWatts != AntminerS19.IdleWatts {
		t.Errorf("curtailed %+v", st)
	}
	var g GroupStatus
	call("GET", "/api/v1/groups/hot", 200, &g)
	if g.Mining != 1 || g.Curtailed != 1 || g.PowerWatts != AntminerS19.MiningWatts()+AntminerS19.IdleWatts {
		t.Errorf("group %+v", g)
	}
	call("POST", "/api/v1/miners/1/resume", 200, &st)
	if st.State != StateMining {
		t.Errorf("resumed %+v", st)
	}
	call("POST", "/api/v1/groups/cool/curtail", 200, &g)
	if g.Curtailed != 1 || g.TerahashPerSecond != 0 {
		t.Errorf("group curtailed %+v", g)
	}
	var groups []GroupStatus
	call("GET", "/api/v1/groups", 200, &groups)
	if len(groups) != 2 || groups[0].Name != "hot" || groups[1].Curtailed != 1 {
		t.Errorf("groups %+v", groups)
	}
	call("GET", "/api/v1/miners/3", 404, nil)
	call("GET", "/api/v1/miners/x", 400, nil)
	call("POST", "/api/v1/groups/nope/resume", 404, nil)
	call("DELETE", "/api/v1/miners/0", 405, nil)
}

func TestFleetValidation(t *testing.T) {
	base := MinerConfig{Addr: "127.0.0.1:1", User: "x.y"}
	for name, cfg := range map[string]FleetConfig{
		"too many":   {Miner: base, Miners: MaxMiners + 1},
		"none":       {Miner: base},
		"dup group":  {Miner: base, Groups: []GroupSpec{{Name: "a", Count: 1}, {Name: "a", Count: 1}}},
		"bad ramp":   {Miner: base, Miners: 1, RampPerSecond: -1},
		"bad miner":  {Miner: MinerConfig{Addr: "x", User: "u"}, Miners: 1},
		"empty name": {Miner: base, Groups: []GroupSpec{{Count: 1}}},
		"bad warmup": {Miner: base, Miners: 1, Warmup: -time.Second},
	} {
		if _, err := NewFleet(cfg, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestFleetSteadyWindow: with a warm-up, the steady part of the report
// counts only answers after it, consistently with the whole-run counters.
func TestFleetSteadyWindow(t *testing.T) {
	pool := newAutoPool(t)
	f, err := NewFleet(FleetConfig{
		Miner:    MinerConfig{Addr: pool.ln.Addr().String(), User: "acct.sim", Fast: true},
		Miners:   2,
		Duration: 400 * time.Millisecond,
		Warmup:   100 * time.Millisecond,
		Workers:  1,
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st := rep.Steady
	if st == nil {
		t.Fatal("no steady report after a warm-up shorter than the run")
	}
	if st.Accepted == 0 || st.Accepted > rep.Accepted || st.Rejected > rep.Rejected {
		t.Fatalf("steady %+v against whole run accepted %d rejected %d", st, rep.Accepted, rep.Rejected)
	}
	// Every answer is counted with its latency in one step, and the report
	// is built after the miners stopped: the counts match exactly.
	if answers := rep.Accepted + rep.Rejected; rep.Latency.Count != answers {
		t.Errorf("latency samples %d, answers %d", rep.Latency.Count, answers)
	}
	if answers := st.Accepted + st.Rejected; st.Latency.Count != answers {
		t.Errorf("steady latency samples %d, steady answers %d", st.Latency.Count, answers)
	}
	if st.Elapsed <= 0 || st.Elapsed >= rep.Elapsed {
		t.Errorf("steady elapsed %v, run %v", st.Elapsed, rep.Elapsed)
	}
	var sb strings.Builder
	if err := rep.WriteText(&sb); err != nil || !strings.Contains(sb.String(), "after warm-up") {
		t.Errorf("text report lacks the steady part: %q %v", sb.String(), err)
	}

	noWarm, err := NewFleet(FleetConfig{Miner: MinerConfig{Addr: pool.ln.Addr().String(), User: "acct.sim", Fast: true},
		Miners: 1, Duration: 50 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep, _ := noWarm.Run(context.Background()); rep.Steady != nil {
		t.Errorf("steady report without a warm-up: %+v", rep.Steady)
	}
}
