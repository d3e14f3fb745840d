package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wattpool/wattpool/allocator/fleet"
)

// TestFleetRowsAndTotals checks the rows and per-group sums against
// hand-added figures: a LuxOS miner mining (95 TH/s, 3249 W), one asleep
// (20 W), an Antminer mining without a power reading (140 TH/s), a
// cgminer reading unknown, and one unreachable (no reading at all).
func TestFleetRowsAndTotals(t *testing.T) {
	st := func(s fleet.State, ths, w float64, has bool) *fleet.MinerState {
		return &fleet.MinerState{State: s, HashrateTHs: ths, PowerW: w, HasPower: has}
	}
	unreachable := errors.New("dial: connection refused")
	rs := []fleet.Result{
		{Address: "10.0.0.1:4028", Driver: "luxos", Group: "a", OK: true, Attempts: 1, State: st(fleet.StateMining, 95, 3249, true), Elapsed: 1500 * time.Microsecond},
		{Address: "10.0.0.2:4028", Driver: "luxos", Group: "a", OK: true, Attempts: 1, State: st(fleet.StateSleeping, 0, 20, true)},
		{Address: "10.0.0.3:80", Driver: "antminer", Group: "b", OK: true, Attempts: 2, State: st(fleet.StateMining, 140, 0, false), Batch: 2},
		{Address: "10.0.0.4:4028", Driver: "cgminer", Group: "b", OK: true, Attempts: 1, State: st(fleet.StateUnknown, 0, 0, false)},
		{Address: "10.0.0.5:4028", Driver: "luxos", Group: "b", Attempts: 3, Reason: "unreachable", Error: unreachable.Error(), Err: unreachable},
	}
	rows := fleetRows(rs)
	if rows[0].ElapsedMS != 1.5 || *rows[0].PowerW != 3249 || rows[2].PowerW != nil || *rows[2].HashrateTHs != 140 ||
		rows[4].HashrateTHs != nil || rows[4].State != "" || rows[2].Batch != 2 {
		t.Errorf("rows %+v", rows)
	}
	want := []fleetGroupTotal{
		{Group: "a", Miners: 2, OK: 2, Mining: 1, Sleeping: 1, HashrateTHs: 95, PowerW: 3269, PowerReported: 2},
		{Group: "b", Miners: 3, OK: 2, Failed: 1, Mining: 1, Unknown: 1, HashrateTHs: 140},
	}
	checkTotals(t, "totals", groupTotals(rows), want)

	var b strings.Builder
	d := fleetDoc{Action: "status", Miners: rows, Groups: groupTotals(rows), Summary: fleet.Summarize(rs)}
	if err := writeFleetDoc(&b, "csv", d); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	wantCSV := []string{
		"address,driver,group,ok,state,hashrate_ths,power_w,reason,error,attempts,batch,elapsed_ms",
		"10.0.0.1:4028,luxos,a,true,mining,95,3249,,,1,0,1.500",
		"10.0.0.3:80,antminer,b,true,mining,140,,,,2,2,0.000",
		"10.0.0.5:4028,luxos,b,false,,,,unreachable,dial: connection refused,3,0,0.000",
	}
	if len(lines) != 6 || lines[0] != wantCSV[0] || lines[1] != wantCSV[1] || lines[3] != wantCSV[2] || lines[5] != wantCSV[3] {
		t.Errorf("csv:\n%s", b.String())
	}
	b.Reset()
	if err := writeFleetDoc(&b, "table", d); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "status: 4 of 5 miners ok, 1 failed (unreachable 1)") ||
		!hasLine(b.String(), "10.0.0.5:4028 luxos b - unreachable: dial: connection refused") ||
		!hasLine(b.String(), "a 2 2 0 1 1 0 95.00 3269") {
		t.Errorf("table:\n%s", b.String())
	}
}

// TestFleetBadInventory: the commands name the inventory's bad line and
// column, and an unset password variable, before calling any miner.
func TestFleetBadInventory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "address,driver,group,user,password_env\n10.0.0.1:4028,luxos,a,,\n"
	for _, tc := range []struct {
		name, body string
		args       []string
		want       string
	}{
		{"unknown driver", good + "10.0.0.2:4028,bitmain,a,,\n", []string{"list"}, "inventory line 3, column 2 (driver): unknown driver \"bitmain\""},
		{"bad address", good + "10.0.0.2:99999,luxos,a,,\n", []string{"status"}, "inventory line 3, column 1 (address)"},
		{"unset password", good + "10.0.0.2:80,antminer,a,root,NO_SUCH_VAR\n", []string{"status"}, "environment variable NO_SUCH_VAR is not set"},
		{"empty", "", []string{"list"}, "inventory: empty file"},
		{"missing file", "-", []string{"list"}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "missing.csv")
			if tc.body != "-" {
				p = write(strings.ReplaceAll(tc.name, " ", "_")+".csv", tc.body)
			}
			_, _, err := runCmd(t, context.Background(), mapEnv(map[string]string{}), append([]string{"fleet"}, append(tc.args, "--inventory", p)...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want %q", err, tc.want)
			}
		})
	}
	// list needs no password: the variable is named, not read.
	p := write("pw.csv", good+"10.0.0.2:80,antminer,a,root,NO_SUCH_VAR\n")
	if o, _, err := runCmd(t, context.Background(), mapEnv(map[string]string{}), "fleet", "list", "--inventory", p, "--format", "csv"); err != nil ||
		!strings.Contains(o, "3,10.0.0.2:80,antminer,a,root,NO_SUCH_VAR") {
		t.Errorf("list: %v\n%s", err, o)
	}
}
