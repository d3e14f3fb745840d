package stratum

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// clientHelperEnv makes the test binary act as a fleet of idle miners in a
// separate process (see TestMain), so the server process holds only its
// own ends of the sockets.
const clientHelperEnv = "WATTPOOL_STRATUM_IDLE_CLIENTS"

// runIdleClients dials n connections to addr, subscribes and authorizes
// each, reports "ready" on stdout and holds them until stdin closes.
func runIdleClients(spec string) int {
	addr, nStr, _ := strings.Cut(spec, ",")
	n, err := strconv.Atoi(nStr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad spec", spec)
		return 2
	}
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "dial %d: %v\n", i, err)
			return 1
		}
		fmt.Fprintf(c, "{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"idle\"]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"acct.w%d\",\"x\"]}\n", i)
		conns = append(conns, c)
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	for _, c := range conns {
		c.Close()
	}
	return 0
}

func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkIdleConnectionRSS holds 18,000 idle, subscribed and authorized
// miners (in a child process) and reports the server process's resident
// memory and Go memory per connection.
func BenchmarkIdleConnectionRSS(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Fatalf("needs /proc to read RSS: %v", err)
	}
	const n = 18000
	for b.Loop() {
		e := startServerLog(b, testConfig(), makeTemplate(100, mainnetBits, 3000, 1), zap.NewNop())
		settle := func() (rss, goMem uint64) {
			runtime.GC()
			debug.FreeOSMemory()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return rssBytes(), ms.HeapInuse + ms.StackInuse
		}
		rss0, go0 := settle()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), clientHelperEnv+"="+e.addr+","+strconv.Itoa(n))
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || line != "ready\n" {
			b.Fatalf("client helper: %q %v", line, err)
		}
		for {
			if st := e.s.Stats(); st.Ready == n && e.s.Goroutines() == n+2 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		rss1, go1 := settle()
		b.ReportMetric(float64(rss1-rss0)/n, "RSS_B/conn")
		b.ReportMetric(float64(go1-go0)/n, "go_B/conn")
		stdin.Close()
		cmd.Wait()
		e.stop()
	}
}

// BenchmarkBroadcastRemoteClients sends one clean job to 18,000 ready
// connections whose miners live in a child process that does not read
// (so it takes no CPU from the server), and reports:
//
//   - broadcast_ms: Server.broadcast, what a new block waits for (every
//     notify handed to the kernel);
//   - write_floor_ms: the same number of bare non-blocking write(2) calls
//     of the same line on the same sockets, split over the same cores:
//     the kernel's share, which no server code can go below.
func BenchmarkBroadcastRemoteClients(b *testing.B) {
	const n = 18000
	e := startServerLog(b, testConfig(), makeTemplate(100, mainnetBits, 3000, 1), zap.NewNop())
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), clientHelperEnv+"="+e.addr+","+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("client helper: %q %v", line, err)
	}
	eventually(b, func() bool { return e.s.Stats().Ready == n && e.s.Goroutines() == n+2 }, "%d ready connections", n)
	cur := e.s.block.Load()
	job := cur.job.job
	line := appendNotify(nil, job.Notify(true))
	conns := e.s.connList()
	parts := runtime.GOMAXPROCS(0)
	var bcast, floor time.Duration
	for b.Loop() {
		settle := func() {
			for e.s.Goroutines() > n+2 { // writers still busy
				time.Sleep(time.Millisecond)
			}
		}
		entry := &jobEntry{job: job, gen: cur.gen, clean: line, refresh: line}
		start := time.Now()
		e.s.broadcast(entry, true)
		bcast += time.Since(start)
		settle()

		start = time.Now()
		var wg sync.WaitGroup
		size := (len(conns) + parts - 1) / parts
		for i := 0; i < len(conns); i += size {
			part := conns[i:min(i+size, len(conns))]
			wg.Go(func() {
				for _, c := range part {
					if _, err := tryWrite(c.raw, line); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		floor += time.Since(start)
	}
	b.ReportMetric(float64(bcast.Microseconds())/1000/float64(b.N), "broadcast_ms")
	b.ReportMetric(float64(floor.Microseconds())/1000/float64(b.N), "write_floor_ms")
	b.ReportMetric(float64(len(line)), "notify_bytes")
}
