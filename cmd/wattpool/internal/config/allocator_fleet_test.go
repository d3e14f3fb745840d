package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fleetGroups are two allocator groups on top of withGroups.
const fleetGroups = `
[[allocator.group]]
name = "rack1"
power_kw = 350
hashrate_ths = 20000
[[allocator.group]]
name = "rack2"
power_kw = 300
hashrate_ths = 10000
`

func writeInventory(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "miners.csv")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseFleetAndConfirm(t *testing.T) {
	inv := writeInventory(t, "address,driver,group,user,password_env\n"+
		"127.0.1.1:4028,luxos,rack1,,\n127.0.1.2:80,antminer,rack2,root,RACK2_PW\n")
	body := withGroups + `
[allocator]
actuator = "fleet"
inventory = "` + inv + `"
max_in_flight = 32
call_timeout = "2s"
retries = 0
restore_batch_size = 10
restore_batch_interval = "0s"
confirm_window = "20s"
confirm_below = 0.1
confirm_above = 0.75
confirm_timeout = "2m"
confirm_retries = 3
` + fleetGroups
	c, err := Parse([]byte(body), env("RACK2_PW", "s3cret"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	a := c.Allocator
	if a.Actuator != "fleet" || a.Inventory != inv {
		t.Fatalf("actuator %q inventory %q", a.Actuator, a.Inventory)
	}
	if f := a.Fleet; f.MaxInFlight != 32 || f.CallTimeout != 2*time.Second || f.Retries != 0 || f.RestoreBatchSize != 10 || f.RestoreBatchInterval != 0 {
		t.Fatalf("fleet %+v", f)
	}
	if cf := a.Confirm; cf.Window != 20*time.Second || cf.Below != 0.1 || cf.Above != 0.75 || cf.Timeout != 2*time.Minute || cf.Retries != 3 {
		t.Fatalf("confirm %+v", cf)
	}
}

func TestFleetDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Allocator
	if a.Inventory != "" || a.Fleet.MaxInFlight != 256 || a.Fleet.CallTimeout != 5*time.Second || a.Fleet.Retries != 2 ||
		a.Fleet.RestoreBatchSize != 0 || a.Fleet.RestoreBatchInterval != 10*time.Second {
		t.Fatalf("fleet defaults %+v", a.Fleet)
	}
	if cf := a.Confirm; cf.Window != time.Minute || cf.Below != 0.05 || cf.Above != 0.5 || cf.Timeout != 5*time.Minute || cf.Retries != 1 {
		t.Fatalf("confirm defaults %+v", cf)
	}
}

func TestFleetErrorsNameEveryField(t *testing.T) {
	good := writeInventory(t, "address,driver,group,password_env\n127.0.1.1:4028,luxos,rack1,\n")
	for _, tc := range []struct {
		name string
		file string
		env  []string
		want []string
	}{
		{name: "ranges", file: `
[allocator]
max_in_flight = 0
call_timeout = "10ms"
retries = -1
restore_batch_size = -5
restore_batch_interval = "2h"
confirm_window = "500ms"
confirm_below = 1
confirm_above = 0
confirm_timeout = "48h"
confirm_retries = 11
`, want: []string{"allocator.max_in_flight: 0 is out of range [1, 10000]", "allocator.call_timeout: 10ms is too short",
			"allocator.retries: -1 is out of range", "allocator.restore_batch_size: -5 is out of range",
			"allocator.restore_batch_interval: 2h0m0s is too long", "allocator.confirm_window: 500ms is too short",
			"allocator.confirm_below: 1: want a fraction in (0, 1)", "allocator.confirm_above: 0: want a fraction in (0, 1]",
			"allocator.confirm_timeout: 48h0m0s is too long", "allocator.confirm_retries: 11 is out of range"}},
		{name: "window not shorter than timeout", file: `
[allocator]
confirm_window = "5m"
confirm_timeout = "5m"
`, want: []string{"allocator.confirm_window: 5m0s is not shorter than confirm_timeout 5m0s"}},
		{name: "window too long", file: `
[allocator]
confirm_window = "11m"
confirm_timeout = "1h"
confirm_below = nan
`, want: []string{"allocator.confirm_window: 11m0s is too long", "allocator.confirm_below: NaN"}},
		{name: "fleet without inventory", file: "[allocator]\nactuator = \"fleet\"\n",
			want: []string{"allocator.inventory: actuator = \"fleet\" needs the miners' inventory"}},
		{name: "unknown actuator", file: "[allocator]\nactuator = \"ssh\"\n",
			want: []string{`allocator.actuator: "ssh": want none, minersim, webhook or fleet`}},
		{name: "missing inventory file", file: "[allocator]\ninventory = \"/nonexistent/miners.csv\"\n" + fleetGroups,
			want: []string{"allocator.inventory: open /nonexistent/miners.csv"}},
		{name: "bare group needs the webhook", file: "[allocator]\nactuator = \"fleet\"\ninventory = \"" + good + "\"\n" + fleetGroups,
			want: []string{`allocator.webhook.url: groups rack2 have no miners in ` + good}},
		{name: "inventory group not an allocator group", file: "[allocator]\ninventory = \"" +
			writeInventory(t, "address,driver,group\n127.0.1.1:4028,luxos,rack1\n127.0.1.2:4028,luxos,rack9\n127.0.1.3:4028,luxos,rack9\n") + "\"\n" + fleetGroups,
			want: []string{`group "rack9" (line 3) is not an [[allocator.group]]`}},
		{name: "bad line and column", file: "[allocator]\ninventory = \"" +
			writeInventory(t, "address,driver,group\n127.0.1.1:4028,luxos,rack1\n127.0.1.2:4028,braiins,rack1\n") + "\"\n" + fleetGroups,
			want: []string{`inventory line 3, column 2 (driver): unknown driver "braiins"`}},
		{name: "unset password variable", env: []string{"OTHER", "hunter2"}, file: "[allocator]\ninventory = \"" +
			writeInventory(t, "address,driver,group,password_env\n127.0.1.2:80,antminer,rack1,RACK1_PW\n") + "\"\n" + fleetGroups,
			want: []string{"inventory line 2, column 4 (password_env): environment variable RACK1_PW is not set"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(withGroups+tc.file), env(tc.env...))
			checkErrors(t, err, tc.want)
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows a password: %v", err)
			}
		})
	}
}

// TestInventoryErrorHidesPassword: a password that is set but the line is
// wrong elsewhere never appears in the error.
func TestInventoryErrorHidesPassword(t *testing.T) {
	inv := writeInventory(t, "address,driver,group,password_env\n127.0.1.2:80,antminer,rack1,PW\n127.0.1.2:80,antminer,rack1,PW\n")
	_, err := Parse([]byte(withGroups+"[allocator]\ninventory = \""+inv+"\"\n"+fleetGroups), env("PW", "hunter2"))
	checkErrors(t, err, []string{"address 127.0.1.2:80 already listed on line 2"})
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error shows the password: %v", err)
	}
}
