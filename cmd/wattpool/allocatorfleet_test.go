package main

import (
	"context"
	"strings"
	"testing"
)

// TestCheckConfigFleet: check-config reads allocator.inventory with the
// environment it runs in: a set password variable passes and the fleet
// and closed-loop settings are summarized; an unset one is named by
// line, column and variable, never with a password.
func TestCheckConfigFleet(t *testing.T) {
	dir := t.TempDir()
	inv := btWriteFile(t, dir, "miners.csv", "address,driver,group,user,password_env\n"+
		"127.0.1.1:4028,luxos,rack1,,\n127.0.1.2:80,antminer,rack1,root,RACK1_PW\n")
	cfg := btWriteFile(t, dir, "fleet.toml", `
[bitcoin]
network = "regtest"
payout_address = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
[node]
urls = ["http://rpc:pw@127.0.0.1:18443"]
[[stratum.group]]
pattern = "acme.r1-*"
group = "rack1"
[allocator]
mode = "act"
actuator = "fleet"
inventory = "`+inv+`"
restore_batch_size = 50
[[allocator.group]]
name = "rack1"
power_kw = 350
hashrate_ths = 20000
[allocator.prices.btc_usd]
source = "static"
value = 100000
[allocator.prices.energy_usd_per_mwh]
source = "static"
value = 40
`)
	out, errOut, err := runCmd(t, context.Background(), mapEnv(map[string]string{"RACK1_PW": "hunter2"}), "check-config", "--config", cfg)
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, errOut)
	}
	for _, w := range []string{"actuator fleet",
		"allocator inventory " + inv + " (read, groups checked); 256 miners at once, 5s a call, 2 retries, restore 50 a batch every 10s",
		"allocator confirms each action within 5m0s: pool-side rate over 1m0s below 0.05 x before a curtailment, above 0.5 x after a resume; 1 retries, then alert"} {
		if !strings.Contains(out, w) {
			t.Errorf("check-config output lacks %q:\n%s", w, out)
		}
	}
	_, errOut, err = runCmd(t, context.Background(), mapEnv(map[string]string{"OTHER_PW": "hunter2"}), "check-config", "--config", cfg)
	if exitCode(err) != 1 {
		t.Fatalf("check-config exit %d (%v), want 1", exitCode(err), err)
	}
	if w := "inventory line 3, column 5 (password_env): environment variable RACK1_PW is not set"; !strings.Contains(errOut, w) {
		t.Errorf("check-config lacks %q:\n%s", w, errOut)
	}
	if strings.Contains(out+errOut, "hunter2") {
		t.Error("check-config shows a password")
	}
}
