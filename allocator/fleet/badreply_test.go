package fleet

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wattpool/wattpool/internal/leakcheck"
)

// rawServer accepts connections on a loopback port and hands each to
// serve; it closes everything and waits for its goroutines at cleanup.
func rawServer(t *testing.T, serve func(ctx context.Context, c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				serve(ctx, c)
			})
		}
	})
	t.Cleanup(func() {
		cancel()
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// reply answers every connection with b (after reading what it can).
func reply(b string) func(context.Context, net.Conn) {
	return func(_ context.Context, c net.Conn) {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, _ = c.Read(make([]byte, 4096))
		_, _ = io.WriteString(c, b)
	}
}

// silent reads and never answers until the test ends.
func silent(ctx context.Context, c net.Conn) {
	go func() { <-ctx.Done(); c.Close() }()
	_, _ = io.Copy(io.Discard, c)
}

// dribble answers with head, then one byte of tail every 20ms.
func dribble(head, tail string) func(context.Context, net.Conn) {
	return func(ctx context.Context, c net.Conn) {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, _ = c.Read(make([]byte, 4096))
		_, _ = io.WriteString(c, head)
		for i := 0; i < len(tail); i++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := c.Write([]byte{tail[i]}); err != nil {
				return
			}
		}
	}
}

func TestCGMinerStyleBadReplies(t *testing.T) {
	leakcheck.Test(t)
	big := `{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"GHS 5s":1,"pad":"` + strings.Repeat("x", 2<<10) + `"}]}`
	tests := []struct {
		name   string
		serve  func(context.Context, net.Conn)
		reason string
		msg    string
	}{
		{"garbage", reply("\x00\xff HELLO"), "bad_reply", "not a JSON object"},
		{"half object", reply(`{"STATUS":[{"STATUS":"S","Code":11}],"SUMMARY":[{"GHS 5s":95`), "bad_reply", "not a JSON object"},
		{"html", reply("HTTP/1.1 400 Bad Request\r\n\r\n<html>"), "bad_reply", "not a JSON object"},
		{"no status", reply(`{"SUMMARY":[{"GHS 5s":1}]}`), "bad_reply", "no STATUS"},
		{"status letter", reply(`{"STATUS":[{"STATUS":"X"}],"SUMMARY":[{"GHS 5s":1}]}`), "bad_reply", `STATUS "X"`},
		{"no hashrate", reply(`{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"Elapsed":1}]}`), "bad_reply", "neither"},
		{"negative", reply(`{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"GHS 5s":-5}]}`), "bad_reply", "out of range"},
		{"nan string", reply(`{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"GHS 5s":"NaN"}]}`), "bad_reply", "out of range"},
		{"error status", reply(`{"STATUS":[{"STATUS":"E","Code":14,"Msg":"Invalid command"}],"id":1}`), "refused", "Invalid command"},
		{"closed at once", reply(""), "bad_reply", "closed without a reply"},
		{"too big", reply(big), "bad_reply", "over 1024 bytes"},
		{"never answers", silent, "unreachable", "deadline"},
		{"slow drip", dribble(`{"STATUS":[{"STATUS":"S"`, strings.Repeat(" ", 1000)), "unreachable", "deadline"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawServer(t, tc.serve)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := summaryTHs(ctx, addr, 1024)
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("took %v", el)
			}
			if Reason(err) != tc.reason || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v (reason %q), want %q containing %q", err, Reason(err), tc.reason, tc.msg)
			}
		})
	}
	// Nobody listening at all.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if _, err := summaryTHs(context.Background(), addr, 1024); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("closed port: %v", err)
	}
}

// TestAntminerBadReplies: a slow-loris HTTP endpoint (headers or body one
// byte at a time) is cut by the deadline; garbage, an oversize body and a
// configuration without pools are clear errors, and nothing is posted
// back when the read was bad.
func TestAntminerBadReplies(t *testing.T) {
	leakcheck.Test(t)
	d := NewAntminer(DriverOptions{MaxReplyBytes: 2048})
	defer d.close()
	okConf := `{"pools":[{"url":"stratum+tcp://p:3333","user":"a.b","pass":"x"}],"bitmain-work-mode":"0"}`
	http200 := func(body string) string {
		return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body
	}
	var posted sync.Mutex
	postCount := 0
	countingConf := func(body string) func(context.Context, net.Conn) {
		return func(_ context.Context, c net.Conn) {
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			if strings.HasPrefix(line, "POST") {
				posted.Lock()
				postCount++
				posted.Unlock()
			}
			_, _ = io.WriteString(c, http200(body))
		}
	}
	tests := []struct {
		name   string
		serve  func(context.Context, net.Conn)
		reason string
		msg    string
	}{
		{"slow headers", dribble("HTTP/1.1 200 OK\r\n", strings.Repeat("X-Pad: y\r\n", 100)), "unreachable", "deadline"},
		{"slow body", dribble("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{", strings.Repeat(" ", 1000)), "unreachable", "deadline"},
		{"never answers", silent, "unreachable", "deadline"},
		{"garbage", reply("\x16\x03\x01 not http at all\r\n\r\n"), "bad_reply", "malformed"},
		{"html body", countingConf("<html>login</html>"), "bad_reply", "not a JSON object"},
		{"half json", countingConf(`{"pools":[{"url":`), "bad_reply", "not a JSON object"},
		{"no pools", countingConf(`{"bitmain-work-mode":"0"}`), "bad_reply", "lose its pools"},
		{"empty pools", countingConf(`{"pools":[],"bitmain-work-mode":"0"}`), "bad_reply", "lose its pools"},
		{"too big", countingConf(`{"pools":[1],"x":"` + strings.Repeat("a", 4000) + `"}`), "bad_reply", "over 2048 bytes"},
		{"refused", func(ctx context.Context, c net.Conn) {
			r := bufio.NewReader(c)
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			line, _ := r.ReadString('\n')
			if strings.HasPrefix(line, "POST") {
				_, _ = io.WriteString(c, http200(`{"stats":"error","code":"M001","msg":"Bad configuration"}`))
				return
			}
			_, _ = io.WriteString(c, http200(okConf))
		}, "refused", `code "M001"`},
		{"forbidden", reply("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), "auth", "HTTP 403"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawServer(t, tc.serve)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			m := Miner{Address: addr, Driver: "antminer", Group: "g"}.WithPassword("pw")
			start := time.Now()
			err := d.Curtail(ctx, m)
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("took %v", el)
			}
			if Reason(err) != tc.reason || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v (reason %q), want %q containing %q", err, Reason(err), tc.reason, tc.msg)
			}
		})
	}
	if postCount != 0 {
		t.Fatalf("a configuration was posted back after a bad read (%d times)", postCount)
	}
}

func frame(body string) string {
	return string(binary.LittleEndian.AppendUint32(nil, uint32(len(body)))) + body
}

// TestWhatsminerBadReplies: a huge length prefix, a frame cut short,
// garbage JSON and silence are clear errors.
func TestWhatsminerBadReplies(t *testing.T) {
	leakcheck.Test(t)
	d := &Whatsminer{opts: DriverOptions{MaxReplyBytes: 4096}.withDefaults()}
	tests := []struct {
		name   string
		serve  func(context.Context, net.Conn)
		reason string
		msg    string
	}{
		{"huge prefix", reply("\xff\xff\xff\x7f{}"), "bad_reply", "length prefix 2147483647 over 4096"},
		{"cut frame", reply(frame(`{"code":0,"msg":{"salt":"abc"}}`)[:12]), "bad_reply", "closed inside a 31-byte reply"},
		{"no prefix", reply("{}"), "bad_reply", "before a length prefix"},
		{"garbage json", reply(frame(`{"code":0,"msg":`)), "bad_reply", "not a JSON object"},
		{"no code", reply(frame(`{"msg":"x"}`)), "bad_reply", "no code"},
		{"no salt", reply(frame(`{"code":0,"msg":{"miner":{}}}`)), "bad_reply", "no salt"},
		{"refused info", reply(frame(`{"code":-1,"msg":"busy"}`)), "refused", `"busy"`},
		{"never answers", silent, "unreachable", "deadline"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawServer(t, tc.serve)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := d.Curtail(ctx, Miner{Address: addr, Driver: "whatsminer", Group: "g"}.WithPassword("pw"))
			if Reason(err) != tc.reason || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v (reason %q), want %q containing %q", err, Reason(err), tc.reason, tc.msg)
			}
		})
	}
}
