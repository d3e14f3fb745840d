// Package config reads wattpool's configuration: a TOML file (strict:
// unknown keys are errors), overridden by WATTPOOL_* environment variables,
// validated into a typed Config. Validation collects every wrong field, so
// `wattpool check-config` can name them all at once.
package config

import (
	"net/netip"
	"time"

	"github.com/wattpool/wattpool/stratum"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"go.uber.org/zap/zapcore"
)

// Default ports. The docker-compose file and the README document these;
// a test checks that they agree.
const (
	DefaultStratumPort = 3333
	DefaultHTTPPort    = 8080
)

// Config is a validated configuration. Everything in it has been checked:
// code that receives a Config does not validate again.
type Config struct {
	// Instance names this pool process in logs, metrics and the database;
	// several instances may share one database.
	Instance string
	// InstanceID is the extranonce1 prefix that keeps instances' coinbases
	// apart; every instance sharing a database needs its own.
	InstanceID uint8
	// SpoolDir holds the share ledger's write-ahead spool.
	SpoolDir string
	// SpoolLimit caps the spool's bytes on disk. Beyond it (the database
	// has been down for long) shares are refused and miners are told
	// they were not recorded, rather than accepted and then lost.
	SpoolLimit int64
	// SpoolSync is how often the spool is fsynced (group commit): what
	// a power loss may take of the shares already acknowledged. 0 fsyncs
	// every share before the miner is answered.
	SpoolSync time.Duration
	// ShutdownTimeout bounds the graceful drain after SIGINT/SIGTERM.
	ShutdownTimeout time.Duration

	// LogLevel and LogFormat ("json" or "console") configure the logger.
	LogLevel  zapcore.Level
	LogFormat string

	// Network is the chain the pool mines on; PayoutAddress is the
	// configured address and PayoutScript its output script.
	Network       *chaincfg.Params
	PayoutAddress string
	PayoutScript  []byte
	// PoolTag is pushed into every coinbase script.
	PoolTag string

	// Nodes are the nodes to fetch templates from, in failover order.
	// Empty when TemplateFile is set.
	Nodes []Node
	// NodeTimeout bounds each node call; PollInterval is how often the
	// best block is polled; RefreshInterval is how often a fresh template
	// is fetched on the same block (new transactions); LongPoll asks
	// nodes that offer it for longpolled templates.
	NodeTimeout, PollInterval, RefreshInterval time.Duration
	// MaxTemplateAge: with no template from any node for longer, /readyz
	// answers 503 (miners would mine stale work or none).
	MaxTemplateAge time.Duration
	LongPoll       bool
	// TemplateFile replays a getblocktemplate JSON file instead of asking
	// a node (demos and load tests; blocks found are only logged).
	TemplateFile string

	// DatabaseURL is the PostgreSQL URL of the share ledger; empty keeps
	// shares in the log only. Migrate applies migrations at start-up.
	DatabaseURL string
	Migrate     bool
	// BlockCheckInterval is how often found blocks are followed on the
	// node (confirmations, orphans) until they are final.
	BlockCheckInterval time.Duration

	// Extranonce2Size is the byte length of the miner's extranonce.
	Extranonce2Size int
	// VersionMask is the set of header version bits miners may roll
	// (BIP310); 0 disables version rolling.
	VersionMask uint32
	// JobRefresh is how often miners get a fresh job (clean_jobs=false)
	// on the same block, carrying the newest template's transactions.
	JobRefresh time.Duration
	// SessionResumeWindow is how long a closed connection's session
	// (extranonce1, jobs, duplicate sets) waits for its miner to come back
	// with its session id; 0 disables resuming.
	SessionResumeWindow time.Duration
	// MaxParkedSessions bounds the sessions waiting to be resumed (oldest
	// dropped first); 0 disables resuming.
	MaxParkedSessions int
	// MaxConnections caps the open miner connections of the process, so
	// that a flood cannot take the descriptors the spool, the database and
	// the node need; 0 derives it from the open-file limit (see
	// stratum.ConnectionBound).
	MaxConnections int
	// MaxConnectionsPerIP caps the connections of one address; 0 is
	// unlimited, since whole farms mine from behind one NAT address.
	MaxConnectionsPerIP int
	// ProxyTrusted are the networks (load balancers) allowed to send a
	// PROXY header to a listener with ProxyProtocol.
	ProxyTrusted []netip.Prefix
	// HandshakeTimeout bounds the PROXY header and the TLS handshake.
	HandshakeTimeout time.Duration
	// Groups map "account.worker" names (path.Match patterns) to worker
	// groups, first match wins.
	Groups []Group
	// Vardiff holds the difficulty adjustment settings shared by every
	// listener (each listener brings its own difficulty range).
	Vardiff Vardiff
	// Ban is the invalid-share policy: a flooding connection is closed
	// alone, its address banned only when many of its miners flood.
	Ban stratum.BanConfig
	// Listeners are the stratum ports, each with its difficulty range.
	Listeners []Listener

	// HTTPAddr serves /metrics, /api/v1/status and /healthz; empty
	// disables the HTTP server.
	HTTPAddr string

	// Allocator is the validated [allocator] configuration (allocator.go).
	Allocator AllocatorConfig
	// Payouts is the validated [payouts] configuration (payouts.go).
	Payouts PayoutsConfig
	// Audit is the validated [audit] configuration (audit.go).
	Audit AuditConfig
	// Notify is the validated [notify] configuration (notify.go).
	Notify NotifyConfig
}

// Node is one node of the failover list.
type Node struct {
	// Name is host:port, used in logs and metric labels.
	Name string
	// URL is http(s)://user:pass@host:port. It carries the RPC password:
	// log it only through Redact.
	URL string
	// CAFile is the PEM file that signs an https node's certificate.
	CAFile string
}

// Group is one worker group rule.
type Group struct {
	Pattern, Group string
}

// Vardiff are the per-connection difficulty adjustment settings.
type Vardiff struct {
	TargetInterval   time.Duration
	RetargetInterval time.Duration
	RetargetShares   int
	MaxFactor        float64
	Tolerance        float64
}

// Listener is one stratum port.
type Listener struct {
	// Name identifies the listener in logs and metrics.
	Name string
	// Addr is host:port to listen on.
	Addr string
	// StartDiff is the difficulty new connections start at; MinDiff and
	// MaxDiff bound vardiff and miner suggestions.
	StartDiff, MinDiff, MaxDiff float64
	// MaxConnections caps this listener's connections within the
	// process's cap; 0 leaves only that one.
	MaxConnections int
	// ProxyProtocol: the port sits behind a balancer sending PROXY
	// headers (see stratum.ListenerConfig).
	ProxyProtocol bool
	// TLSCert and TLSKey make the port Stratum over TLS.
	TLSCert, TLSKey string
	// Solo makes the port a solo one: user names are addresses of the
	// network and jobs pay them directly (see stratum.ListenerConfig).
	Solo bool
}

// Defaults returns the configuration a missing file stands for. It is not
// valid on its own: a payout address and a node (or template file) must be
// given.
func Defaults() File {
	start, lo, hi := float64(DefaultStartDiff), float64(DefaultMinDiff), float64(DefaultMaxDiff)
	return File{
		Instance: InstanceFile{Name: "wattpool", ID: 0, SpoolDir: "spool", SpoolLimit: "4GiB", SpoolSync: "20ms", ShutdownTimeout: "30s"},
		Log:      LogFile{Level: "info", Format: "json"},
		Bitcoin:  BitcoinFile{Network: "mainnet", PoolTag: "/wattpool/"},
		Node:     NodeFile{URLs: []string{}, Timeout: "30s", PollInterval: "250ms", RefreshInterval: "10s", MaxTemplateAge: "2m", LongPoll: true},
		Database: DatabaseFile{BlockCheckInterval: "30s"},
		Stratum: StratumFile{
			Extranonce2Size: 4,
			VersionMask:     "1fffe000",
			JobRefresh:      "30s",
			HandshakeTime:   "10s",
			ProxyTrusted:    []string{},
			SessionResume:   "10m",
			MaxParked:       20000,
			Vardiff: VardiffFile{TargetInterval: "10s", RetargetInterval: "60s", RetargetShares: 30,
				MaxFactor: 4, Tolerance: 0.3},
			Ban: BanFile{Enabled: true, CheckShares: 100, InvalidPercent: 50, AddressWindow: "10m",
				AddressMinFlooders: 10, AddressFlooderPercent: 50, Duration: "10m", MaxDuration: "24h", ForgetAfter: "24h"},
			Listeners: []ListenerFile{{Name: "default", Addr: "0.0.0.0:3333", StartDiff: &start, MinDiff: &lo, MaxDiff: &hi}},
		},
		HTTP: HTTPFile{Addr: "127.0.0.1:8080"},

		Allocator: defaultAllocator(),
		Payouts:   defaultPayouts(),
		Notify:    defaultNotify(),
	}
}

// MaxSessionResumeWindow and MaxParkedSessions bound the session-resume
// settings as the stratum server does: a parked session holds its jobs in
// memory, so neither the time nor the count may grow without limit.
const (
	MaxSessionResumeWindow = time.Hour
	MaxParkedSessions      = 1 << 20
)

// MaxSpoolSync bounds instance.spool_sync_interval: the fsync interval is
// the window of acknowledged shares a power loss may take.
const MaxSpoolSync = time.Second

// MinSpoolLimit is the smallest instance.spool_limit: room for a few
// thousand shares and the jobs they belong to.
const MinSpoolLimit = 1 << 20

// Listener difficulty defaults for keys a [[stratum.listener]] table omits.
const (
	DefaultStartDiff = 16384
	DefaultMinDiff   = 1
	DefaultMaxDiff   = 1e12
)
