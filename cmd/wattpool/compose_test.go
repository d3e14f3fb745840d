package main

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
)

// repoFile reads a file at the repository root.
func repoFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

type composeFile struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		DependsOn   map[string]any    `yaml:"depends_on"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
}

func knownEnv() map[string]bool {
	known := map[string]bool{}
	for _, e := range config.EnvVars() {
		known[e.Name] = true
	}
	return known
}

var wattpoolVar = regexp.MustCompile(`WATTPOOL_[A-Z0-9_]+`)

// composeDefault resolves "${VAR:-default}" (and plain values) the way
// docker compose does when VAR is unset.
func composeDefault(v string) string {
	return regexp.MustCompile(`\$\{[A-Z0-9_]+(?::?[-?])([^}]*)\}`).ReplaceAllStringFunc(v, func(m string) string {
		sub := regexp.MustCompile(`\$\{[A-Z0-9_]+(:?-)([^}]*)\}`).FindStringSubmatch(m)
		if sub == nil { // ${VAR:?message}: no default
			return ""
		}
		return sub[2]
	})
}

// TestComposeMatchesConfig holds docker-compose.yml, the Dockerfile and the
// config package's documented variables and default ports together: a
// variable renamed in one place only fails here.
func TestComposeMatchesConfig(t *testing.T) {
	raw := repoFile(t, "docker-compose.yml")
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	known := knownEnv()

	// Every WATTPOOL_* name anywhere in the file is one the config reads.
	for _, name := range wattpoolVar.FindAllString(string(raw), -1) {
		if !known[name] {
			t.Errorf("docker-compose.yml uses %s, which the config package does not read", name)
		}
	}

	pg, ok := c.Services["postgres"]
	if !ok || !strings.HasPrefix(pg.Image, "postgres:15") {
		t.Errorf("postgres service missing or not PostgreSQL 15: %+v", pg.Image)
	}
	btc, ok := c.Services["bitcoind"]
	if !ok {
		t.Fatal("no bitcoind service")
	}
	wp, ok := c.Services["wattpool"]
	if !ok {
		t.Fatal("no wattpool service")
	}
	if wp.Build.Context != "." || wp.Build.Dockerfile != "Dockerfile" {
		t.Errorf("wattpool is not built from the repository's Dockerfile: %+v", wp.Build)
	}
	for _, dep := range []string{"postgres", "bitcoind"} {
		if _, ok := wp.DependsOn[dep]; !ok {
			t.Errorf("wattpool does not depend on %s", dep)
		}
	}

	// The essentials are set, and the values resolve (with compose's
	// defaults and a payout address) to a configuration that validates.
	env := map[string]string{}
	for k, v := range wp.Environment {
		if !known[k] {
			t.Errorf("wattpool service sets %s, which the config package does not read", k)
		}
		env[k] = composeDefault(v)
	}
	for _, k := range []string{"WATTPOOL_NETWORK", "WATTPOOL_NODE_URL", "WATTPOOL_DATABASE_URL", "WATTPOOL_STRATUM_ADDR",
		"WATTPOOL_PAYOUT_ADDRESS", "WATTPOOL_HTTP_ADDR", "WATTPOOL_SPOOL_DIR"} {
		if _, ok := wp.Environment[k]; !ok {
			t.Errorf("wattpool service does not set %s", k)
		}
	}
	env["WATTPOOL_PAYOUT_ADDRESS"] = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
	cfg, err := config.Parse(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("the compose environment does not make a valid configuration:\n%v", err)
	}

	// Published ports are the configured ones and the documented defaults.
	wantPort := func(addr string, def int, what string) {
		_, port, _ := net.SplitHostPort(addr)
		if port != strconv.Itoa(def) {
			t.Errorf("%s listens on %s, not the default port %d", what, addr, def)
		}
		for _, p := range wp.Ports {
			if strings.HasSuffix(p, ":"+port+":"+port) || p == port+":"+port {
				return
			}
		}
		t.Errorf("%s port %s is not published (ports %v)", what, port, wp.Ports)
	}
	// The stratum port is HAProxy's to publish (TestComposeHAProxy).
	wantPort(cfg.HTTPAddr, config.DefaultHTTPPort, "http")

	// The node URL matches bitcoind's RPC port, user and password, and
	// bitcoind lets the compose network in.
	args := strings.Join(btc.Command, " ")
	u := cfg.Nodes[0]
	host, port, _ := net.SplitHostPort(u.Name)
	if host != "bitcoind" || !strings.Contains(args, "-rpcport="+port) {
		t.Errorf("node %s does not match the bitcoind service (%s)", u.Name, args)
	}
	for _, want := range []string{"-rpcuser=${BITCOIN_RPC_USER:-wattpool}", "-rpcpassword=${BITCOIN_RPC_PASSWORD:-change-me}",
		"-chain=${WATTPOOL_NETWORK:-regtest}"} {
		if !strings.Contains(args, want) {
			t.Errorf("bitcoind command lacks %s", want)
		}
	}
	if !strings.Contains(wp.Environment["WATTPOOL_NODE_URL"], "${BITCOIN_RPC_USER:-wattpool}:${BITCOIN_RPC_PASSWORD:-change-me}@") {
		t.Errorf("WATTPOOL_NODE_URL does not use bitcoind's credentials: %s", wp.Environment["WATTPOOL_NODE_URL"])
	}
	subnet := c.Networks["pool"].IPAM.Config
	if len(subnet) != 1 || !strings.Contains(args, "-rpcallowip="+subnet[0].Subnet) {
		t.Errorf("bitcoind -rpcallowip does not name the compose network's subnet %+v", subnet)
	}
	if !strings.Contains(env["WATTPOOL_DATABASE_URL"], "@postgres:5432/") || pg.Environment["POSTGRES_DB"] != "wattpool" {
		t.Errorf("database URL %s does not point at the postgres service's database", config.Redact(env["WATTPOOL_DATABASE_URL"]))
	}
}

// TestDockerfileMatchesConfig checks the image: Go 1.26 build, non-root
// user, default ports exposed and only known variables set.
func TestDockerfileMatchesConfig(t *testing.T) {
	raw := string(repoFile(t, "Dockerfile"))
	known := knownEnv()
	for _, name := range wattpoolVar.FindAllString(raw, -1) {
		if !known[name] {
			t.Errorf("Dockerfile uses %s, which the config package does not read", name)
		}
	}
	var expose, user string
	sc := bufio.NewScanner(strings.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "EXPOSE "):
			expose = line
		case strings.HasPrefix(line, "USER "):
			user = strings.TrimPrefix(line, "USER ")
		}
	}
	for _, p := range []int{config.DefaultStratumPort, config.DefaultHTTPPort} {
		if !strings.Contains(expose, strconv.Itoa(p)) {
			t.Errorf("Dockerfile does not EXPOSE default port %d (%q)", p, expose)
		}
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("image runs as %q, want a non-root user", user)
	}
	if !strings.Contains(raw, "ARG GO_VERSION=1.26") {
		t.Error("Dockerfile does not build with Go 1.26")
	}
}

// TestReadmeDocumentsEveryVariable: once the README carries the
// configuration table, it must list exactly the variables the config reads.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	raw := string(repoFile(t, "README.md"))
	mentioned := map[string]bool{}
	for _, name := range wattpoolVar.FindAllString(raw, -1) {
		mentioned[name] = true
	}
	known := knownEnv()
	// Secrets are never config values: the config names the variable
	// that holds one (these are the defaults of those names), and the
	// demo's simulated firmware reads its password the same way.
	secrets := map[string]bool{config.DefaultNotifySecretEnv: true, config.DefaultWebhookSecretEnv: true,
		demoFirmwarePasswordEnv: true}
	for name := range mentioned {
		if !known[name] && !secrets[name] && !strings.HasPrefix(name, "WATTPOOL_TEST_") && name != "WATTPOOL_BTCD_BIN" {
			t.Errorf("README.md mentions %s, which the config package does not read", name)
		}
	}
	if !mentioned["WATTPOOL_NETWORK"] {
		t.Skip("README.md has no configuration table yet")
	}
	for name := range known {
		if !mentioned[name] {
			t.Errorf("README.md does not document %s", name)
		}
	}
}

// TestContainerHealthcheck: the wattpool service's health check runs the
// binary's own healthcheck command (the image has no shell or curl), and
// the build context leaves out the dev stack and built binaries.
func TestContainerHealthcheck(t *testing.T) {
	var cf composeFile
	if err := yaml.Unmarshal(repoFile(t, "docker-compose.yml"), &cf); err != nil {
		t.Fatal(err)
	}
	hc := cf.Services["wattpool"].Healthcheck.Test
	if strings.Join(hc, " ") != "CMD /usr/local/bin/wattpool healthcheck --ready" {
		t.Fatalf("compose health check %q", hc)
	}
	if df := string(repoFile(t, "Dockerfile")); !strings.Contains(df, `CMD ["/usr/local/bin/wattpool", "healthcheck", "--ready"]`) {
		t.Error("the Dockerfile has no HEALTHCHECK running wattpool healthcheck")
	}
	ignored := map[string]bool{}
	for _, line := range strings.Split(string(repoFile(t, ".dockerignore")), "\n") {
		ignored[strings.TrimSpace(line)] = true
	}
	for _, want := range []string{".devstack/", "bin/", ".git/"} {
		if !ignored[want] {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
}
