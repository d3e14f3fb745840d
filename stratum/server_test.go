package stratum

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wattpool/wattpool/stratum/work"
)

func TestHandshakeAndAcceptedShare(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 5, 1))
	c := e.dial()
	n := c.handshake("acct.rig1")
	if len(c.en1) != 4 || c.en1[0] != 7 {
		t.Fatalf("extranonce1 %x does not start with the instance id 07", c.en1)
	}
	var clean bool
	json.Unmarshal(n.Params[8], &clean)
	if !clean {
		t.Errorf("first notify has clean_jobs=false")
	}
	// The notify on the wire describes the recorded job exactly.
	var nf work.Notify
	if err := json.Unmarshal([]byte(`[`+joinRaw(n.Params)+`]`), &nf); err != nil {
		t.Fatal(err)
	}
	parsed, err := work.ParseNotify(nf, 4, 4)
	if err != nil {
		t.Fatal(err)
	}
	job := e.sink.lastJob()
	en2 := []byte{0, 0, 0, 9}
	var h work.Hasher
	want := h.HeaderHash(job, c.en1, en2, job.NTime, 42, job.Version)
	if got := h.HeaderHash(parsed, c.en1, en2, job.NTime, 42, job.Version); got != want {
		t.Fatalf("miner-side hash %s != server-side %s", got, want)
	}
	r := c.call("mining.submit", "acct.rig1", job.ID, "00000009", hex32(job.NTime), hex32(42))
	if string(r.Result) != "true" || string(r.Error) != "null" {
		t.Fatalf("submit: %s", r.raw)
	}
	e.sink.mu.Lock()
	sh := e.sink.shares[0]
	e.sink.mu.Unlock()
	if sh.Account != "acct" || sh.Worker != "rig1" || sh.Hash != want || sh.Nonce != 42 || sh.Job != job ||
		string(sh.Extranonce1) != string(c.en1) || string(sh.Extranonce2) != string(en2) || sh.Difficulty != tinyDiff ||
		sh.IsBlock || sh.Instance != "test" || !sh.Time.Equal(testNow) {
		t.Fatalf("recorded share %+v", sh)
	}
}

func joinRaw(ps []json.RawMessage) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ",")
}

// TestSubmitRules drives every acceptance and rejection rule over TCP.
func TestSubmitRules(t *testing.T) {
	type ctx struct {
		e   *env
		c   *client
		job *work.Job
	}
	// submit builds "mining.submit" params; fields left empty get valid values.
	submit := func(x ctx, worker, jobID, en2, ntime, nonce string, extra ...string) string {
		if worker == "" {
			worker = "acct.rig1"
		}
		if jobID == "" {
			jobID = x.job.ID
		}
		if en2 == "" {
			en2 = "00000001"
		}
		if ntime == "" {
			ntime = hex32(x.job.NTime)
		}
		if nonce == "" {
			nonce = "0000002a"
		}
		p := []string{worker, jobID, en2, ntime, nonce}
		p = append(p, extra...)
		b, _ := json.Marshal(p)
		return fmt.Sprintf(`{"id":99,"method":"mining.submit","params":%s}`, b)
	}
	tests := []struct {
		name    string
		cfg     func(*Config)
		skipHS  bool // no handshake
		prepare func(x ctx) string
		code    int
		reason  RejectReason
	}{
		{name: "accepted", prepare: func(x ctx) string { return submit(x, "", "", "", "", "") }},
		{name: "accepted after refresh (same block)", prepare: func(x ctx) string {
			x.e.s.refreshJob()
			x.c.next("mining.notify")
			return submit(x, "", "", "", "", "")
		}},
		{name: "unknown job", code: 21, reason: RejectStale, prepare: func(x ctx) string { return submit(x, "", "ffff", "", "", "") }},
		{name: "job of previous block", code: 21, reason: RejectStale, prepare: func(x ctx) string {
			x.e.newBlock(makeTemplate(101, mainnetBits, 5, 2))
			x.c.next("mining.notify")
			return submit(x, "", "", "", "", "")
		}},
		{name: "duplicate", code: 22, reason: RejectDuplicate, prepare: func(x ctx) string {
			s := submit(x, "", "", "", "", "")
			x.c.send(strings.Replace(s, `"id":99`, `"id":98`, 1))
			if r := x.c.replyTo("98"); string(r.Result) != "true" {
				x.e.t.Fatalf("first submit: %s", r.raw)
			}
			return s
		}},
		{name: "same share other version bits is not duplicate", cfg: nil, prepare: func(x ctx) string {
			x.c.call("mining.configure", []string{"version-rolling"}, map[string]any{"version-rolling.mask": "1fffe000"})
			s := submit(x, "", "", "", "", "", "00002000")
			x.c.send(strings.Replace(s, `"id":99`, `"id":98`, 1))
			if r := x.c.replyTo("98"); string(r.Result) != "true" {
				x.e.t.Fatalf("first submit: %s", r.raw)
			}
			return submit(x, "", "", "", "", "", "00004000")
		}},
		{name: "low difficulty", code: 23, reason: RejectLowDifficulty,
			cfg:     func(c *Config) { c.Listeners[0].StartDiff = hugeDiff },
			prepare: func(x ctx) string { return submit(x, "", "", "", "", "") }},
		{name: "unauthorized worker", code: 24, reason: RejectUnauthorized, prepare: func(x ctx) string {
			return submit(x, "acct.other", "", "", "", "")
		}},
		{name: "not subscribed", code: 25, reason: RejectNotSubscribed, skipHS: true, prepare: func(x ctx) string {
			return submit(x, "", "", "", "", "")
		}},
		{name: "authorized but not subscribed", code: 25, reason: RejectNotSubscribed, skipHS: true, prepare: func(x ctx) string {
			x.c.call("mining.authorize", "acct.rig1", "x")
			return submit(x, "", "", "", "", "")
		}},
		{name: "extranonce2 too short", code: 20, reason: RejectMalformed, prepare: func(x ctx) string { return submit(x, "", "", "000001", "", "") }},
		{name: "extranonce2 too long", code: 20, reason: RejectMalformed, prepare: func(x ctx) string { return submit(x, "", "", "0000000001", "", "") }},
		{name: "extranonce2 not hex", code: 20, reason: RejectMalformed, prepare: func(x ctx) string { return submit(x, "", "", "0000000g", "", "") }},
		{name: "ntime not hex", code: 20, reason: RejectMalformed, prepare: func(x ctx) string { return submit(x, "", "", "", "zz", "") }},
		{name: "ntime before mintime", code: 20, reason: RejectMalformed, prepare: func(x ctx) string {
			return submit(x, "", "", "", hex32(uint32(x.job.Template.MinTime-1)), "")
		}},
		{name: "ntime at mintime", prepare: func(x ctx) string { return submit(x, "", "", "", hex32(uint32(x.job.Template.MinTime)), "") }},
		{name: "ntime 2h ahead", prepare: func(x ctx) string { return submit(x, "", "", "", hex32(uint32(testNow.Unix()+7200)), "") }},
		{name: "ntime beyond 2h", code: 20, reason: RejectMalformed, prepare: func(x ctx) string {
			return submit(x, "", "", "", hex32(uint32(testNow.Unix()+7201)), "")
		}},
		{name: "nonce short", code: 20, reason: RejectMalformed, prepare: func(x ctx) string { return submit(x, "", "", "", "", "2a") }},
		{name: "version bits without negotiation", code: 20, reason: RejectMalformed, prepare: func(x ctx) string {
			return submit(x, "", "", "", "", "", "00002000")
		}},
		{name: "zero version bits without negotiation", prepare: func(x ctx) string { return submit(x, "", "", "", "", "", "00000000") }},
		{name: "version bits outside mask", code: 20, reason: RejectMalformed, prepare: func(x ctx) string {
			x.c.call("mining.configure", []string{"version-rolling"}, map[string]any{"version-rolling.mask": "00ffe000"})
			return submit(x, "", "", "", "", "", "10000000")
		}},
		{name: "version bits inside mask", prepare: func(x ctx) string {
			x.c.call("mining.configure", []string{"version-rolling"}, map[string]any{"version-rolling.mask": "ffffffff"})
			return submit(x, "", "", "", "", "", "1fffe000")
		}},
		{name: "four params", code: 20, reason: RejectMalformed, prepare: func(x ctx) string {
			return fmt.Sprintf(`{"id":99,"method":"mining.submit","params":["acct.rig1",%q,"00000001","%s"]}`, x.job.ID, hex32(x.job.NTime))
		}},
		{name: "seven params", code: 20, reason: RejectMalformed, prepare: func(x ctx) string {
			return submit(x, "", "", "", "", "", "00000000", "00000000")
		}},
		{name: "number where hex belongs", code: 20, reason: RejectMalformed, prepare: func(x ctx) string {
			return fmt.Sprintf(`{"id":99,"method":"mining.submit","params":["acct.rig1",%q,"00000001",%d,"0000002a"]}`, x.job.ID, x.job.NTime)
		}},
		{name: "params not an array", code: 20, reason: RejectMalformed, prepare: func(x ctx) string {
			return `{"id":99,"method":"mining.submit","params":{"worker":"acct.rig1"}}`
		}},
		{name: "sink failure is not recorded", code: 20, reason: RejectNotRecorded, prepare: func(x ctx) string {
			x.e.sink.mu.Lock()
			x.e.sink.shareErr = errors.New("database down")
			x.e.sink.mu.Unlock()
			return submit(x, "", "", "", "", "")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			e := startServer(t, cfg, makeTemplate(100, mainnetBits, 5, 1))
			c := e.dial()
			if !tc.skipHS {
				c.handshake("acct.rig1")
			}
			x := ctx{e: e, c: c, job: e.sink.lastJob()}
			line := tc.prepare(x)
			_, sharesBefore, _, rejectsBefore := e.sink.counts()
			c.send(line)
			r := c.replyTo("99")
			if got := errCode(t, r); got != tc.code {
				t.Fatalf("code %d, want %d: %s", got, tc.code, r.raw)
			}
			_, shares, _, rejects := e.sink.counts()
			if tc.code == 0 {
				if string(r.Result) != "true" || shares != sharesBefore+1 {
					t.Fatalf("accepted share: result %s, shares %d->%d", r.Result, sharesBefore, shares)
				}
				return
			}
			if shares != sharesBefore || rejects != rejectsBefore+1 {
				t.Fatalf("rejected share: shares %d->%d rejects %d->%d", sharesBefore, shares, rejectsBefore, rejects)
			}
			e.sink.mu.Lock()
			got := e.sink.rejects[len(e.sink.rejects)-1].Reason
			e.sink.mu.Unlock()
			if got != tc.reason {
				t.Fatalf("reject reason %v, want %v", got, tc.reason)
			}
			if v := counterValue(e.s.metrics.shares.WithLabelValues("main", "rejected", tc.reason.String())); v != 1 {
				t.Errorf("rejected{reason=%s} = %v, want 1", tc.reason, v)
			}
			// The connection survives every share reject.
			if p := c.call("mining.extranonce.subscribe"); string(p.Result) != "true" {
				t.Fatalf("connection unusable after reject: %s", p.raw)
			}
		})
	}
}

// TestBlockFound checks that a share meeting the network target is
// assembled, submitted and recorded (block and share in one RecordBlock)
// before the miner hears "true".
func TestBlockFound(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, regtestBits, 0, 1))
	c := e.dial()
	c.handshake("acct.rig1")
	job := e.sink.lastJob()
	en2 := []byte{0, 0, 0, 1}
	// A non-block share first: must not be submitted.
	nonce := grind(t, job, c.en1, en2, job.NTime, job.Version, func(h *chainhash.Hash) bool { return !job.NetworkTarget.Meets(h) })
	if r := c.call("mining.submit", "acct.rig1", job.ID, "00000001", hex32(job.NTime), hex32(nonce)); string(r.Result) != "true" {
		t.Fatalf("share: %s", r.raw)
	}
	if got := e.ev.list(); len(got) != 1 || got[0] != "record_share" {
		t.Fatalf("events after a plain share: %v", got)
	}
	nonce = grind(t, job, c.en1, en2, job.NTime, job.Version, func(h *chainhash.Hash) bool { return job.NetworkTarget.Meets(h) })
	r := c.call("mining.submit", "acct.rig1", job.ID, "00000001", hex32(job.NTime), hex32(nonce))
	if string(r.Result) != "true" {
		t.Fatalf("block share: %s", r.raw)
	}
	if got := strings.Join(e.ev.list(), ","); got != "record_share,submitblock,record_block" {
		t.Fatalf("events %s", got)
	}
	e.src.mu.Lock()
	blk := e.src.blocks[0]
	e.src.mu.Unlock()
	e.sink.mu.Lock()
	fb := e.sink.blocks[0]
	sh := e.sink.shares[1]
	e.sink.mu.Unlock()
	if blk.BlockHash() != sh.Hash || fb.Hash != sh.Hash || !sh.IsBlock || !fb.Accepted || fb.Height != 100 ||
		fb.CoinbaseValue != 50_0000_0000 || fb.SubmitResult != "accepted" {
		t.Fatalf("block %s share %s found %+v", blk.BlockHash(), sh.Hash, fb)
	}
	if st := e.s.Stats(); st.BlocksFound != 1 || st.SharesAccepted != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestVersionRollingMerge uses a job version with a bit inside the mask
// (BIP9 signalling on bit 13): the miner's bits replace the masked part.
func TestVersionRollingMerge(t *testing.T) {
	tmpl := makeTemplate(100, mainnetBits, 3, 1)
	tmpl.Version = 0x20002000
	e := startServer(t, testConfig(), tmpl)
	c := e.dial()
	r := c.call("mining.configure", []string{"version-rolling"}, map[string]any{"version-rolling.mask": "ffffffff", "version-rolling.min-bit-count": 2})
	if string(r.Result) != `{"version-rolling":true,"version-rolling.mask":"1fffe000"}` {
		t.Fatalf("configure: %s", r.raw)
	}
	c.handshake("acct.rig1")
	job := e.sink.lastJob()
	if r := c.call("mining.submit", "acct.rig1", job.ID, "00000001", hex32(job.NTime), "00000005", "00004000"); string(r.Result) != "true" {
		t.Fatalf("submit: %s", r.raw)
	}
	e.sink.mu.Lock()
	sh := e.sink.shares[0]
	e.sink.mu.Unlock()
	const want = 0x20004000 // bit 13 from the job cleared, bit 14 from the miner
	var h work.Hasher
	if sh.Version != want || sh.VersionBits != 0x4000 || sh.Hash != h.HeaderHash(job, c.en1, []byte{0, 0, 0, 1}, job.NTime, 5, want) {
		t.Fatalf("share version %08x bits %08x hash %s", sh.Version, sh.VersionBits, sh.Hash)
	}
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		name   string
		params string
		result string
		code   int
	}{
		{"mask intersect", `[["version-rolling"],{"version-rolling.mask":"00ffff00","version-rolling.min-bit-count":2}]`,
			`{"version-rolling":true,"version-rolling.mask":"00ffe000"}`, 0},
		{"min bits unsatisfiable", `[["version-rolling"],{"version-rolling.mask":"00006000","version-rolling.min-bit-count":3}]`,
			`{"version-rolling":false}`, 0},
		{"disjoint mask", `[["version-rolling"],{"version-rolling.mask":"000000ff"}]`, `{"version-rolling":false}`, 0},
		{"no mask given", `[["version-rolling"],{}]`, `{"version-rolling":true,"version-rolling.mask":"1fffe000"}`, 0},
		{"bad mask", `[["version-rolling"],{"version-rolling.mask":"xyz"}]`,
			`{"version-rolling":false,"version-rolling.error":"version-rolling.mask is not 8 hex digits"}`, 0},
		{"minimum difficulty", `[["minimum-difficulty"],{"minimum-difficulty.value":2048}]`, `{"minimum-difficulty":true}`, 0},
		{"minimum difficulty missing value", `[["minimum-difficulty"],{}]`, `{"minimum-difficulty":false}`, 0},
		{"subscribe extranonce", `[["subscribe-extranonce"],{}]`, `{"subscribe-extranonce":true}`, 0},
		{"unknown extension", `[["info","version-rolling"],{"version-rolling.mask":"ffffffff"}]`,
			`{"info":false,"version-rolling":true,"version-rolling.mask":"1fffe000"}`, 0},
		{"no options", `[["subscribe-extranonce"]]`, `{"subscribe-extranonce":true}`, 0},
		{"extensions not array", `["version-rolling",{}]`, "", 20},
		{"extension not string", `[[1],{}]`, "", 20},
	}
	e := startServer(t, testConfig(), nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial()
			c.send(`{"id":"cfg","method":"mining.configure","params":` + tc.params + `}`)
			r := c.replyTo(`"cfg"`)
			if code := errCode(t, r); code != tc.code {
				t.Fatalf("code %d: %s", code, r.raw)
			}
			if tc.code == 0 && string(r.Result) != tc.result {
				t.Fatalf("result %s, want %s", r.Result, tc.result)
			}
		})
	}
}

func TestExtranonceChange(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	c := e.dial()
	c.handshake("acct.rig1")
	id := e.s.Connections()[0].ID
	if err := e.s.ChangeExtranonce(id); !errors.Is(err, ErrExtranonceNotSubscribed) {
		t.Fatalf("change without subscription: %v", err)
	}
	if err := e.s.ChangeExtranonce(id + 100); !errors.Is(err, ErrNoConnection) {
		t.Fatalf("unknown connection: %v", err)
	}
	if r := c.call("mining.extranonce.subscribe"); string(r.Result) != "true" || string(r.Error) != "null" {
		t.Fatalf("extranonce.subscribe: %s", r.raw)
	}
	old := append([]byte(nil), c.en1...)
	if err := e.s.ChangeExtranonce(id); err != nil {
		t.Fatal(err)
	}
	m := c.next("mining.set_extranonce")
	var en1 string
	var size int
	json.Unmarshal(m.Params[0], &en1)
	json.Unmarshal(m.Params[1], &size)
	if size != 4 || len(en1) != 8 || en1 == fmt.Sprintf("%x", old) || en1[:2] != "07" {
		t.Fatalf("set_extranonce %s", m.raw)
	}
	n := c.next("mining.notify")
	if string(n.Params[8]) != "true" {
		t.Fatalf("job after extranonce change not clean: %s", n.raw)
	}
	if info := e.s.Connections()[0]; info.Extranonce1 != en1 {
		t.Fatalf("Connections shows %s, want %s", info.Extranonce1, en1)
	}
	// A share with the new extranonce1 is credited with it.
	job := e.sink.lastJob()
	if r := c.call("mining.submit", "acct.rig1", job.ID, "00000001", hex32(job.NTime), "00000001"); string(r.Result) != "true" {
		t.Fatalf("submit after change: %s", r.raw)
	}
	e.sink.mu.Lock()
	got := fmt.Sprintf("%x", e.sink.shares[0].Extranonce1)
	e.sink.mu.Unlock()
	if got != en1 {
		t.Fatalf("share extranonce1 %s, want %s", got, en1)
	}
}

func TestSuggestDifficultyClamped(t *testing.T) {
	cfg := testConfig()
	cfg.Listeners[0].MinDiff, cfg.Listeners[0].StartDiff, cfg.Listeners[0].MaxDiff = 0.5, 8, 1000
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
	tests := []struct {
		suggest string
		want    float64
		code    int
	}{
		{"0.001", 0.5, 0}, {"1e9", 1000, 0}, {"64", 64, 0}, {`"128"`, 128, 0}, {"-1", 0, 20}, {`"x"`, 0, 20},
	}
	for _, tc := range tests {
		t.Run(tc.suggest, func(t *testing.T) {
			c := e.dial()
			c.send(`{"id":1,"method":"mining.suggest_difficulty","params":[` + tc.suggest + `]}`)
			if code := errCode(t, c.replyTo("1")); code != tc.code {
				t.Fatalf("code %d", code)
			}
			if tc.code != 0 {
				return
			}
			c.handshake("acct.rig1")
			if c.diff != tc.want {
				t.Fatalf("difficulty %v, want %v", c.diff, tc.want)
			}
		})
	}
	// After work was sent, a suggestion is applied with the next job.
	c := e.dial()
	c.handshake("acct.rig2")
	if c.diff != 8 {
		t.Fatalf("start difficulty %v", c.diff)
	}
	c.call("mining.suggest_difficulty", 1e9)
	e.s.refreshJob()
	d := c.next("mining.set_difficulty")
	c.next("mining.notify")
	if string(d.Params[0]) != "1000" {
		t.Fatalf("set_difficulty %s", d.raw)
	}
}

// TestDifficultyChangeInFlight: a share for a job sent before a difficulty
// increase is judged at the old difficulty; one for a job sent after it at
// the new one.
func TestDifficultyChangeInFlight(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	c := e.dial()
	c.handshake("acct.rig1")
	jobA := e.sink.lastJob()
	c.call("mining.suggest_difficulty", 1e6) // no hash of ours will meet it
	e.s.refreshJob()
	d := c.next("mining.set_difficulty")
	n := c.next("mining.notify")
	jobB := e.sink.lastJob()
	if string(d.Params[0]) != "1e+06" || jobB == jobA || string(n.Params[8]) != "false" {
		t.Fatalf("set_difficulty %s notify %s", d.raw, n.raw)
	}
	if r := c.call("mining.submit", "acct.rig1", jobA.ID, "00000001", hex32(jobA.NTime), "00000001"); string(r.Result) != "true" {
		t.Fatalf("in-flight share on old job: %s", r.raw)
	}
	if r := c.call("mining.submit", "acct.rig1", jobB.ID, "00000001", hex32(jobB.NTime), "00000001"); errCode(t, r) != 23 {
		t.Fatalf("share on new job at new difficulty: %s", r.raw)
	}
	e.sink.mu.Lock()
	credited := e.sink.shares[0].Difficulty
	e.sink.mu.Unlock()
	if credited != tinyDiff {
		t.Fatalf("old-job share credited at %v", credited)
	}
}

func TestBadInput(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMalformed = 2
	cfg.MaxLineLength = 1024
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))

	t.Run("unknown method keeps connection", func(t *testing.T) {
		c := e.dial()
		c.send(`{"id":[1,"x"],"method":"mining.get_transactions","params":[]}`)
		r := c.replyTo(`[1,"x"]`)
		if errCode(t, r) != 20 || !strings.Contains(r.raw, "Unknown method") {
			t.Fatalf("%s", r.raw)
		}
		if r := c.call("mining.subscribe"); string(r.Error) != "null" {
			t.Fatalf("after unknown method: %s", r.raw)
		}
	})
	t.Run("malformed JSON replies then disconnects", func(t *testing.T) {
		c := e.dial()
		c.send(`{"id":1,"method":`)
		r, err := c.readLine()
		if err != nil || string(r.ID) != "null" || !strings.Contains(r.raw, "malformed JSON") {
			t.Fatalf("%v %s", err, r.raw)
		}
		c.send(`not json`)
		got := c.expectClosed()
		if len(got) != 1 || !strings.Contains(got[0].raw, "malformed") {
			t.Fatalf("before close: %v", got)
		}
		eventually(t, func() bool { return counterValue(e.s.metrics.closedByReason[ClosedMalformed]) == 1 }, "malformed close counted")
	})
	t.Run("oversized line disconnects", func(t *testing.T) {
		c := e.dial()
		c.send(`{"id":1,"method":"mining.subscribe","params":["` + strings.Repeat("a", 2000) + `"]}`)
		if got := c.expectClosed(); len(got) != 0 {
			t.Fatalf("replies to an oversized line: %v", got)
		}
		eventually(t, func() bool { return counterValue(e.s.metrics.closedByReason[ClosedLineTooLong]) == 1 }, "line_too_long counted")
	})
	t.Run("line split across writes and CRLF", func(t *testing.T) {
		c := e.dial()
		// The first part follows a whole line: once that line is answered
		// the server has read the first part, alone, before the rest is sent.
		c.nc.Write([]byte(`{"id":4,"method":"mining.extranonce.subscribe","params":[]}` + "\n" + `{"id":5,"meth`))
		if r := c.replyTo("4"); string(r.Result) != "true" {
			t.Fatalf("line before the split one: %s", r.raw)
		}
		c.nc.Write([]byte("od\":\"mining.subscribe\"}\r\n\n   \n"))
		if r := c.replyTo("5"); string(r.Error) != "null" {
			t.Fatalf("%s", r.raw)
		}
		c.id = 5
		if r := c.call("mining.authorize", "acct.rig1", "x"); string(r.Result) != "true" {
			t.Fatalf("after CRLF and blank lines: %s", r.raw)
		}
	})
	t.Run("wrong param types", func(t *testing.T) {
		c := e.dial()
		for _, line := range []string{
			`{"id":1,"method":"mining.authorize","params":[123,"x"]}`,
			`{"id":1,"method":"mining.authorize","params":["acct.rig1",5]}`,
			`{"id":1,"method":"mining.authorize","params":[]}`,
			`{"id":1,"method":"mining.suggest_difficulty","params":[]}`,
		} {
			c.send(line)
			if r := c.replyTo("1"); errCode(t, r) != 20 {
				t.Fatalf("%s -> %s", line, r.raw)
			}
		}
	})
	t.Run("invalid worker names", func(t *testing.T) {
		c := e.dial()
		for _, name := range []string{"", ".rig", "acct rig", "acct.rig/1", strings.Repeat("a", 91), "acct." + strings.Repeat("w", 65)} {
			if r := c.call("mining.authorize", name, "x"); errCode(t, r) != 24 {
				t.Fatalf("%q -> %s", name, r.raw)
			}
		}
		if r := c.call("mining.authorize", "acct", "d=abc,x"); string(r.Result) != "true" {
			t.Fatalf("bare account: %s", r.raw)
		}
	})
}

func TestPasswordStartDifficulty(t *testing.T) {
	cfg := testConfig()
	cfg.Listeners[0].MinDiff, cfg.Listeners[0].StartDiff, cfg.Listeners[0].MaxDiff = 1, 16, 1e6
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
	c := e.dial()
	c.call("mining.subscribe")
	if r := c.call("mining.authorize", "acct.rig1", "x,d=512"); string(r.Result) != "true" {
		t.Fatal(r.raw)
	}
	d := c.next("mining.set_difficulty")
	if string(d.Params[0]) != "512" {
		t.Fatalf("set_difficulty %s", d.raw)
	}
	if w := e.s.Workers(); len(w) != 1 || w[0].Account != "acct" || w[0].Worker != "rig1" {
		t.Fatalf("workers %+v", w)
	}
}

// floodCfg is the invalid-share policy of the flood tests: windows of 10
// shares, and an address banned once 3 distinct miners of at least half of
// its connections flood.
func floodCfg() Config {
	cfg := testConfig()
	cfg.Ban = BanConfig{Enabled: true, CheckShares: 10, InvalidPercent: 50, AddressWindow: 10 * time.Minute,
		AddressMinFlooders: 3, AddressFlooderPercent: 50, Duration: time.Minute, MaxDuration: time.Hour, ForgetAfter: time.Hour}
	return cfg
}

// flood sends a connection's whole check window of invalid shares and
// waits until the server closes it.
func (c *client) flood(worker string, n int) {
	c.t.Helper()
	for i := 0; i < n; i++ {
		c.send(fmt.Sprintf(`{"id":%d,"method":"mining.submit","params":[%q,"nope","00000001","00000000","00000000"]}`, 100+i, worker))
	}
	c.expectClosed()
}

// alive checks that a connection is still open and answered.
func (c *client) alive() {
	c.t.Helper()
	if r := c.call("mining.extranonce.subscribe"); string(r.Result) != "true" {
		c.t.Fatalf("extranonce.subscribe: %s", r.raw)
	}
}

// TestFloodClosesOnlyItsConnection: a few machines of a farm sending bad
// shares from the farm's one address cost only their own connections,
// however often they reconnect; their honest neighbours stay connected and
// the address is not banned.
func TestFloodClosesOnlyItsConnection(t *testing.T) {
	cfg := floodCfg()
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
	honest := make([]*client, 20)
	for i := range honest {
		honest[i] = e.dial()
		honest[i].handshake(fmt.Sprintf("acct.good%d", i))
	}
	for round := 0; round < 3; round++ {
		for i := 0; i < 3; i++ {
			w := fmt.Sprintf("acct.bad%d", i)
			c := e.dial()
			c.handshake(w)
			c.flood(w, cfg.Ban.CheckShares)
		}
	}
	eventually(t, func() bool { return counterValue(e.s.metrics.closedByReason[ClosedInvalidShares]) == 9 }, "9 flood closes")
	if n := counterValue(e.s.metrics.closedByReason[ClosedBanned]); n != 0 {
		t.Fatalf("%v connections closed as banned", n)
	}
	if n := counterValue(e.s.metrics.bansTotal); n != 0 {
		t.Fatalf("%v bans", n)
	}
	for _, c := range honest {
		c.alive()
	}
	if c := e.dial(); c.call("mining.subscribe").Error == nil {
		t.Fatal("no subscribe answer")
	}
}

// TestFloodBan: when enough distinct miners of one address flood, the
// address is banned: its remaining connections are closed, new ones are
// refused until the ban ends.
func TestFloodBan(t *testing.T) {
	cfg := floodCfg()
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
	neighbour := e.dial()
	neighbour.handshake("acct.good")
	bad := make([]*client, 3)
	for i := range bad {
		bad[i] = e.dial()
		bad[i].handshake(fmt.Sprintf("acct.bad%d", i))
	}
	// Two flooders of four connections: below the minimum of three.
	bad[0].flood("acct.bad0", cfg.Ban.CheckShares)
	bad[1].flood("acct.bad1", cfg.Ban.CheckShares)
	neighbour.alive()
	// The third makes 3 flooders of at most 3 live connections: banned.
	bad[2].flood("acct.bad2", cfg.Ban.CheckShares)
	neighbour.expectClosed()
	eventually(t, func() bool {
		return counterValue(e.s.metrics.closedByReason[ClosedBanned]) == 2 &&
			counterValue(e.s.metrics.closedByReason[ClosedInvalidShares]) == 2
	}, "2 ban closes and 2 invalid_shares closes")
	if n := counterValue(e.s.metrics.bansTotal); n != 1 {
		t.Fatalf("%v bans, want 1", n)
	}
	if st := e.s.Stats(); st.BannedIPs != 1 {
		t.Fatalf("banned_ips %d, want 1", st.BannedIPs)
	}
	// New connections from the banned IP are refused at once.
	c2 := e.dial()
	c2.send(`{"id":1,"method":"mining.subscribe"}`)
	if got := c2.expectClosed(); len(got) != 0 {
		t.Fatalf("banned IP got replies: %v", got)
	}
	// The ban ends with the (injected) time.
	e.clock.Add(2 * time.Minute)
	c3 := e.dial()
	if r := c3.call("mining.subscribe"); string(r.Error) != "null" {
		t.Fatalf("after ban: %s", r.raw)
	}
}

// TestFarmFloodBansOnce: a whole farm flooding at once from one address
// is banned once, for the first period; the other flooders' closes do not
// escalate it (each one doubled it before: 10 minutes to 24 hours within
// milliseconds).
func TestFarmFloodBansOnce(t *testing.T) {
	cfg := floodCfg()
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
	farm := make([]*client, 30)
	for i := range farm {
		farm[i] = e.dial()
		farm[i].handshake(fmt.Sprintf("acct.rig%d", i))
	}
	var wg sync.WaitGroup
	for i, c := range farm {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The ban closes connections mid-flood: write errors are
			// expected, and a test may not fail from this goroutine.
			c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			for j := 0; j < cfg.Ban.CheckShares; j++ {
				line := fmt.Sprintf(`{"id":%d,"method":"mining.submit","params":["acct.rig%d","nope","00000001","00000000","00000000"]}`+"\n", 100+j, i)
				if _, err := c.nc.Write([]byte(line)); err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, c := range farm {
		c.expectClosed()
	}
	if n := counterValue(e.s.metrics.bansTotal); n != 1 {
		t.Fatalf("%v bans, want 1", n)
	}
	until, banned := e.s.bans.banned(netip.MustParseAddr("127.0.0.1"), e.clock.Now())
	if !banned || !until.Equal(e.clock.Now().Add(cfg.Ban.Duration)) {
		t.Fatalf("ban until %v (%v), want one first-period ban until %v", until, banned, e.clock.Now().Add(cfg.Ban.Duration))
	}
}

func TestIdleTimeouts(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*Config)
		script func(c *client)
		reason CloseReason
	}{
		{"no subscribe", func(c *Config) { c.SubscribeTimeout = 50 * time.Millisecond }, func(*client) {}, ClosedSubscribeTimeout},
		{"no authorize", func(c *Config) { c.AuthTimeout = 50 * time.Millisecond }, func(c *client) { c.call("mining.subscribe") }, ClosedAuthTimeout},
		{"no shares", func(c *Config) { c.ShareTimeout = 50 * time.Millisecond }, func(c *client) { c.handshake("acct.rig1") }, ClosedNoShares},
		{"silent (half-open)", func(c *Config) { c.ReadTimeout = 50 * time.Millisecond }, func(c *client) { c.handshake("acct.rig1") }, ClosedReadTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.cfg(&cfg)
			e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
			c := e.dial()
			tc.script(c)
			c.expectClosed()
			eventually(t, func() bool { return counterValue(e.s.metrics.closedByReason[tc.reason]) == 1 }, "close reason %s", tc.reason)
		})
	}
}

func TestBroadcastNewBlockAndRefresh(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	clients := make([]*client, 5)
	for i := range clients {
		clients[i] = e.dial()
		clients[i].handshake(fmt.Sprintf("acct.rig%d", i))
	}
	e.s.refreshJob()
	refresh := e.sink.lastJob()
	job := e.newBlock(makeTemplate(101, mainnetBits, 3, 2))
	for i, c := range clients {
		r := c.next("mining.notify")
		n := c.next("mining.notify")
		var id1, id2 string
		json.Unmarshal(r.Params[0], &id1)
		json.Unmarshal(n.Params[0], &id2)
		if id1 != refresh.ID || string(r.Params[8]) != "false" || id2 != job.ID || string(n.Params[8]) != "true" {
			t.Fatalf("client %d: %s / %s", i, r.raw, n.raw)
		}
	}
	if st := e.s.Stats(); st.Height != 101 || st.JobID != job.ID || st.Connections != 5 || st.Ready != 5 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSlowConsumerClosed: a connection whose writer is stuck (nobody
// reads the other end of a pipe) is closed once its queue is full, and the
// enqueueing side never blocks.
func TestSlowConsumerClosed(t *testing.T) {
	cfg := testConfig()
	cfg.QueueLength = 4
	e := startServer(t, cfg, nil)
	server, peer := net.Pipe()
	defer peer.Close()
	c := e.s.newConn(server, e.s.listeners[0], remoteIP(server), false)
	line := []byte("{}\n")
	queued := 0
	for i := 0; i < 10; i++ {
		if c.enqueue(line, nil) {
			queued++
		}
	}
	// Four wait in the queue (plus one more if the writer already took
	// the first); the next one overflows.
	if (queued != 4 && queued != 5) || CloseReason(c.reason.Load()-1) != ClosedSlowConsumer {
		t.Fatalf("queued %d, reason %d", queued, c.reason.Load())
	}
	c.teardown()
	if v := counterValue(e.s.metrics.closedByReason[ClosedSlowConsumer]); v != 1 {
		t.Fatalf("slow_consumer closes = %v", v)
	}
}

// TestShutdownDrains: a submit in flight when shutdown starts is recorded
// and answered; Run returns and no goroutine is left.
func TestShutdownDrains(t *testing.T) {
	noLeaks(t)
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	gate := make(chan struct{})
	blocking := &blockingSink{recSink: e.sink, gate: gate, entered: make(chan struct{})}
	e.s.sink = blocking
	c := e.dial()
	c.handshake("acct.rig1")
	idle := e.dial()
	idle.call("mining.subscribe")
	job := e.sink.lastJob()
	c.send(fmt.Sprintf(`{"id":77,"method":"mining.submit","params":["acct.rig1",%q,"00000001","%s","00000001"]}`, job.ID, hex32(job.NTime)))
	<-blocking.entered
	e.cancel()
	// Shutdown has begun (stopped accepting, set closing) once it tells
	// every miner to reconnect, to the URL it dialled; the share is still
	// in the sink until the gate opens.
	for _, cl := range []*client{idle, c} {
		if m := cl.next("client.reconnect"); len(m.Params) != 0 {
			t.Fatalf("shutdown reconnect names a host: %s", m.raw)
		}
	}
	if !e.s.closing.Load() {
		t.Fatal("miners told to reconnect before shutdown began")
	}
	// Then the accept loop, the source and the idle miner's reader end:
	// shutdown waits for the one reader whose share is in the sink.
	eventually(t, func() bool { return e.s.Goroutines() == 1 }, "shutdown to wait only for the in-flight share")
	close(gate)
	if r := c.replyTo("77"); string(r.Result) != "true" {
		t.Fatalf("in-flight submit: %s", r.raw)
	}
	c.expectClosed()
	// One client.reconnect each, before the connection closes.
	for _, m := range append(idle.queue, idle.expectClosed()...) {
		if m.Method == "client.reconnect" {
			t.Fatalf("idle miner got a second client.reconnect at shutdown: %s", m.raw)
		}
	}
	if err := <-e.done; err != nil {
		t.Fatal(err)
	}
	e.cancel = nil
	if n := e.s.Goroutines(); n != 0 {
		t.Fatalf("%d goroutines left", n)
	}
}

type blockingSink struct {
	*recSink
	gate    chan struct{}
	entered chan struct{}
}

func (b *blockingSink) RecordShare(ctx context.Context, sh *Share) error {
	close(b.entered)
	<-b.gate
	return b.recSink.RecordShare(ctx, sh)
}

// counterValue reads a counter or gauge.
func counterValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// TestPoolFaultRejectsNeverBan: shares refused because the ledger cannot
// record them are the pool's trouble, so a miner sending nothing but good
// work through a whole ban window is neither banned nor disconnected.
func TestPoolFaultRejectsNeverBan(t *testing.T) {
	cfg := testConfig()
	cfg.Ban = BanConfig{Enabled: true, CheckShares: 10, InvalidPercent: 50, Duration: time.Minute, MaxDuration: time.Hour, ForgetAfter: time.Hour}
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
	e.sink.mu.Lock()
	e.sink.shareErr = errors.New("spool full")
	e.sink.mu.Unlock()
	c := e.dial()
	c.handshake("acct.rig1")
	job := e.sink.lastJob()
	for i := 0; i < 3*cfg.Ban.CheckShares; i++ {
		r := c.call("mining.submit", "acct.rig1", job.ID, fmt.Sprintf("%08x", i), hex32(job.NTime), "00000000")
		if code := errCode(t, r); code != 20 {
			t.Fatalf("share %d: error code %d (%s), want 20 not recorded", i, code, r.raw)
		}
	}
	if n := counterValue(e.s.metrics.closedByReason[ClosedBanned]); n != 0 {
		t.Fatalf("%v connections closed as banned for the pool's own recording failures", n)
	}
	if r := c.call("mining.subscribe"); string(r.Error) != "null" {
		t.Fatalf("connection unusable after not-recorded rejects: %s", r.raw)
	}
}

// TestJobShareCapNeverBans: a miner left on one job until it hits the
// per-job share cap gets stale rejects, but its work was good, so it is
// not banned for them (the pool may be unable to publish a new job, for
// instance while its ledger is full).
func TestJobShareCapNeverBans(t *testing.T) {
	cfg := testConfig()
	cfg.Ban = BanConfig{Enabled: true, CheckShares: 10, InvalidPercent: 50, Duration: time.Minute, MaxDuration: time.Hour, ForgetAfter: time.Hour}
	cfg.QueueLength = 1 << 14
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
	c := e.dial()
	c.handshake("acct.rig1")
	job := e.sink.lastJob()
	const extra = 40
	var lines strings.Builder
	for i := 0; i < maxSharesPerJob+extra; i++ {
		fmt.Fprintf(&lines, `{"id":%d,"method":"mining.submit","params":["acct.rig1",%q,"%08x","%08x","00000000"]}`+"\n",
			1000+i, job.ID, i, job.NTime)
	}
	// Written while replies are read, so neither side's buffers fill up.
	wrote := make(chan error, 1)
	go func() { _, err := c.nc.Write([]byte(lines.String())); wrote <- err }()
	stale := 0
	for i := 0; i < maxSharesPerJob+extra; i++ {
		r := c.replyTo(strconv.Itoa(1000 + i))
		if string(r.Error) != "null" {
			if code := errCode(t, r); code != 21 {
				t.Fatalf("share %d: %s, want accepted or stale (21)", i, r.raw)
			}
			stale++
		}
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if stale != extra {
		t.Fatalf("%d stale rejects, want the %d past the cap", stale, extra)
	}
	if n := counterValue(e.s.metrics.closedByReason[ClosedBanned]); n != 0 {
		t.Fatalf("%v connections banned for the per-job share cap", n)
	}
}
