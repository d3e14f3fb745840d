package main

import (
	"context"
	"strings"
	"testing"
)

// TestCheckConfigSolo: check-config names a solo listener and the fee its
// blocks pay the pool, and reports a solo key of the wrong type.
func TestCheckConfigSolo(t *testing.T) {
	dir := t.TempDir()
	base := "[bitcoin]\nnetwork = \"regtest\"\npayout_address = \"bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080\"\n" +
		"[node]\nurls = [\"http://rpc:pw@127.0.0.1:18443\"]\n[payouts]\nfee_bps = 150\n" +
		"[[stratum.listener]]\nname = \"pool\"\naddr = \"127.0.0.1:3333\"\n"
	good := btWriteFile(t, dir, "good.toml", base+"[[stratum.listener]]\nname = \"solo\"\naddr = \"127.0.0.1:3334\"\nsolo = true\n")
	out, errOut, err := runCmd(t, context.Background(), mapEnv(nil), "check-config", "--config", good)
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, errOut)
	}
	want := "stratum solo is solo: user names are regtest addresses; a block pays its finder the reward less floor(reward × 150 / 10000) sat to the pool"
	if !strings.Contains(out, want) || strings.Contains(out, "stratum pool is solo") {
		t.Fatalf("check-config output lacks %q (or calls the pool port solo):\n%s", want, out)
	}
	bad := btWriteFile(t, dir, "bad.toml", base+"[[stratum.listener]]\nname = \"solo\"\naddr = \"127.0.0.1:3334\"\nsolo = 1\n")
	_, errOut, err = runCmd(t, context.Background(), mapEnv(nil), "check-config", "--config", bad)
	if exitCode(err) != 1 || !strings.Contains(errOut, "solo") {
		t.Fatalf("check-config with solo = 1: exit %d, %s", exitCode(err), errOut)
	}
}
