package stratum

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentSubmitsAndBroadcasts: miners submit pipelined shares while
// jobs are refreshed and blocks change. Every request gets exactly one
// reply, in order, and the server's counts add up. Run with -race.
func TestConcurrentSubmitsAndBroadcasts(t *testing.T) {
	cfg := testConfig()
	cfg.QueueLength = 1024 // the test is about ordering, not the slow-consumer policy
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 30, 1))
	const miners, shares = 12, 150
	clients := make([]*client, miners)
	for i := range clients {
		clients[i] = e.dial()
		clients[i].handshake(fmt.Sprintf("acct.rig%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, miners)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Writer: shares on whatever job was last recorded.
			go func() {
				for k := 0; k < shares; k++ {
					job := e.sink.lastJob()
					fmt.Fprintf(c.nc, `{"id":%d,"method":"mining.submit","params":["acct.rig%d",%q,"%08x","%s","%08x"]}`+"\n",
						k, i, job.ID, k, hex32(job.NTime), k)
				}
			}()
			r := bufio.NewReader(c.nc)
			c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			next := 0
			for next < shares {
				line, err := r.ReadString('\n')
				if err != nil {
					errs <- fmt.Errorf("miner %d after %d replies: %v", i, next, err)
					return
				}
				var m rpc
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					errs <- fmt.Errorf("miner %d: bad line %q", i, line)
					return
				}
				if m.Method != "" {
					continue
				}
				if string(m.ID) != fmt.Sprint(next) {
					errs <- fmt.Errorf("miner %d: reply %s, want %d", i, m.ID, next)
					return
				}
				if string(m.Result) != "true" && !strings.Contains(string(m.Error), "21") {
					errs <- fmt.Errorf("miner %d: unexpected %s", i, strings.TrimSpace(line))
					return
				}
				next++
			}
		}()
	}
	for k := 0; k < 30; k++ {
		if k%10 == 9 {
			e.newBlock(makeTemplate(int64(101+k), mainnetBits, 30, byte(k)))
		} else {
			e.s.refreshJob()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := e.s.Stats()
	var rejected uint64
	for _, n := range st.SharesRejected {
		rejected += n
	}
	if st.SharesAccepted+rejected != miners*shares || st.SharesRejected["stale"] != rejected {
		t.Fatalf("accepted %d + rejected %v != %d", st.SharesAccepted, st.SharesRejected, miners*shares)
	}
	_, recorded, _, _ := e.sink.counts()
	if uint64(recorded) != st.SharesAccepted {
		t.Fatalf("sink has %d shares, stats %d", recorded, st.SharesAccepted)
	}
}
