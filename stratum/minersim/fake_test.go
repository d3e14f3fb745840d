package minersim

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/stratum/work"
)

// This file is a deliberately small fake stratum server for unit tests of
// the client: real 127.0.0.1 TCP, scripted by the test goroutine. The real
// pool is exercised end to end elsewhere.

// safetyDeadline only keeps a broken test from hanging; no test asserts on
// time.
const safetyDeadline = 20 * time.Second

// wireReq is a request as the fake server sees it.
type wireReq struct {
	ID     json.RawMessage   `json:"id"`
	Method string            `json:"method"`
	Params []json.RawMessage `json:"params"`
	raw    string
}

func (r wireReq) str(t *testing.T, i int) string {
	t.Helper()
	if i >= len(r.Params) {
		t.Fatalf("%s: no param %d in %s", r.Method, i, r.raw)
	}
	var s string
	if err := json.Unmarshal(r.Params[i], &s); err != nil {
		t.Fatalf("%s param %d: %v in %s", r.Method, i, err, r.raw)
	}
	return s
}

type fakeConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func accept(t *testing.T, ln net.Listener) *fakeConn {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(safetyDeadline))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(safetyDeadline))
	return &fakeConn{t: t, c: c, r: bufio.NewReader(c)}
}

// read returns the next request line.
func (f *fakeConn) read() wireReq {
	f.t.Helper()
	line, err := f.r.ReadString('\n')
	if err != nil {
		f.t.Fatalf("fake pool read: %v", err)
	}
	var r wireReq
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		f.t.Fatalf("fake pool: bad line %q: %v", line, err)
	}
	r.raw = strings.TrimSpace(line)
	return r
}

// expect reads the next request and checks its method.
func (f *fakeConn) expect(method string) wireReq {
	f.t.Helper()
	r := f.read()
	if r.Method != method {
		f.t.Fatalf("got %s, want %s: %s", r.Method, method, r.raw)
	}
	return r
}

func (f *fakeConn) send(format string, args ...any) {
	f.t.Helper()
	if _, err := fmt.Fprintf(f.c, format+"\n", args...); err != nil {
		f.t.Fatalf("fake pool write: %v", err)
	}
}

func (f *fakeConn) reply(r wireReq, result string) {
	f.t.Helper()
	f.send(`{"id":%s,"result":%s,"error":null}`, r.ID, result)
}

// handshake answers configure (when rolling), subscribe and authorize and
// swallows extranonce.subscribe and suggest_difficulty.
func (f *fakeConn) handshake(mask string, en1 string, en2Size int) {
	f.t.Helper()
	r := f.read()
	if r.Method == "mining.configure" {
		if mask == "" {
			f.send(`{"id":%s,"result":null,"error":[20,"Unknown method",null]}`, r.ID)
		} else {
			f.reply(r, fmt.Sprintf(`{"version-rolling":true,"version-rolling.mask":%q}`, mask))
		}
		r = f.read()
	}
	if r.Method != "mining.subscribe" {
		f.t.Fatalf("got %s, want mining.subscribe", r.raw)
	}
	f.reply(r, fmt.Sprintf(`[[["mining.set_difficulty","1"],["mining.notify","1"]],%q,%d]`, en1, en2Size))
	for {
		r = f.read()
		switch r.Method {
		case "mining.extranonce.subscribe", "mining.suggest_difficulty":
			f.reply(r, "true")
			continue
		case "mining.authorize":
			f.reply(r, "true")
		default:
			f.t.Fatalf("unexpected %s during handshake", r.raw)
		}
		return
	}
}

// testNotify is a valid regtest job: a real coinbase with an 8-byte
// extranonce space, two branch hashes, nbits 207fffff, and a previous block
// hash that differs per job id (so a share is only valid for its own job).
func testNotify(jobID string, clean bool) work.Notify {
	const tag = "2f6d696e657273696d2f" // "/minersim/"
	// script: push of height 100 (3 bytes), 8 bytes of extranonce, tag.
	scriptLen := 4 + 8 + len(tag)/2
	coinb1 := "01000000" + "01" + strings.Repeat("00", 32) + "ffffffff" +
		fmt.Sprintf("%02x", scriptLen) + "03640000"
	coinb2 := tag + "ffffffff" + "01" + "00f2052a01000000" + "1976a914" +
		strings.Repeat("11", 20) + "88ac" + "00000000"
	return work.Notify{
		JobID:    jobID,
		PrevHash: strings.Repeat("5a", 28) + fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(jobID))),
		Coinb1:   coinb1, Coinb2: coinb2,
		MerkleBranch: []string{strings.Repeat("ab", 32), strings.Repeat("cd", 32)},
		Version:      "20000000", NBits: "207fffff", NTime: "6543210f",
		CleanJobs: clean,
	}
}

func (f *fakeConn) notify(n work.Notify) {
	f.t.Helper()
	b, err := json.Marshal(n)
	if err != nil {
		f.t.Fatal(err)
	}
	f.send(`{"id":null,"method":"mining.notify","params":%s}`, b)
}

// submitted is a decoded mining.submit.
type submitted struct {
	req                 wireReq
	worker, jobID       string
	en2                 []byte
	ntime, nonce, vbits uint32
	hasVBits            bool
}

func decodeSubmit(t *testing.T, r wireReq) submitted {
	t.Helper()
	if r.Method != "mining.submit" {
		t.Fatalf("got %s, want mining.submit", r.raw)
	}
	if len(r.Params) != 5 && len(r.Params) != 6 {
		t.Fatalf("submit with %d params: %s", len(r.Params), r.raw)
	}
	s := submitted{req: r, worker: r.str(t, 0), jobID: r.str(t, 1)}
	var err error
	if s.en2, err = hex.DecodeString(r.str(t, 2)); err != nil {
		t.Fatalf("extranonce2: %v", err)
	}
	if s.ntime, err = hex8(t, r.str(t, 3)); err != nil {
		t.Fatal(err)
	}
	if s.nonce, err = hex8(t, r.str(t, 4)); err != nil {
		t.Fatal(err)
	}
	if len(r.Params) == 6 {
		s.hasVBits = true
		if s.vbits, err = hex8(t, r.str(t, 5)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func hex8(t *testing.T, s string) (uint32, error) {
	t.Helper()
	if len(s) != 8 {
		return 0, fmt.Errorf("%q is not 8 hex digits", s)
	}
	var v uint32
	_, err := fmt.Sscanf(s, "%08x", &v)
	return v, err
}

// hashOf recomputes a submitted share's hash the way a pool does.
func hashOf(t *testing.T, n work.Notify, en1 []byte, s submitted, mask uint32) (chainhash.Hash, uint32) {
	t.Helper()
	job, err := work.ParseNotify(n, len(en1), len(s.en2))
	if err != nil {
		t.Fatal(err)
	}
	version := job.Version
	if s.hasVBits {
		version = work.MergeVersion(job.Version, s.vbits, mask)
	}
	var h work.Hasher
	return h.HeaderHash(job, en1, s.en2, s.ntime, s.nonce, version), version
}

// startMiner runs a miner with its own grinder until the test ends.
func startMiner(t *testing.T, cfg MinerConfig) *Miner {
	t.Helper()
	g, err := NewGrinder(1, 1, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMiner(cfg, g, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.Run(ctx) })
	wg.Go(func() { _ = m.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return m
}
