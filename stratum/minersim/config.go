package minersim

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults match what ASIC firmware sends.
const (
	// DefaultUserAgent is sent in mining.subscribe.
	DefaultUserAgent = "minersim/1.0"
	// DefaultVersionMask is the mask Antminer, Whatsminer and Bitaxe
	// firmware request: the 16 BIP320 general purpose bits 13..28.
	DefaultVersionMask uint32 = 0x1fffe000
	// DefaultMinBitCount is the version-rolling.min-bit-count they send.
	DefaultMinBitCount = 2
	// DefaultHashesPerSecond is the per-miner hash budget when none is set.
	DefaultHashesPerSecond = 1000
)

// MinerConfig configures one simulated miner. The zero value of every
// optional field selects the firmware-like default.
type MinerConfig struct {
	// Addr is the pool's host:port.
	Addr string
	// User is the worker name sent in mining.authorize and every submit,
	// conventionally "account.worker".
	User string
	// Password is sent in mining.authorize; pools read options such as
	// "d=1024" (a starting difficulty) from it.
	Password string
	// UserAgent is sent in mining.subscribe (DefaultUserAgent when empty).
	UserAgent string

	// NoVersionRolling skips mining.configure, like old cgminer builds;
	// submits then have 5 parameters.
	NoVersionRolling bool
	// VersionMask is the mask requested in mining.configure
	// (DefaultVersionMask when 0).
	VersionMask uint32
	// MinBitCount is version-rolling.min-bit-count (DefaultMinBitCount
	// when 0).
	MinBitCount int
	// MinimumDifficulty, when > 0, also requests the BIP310
	// "minimum-difficulty" extension with this value.
	MinimumDifficulty float64
	// NoExtranonceSubscribe skips mining.extranonce.subscribe.
	NoExtranonceSubscribe bool
	// SuggestDifficulty, when > 0, is sent with mining.suggest_difficulty
	// after authorizing.
	SuggestDifficulty float64
	// NoSessionResume stops the miner from offering its previous session
	// id (the subscription id of the last subscribe answer) as the second
	// mining.subscribe param when it reconnects, which cgminer-based
	// firmware does by default.
	NoSessionResume bool

	// HashesPerSecond is the miner's hash budget (DefaultHashesPerSecond
	// when 0). It is ignored in Fast mode.
	HashesPerSecond float64
	// Fast runs closed loop for load tests: no hash budget, at most
	// MaxInFlight unanswered submits, the next share ground as soon as an
	// answer arrives. Meant for pools whose share difficulty is so low that
	// every hash is a share.
	Fast bool
	// MaxInFlight bounds unanswered submits (1 in Fast mode, 256
	// otherwise, when 0). A miner at the bound stops grinding until
	// answers arrive.
	MaxInFlight int
	// BadFraction (0..1) is the fraction of shares replaced by
	// deliberately bad ones, rotating through the BadKind kinds.
	BadFraction float64
	// NonceSpan is how many nonces are scanned per (extranonce2, version)
	// pair before the version bits roll (2^32 when 0), like an ASIC chain
	// that splits the nonce range among its chips.
	NonceSpan uint64

	// DialTimeout, HandshakeTimeout (subscribe and authorize answered) and
	// SubmitTimeout (a submit counts as timed out) default to 10s, 10s and
	// 30s. WriteTimeout bounds one write (10s).
	DialTimeout, HandshakeTimeout, SubmitTimeout, WriteTimeout time.Duration
	// ReconnectDelay is the first wait before reconnecting after a lost
	// connection (1s when 0); it doubles up to MaxReconnectDelay (30s).
	ReconnectDelay, MaxReconnectDelay time.Duration

	// ID is the miner's index in its fleet; Group names the worker group
	// the control API acts on; Model is the simulated machine (AntminerS19
	// when its name is empty).
	ID    int
	Group string
	Model Model
	// WakeRamp is how long a resumed miner takes before it hashes again
	// (0: at once); meanwhile it reads mining with zero hashrate and idle
	// power, and submits nothing.
	WakeRamp time.Duration

	// TLS, when set, makes the miner speak Stratum over TLS (a
	// stratum+ssl pool): the handshake runs right after the dial,
	// within DialTimeout. An empty ServerName is the host of Addr.
	// TLSClientConfig builds one from a CA file.
	TLS *tls.Config

	// OnAccepted, when set, is called for every accepted share on the
	// connection's reader goroutine; it must be quick and safe for
	// concurrent use.
	OnAccepted func(AcceptedShare)
}

// withDefaults fills defaults and validates; it names the bad field.
func (c MinerConfig) withDefaults() (MinerConfig, error) {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return c, fmt.Errorf("miner addr %q: %w", c.Addr, err)
	}
	if strings.TrimSpace(c.User) == "" {
		return c, errors.New("miner user: empty (want account.worker)")
	}
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
	if c.VersionMask == 0 {
		c.VersionMask = DefaultVersionMask
	}
	if c.MinBitCount == 0 {
		c.MinBitCount = DefaultMinBitCount
	}
	if c.MinBitCount < 0 || c.MinBitCount > 32 {
		return c, fmt.Errorf("miner min bit count %d: want 0..32", c.MinBitCount)
	}
	if !finiteNonNeg(c.MinimumDifficulty) {
		return c, fmt.Errorf("miner minimum difficulty %v: want a finite number >= 0", c.MinimumDifficulty)
	}
	if !finiteNonNeg(c.SuggestDifficulty) {
		return c, fmt.Errorf("miner suggested difficulty %v: want a finite number >= 0", c.SuggestDifficulty)
	}
	if c.HashesPerSecond == 0 {
		c.HashesPerSecond = DefaultHashesPerSecond
	}
	if !finiteNonNeg(c.HashesPerSecond) {
		return c, fmt.Errorf("miner hashes per second %v: want a finite number > 0", c.HashesPerSecond)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 256
		if c.Fast {
			c.MaxInFlight = 1
		}
	}
	if c.MaxInFlight < 0 || c.MaxInFlight > 1<<16 {
		return c, fmt.Errorf("miner max in flight %d: want 1..65536", c.MaxInFlight)
	}
	if math.IsNaN(c.BadFraction) || c.BadFraction < 0 || c.BadFraction > 1 {
		return c, fmt.Errorf("miner bad fraction %v: want 0..1", c.BadFraction)
	}
	if c.NonceSpan == 0 || c.NonceSpan > 1<<32 {
		c.NonceSpan = 1 << 32
	}
	c.DialTimeout = orDefault(c.DialTimeout, 10*time.Second)
	c.HandshakeTimeout = orDefault(c.HandshakeTimeout, 10*time.Second)
	c.SubmitTimeout = orDefault(c.SubmitTimeout, 30*time.Second)
	c.WriteTimeout = orDefault(c.WriteTimeout, 10*time.Second)
	c.ReconnectDelay = orDefault(c.ReconnectDelay, time.Second)
	c.MaxReconnectDelay = orDefault(c.MaxReconnectDelay, 30*time.Second)
	if c.MaxReconnectDelay < c.ReconnectDelay {
		c.MaxReconnectDelay = c.ReconnectDelay
	}
	if c.Model.Name == "" {
		c.Model = AntminerS19
	}
	if err := c.Model.Validate(); err != nil {
		return c, err
	}
	if c.Group == "" {
		c.Group = "default"
	}
	if c.WakeRamp < 0 {
		return c, fmt.Errorf("miner wake ramp %v: want >= 0", c.WakeRamp)
	}
	return c, nil
}

func finiteNonNeg(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 }

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ParseURL turns "stratum+tcp://host:port" (or a bare "host:port") into the
// host:port to dial. TLS schemes are refused: the simulator speaks plain
// TCP like most ASIC firmware.
func ParseURL(raw string) (string, error) {
	addr, useTLS, err := ParsePoolURL(raw)
	if err == nil && useTLS {
		return "", fmt.Errorf("pool url %q: TLS scheme where plain TCP is expected (use ParsePoolURL)", raw)
	}
	return addr, err
}

// ParsePoolURL is ParseURL that also accepts stratum+ssl:// (and
// stratum+tls://, ssl://, tls://) and reports whether the pool speaks TLS.
func ParsePoolURL(raw string) (addr string, useTLS bool, err error) {
	s := strings.TrimSpace(raw)
	if i := strings.Index(s, "://"); i >= 0 {
		switch scheme := strings.ToLower(s[:i]); scheme {
		case "stratum+tcp", "tcp", "stratum":
		case "stratum+ssl", "stratum+tls", "ssl", "tls":
			useTLS = true
		default:
			return "", false, fmt.Errorf("pool url %q: scheme %q not supported (want stratum+tcp or stratum+ssl)", raw, scheme)
		}
		s = s[i+3:]
	}
	s = strings.TrimSuffix(s, "/")
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", false, fmt.Errorf("pool url %q: %w", raw, err)
	}
	if host == "" {
		return "", false, fmt.Errorf("pool url %q: empty host", raw)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", false, fmt.Errorf("pool url %q: port %q: want 1..65535", raw, port)
	}
	return net.JoinHostPort(host, port), useTLS, nil
}

// TLSClientConfig returns the TLS settings of a stratum+ssl miner: the
// pool's certificate checked against the PEM certificates in caFile
// (the system roots when empty), or not checked at all with insecure
// (tests and self-signed pools one trusts anyway).
func TLSClientConfig(caFile string, insecure bool) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %s: no PEM certificate in it", caFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}
