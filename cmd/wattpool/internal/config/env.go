package config

import (
	"fmt"
	"strconv"
	"strings"
)

// EnvVar documents one environment override. The table below is the single
// list the README, the docker-compose file and `wattpool check-config`
// agree with (a test holds them together).
type EnvVar struct {
	// Name is the variable, e.g. WATTPOOL_NETWORK.
	Name string
	// Field is the configuration key it overrides, e.g. bitcoin.network.
	Field string
	// Doc says what it sets, for the README table and --help.
	Doc string
	// apply sets the value on f; it returns an error for a value that is
	// not of the field's type (range checks happen in validation).
	apply func(f *File, v string) error
}

// ConfigEnv names the variable that gives the configuration file path when
// --config is not used.
const ConfigEnv = "WATTPOOL_CONFIG"

// EnvVars returns every WATTPOOL_* variable the configuration reads, in
// documentation order. WATTPOOL_CONFIG comes first.
func EnvVars() []EnvVar { return append([]EnvVar(nil), envVars...) }

var envVars = []EnvVar{
	{Name: ConfigEnv, Field: "(file)", Doc: "Path of the TOML configuration file (`--config` wins).",
		apply: func(*File, string) error { return nil }},
	{Name: "WATTPOOL_INSTANCE_NAME", Field: "instance.name", Doc: "Name of this pool instance (logs, metrics, database).",
		apply: func(f *File, v string) error { f.Instance.Name = v; return nil }},
	{Name: "WATTPOOL_INSTANCE_ID", Field: "instance.id", Doc: "Extranonce1 prefix 0-255; unique per instance sharing a database.",
		apply: func(f *File, v string) error { return setInt(&f.Instance.ID, v) }},
	{Name: "WATTPOOL_SPOOL_DIR", Field: "instance.spool_dir", Doc: "Folder of the share ledger's write-ahead spool.",
		apply: func(f *File, v string) error { f.Instance.SpoolDir = v; return nil }},
	{Name: "WATTPOOL_SPOOL_LIMIT", Field: "instance.spool_limit", Doc: "Most bytes the spool may hold (e.g. 4GiB, 500MiB); beyond it shares are refused as not recorded.",
		apply: func(f *File, v string) error { f.Instance.SpoolLimit = v; return nil }},
	{Name: "WATTPOOL_LOG_LEVEL", Field: "log.level", Doc: "debug, info, warn or error.",
		apply: func(f *File, v string) error { f.Log.Level = v; return nil }},
	{Name: "WATTPOOL_LOG_FORMAT", Field: "log.format", Doc: "json or console.",
		apply: func(f *File, v string) error { f.Log.Format = v; return nil }},
	{Name: "WATTPOOL_NETWORK", Field: "bitcoin.network", Doc: "mainnet, testnet (testnet3), testnet4, signet, regtest or simnet; Bitcoin Core's main and test too.",
		apply: func(f *File, v string) error { f.Bitcoin.Network = v; return nil }},
	{Name: "WATTPOOL_PAYOUT_ADDRESS", Field: "bitcoin.payout_address", Doc: "Address of the network that coinbases pay (P2PKH, P2SH, P2WPKH, P2WSH, P2TR).",
		apply: func(f *File, v string) error { f.Bitcoin.PayoutAddress = v; return nil }},
	{Name: "WATTPOOL_NODE_URL", Field: "node.urls", Doc: "Node RPC `http(s)://user:pass@host:port`; several comma-separated fail over in order.",
		apply: func(f *File, v string) error { f.Node.URLs = splitList(v); return nil }},
	{Name: "WATTPOOL_NODE_CA_FILE", Field: "node.ca_file", Doc: "PEM certificate authority (or btcd's rpc.cert) for https node URLs.",
		apply: func(f *File, v string) error { f.Node.CAFile = v; return nil }},
	{Name: "WATTPOOL_TEMPLATE_FILE", Field: "node.template_file", Doc: "Replay this getblocktemplate JSON file instead of asking a node.",
		apply: func(f *File, v string) error { f.Node.TemplateFile = v; return nil }},
	{Name: "WATTPOOL_DATABASE_URL", Field: "database.url", Doc: "PostgreSQL URL `postgres://user:pass@host:5432/db`; unset logs shares only.",
		apply: func(f *File, v string) error { f.Database.URL = v; return nil }},
	{Name: "WATTPOOL_DATABASE_MIGRATE", Field: "database.migrate", Doc: "true applies database migrations at start-up.",
		apply: func(f *File, v string) error { return setBool(&f.Database.Migrate, v) }},
	{Name: "WATTPOOL_STRATUM_ADDR", Field: "stratum.listener[0].addr", Doc: "host:port of the first stratum listener.",
		apply: func(f *File, v string) error { firstListener(f).Addr = v; return nil }},
	{Name: "WATTPOOL_START_DIFF", Field: "stratum.listener[0].start_diff", Doc: "Starting share difficulty of the first listener.",
		apply: func(f *File, v string) error { return setFloat(&firstListener(f).StartDiff, v) }},
	{Name: "WATTPOOL_MIN_DIFF", Field: "stratum.listener[0].min_diff", Doc: "Minimum share difficulty of the first listener (fractions allowed, e.g. 0.001).",
		apply: func(f *File, v string) error { return setFloat(&firstListener(f).MinDiff, v) }},
	{Name: "WATTPOOL_MAX_DIFF", Field: "stratum.listener[0].max_diff", Doc: "Maximum share difficulty of the first listener.",
		apply: func(f *File, v string) error { return setFloat(&firstListener(f).MaxDiff, v) }},
	{Name: "WATTPOOL_PROXY_PROTOCOL", Field: "stratum.listener[0].proxy_protocol", Doc: "true: the first listener reads a PROXY header (HAProxy send-proxy-v2) from stratum.proxy_trusted sources.",
		apply: func(f *File, v string) error { return setBool(&firstListener(f).ProxyProtocol, v) }},
	{Name: "WATTPOOL_PROXY_TRUSTED", Field: "stratum.proxy_trusted", Doc: "Comma-separated networks or addresses of the load balancers allowed to send PROXY headers.",
		apply: func(f *File, v string) error { f.Stratum.ProxyTrusted = splitList(v); return nil }},
	{Name: "WATTPOOL_HTTP_ADDR", Field: "http.addr", Doc: "host:port of /metrics, /api/v1/status and /healthz; `off` disables.",
		apply: func(f *File, v string) error { f.HTTP.Addr = v; return nil }},
}

// ApplyEnv overrides f with the WATTPOOL_* variables that lookup finds
// set to a non-empty value (an empty value counts as unset, as docker
// compose's ${VAR:-} yields). It returns the variable that set each field,
// keyed by field, and an error for every value of the wrong type.
func ApplyEnv(f *File, lookup func(string) (string, bool)) (map[string]string, []error) {
	from := make(map[string]string)
	var errs []error
	for _, e := range envVars {
		v, ok := lookup(e.Name)
		if !ok || strings.TrimSpace(v) == "" || e.Name == ConfigEnv {
			continue
		}
		from[e.Field] = e.Name
		if err := e.apply(f, strings.TrimSpace(v)); err != nil {
			errs = append(errs, &FieldError{Field: e.Field, Env: e.Name, Err: err})
		}
	}
	return from, errs
}

// firstListener returns the first listener, creating a default one when
// the file declared none.
func firstListener(f *File) *ListenerFile {
	if len(f.Stratum.Listeners) == 0 {
		f.Stratum.Listeners = append(f.Stratum.Listeners, ListenerFile{Name: "default"})
	}
	return &f.Stratum.Listeners[0]
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func setInt(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%q is not an integer", v)
	}
	*dst = n
	return nil
}

func setFloat(dst **float64, v string) error {
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", v)
	}
	*dst = &x
	return nil
}

func setBool(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("%q is not a boolean (true or false)", v)
	}
	*dst = b
	return nil
}
