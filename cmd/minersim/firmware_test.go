package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wattpool/wattpool/stratum/minersim"
)

func TestParseFirmwareFlags(t *testing.T) {
	ok := []string{"-url", "127.0.0.1:3333", "-user", "a.sim", "-n", "4"}
	o, err := parseFlags(append(ok, "-firmware", "antminer", "-firmware-base-addr", "127.0.5.1:8080",
		"-firmware-faults", "1=wrong-password, 3=keeps-hashing", "-wake-ramp", "30s"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.fw.kind != minersim.FirmwareAntminer || o.fw.baseAddr != "127.0.5.1:8080" || o.fleet.Miner.WakeRamp != 30*time.Second ||
		len(o.fw.faults) != 2 || o.fw.faults[1] != minersim.FaultWrongPassword || o.fw.faults[3] != minersim.FaultKeepsHashing ||
		o.fw.passwordEnv != "MINERSIM_FIRMWARE_PASSWORD" {
		t.Errorf("options %+v ramp %v", o.fw, o.fleet.Miner.WakeRamp)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(ok, "-firmware", "braiins"), "-firmware"},
		{append(ok, "-firmware", "luxos", "-firmware-base-addr", "127.0.0.1"), "-firmware-base-addr"},
		{append(ok, "-firmware", "luxos", "-firmware-faults", "4=silent"), "not in 0..3"},
		{append(ok, "-firmware", "luxos", "-firmware-faults", "1=sleepy"), "fault"},
		{append(ok, "-firmware", "luxos", "-firmware-faults", "1"), "index=fault"},
		{append(ok, "-wake-ramp", "-1s"), "-wake-ramp"},
	} {
		if _, err := parseFlags(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}

// TestRunServesFirmware: with -firmware luxos each miner answers the
// LuxOS API on its own loopback address, listed in the inventory file.
func TestRunServesFirmware(t *testing.T) {
	inv := filepath.Join(t.TempDir(), "miners.csv")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-url", "127.0.0.1:9", "-user", "t.sim", "-n", "3", "-firmware", "luxos",
			"-firmware-base-addr", "127.0.31.1:0", "-firmware-inventory", inv}, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var lines []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(inv)
		// Complete once the fourth line has its newline.
		if lines = strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) >= 4 && strings.HasSuffix(string(b), "\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no inventory: %q", lines)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if lines[0] != "address,driver,group,user,password_env" || !strings.HasPrefix(lines[3], "127.0.31.3:") || !strings.HasSuffix(lines[3], ",luxos,default,,") {
		t.Fatalf("inventory %q", lines)
	}
	addr, _, _ := strings.Cut(lines[3], ",")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, `{"command":"config"}`); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		CONFIG []struct{ CurtailMode string }
	}
	if err := json.Unmarshal([]byte(strings.TrimSuffix(string(b), "\x00")), &r); err != nil || len(r.CONFIG) != 1 || r.CONFIG[0].CurtailMode != "None" {
		t.Fatalf("config reply %q: %v", b, err)
	}
}
