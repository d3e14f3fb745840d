package config

// File is the shape of the TOML configuration file. Every key is documented
// in wattpool.example.toml at the repository root; Load fills a File with
// the defaults, decodes the file over it, applies the WATTPOOL_* environment
// overrides and turns it into a validated Config.
//
// Durations are strings ("250ms", "30s") and stay strings here so that a
// bad duration is reported together with every other wrong field instead of
// stopping the decoder at the first one.
type File struct {
	Instance InstanceFile `toml:"instance"`
	Log      LogFile      `toml:"log"`
	Bitcoin  BitcoinFile  `toml:"bitcoin"`
	Node     NodeFile     `toml:"node"`
	Database DatabaseFile `toml:"database"`
	Stratum  StratumFile  `toml:"stratum"`
	HTTP     HTTPFile     `toml:"http"`

	// Allocator is the mine-or-lease allocator (allocator.go).
	Allocator AllocatorFile `toml:"allocator"`
	// Payouts is how block rewards are split (payouts.go).
	Payouts PayoutsFile `toml:"payouts"`
	// Audit is share-log retention (audit.go).
	Audit AuditFile `toml:"audit"`
	// Notify is where operator notifications go (notify.go).
	Notify NotifyFile `toml:"notify"`
}

// InstanceFile is the [instance] table.
type InstanceFile struct {
	Name            string `toml:"name"`
	ID              int    `toml:"id"`
	SpoolDir        string `toml:"spool_dir"`
	SpoolLimit      string `toml:"spool_limit"`
	SpoolSync       string `toml:"spool_sync_interval"`
	ShutdownTimeout string `toml:"shutdown_timeout"`
}

// LogFile is the [log] table.
type LogFile struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// BitcoinFile is the [bitcoin] table.
type BitcoinFile struct {
	Network       string `toml:"network"`
	PayoutAddress string `toml:"payout_address"`
	PoolTag       string `toml:"pool_tag"`
}

// NodeFile is the [node] table.
type NodeFile struct {
	URLs            []string `toml:"urls"`
	CAFile          string   `toml:"ca_file"`
	Timeout         string   `toml:"timeout"`
	PollInterval    string   `toml:"poll_interval"`
	RefreshInterval string   `toml:"refresh_interval"`
	MaxTemplateAge  string   `toml:"max_template_age"`
	LongPoll        bool     `toml:"longpoll"`
	TemplateFile    string   `toml:"template_file"`
}

// DatabaseFile is the [database] table.
type DatabaseFile struct {
	URL                string `toml:"url"`
	Migrate            bool   `toml:"migrate"`
	BlockCheckInterval string `toml:"block_check_interval"`
}

// StratumFile is the [stratum] table.
type StratumFile struct {
	Extranonce2Size int            `toml:"extranonce2_size"`
	VersionMask     string         `toml:"version_mask"`
	JobRefresh      string         `toml:"job_refresh_interval"`
	SessionResume   string         `toml:"session_resume_window"`
	MaxParked       int            `toml:"max_parked_sessions"`
	MaxConnections  int            `toml:"max_connections"`
	MaxConnsPerIP   int            `toml:"max_connections_per_ip"`
	ProxyTrusted    []string       `toml:"proxy_trusted"`
	HandshakeTime   string         `toml:"handshake_timeout"`
	Vardiff         VardiffFile    `toml:"vardiff"`
	Ban             BanFile        `toml:"ban"`
	Listeners       []ListenerFile `toml:"listener"`
	Groups          []GroupFile    `toml:"group"`
}

// GroupFile is one [[stratum.group]] rule.
type GroupFile struct {
	Pattern string `toml:"pattern"`
	Group   string `toml:"group"`
}

// VardiffFile is the [stratum.vardiff] table.
type VardiffFile struct {
	TargetInterval   string  `toml:"target_interval"`
	RetargetInterval string  `toml:"retarget_interval"`
	RetargetShares   int     `toml:"retarget_shares"`
	MaxFactor        float64 `toml:"max_factor"`
	Tolerance        float64 `toml:"tolerance"`
}

// BanFile is the [stratum.ban] table: the invalid-share policy (see
// stratum.BanConfig).
type BanFile struct {
	Enabled               bool    `toml:"enabled"`
	CheckShares           int     `toml:"check_shares"`
	InvalidPercent        float64 `toml:"invalid_percent"`
	AddressWindow         string  `toml:"address_window"`
	AddressMinFlooders    int     `toml:"address_min_flooders"`
	AddressFlooderPercent float64 `toml:"address_flooder_percent"`
	Duration              string  `toml:"duration"`
	MaxDuration           string  `toml:"max_duration"`
	ForgetAfter           string  `toml:"forget_after"`
}

// ListenerFile is one [[stratum.listener]] table. The difficulties are
// pointers so that an omitted key takes the default while an explicit 0 is
// reported as wrong.
type ListenerFile struct {
	Name      string   `toml:"name"`
	Addr      string   `toml:"addr"`
	StartDiff *float64 `toml:"start_diff"`
	MinDiff   *float64 `toml:"min_diff"`
	MaxDiff   *float64 `toml:"max_diff"`
	// MaxConnections is 0 (only the [stratum] cap) when omitted.
	MaxConnections int `toml:"max_connections"`
	// ProxyProtocol reads a PROXY header (v1 or v2) first, from
	// stratum.proxy_trusted sources only.
	ProxyProtocol bool `toml:"proxy_protocol"`
	// TLSCert and TLSKey (PEM files, both or neither) make the port
	// stratum+ssl.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// Solo: miners' user names are addresses their blocks pay directly,
	// less payouts.fee_bps to the pool.
	Solo bool `toml:"solo"`
}

// HTTPFile is the [http] table.
type HTTPFile struct {
	Addr string `toml:"addr"`
}
