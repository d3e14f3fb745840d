package stratum

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// TestRepliesGathered: while a read's lines are handled, answers to
// submits (accepted and rejected) are gathered in order into one buffer;
// any other request first sends what was gathered and is answered on its
// own, and gathering resumes after it.
func TestRepliesGathered(t *testing.T) {
	_, c, job := offlineConn(t, makeTemplate(100, mainnetBits, 5, 1), tinyDiff)
	var m Message
	c.gather = true
	for _, nonce := range []uint32{1, 2, 1} { // the third is a duplicate
		if !c.handleLine(submitLine(job, "00000001", nonce), &m) {
			t.Fatal("connection closed")
		}
	}
	if c.replies == nil {
		t.Fatal("nothing gathered")
	}
	lines := strings.Split(strings.TrimSuffix(string(*c.replies), "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"result":true`) || !strings.Contains(lines[1], `"result":true`) ||
		!strings.Contains(lines[2], "Duplicate share") {
		t.Fatalf("gathered %q", lines)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `{"id":1234,`) {
			t.Fatalf("answer %q without the request's id", l)
		}
	}
	if !c.handleLine([]byte(`{"id":7,"method":"mining.extranonce.subscribe","params":[]}`), &m) {
		t.Fatal("connection closed")
	}
	if c.replies != nil || !c.gather {
		t.Fatalf("after another request: gathered %v, gathering %v; want flushed and gathering again", c.replies != nil, c.gather)
	}
	c.handleLine(submitLine(job, "00000001", 3), &m)
	if c.replies == nil || bytes.Count(*c.replies, []byte("\n")) != 1 {
		t.Fatal("gathering did not resume")
	}
	c.gather = false
	c.flushReplies()
	if c.replies != nil {
		t.Fatal("flush left answers behind")
	}
}

// TestGatheredRepliesKeepOrder: pipelined submits and other requests in
// one write are all answered, in order; and on a fresh connection a
// submit, subscribe and authorize sent together are answered before the
// job the authorization starts.
func TestGatheredRepliesKeepOrder(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	c := e.dial()
	c.handshake("acct.rig1")
	job := e.sink.lastJob()
	var all strings.Builder
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&all, `{"id":%d,"method":"mining.submit","params":["acct.rig1",%q,"00000002","%s","%08x"]}`+"\n", 100+i, job.ID, hex32(job.NTime), i)
	}
	all.WriteString(`{"id":200,"method":"mining.authorize","params":["acct.rig2","x"]}` + "\n")
	all.WriteString(`{"id":201,"method":"mining.submit","params":["acct.rig1","nope","00000002","00000000","00000000"]}` + "\n")
	if _, err := c.nc.Write([]byte(all.String())); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if r := c.replyTo(fmt.Sprint(100 + i)); string(r.Result) != "true" {
			t.Fatalf("share %d: %s", i, r.raw)
		}
	}
	if r := c.replyTo("200"); string(r.Result) != "true" {
		t.Fatalf("authorize: %s", r.raw)
	}
	if r := c.replyTo("201"); errCode(t, r) != RejectStale.Code() {
		t.Fatalf("unknown job: %s", r.raw)
	}

	fresh := e.dial()
	fresh.send(`{"id":1,"method":"mining.submit","params":["acct.rig1","x","00","00000000","00000000"]}` + "\n" +
		`{"id":2,"method":"mining.subscribe","params":["m"]}` + "\n" +
		`{"id":3,"method":"mining.authorize","params":["acct.rig3","x"]}`)
	var order []string
	for len(order) < 5 {
		m, err := fresh.readLine()
		if err != nil {
			t.Fatalf("after %v: %v", order, err)
		}
		if m.Method != "" {
			order = append(order, m.Method)
		} else {
			order = append(order, string(m.ID))
		}
	}
	if want := []string{"1", "2", "3", "mining.set_difficulty", "mining.notify"}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}
