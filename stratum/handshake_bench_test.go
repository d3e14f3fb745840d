//go:build unix

package stratum

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/node"
)

// BenchmarkParseProxyHeader is the parse cost of one header: what a
// PROXY listener adds to a connection on top of one read(2).
func BenchmarkParseProxyHeader(b *testing.B) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"v1_tcp4", []byte("PROXY TCP4 203.0.113.7 10.0.0.1 40001 3333\r\n")},
		{"v1_tcp6", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 40002 3333\r\n")},
		{"v2_tcp4", v2(b, v2sig, "21 11 000c", "cb007108 0a000001 9c43 0d05")},
		{"v2_tcp6", v2(b, v2sig, "21 21 0024", "20010db8000000000000000000000009", "20010db8000000000000000000000001", "9c44 0d05")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := parseProxyHeader(tc.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchServer runs a server with a sink that keeps nothing and one job,
// on a listener that is plain, behind PROXY, or TLS.
func benchServer(b *testing.B, mode string) (*Server, string, *tls.Config) {
	b.Helper()
	cfg := testConfig()
	var clientTLS *tls.Config
	switch mode {
	case "proxy_v2":
		cfg = proxyConfig("127.0.0.0/8")
	case "tls":
		certFile, keyFile, pool := testCert(b, b.TempDir(), 1)
		cfg.Listeners[0].TLSCert, cfg.Listeners[0].TLSKey = certFile, keyFile
		clientTLS = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	}
	cfg.Vardiff.RetargetShares = 0
	cfg.Vardiff.RetargetInterval = 1 << 62
	src := newFakeSource(&events{})
	s, err := New(cfg, testBuilder(b), src, NewLogSink(zap.NewNop()), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	<-s.Ready()
	src.updates <- node.Update{Template: makeTemplate(100, mainnetBits, 3000, 1), NewBlock: true}
	return s, s.Addr(cfg.Listeners[0].Name).String(), clientTLS
}

var benchProxyHeader = []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xcb\x00\x71\x08\x0a\x00\x00\x01\x9c\x43\x0d\x05")

// benchDial connects as the mode's miner would: a PROXY v2 header from
// the balancer first, or a full TLS handshake (no session resumption:
// firmware reconnects cold).
func benchDial(b *testing.B, addr, mode string, clientTLS *tls.Config) net.Conn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	switch mode {
	case "proxy_v2":
		if _, err := nc.Write(benchProxyHeader); err != nil {
			b.Fatal(err)
		}
	case "tls":
		tc := tls.Client(nc, clientTLS)
		if err := tc.Handshake(); err != nil {
			b.Fatal(err)
		}
		return tc
	}
	return nc
}

// BenchmarkConnectionSetup is one miner connection from dial to the
// subscribe answer, then closed: what PROXY (one header) and TLS (a
// full ECDHE P-256 handshake with an ECDSA certificate, both ends in
// this process) add per connection.
func BenchmarkConnectionSetup(b *testing.B) {
	for _, mode := range []string{"plain", "proxy_v2", "tls"} {
		b.Run(mode, func(b *testing.B) {
			s, addr, clientTLS := benchServer(b, mode)
			sub := []byte(`{"id":1,"method":"mining.subscribe","params":["bench/1.0"]}` + "\n")
			cpu := startCPU()
			for b.Loop() {
				nc := benchDial(b, addr, mode, clientTLS)
				if _, err := nc.Write(sub); err != nil {
					b.Fatal(err)
				}
				line, err := bufio.NewReader(nc).ReadSlice('\n')
				if err != nil || !bytes.Contains(line, []byte(`"id":1`)) {
					b.Fatalf("subscribe answer %q: %v", line, err)
				}
				nc.Close()
			}
			cpu.report(b)
			b.StopTimer()
			// Let the server close every socket before the next mode.
			eventually(b, func() bool { return s.openSockets() == 0 }, "sockets closed")
		})
	}
}

// BenchmarkSubmitRoundTrip is one share from the miner's write to the
// accepted answer read back, over loopback, plain or TLS: what TLS adds
// per share (one record each way). A PROXY listener adds nothing per
// share: the header is read once.
func BenchmarkSubmitRoundTrip(b *testing.B) {
	for _, mode := range []string{"plain", "tls"} {
		b.Run(mode, func(b *testing.B) {
			s, addr, clientTLS := benchServer(b, mode)
			nc := benchDial(b, addr, mode, clientTLS)
			defer nc.Close()
			c := &client{t: b, nc: nc, r: bufio.NewReader(nc)}
			c.queue = append(c.queue, c.handshake("bench.rig"))
			job, ntime := benchJob(b, c)
			nc.SetDeadline(time.Time{}) // the handshake's deadlines would expire mid-run
			var line []byte
			cpu := startCPU()
			en2, nonce := uint32(0), uint32(0)
			for b.Loop() {
				if nonce == maxSharesPerJob-1 {
					// The per-job duplicate set is full: a fresh job.
					b.StopTimer()
					s.refreshJob()
					job, ntime = benchJob(b, c)
					nonce = 0
					en2++
					b.StartTimer()
				}
				nonce++
				line = fmt.Appendf(line[:0], `{"id":%d,"method":"mining.submit","params":["bench.rig","%s","%08x","%s","%08x"]}`+"\n",
					nonce, job, en2, ntime, nonce)
				if _, err := nc.Write(line); err != nil {
					b.Fatal(err)
				}
				for {
					ans, err := c.r.ReadSlice('\n')
					if err != nil {
						b.Fatal(err)
					}
					if bytes.Contains(ans, []byte(`"result":true`)) {
						break
					}
					if !bytes.Contains(ans, []byte(`"method"`)) {
						b.Fatalf("share refused: %s", ans)
					}
				}
			}
			cpu.report(b)
		})
	}
}

// cpuClock is the process's CPU time (user + system) at a start: both
// ends of these benchmarks run in this process, so CPU per op is what
// pool and miner together spend, which a shared machine disturbs far
// less than wall time.
type cpuClock struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{processCPU()} }

func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64((processCPU()-c.start).Microseconds())/float64(b.N), "cpu_us/op")
}

// benchJob returns the id and ntime of the next mining.notify.
func benchJob(b *testing.B, c *client) (id, ntime string) {
	b.Helper()
	n := c.next("mining.notify")
	if err := json.Unmarshal(n.Params[0], &id); err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(n.Params[7], &ntime); err != nil {
		b.Fatal(err)
	}
	return id, ntime
}
