package fleet

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestReadInventory(t *testing.T) {
	in := "# site A\n" +
		"address,driver,group,user,password_env\n" +
		"127.0.1.1:4028,luxos,rack1,,\n" +
		"10.0.0.7:80,antminer,rack2,root,AM_PW\n" +
		" 10.0.0.8:4433 , whatsminer , rack3 , super , WM_PW \n" +
		"[::1]:4028,cgminer,rack4,,\n"
	ms, err := ReadInventory(strings.NewReader(in), env(map[string]string{"AM_PW": "s3cret-am", "WM_PW": "s3cret-wm"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		addr, driver, group, user, pwEnv, pw string
		line                                 int
	}{
		{"127.0.1.1:4028", "luxos", "rack1", "", "", "", 3},
		{"10.0.0.7:80", "antminer", "rack2", "root", "AM_PW", "s3cret-am", 4},
		{"10.0.0.8:4433", "whatsminer", "rack3", "super", "WM_PW", "s3cret-wm", 5},
		{"[::1]:4028", "cgminer", "rack4", "", "", "", 6},
	}
	if len(ms) != len(want) {
		t.Fatalf("%d miners, want %d", len(ms), len(want))
	}
	for i, w := range want {
		m := ms[i]
		if m.Address != w.addr || m.Driver != w.driver || m.Group != w.group || m.User != w.user ||
			m.PasswordEnv != w.pwEnv || m.Password() != w.pw || m.Line != w.line {
			t.Errorf("miner %d: %s user %q env %q line %d, want %+v", i, m, m.User, m.PasswordEnv, m.Line, w)
		}
	}
	if g := Groups(ms); len(g["rack2"]) != 1 || g["rack2"][0].Address != "10.0.0.7:80" {
		t.Errorf("groups: %v", g)
	}
}

// TestInventoryColumnsAnyOrder: the header decides the order; optional
// columns may be left out.
func TestInventoryColumnsAnyOrder(t *testing.T) {
	ms, err := ReadInventory(strings.NewReader("group,address,driver\nr1,127.0.0.2:4028,luxos\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Address != "127.0.0.2:4028" || ms[0].Group != "r1" || ms[0].Driver != "luxos" {
		t.Fatalf("got %s", ms[0])
	}
}

func TestInventoryErrors(t *testing.T) {
	const hdr = "address,driver,group,user,password_env\n"
	vars := env(map[string]string{"PW": "x", "EMPTY": ""})
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty file"},
		{"no miners", hdr, "no miners"},
		{"unknown column", "address,driver,group,password\n", `line 1, column 4: unknown column "password"`},
		{"missing column", "address,driver\n", `missing column "group"`},
		{"twice", "address,driver,group,group\n", `column 4: column "group" given twice`},
		{"field count", hdr + "127.0.0.1:4028,luxos,r1\n", "line 2: 3 fields, the header has 5"},
		{"quote", hdr + "127.0.0.1:4028,\"luxos,r1,,\n", "inventory: "},
		{"unknown driver", hdr + "127.0.0.1:4028,braiins,r1,,\n", `line 2, column 2 (driver): unknown driver "braiins"`},
		{"no port", hdr + "127.0.0.1,luxos,r1,,\n", "line 2, column 1 (address)"},
		{"bad port", hdr + "127.0.0.1:99999,luxos,r1,,\n", `port "99999": want 1..65535`},
		{"empty host", hdr + ":4028,luxos,r1,,\n", "bad host"},
		{"duplicate", hdr + "127.0.0.1:4028,luxos,r1,,\n127.0.0.1:4028,cgminer,r2,,\n", "line 3, column 1 (address): address 127.0.0.1:4028 already listed on line 2"},
		{"empty group", hdr + "127.0.0.1:4028,luxos,,,\n", "line 2, column 3 (group): empty group"},
		{"unset variable", hdr + "127.0.0.1:80,antminer,r1,root,NOPE\n", "line 2, column 5 (password_env): environment variable NOPE is not set"},
		{"empty variable", hdr + "127.0.0.1:80,antminer,r1,root,EMPTY\n", "environment variable EMPTY is empty"},
		{"bad variable name", hdr + "127.0.0.1:80,antminer,r1,root,1PW\n", `"1PW" is not an environment variable name`},
		{"needs password", hdr + "127.0.0.1:80,antminer,r1,root,\n", "line 2, column 5 (password_env): driver antminer authenticates"},
		{"needs password, no column", "address,driver,group\n127.0.0.1:4433,whatsminer,r1\n", "line 2 (no password_env column): driver whatsminer authenticates"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadInventory(strings.NewReader(tc.in), vars)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestPasswordNeverShown: no fmt verb, JSON encoding or error shows the
// password, even when the Miner sits inside another value.
func TestPasswordNeverShown(t *testing.T) {
	const pw = "hunter2-very-secret"
	ms, err := ReadInventory(strings.NewReader("address,driver,group,user,password_env\n10.0.0.1:80,antminer,r1,root,PW\n"), env(map[string]string{"PW": pw}))
	if err != nil {
		t.Fatal(err)
	}
	m := ms[0]
	if m.Password() != pw {
		t.Fatal("password not read")
	}
	holder := struct {
		M  Miner
		P  *Miner
		Ms []Miner
	}{m, &m, ms}
	js, _ := json.Marshal(holder)
	for _, s := range []string{
		fmt.Sprint(m), fmt.Sprintf("%v %+v %#v %s %q %x", m, m, m, m, m, m), fmt.Sprintf("%v %+v %#v", &m, &m, ms),
		fmt.Sprintf("%v %+v %#v", holder, holder, holder), m.String(), m.GoString(), string(js),
	} {
		if strings.Contains(s, pw) {
			t.Fatalf("password shown in %q", s)
		}
	}
	if !strings.Contains(string(js), `"password_env":"PW"`) || !strings.Contains(string(js), `"address":"10.0.0.1:80"`) {
		t.Fatalf("JSON lost fields: %s", js)
	}
	// The error for a bad line after a good one names no password.
	_, err = ReadInventory(strings.NewReader("address,driver,group,user,password_env\n10.0.0.1:80,antminer,r1,root,PW\n10.0.0.1:80,antminer,r1,root,PW\n"), env(map[string]string{"PW": pw}))
	if err == nil || strings.Contains(err.Error(), pw) {
		t.Fatalf("error %v", err)
	}
}

func FuzzReadInventory(f *testing.F) {
	f.Add("address,driver,group,user,password_env\n127.0.0.1:4028,luxos,r1,,\n10.0.0.7:80,antminer,r2,root,PW\n")
	f.Add("group,address,driver\nr,[::1]:1,cgminer\n")
	f.Add("address,driver,group\n\"127.0.0.1:4028,luxos,r1\n")
	f.Add("address,driver,group\n127.0.0.1:4028,luxos\n")
	f.Fuzz(func(t *testing.T, in string) {
		ms, err := ReadInventory(strings.NewReader(in), env(map[string]string{"PW": "pw-secret-zz"}))
		if err != nil {
			if strings.Contains(err.Error(), "pw-secret-zz") {
				t.Fatalf("error shows the password: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, m := range ms {
			if checkAddress(m.Address) != nil || m.Group == "" || seen[strings.ToLower(m.Address)] {
				t.Fatalf("accepted a bad miner %s", m)
			}
			if _, ok := driverSpecs[m.Driver]; !ok {
				t.Fatalf("accepted driver %q", m.Driver)
			}
			seen[strings.ToLower(m.Address)] = true
		}
	})
}
