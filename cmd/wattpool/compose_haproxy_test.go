package main

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
)

// TestComposeHAProxy holds docker-compose.yml and deploy/haproxy.cfg
// together: HAProxy publishes the stratum port and mounts the shipped
// file; each wattpool service is a server line of it, at its stratum
// port with its HTTP port checked, reads PROXY headers from the compose
// network only, has its own instance id and spool, and shares the one
// database.
func TestComposeHAProxy(t *testing.T) {
	var cf struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
			Volumes     []string          `yaml:"volumes"`
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
	if err := yaml.Unmarshal(repoFile(t, "docker-compose.yml"), &cf); err != nil {
		t.Fatal(err)
	}
	hcfg := string(repoFile(t, "deploy/haproxy.cfg"))
	hp, ok := cf.Services["haproxy"]
	if !ok {
		t.Fatal("no haproxy service")
	}
	if !contains(hp.Volumes, "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro") {
		t.Errorf("haproxy does not mount deploy/haproxy.cfg: %v", hp.Volumes)
	}
	stratumPort := strconv.Itoa(config.DefaultStratumPort)
	if !contains(hp.Ports, stratumPort+":"+stratumPort) || !strings.Contains(hcfg, "\n    bind :"+stratumPort+"\n") {
		t.Errorf("haproxy does not publish and bind the stratum port %s (ports %v)", stratumPort, hp.Ports)
	}
	for _, want := range []string{"option httpchk GET /readyz", "send-proxy-v2", "mode tcp"} {
		if !strings.Contains(hcfg, want) {
			t.Errorf("deploy/haproxy.cfg lacks %q", want)
		}
	}
	subnet := cf.Networks["pool"].IPAM.Config[0].Subnet
	ids, spools := map[string]string{}, map[string]string{}
	var dbURL string
	for _, name := range []string{"wattpool", "wattpool2"} {
		svc, ok := cf.Services[name]
		if !ok {
			t.Fatalf("no %s service", name)
		}
		if _, ok := hp.DependsOn[name]; !ok {
			t.Errorf("haproxy does not depend on %s", name)
		}
		env := map[string]string{}
		for k, v := range svc.Environment {
			env[k] = composeDefault(v)
		}
		env["WATTPOOL_PAYOUT_ADDRESS"] = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
		c, err := config.Parse(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			t.Fatalf("%s: the compose environment does not make a valid configuration:\n%v", name, err)
		}
		if !c.Listeners[0].ProxyProtocol || len(c.ProxyTrusted) != 1 || c.ProxyTrusted[0].String() != subnet {
			t.Errorf("%s: proxy_protocol %v from %v, want true from the compose network %s", name, c.Listeners[0].ProxyProtocol, c.ProxyTrusted, subnet)
		}
		if prev, dup := ids[fmt.Sprint(c.InstanceID)]; dup {
			t.Errorf("%s and %s share instance.id %d", prev, name, c.InstanceID)
		}
		ids[fmt.Sprint(c.InstanceID)] = name
		for _, v := range svc.Volumes {
			if prev, dup := spools[v]; dup {
				t.Errorf("%s and %s share the spool volume %s", prev, name, v)
			}
			spools[v] = name
		}
		if dbURL == "" {
			dbURL = c.DatabaseURL
		} else if c.DatabaseURL != dbURL {
			t.Errorf("%s uses another database", name)
		}
		_, sport, _ := net.SplitHostPort(c.Listeners[0].Addr)
		_, hport, _ := net.SplitHostPort(c.HTTPAddr)
		line := regexp.MustCompile(`(?m)^    server \S+ ` + name + `:` + sport + ` check port ` + hport + `$`)
		if !line.MatchString(hcfg) {
			t.Errorf("deploy/haproxy.cfg has no line `server <name> %s:%s check port %s`", name, sport, hport)
		}
		if strings.Join(svc.Healthcheck.Test, " ") != "CMD /usr/local/bin/wattpool healthcheck --ready" {
			t.Errorf("%s health check %q", name, svc.Healthcheck.Test)
		}
		for _, p := range svc.Ports {
			if strings.HasSuffix(p, ":"+sport) && !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes its PROXY stratum port %s: miners must come through haproxy", name, p)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
