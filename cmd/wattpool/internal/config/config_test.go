package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"go.uber.org/zap/zapcore"

	"github.com/wattpool/wattpool/stratum"
)

// Real addresses: BIP173 vectors and the P2PKH of private key 1.
const (
	mainP2PKH   = "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"
	mainP2WPKH  = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
	testP2PKH   = "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r"
	testP2WSH   = "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"
	regtestWPKH = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
)

const minimal = `
[bitcoin]
network = "mainnet"
payout_address = "` + mainP2WPKH + `"
[node]
urls = ["http://rpc:secret@127.0.0.1:8332"]
`

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseMinimalUsesDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.Network != &chaincfg.MainNetParams || c.Instance != "wattpool" || c.LogLevel != zapcore.InfoLevel {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if len(c.Listeners) != 1 || c.Listeners[0].Addr != "0.0.0.0:3333" || c.Listeners[0].StartDiff != DefaultStartDiff {
		t.Fatalf("default listener: %+v", c.Listeners)
	}
	if c.PollInterval != 250*time.Millisecond || c.HTTPAddr != "127.0.0.1:8080" {
		t.Fatalf("poll %v http %q", c.PollInterval, c.HTTPAddr)
	}
	if c.SpoolLimit != 4<<30 {
		t.Fatalf("spool limit %d, want the spool's own default 4GiB", c.SpoolLimit)
	}
	if len(c.Nodes) != 1 || c.Nodes[0].Name != "127.0.0.1:8332" {
		t.Fatalf("nodes: %+v", c.Nodes)
	}
	// OP_0 PUSH20 751e76e8199196d454941c45d1b3a323f1433bd6 (BIP173).
	if got := string(hexOf(c.PayoutScript)); got != "0014751e76e8199196d454941c45d1b3a323f1433bd6" {
		t.Fatalf("payout script %s", got)
	}
}

func hexOf(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

func TestParseFullFile(t *testing.T) {
	c, err := Parse([]byte(`
[instance]
name = "pool-eu-1"
id = 7
spool_dir = "/var/lib/wattpool/spool"
spool_sync_interval = "0s"
shutdown_timeout = "45s"
[log]
level = "debug"
format = "console"
[bitcoin]
network = "testnet4"
payout_address = "`+testP2WSH+`"
pool_tag = "/eu/"
[node]
urls = ["http://a:b@10.0.0.1:48332", "http://c:d@10.0.0.2:48332"]
timeout = "5s"
poll_interval = "100ms"
refresh_interval = "20s"
longpoll = false
[database]
url = "postgres://wattpool:pw@db:5432/wattpool?sslmode=disable"
migrate = true
[stratum]
extranonce2_size = 8
job_refresh_interval = "15s"
session_resume_window = "0s"
max_parked_sessions = 500
max_connections = 900
max_connections_per_ip = 40
[stratum.vardiff]
target_interval = "5s"
retarget_interval = "30s"
retarget_shares = 10
max_factor = 2
tolerance = 0.25
[stratum.ban]
check_shares = 50
invalid_percent = 80
address_window = "5m"
address_min_flooders = 25
address_flooder_percent = 60
duration = "1m"
max_duration = "2h"
forget_after = "12h"
[[stratum.listener]]
name = "asic"
addr = ":3333"
start_diff = 65536
min_diff = 4096
max_diff = 1e9
max_connections = 800
[[stratum.listener]]
name = "cpu"
addr = ":3334"
start_diff = 0.01
min_diff = 0.0001
max_diff = 16
solo = true
[http]
addr = "off"
`), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.Network != &chaincfg.TestNet4Params || c.InstanceID != 7 || c.LogFormat != "console" || c.LogLevel != zapcore.DebugLevel {
		t.Fatalf("instance/log/network: %+v", c)
	}
	if len(c.Nodes) != 2 || c.Nodes[1].Name != "10.0.0.2:48332" || c.LongPoll || c.NodeTimeout != 5*time.Second {
		t.Fatalf("nodes: %+v", c)
	}
	if c.SpoolSync != 0 {
		t.Fatalf("spool sync %v, want 0 (fsync every share)", c.SpoolSync)
	}
	if c.JobRefresh != 15*time.Second {
		t.Fatalf("job refresh %v, want 15s", c.JobRefresh)
	}
	if c.SessionResumeWindow != 0 || c.MaxParkedSessions != 500 {
		t.Fatalf("session resume %v, %d parked; want 0s (off) and 500", c.SessionResumeWindow, c.MaxParkedSessions)
	}
	if c.MaxConnections != 900 || c.MaxConnectionsPerIP != 40 {
		t.Fatalf("connection caps %d, %d per IP; want 900, 40", c.MaxConnections, c.MaxConnectionsPerIP)
	}
	want := []Listener{{Name: "asic", Addr: ":3333", StartDiff: 65536, MinDiff: 4096, MaxDiff: 1e9, MaxConnections: 800},
		{Name: "cpu", Addr: ":3334", StartDiff: 0.01, MinDiff: 0.0001, MaxDiff: 16, Solo: true}}
	if len(c.Listeners) != 2 || c.Listeners[0] != want[0] || c.Listeners[1] != want[1] {
		t.Fatalf("listeners %+v", c.Listeners)
	}
	if c.HTTPAddr != "" || !c.Migrate || c.Extranonce2Size != 8 || c.Vardiff.MaxFactor != 2 {
		t.Fatalf("http/db/stratum: %+v", c)
	}
	wantBan := stratum.BanConfig{Enabled: true, CheckShares: 50, InvalidPercent: 80, AddressWindow: 5 * time.Minute,
		AddressMinFlooders: 25, AddressFlooderPercent: 60, Duration: time.Minute, MaxDuration: 2 * time.Hour, ForgetAfter: 12 * time.Hour}
	if c.Ban != wantBan {
		t.Fatalf("ban policy %+v, want %+v", c.Ban, wantBan)
	}
}

// TestBanDefaults: without a [stratum.ban] table the policy is on, with the
// stratum server's defaults; enabled = false turns it off.
func TestBanDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := stratum.Default().Ban; c.Ban != want {
		t.Fatalf("default ban policy %+v, want the server's %+v", c.Ban, want)
	}
	c, err = Parse([]byte(minimal+"[stratum.ban]\nenabled = false\ncheck_shares = 0\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ban.Enabled {
		t.Fatal("enabled = false left the policy on")
	}
}

func TestEnvOverrides(t *testing.T) {
	c, err := Parse([]byte(minimal), env(
		"WATTPOOL_NETWORK", "regtest",
		"WATTPOOL_PAYOUT_ADDRESS", regtestWPKH,
		"WATTPOOL_NODE_URL", "http://u:p@node1:18443, https://u:p@node2:18443",
		"WATTPOOL_STRATUM_ADDR", "127.0.0.1:4444",
		"WATTPOOL_START_DIFF", "0.5",
		"WATTPOOL_MIN_DIFF", "0.001",
		"WATTPOOL_HTTP_ADDR", "127.0.0.1:9999",
		"WATTPOOL_INSTANCE_ID", "3",
		"WATTPOOL_LOG_LEVEL", "warn",
		"WATTPOOL_DATABASE_URL", "postgresql://w@localhost/w",
		"WATTPOOL_DATABASE_MIGRATE", "true",
		"WATTPOOL_SPOOL_DIR", "/tmp/sp",
		"WATTPOOL_SPOOL_LIMIT", "64MiB",
		"WATTPOOL_INSTANCE_NAME", "", // empty counts as unset
	))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.Network != &chaincfg.RegressionNetParams || c.PayoutAddress != regtestWPKH || c.InstanceID != 3 || c.Instance != "wattpool" {
		t.Fatalf("env not applied: %+v", c)
	}
	if len(c.Nodes) != 2 || c.Nodes[0].Name != "node1:18443" || c.Nodes[1].Name != "node2:18443" {
		t.Fatalf("nodes %+v", c.Nodes)
	}
	l := c.Listeners[0]
	if l.Addr != "127.0.0.1:4444" || l.StartDiff != 0.5 || l.MinDiff != 0.001 || l.MaxDiff != DefaultMaxDiff {
		t.Fatalf("listener %+v", l)
	}
	if c.HTTPAddr != "127.0.0.1:9999" || c.LogLevel != zapcore.WarnLevel || !c.Migrate || c.SpoolDir != "/tmp/sp" || c.SpoolLimit != 64<<20 {
		t.Fatalf("other: %+v", c)
	}
}

func TestEnvTemplateFileReplacesNodes(t *testing.T) {
	tpl := filepath.Join(t.TempDir(), "gbt.json")
	if err := os.WriteFile(tpl, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(minimal), env("WATTPOOL_TEMPLATE_FILE", tpl))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.TemplateFile != tpl || len(c.Nodes) != 0 {
		t.Fatalf("template %q nodes %+v", c.TemplateFile, c.Nodes)
	}
}

// TestErrorsNameEveryField feeds configurations with several wrong fields
// and checks that each one is named (not only the first).
func TestErrorsNameEveryField(t *testing.T) {
	// The cap's bound depends on the open-file limit of the test process.
	bound, nofile, err := stratum.ProcessConnectionBound()
	if err != nil {
		t.Fatal(err)
	}
	over := fmt.Sprint(bound + 1)
	for _, tc := range []struct {
		name string
		file string
		env  []string
		want []string // substrings, one per expected error
	}{
		{name: "negative and inverted diffs", file: minimal + `
[[stratum.listener]]
addr = ":3333"
start_diff = -1
min_diff = 100
max_diff = 10
[[stratum.listener]]
addr = ":3334"
min_diff = 0
`, want: []string{"stratum.listener[0].start_diff: -1", "stratum.listener[0].min_diff: 100 is above max_diff 10",
			"stratum.listener[1].min_diff: 0"}},
		{name: "start outside range", file: minimal + `
[[stratum.listener]]
addr = ":3333"
start_diff = 5
min_diff = 10
max_diff = 100
`, want: []string{"stratum.listener[0].start_diff: 5 is outside"}},
		{name: "address of another network", file: `
[bitcoin]
network = "mainnet"
payout_address = "` + testP2PKH + `"
[node]
urls = ["http://u:p@h:1"]
`, want: []string{"bitcoin.payout_address:"}},
		{name: "bech32 of another network", file: minimal, env: []string{"WATTPOOL_NETWORK", "regtest"},
			want: []string{"bitcoin.payout_address:"}},
		{name: "unknown network", file: minimal, env: []string{"WATTPOOL_NETWORK", "testnet5"},
			want: []string{"bitcoin.network (from WATTPOOL_NETWORK): \"testnet5\""}},
		{name: "bad node urls", file: minimal, env: []string{"WATTPOOL_NODE_URL", "ftp://u:p@h:1,http://h:1,http://u:p@h,http://u@h:2"},
			want: []string{"scheme \"ftp\"", "no RPC user", "is not host:port", "no RPC password"}},
		{name: "no password in errors", file: minimal, env: []string{"WATTPOOL_NODE_URL", "http://u:hunter2@h:99999"},
			want: []string{"node.urls (from WATTPOOL_NODE_URL): http://u:xxxxx@h:99999"}},
		{name: "unknown keys all named", file: minimal + `
[stratum]
extranonce3_size = 4
[[stratum.listener]]
adr = ":3333"
[htpp]
addr = ":1"
`, want: []string{"stratum.extranonce3_size: unknown key (line 9)", "stratum.listener.adr: unknown key",
			"htpp: unknown key", "stratum.listener[0].addr"}},
		{name: "bad durations", file: `
[bitcoin]
payout_address = "` + mainP2PKH + `"
[node]
urls = ["http://u:p@h:1"]
timeout = "10"
poll_interval = "fast"
[instance]
spool_sync_interval = "2s"
[stratum]
job_refresh_interval = "500ms"
session_resume_window = "2h"
max_parked_sessions = -1
[stratum.vardiff]
target_interval = "-1s"
`, want: []string{"instance.spool_sync_interval: 2s is too long", "node.timeout: \"10\" is not a duration", "node.poll_interval: \"fast\"",
			"stratum.vardiff.target_interval: -1s is too short", "stratum.job_refresh_interval: 500ms is too short",
			"stratum.session_resume_window: 2h0m0s is too long", "stratum.max_parked_sessions: -1 is out of range"}},
		{name: "bad env types", file: minimal, env: []string{"WATTPOOL_START_DIFF", "lots", "WATTPOOL_INSTANCE_ID", "x",
			"WATTPOOL_DATABASE_MIGRATE", "yes please"},
			want: []string{"stratum.listener[0].start_diff (from WATTPOOL_START_DIFF): \"lots\" is not a number",
				"instance.id (from WATTPOOL_INSTANCE_ID)", "database.migrate (from WATTPOOL_DATABASE_MIGRATE)"}},
		{name: "ranges and names", file: minimal + `
[instance]
name = "bad name"
id = 256
spool_dir = ""
spool_limit = "100kB"
[log]
level = "loud"
format = "xml"
[stratum]
extranonce2_size = 1
[stratum.vardiff]
max_factor = 1
tolerance = 1
retarget_shares = -1
`, want: []string{"instance.name", "instance.id: 256", "instance.spool_dir", "instance.spool_limit: \"100kB\" is too small",
			"log.level", "log.format",
			"stratum.extranonce2_size: 1", "max_factor", "tolerance", "retarget_shares"}},
		{name: "addresses", file: minimal, env: []string{"WATTPOOL_STRATUM_ADDR", "3333", "WATTPOOL_HTTP_ADDR", "localhost:http",
			"WATTPOOL_DATABASE_URL", "host=db password=x"},
			want: []string{"stratum.listener[0].addr (from WATTPOOL_STRATUM_ADDR): \"3333\" is not host:port",
				"http.addr (from WATTPOOL_HTTP_ADDR)", "database.url (from WATTPOOL_DATABASE_URL)"}},
		{name: "listener collisions", file: minimal + `
[http]
addr = "127.0.0.1:3333"
[[stratum.listener]]
name = "a"
addr = ":3333"
[[stratum.listener]]
name = "a"
addr = "0.0.0.0:3333"
`, want: []string{"stratum.listener[1].name: \"a\" is used", "stratum.listener[1].addr: \"0.0.0.0:3333\" collides",
			"http.addr: \"127.0.0.1:3333\" is also", "http.addr: \"127.0.0.1:3333\" is also"}},
		{name: "version mask and groups", file: minimal + `
[stratum]
version_mask = "zz"
[[stratum.group]]
pattern = "[acme"
group = "rack 1"
[[stratum.group]]
pattern = "acme.*"
group = "ok"
`, want: []string{"stratum.version_mask: \"zz\"", "stratum.group[0].pattern", "stratum.group[0].group"}},
		{name: "one-bit version mask", file: minimal + "[stratum]\nversion_mask = \"00002000\"\n",
			want: []string{"stratum.version_mask: 00002000 leaves fewer than 2 bits"}},
		{name: "connection caps out of range", file: minimal + `
[stratum]
max_connections = -1
max_connections_per_ip = -2
[[stratum.listener]]
addr = ":3333"
max_connections = -3
`, want: []string{"stratum.max_connections: -1 must not be negative", "stratum.max_connections_per_ip: -2 is out of range",
			"stratum.listener[0].max_connections: -3 must not be negative"}},
		{name: "connection caps above the open-file bound", file: minimal + `
[stratum]
max_connections = ` + over + `
max_connections_per_ip = 20000000
[[stratum.listener]]
addr = ":3333"
max_connections = ` + over + `
`, want: []string{
			fmt.Sprintf("stratum.max_connections: %s exceeds %d, the most the open-file limit allows (RLIMIT_NOFILE %d minus %d", over, bound, nofile, stratum.FileReserve(nofile)),
			"stratum.max_connections_per_ip: 20000000 is out of range",
			fmt.Sprintf("stratum.listener[0].max_connections: %s exceeds %d", over, bound)}},
		{name: "ban policy out of range", file: minimal + `
[stratum.ban]
check_shares = 5
invalid_percent = 0
address_window = "soon"
address_min_flooders = -1
address_flooder_percent = 101
duration = "10m"
max_duration = "1m"
`, want: []string{"stratum.ban.check_shares: 5 is out of range", "stratum.ban.invalid_percent: 0: want a percentage",
			"stratum.ban.address_window: \"soon\" is not a duration", "stratum.ban.address_min_flooders: -1 is out of range",
			"stratum.ban.max_duration: 1m0s is shorter than stratum.ban.duration 10m0s"}},
		{name: "ban flooder percent", file: minimal + "[stratum.ban]\naddress_flooder_percent = 0\n",
			want: []string{"stratum.ban.address_flooder_percent: 0: want a percentage in (0, 100]"}},
		{name: "notify", file: minimal + "[notify]\nurl = \"ftp://x\"\nsecret_env = \"1BAD\"\ntimeout = \"2m\"\n",
			want: []string{"notify.timeout: 2m0s is too long", "notify.url: want an http:// or https:// URL", "notify.secret_env: \"1BAD\" is not an environment variable name"}},
		{name: "no node, no payout", file: "", want: []string{"bitcoin.payout_address: must be set", "node.urls: no node"}},
		{name: "missing files", file: minimal, env: []string{"WATTPOOL_NODE_URL", "https://u:p@h:1", "WATTPOOL_NODE_CA_FILE", "/nonexistent/ca.pem"},
			want: []string{"node.ca_file (from WATTPOOL_NODE_CA_FILE): open /nonexistent/ca.pem"}},
		{name: "pool tag too long or not ASCII", file: "[bitcoin]\npayout_address = \"" + mainP2PKH +
			"\"\npool_tag = \"" + strings.Repeat("x", 99) + "\"\n[node]\nurls = [\"http://u:p@h:1\"]\n",
			want: []string{"bitcoin.pool_tag"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file), env(tc.env...))
			if err == nil {
				t.Fatal("Parse accepted a bad configuration")
			}
			got := List(err)
			if len(got) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(got), len(tc.want), err)
			}
			used := make([]bool, len(got))
		want:
			for _, w := range tc.want {
				for i, e := range got {
					if !used[i] && strings.Contains(e.Error(), w) {
						used[i] = true
						continue want
					}
				}
				t.Errorf("no error contains %q; got:\n%v", w, err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestSyntaxErrorIsReportedWithPosition(t *testing.T) {
	_, err := Parse([]byte("[bitcoin]\nnetwork = \n"), nil)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want a line number", err)
	}
	_, err = Parse([]byte("[instance]\nid = \"seven\"\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "instance.id") {
		t.Fatalf("err = %v, want the key named", err)
	}
	for _, bad := range []string{"[stratum]\nmax_connections = \"many\"\n", "[stratum]\nmax_connections = 1.5\n",
		"[stratum]\nmax_connections_per_ip = true\n", "[[stratum.listener]]\nmax_connections = \"10\"\n"} {
		if _, err := Parse([]byte(bad), nil); err == nil || !strings.Contains(err.Error(), "max_connections") {
			t.Errorf("%q: err = %v, want the key named", bad, err)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("err %T is not a FieldError", err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"http://user:hunter2@h:8332":                     "http://user:xxxxx@h:8332",
		"postgres://w:hunter2@db:5432/w?sslmode=disable": "postgres://w:xxxxx@db:5432/w?sslmode=disable",
		"postgres://w@db/w?password=hunter2":             "postgres://w@db/w?password=xxxxx",
		"host=db password=hunter2":                       "<unparsable URL>",
		"http://u:p%zz@h":                                "<unparsable URL>",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExampleFileIsValid(t *testing.T) {
	path := filepath.Join("..", "..", "..", "..", "wattpool.example.toml")
	if _, err := Load(path, env("WATTPOOL_PAYOUT_ADDRESS", mainP2WPKH, "WATTPOOL_NODE_URL", "http://u:p@127.0.0.1:8332")); err != nil {
		t.Fatalf("the example configuration does not load:\n%v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("[[stratum.listener]]\nstart_diff = 1e400\n"))
	f.Add([]byte("[node]\nurls = [\"http://u:p@[::1]:8332\"]\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := Parse(raw, nil)
		if err == nil && (c.Network == nil || len(c.PayoutScript) == 0 || len(c.Listeners) == 0) {
			t.Fatalf("accepted an incomplete configuration: %+v", c)
		}
		if err != nil && len(List(err)) == 0 {
			t.Fatal("error without any entry")
		}
	})
}

// TestExampleFileShowsTheDefaults holds wattpool.example.toml to its promise
// that every key shows its default.
func TestExampleFileShowsTheDefaults(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "wattpool.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var fromFile File // decoded over zero values, not over the defaults
	if err := decode(raw, &fromFile); err != nil {
		t.Fatalf("decode example: %v", err)
	}
	if def := Defaults(); !reflect.DeepEqual(fromFile, def) {
		t.Fatalf("example file and Defaults() differ:\nfile:     %+v\ndefaults: %+v", fromFile, def)
	}
	for _, e := range EnvVars() {
		if e.Name != ConfigEnv && !strings.Contains(string(raw), e.Name) {
			t.Errorf("example file does not mention %s", e.Name)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{in: "4GiB", want: 4 << 30},
		{in: "500MiB", want: 500 << 20},
		{in: " 1mib ", want: 1 << 20},
		{in: "2GB", want: 2e9},
		{in: "1.5KiB", want: 1536},
		{in: "1048576", want: 1 << 20},
		{in: "10 B", want: 10},
		{in: "3TB", want: 3e12},
		{in: "", err: "is not a size"},
		{in: "GiB", err: "is not a size"},
		{in: "-1GiB", err: "is not a size"},
		{in: "4 gigs", err: "is not a size"},
		{in: "1.2.3MB", err: "is not a size"},
		{in: "9999999TiB", err: "too large"},
	} {
		got, err := ParseSize(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseSize(%q) = %d, %v; want an error containing %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4GiB", "1.5KiB", "12", "1e3MB", "..", "9999999TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		if err != nil && n != 0 {
			t.Fatalf("ParseSize(%q) = %d with error %v", s, n, err)
		}
	})
}

func TestSoloListenerKey(t *testing.T) {
	_, err := Parse([]byte("[[stratum.listener]]\nsolo = \"yes\"\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "solo") {
		t.Fatalf("solo = \"yes\": err = %v, want the key named", err)
	}
}
