package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wattpool/wattpool/stratum/minersim"
)

func TestParseFlags(t *testing.T) {
	ok := []string{"-url", "stratum+tcp://127.0.0.1:3333", "-user", "alice.sim"}
	o, err := parseFlags(append(ok, "-n", "10", "-fast", "-bad-fraction", "0.1", "-model", "antminer-s21"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.fleet.Miners != 10 || o.fleet.Miner.Addr != "127.0.0.1:3333" || !o.fleet.Miner.Fast ||
		o.fleet.Miner.BadFraction != 0.1 || o.fleet.Miner.Model != minersim.AntminerS21 || o.fleet.Miner.Password != "x" {
		t.Errorf("options %+v", o.fleet)
	}
	if o.fleet.Miner.NoSessionResume {
		t.Errorf("session resume off by default; firmware offers its session id")
	}
	if o, err := parseFlags(append(ok, "-no-session-resume"), io.Discard); err != nil || !o.fleet.Miner.NoSessionResume {
		t.Errorf("-no-session-resume: %v %+v", err, o.fleet.Miner)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-user", "a.b"}, "-url is required"},
		{[]string{"-url", "http://h:1", "-user", "a"}, "-url"},
		{[]string{"-url", "h:1"}, "-user is required"},
		{append(ok, "-n", "0"), "-n 0"},
		{append(ok, "-n", "18001"), "-n 18001"},
		{append(ok, "-duration", "-1s"), "-duration"},
		{append(ok, "-warmup", "-1s"), "-warmup"},
		{append(ok, "-tick", "0s"), "-tick"},
		{append(ok, "-rate", "100"), "-rate"},
		{append(ok, "-fast", "-rate", "-1"), "-rate"},
		{append(ok, "-bad-fraction", "2"), "-bad-fraction"},
		{append(ok, "-hashrate", "0"), "-hashrate"},
		{append(ok, "-ramp", "-3"), "-ramp"},
		{append(ok, "-model", "s9000"), "-model"},
		{append(ok, "-control-addr", "4028"), "-control-addr"},
		{append(ok, "-log-level", "loud"), "-log-level"},
		{append(ok, "extra"), "unexpected argument"},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}

// TestRunReportsJSON runs the command for a moment against a listener that
// accepts and says nothing (the pool side is tested in the package), and
// checks that it stops at -duration and prints a JSON report.
func TestRunReportsJSON(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	var out bytes.Buffer
	err = run(context.Background(), []string{"-url", ln.Addr().String(), "-user", "t.sim", "-n", "2",
		"-duration", "200ms", "-json", "-control-addr", "127.0.0.1:0"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var rep minersim.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report %q: %v", out.String(), err)
	}
	// The -duration deadline is set from the fleet's start, so the run
	// lasts at least that long.
	if rep.Miners != 2 || rep.Connects < 2 || rep.Elapsed < 200*time.Millisecond || rep.Elapsed > 10*time.Second {
		t.Errorf("report %+v", rep)
	}
}
