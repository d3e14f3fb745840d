package stratum

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// CloseReason says why the server closed a connection. Its String() is a
// log field and a metric label, so values are stable.
type CloseReason uint8

// Close reasons.
const (
	ClosedClient           CloseReason = iota // the miner closed it or reset it
	ClosedReadError                           // read failed
	ClosedWriteError                          // write failed or timed out
	ClosedSlowConsumer                        // outbound queue full
	ClosedLineTooLong                         // a line exceeded MaxLineLength
	ClosedMalformed                           // too many lines that are not JSON
	ClosedSubscribeTimeout                    // no mining.subscribe in time
	ClosedAuthTimeout                         // no mining.authorize in time
	ClosedNoShares                            // no accepted share for ShareTimeout
	ClosedReadTimeout                         // silent for ReadTimeout (half-open)
	ClosedBanned                              // address banned (at accept, or its miners flooded)
	ClosedShutdown                            // server shutting down
	ClosedTakenOver                           // the miner resumed its session on a new connection
	// ClosedInvalidShares: this connection's recent shares were too
	// invalid (Ban.CheckShares, Ban.InvalidPercent); its address is not
	// banned for it.
	ClosedInvalidShares
	// ClosedTooManyConnections: refused at accept, the server's or the
	// listener's MaxConnections was reached.
	ClosedTooManyConnections
	// ClosedTooManyPerIP: refused at accept, MaxConnectionsPerIP was
	// reached for the miner's address.
	ClosedTooManyPerIP
	// ClosedProxyUntrusted: a PROXY-protocol listener was reached from an
	// address outside ProxyTrusted (nothing is read from it).
	ClosedProxyUntrusted
	// ClosedProxyHeader: the PROXY header was malformed, truncated or
	// not one at all; ClosedProxyTimeout: it did not arrive in
	// HandshakeTimeout.
	ClosedProxyHeader
	ClosedProxyTimeout
	// ClosedTLSHandshake: the TLS handshake failed; ClosedTLSPlaintext:
	// the client sent plain TCP (stratum+tcp) to a TLS port;
	// ClosedTLSTimeout: the handshake did not finish in HandshakeTimeout.
	ClosedTLSHandshake
	ClosedTLSPlaintext
	ClosedTLSTimeout
	closeReasonCount
)

var closeReasonNames = [...]string{
	ClosedClient:           "client_closed",
	ClosedReadError:        "read_error",
	ClosedWriteError:       "write_error",
	ClosedSlowConsumer:     "slow_consumer",
	ClosedLineTooLong:      "line_too_long",
	ClosedMalformed:        "malformed",
	ClosedSubscribeTimeout: "subscribe_timeout",
	ClosedAuthTimeout:      "auth_timeout",
	ClosedNoShares:         "no_shares",
	ClosedReadTimeout:      "read_timeout",
	ClosedBanned:           "banned",
	ClosedShutdown:         "shutdown",
	ClosedTakenOver:        "taken_over",

	ClosedInvalidShares:      "invalid_shares",
	ClosedTooManyConnections: "too_many_connections",
	ClosedTooManyPerIP:       "too_many_connections_per_ip",

	ClosedProxyUntrusted: "proxy_untrusted",
	ClosedProxyHeader:    "proxy_header",
	ClosedProxyTimeout:   "proxy_timeout",
	ClosedTLSHandshake:   "tls_handshake",
	ClosedTLSPlaintext:   "tls_plaintext",
	ClosedTLSTimeout:     "tls_timeout",
}

// String returns the stable name of the reason.
func (r CloseReason) String() string {
	if r < closeReasonCount {
		return closeReasonNames[r]
	}
	return "unknown"
}

// metrics are the server's Prometheus collectors. Labels are bounded:
// listener names come from the configuration, reasons from fixed enums.
type metrics struct {
	connections    *prometheus.GaugeVec
	shares         *prometheus.CounterVec
	validation     prometheus.Histogram
	blocks         *prometheus.CounterVec
	closed         *prometheus.CounterVec
	broadcast      prometheus.Histogram
	groupHashrate  *prometheus.GaugeVec
	jobs           *prometheus.CounterVec
	goroutines     prometheus.GaugeFunc
	sinkErrors     *prometheus.CounterVec
	bansTotal      prometheus.Counter
	closedByReason [closeReasonCount]prometheus.Counter
	subscribesVec  *prometheus.CounterVec
	subscribes     [resumeOutcomeCount]prometheus.Counter
	parked         prometheus.Gauge
	parkedDropped  *prometheus.CounterVec
	acceptErrors   *prometheus.CounterVec
	maxConnections prometheus.Gauge
	// proxyHeaders[version-1][local] counts the PROXY headers read.
	proxyHeadersVec *prometheus.CounterVec
	proxyHeaders    [2][2]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, goroutines func() float64) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wattpool_stratum_connections", Help: "Open miner connections by listener.",
		}, []string{"listener"}),
		shares: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wattpool_stratum_shares_total", Help: "Submitted shares by result and reject reason.",
		}, []string{"listener", "result", "reason"}),
		validation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wattpool_stratum_share_validation_seconds", Help: "Time to validate a share (parse to verdict, without sink calls).",
			Buckets: prometheus.ExponentialBuckets(500e-9, 2, 14),
		}),
		blocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wattpool_stratum_blocks_found_total", Help: "Blocks found, by the node's verdict.",
		}, []string{"result"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wattpool_stratum_connections_closed_total", Help: "Closed connections by reason.",
		}, []string{"reason"}),
		broadcast: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wattpool_stratum_broadcast_seconds", Help: "Time to queue one job to every connection.",
			Buckets: prometheus.ExponentialBuckets(100e-6, 2, 14),
		}),
		groupHashrate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wattpool_stratum_group_hashrate_hashes_per_second", Help: "Estimated hashrate per worker group.",
		}, []string{"group"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wattpool_stratum_jobs_total", Help: "Jobs broadcast, by kind (clean or refresh) and failures.",
		}, []string{"kind"}),
		goroutines: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wattpool_stratum_goroutines", Help: "Goroutines the server started and that are still running.",
		}, goroutines),
		sinkErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wattpool_stratum_sink_errors_total", Help: "Failed sink calls by operation.",
		}, []string{"op"}),
		bansTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wattpool_stratum_bans_total", Help: "IP bans issued.",
		}),
	}
	m.subscribesVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wattpool_stratum_subscribes_total",
		Help: "First subscribes of a connection: result resumed (reason none: a parked session; taken_over: the session of a live, most likely half-open, connection, which was closed) or fresh (new extranonce1), with the reason a fresh one offered no usable session id.",
	}, []string{"result", "reason"})
	m.parked = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wattpool_stratum_parked_sessions", Help: "Sessions of closed connections kept for the miner to resume.",
	})
	m.parkedDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wattpool_stratum_parked_sessions_dropped_total",
		Help: "Parked sessions dropped without being resumed: expired (resume window passed) or evicted (MaxParkedSessions reached, oldest first).",
	}, []string{"reason"})
	m.acceptErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wattpool_stratum_accept_errors_total",
		Help: "Failed accept(2) calls by listener and cause: emfile (this process is out of descriptors), enfile (the system is), other. The accept loop backs off up to a second after each.",
	}, []string{"listener", "reason"})
	m.maxConnections = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wattpool_stratum_max_connections",
		Help: "The server's connection cap in force (configured, or derived from the open-file limit); connections beyond it are refused.",
	})
	m.proxyHeadersVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wattpool_stratum_proxy_headers_total",
		Help: "PROXY protocol headers read, by version (1, 2) and command: proxy (the miner's address is used) or local (v2 LOCAL, v1 UNKNOWN: the balancer's own connection, a health check; the socket's address is kept).",
	}, []string{"version", "command"})
	for v := range 2 {
		m.proxyHeaders[v][0] = m.proxyHeadersVec.WithLabelValues(fmt.Sprint(v+1), "proxy")
		m.proxyHeaders[v][1] = m.proxyHeadersVec.WithLabelValues(fmt.Sprint(v+1), "local")
	}
	for o := resumeOutcome(0); o < resumeOutcomeCount; o++ {
		switch o {
		case resumeOK:
			m.subscribes[o] = m.subscribesVec.WithLabelValues("resumed", "none")
		case resumeTakenOver:
			m.subscribes[o] = m.subscribesVec.WithLabelValues("resumed", o.String())
		default:
			m.subscribes[o] = m.subscribesVec.WithLabelValues("fresh", o.String())
		}
	}
	for r := CloseReason(0); r < closeReasonCount; r++ {
		m.closedByReason[r] = m.closed.WithLabelValues(r.String())
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.connections, m.shares, m.validation, m.blocks, m.closed,
		m.broadcast, m.groupHashrate, m.jobs, m.goroutines, m.sinkErrors, m.bansTotal,
		m.subscribesVec, m.parked, m.parkedDropped, m.acceptErrors, m.maxConnections, m.proxyHeadersVec} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register stratum metrics: %w", err)
		}
	}
	return m, nil
}

// listenerMetrics are one listener's pre-resolved series, so the share
// path never looks up label values.
type listenerMetrics struct {
	connections  prometheus.Gauge
	acceptErrors [acceptErrorKinds]prometheus.Counter
	accepted     prometheus.Counter
	rejected     [rejectReasonCount]prometheus.Counter
}

func (m *metrics) forListener(name string) *listenerMetrics {
	lm := &listenerMetrics{
		connections: m.connections.WithLabelValues(name),
		accepted:    m.shares.WithLabelValues(name, "accepted", "none"),
	}
	for _, r := range AllRejectReasons() {
		lm.rejected[r] = m.shares.WithLabelValues(name, "rejected", r.String())
	}
	for k := range acceptErrorKinds {
		lm.acceptErrors[k] = m.acceptErrors.WithLabelValues(name, acceptErrorNames[k])
	}
	return lm
}
