package haproxy

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRenderShipped: the shipped file renders with the test's ports; only
// the bind line and the server lines change, every server keeps the
// shipped options, and HAProxy itself accepts the result.
func TestRenderShipped(t *testing.T) {
	path, err := ShippedPath()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(src, Params{Bind: "127.0.0.1:40000", StatsSocket: "/tmp/x.sock", Servers: []Server{
		{Name: "a", Addr: "127.0.0.1:40001", CheckPort: 40002},
		{Name: "b", Addr: "127.0.0.1:40003", CheckPort: 40004},
		{Name: "c", Addr: "127.0.0.1:40005", CheckPort: 40006},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{
		"    bind 127.0.0.1:40000\n",
		"    server a 127.0.0.1:40001 check port 40002\n",
		"    server b 127.0.0.1:40003 check port 40004\n",
		"    server c 127.0.0.1:40005 check port 40006\n",
		"    stats socket /tmp/x.sock mode 600 level admin\n",
		// Shipped settings carried over untouched.
		"    option httpchk GET /readyz\n",
		"    default-server inter 1s fall 2 rise 2 send-proxy-v2 on-marked-down shutdown-sessions\n",
		"    option redispatch 1\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered file lacks %q:\n%s", want, got)
		}
	}
	for _, gone := range []string{"wattpool:3334", "wattpool2:3334", "bind :3333"} {
		if strings.Contains(got, gone) {
			t.Errorf("rendered file still has %q", gone)
		}
	}
	// Apart from the rewritten lines, the files are equal line for line.
	srcLines, outLines := strings.Split(string(src), "\n"), strings.Split(got, "\n")
	if len(outLines) != len(srcLines)+2 { // +1 socket, +3 servers -2 shipped servers
		t.Errorf("rendered %d lines from %d, want %d", len(outLines), len(srcLines), len(srcLines)+2)
	}
	bin, err := Binary()
	if err != nil {
		t.Skipf("haproxy -c not run: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Check(ctx, bin, out); err != nil {
		t.Fatal(err)
	}
}

func TestRenderRefusesReshapedFiles(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"no frontend stratum", "frontend other\n    bind :1\nbackend wattpool\n    server a b:1 check\n", "0 bind lines"},
		{"no servers", "frontend stratum\n    bind :1\nbackend wattpool\n", "0 server lines"},
		{"server without check", "frontend stratum\n    bind :1\nbackend wattpool\n    server a b:1 send-proxy-v2\n", "line 4: server line without check"},
	}
	for _, tc := range tests {
		_, err := Render([]byte(tc.src), Params{Bind: "127.0.0.1:1", Servers: []Server{{Name: "a", Addr: "127.0.0.1:2", CheckPort: 3}}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
	if _, err := Render([]byte("x"), Params{}); err == nil {
		t.Error("Render without bind and servers succeeded")
	}
}

func TestParseStats(t *testing.T) {
	out := "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status\n" +
		"stratum,FRONTEND,,,40,41,,,,,,,,,,,,OPEN\n" +
		"wattpool,pool1,0,0,25,30,,,,,,,,,,,,UP\n" +
		"wattpool,pool2,0,0,15,20,,,,,,,,,,,,DOWN 1/2\n" +
		"wattpool,BACKEND,0,0,40,41,,,,,,,,,,,,UP\n\n"
	got, err := parseStats(out, "wattpool")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ServerStat{"pool1": {"UP", 25}, "pool2": {"DOWN 1/2", 15}}
	if len(got) != 2 || got["pool1"] != want["pool1"] || got["pool2"] != want["pool2"] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, err := parseStats("Unknown command\n", "wattpool"); err == nil {
		t.Fatal("no header accepted")
	}
}
