package shares

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the ledger. Labels are bounded: table names, operations and
// damage kinds only.
type metrics struct {
	rows      *prometheus.CounterVec
	errors    *prometheus.CounterVec
	flush     prometheus.Histogram
	corrupt   *prometheus.CounterVec
	spoolFull prometheus.Counter
	// appendTimeouts, appendWait and batch show a stalling disk: shares
	// refused because they were not durable in time, how long appends
	// wait, and how many records each spool write carries.
	appendTimeouts prometheus.Counter
	appendWait     prometheus.Histogram
	batch          prometheus.Histogram
	rejectDrop     prometheus.Counter
	blocks         *prometheus.CounterVec
	gauges         []prometheus.Collector
}

func newMetrics(r *Recorder) *metrics {
	m := &metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wattpool_ledger_rows_written_total",
			Help: "Rows committed to PostgreSQL by the share ledger, by table.",
		}, []string{"table"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wattpool_ledger_errors_total",
			Help: "Share ledger failures by operation (append, flush, block_insert, reject_flush, partitions, decode).",
		}, []string{"op"}),
		flush: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wattpool_ledger_flush_duration_seconds",
			Help:    "Time to commit one batch of spooled records to PostgreSQL.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		corrupt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wattpool_spool_damaged_segments_total",
			Help: "Spool segments found damaged and set aside, by kind (torn, checksum, header).",
		}, []string{"kind"}),
		spoolFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wattpool_spool_refused_total",
			Help: "Records the spool refused (limit reached, disk full or write failure): shares answered 'not recorded'.",
		}),
		appendTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wattpool_spool_append_timeouts_total",
			Help: "Records refused because the spool could not make them durable before the call's deadline (a stalled disk): shares answered 'not recorded', never written.",
		}),
		appendWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wattpool_spool_append_wait_seconds",
			Help:    "Time an append waited for its record to be written (fsynced when asked), refused or timed out.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 11), // 10 µs to 10.5 s
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wattpool_spool_write_batch_records",
			Help:    "Records the spool's writer wrote in one batch (one write per segment, one fsync when asked).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9), // 1 to 65,536
		}),
		rejectDrop: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wattpool_ledger_rejects_dropped_total",
			Help: "Rejected-share counts dropped because the in-memory aggregate was full while the database was down.",
		}),
		blocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wattpool_ledger_block_status_changes_total",
			Help: "Found-block status changes recorded by the block tracker, by new status.",
		}, []string{"status"}),
	}
	for _, t := range []string{"shares", "jobs", "blocks", "rejects"} {
		m.rows.WithLabelValues(t)
	}
	m.gauges = []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wattpool_spool_records",
			Help: "Records in the spool not yet committed to PostgreSQL.",
		}, func() float64 { return float64(r.pendingRecords()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wattpool_spool_bytes",
			Help: "Bytes of spool segments on disk.",
		}, func() float64 { return float64(r.spool.Stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wattpool_spool_segments",
			Help: "Spool segment files on disk.",
		}, func() float64 { return float64(r.spool.Stats().Segments) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wattpool_spool_lag_seconds",
			Help: "Age of the oldest record not yet committed to PostgreSQL (an upper bound within one flush interval).",
		}, func() float64 { return r.lag().Seconds() }),
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return append([]prometheus.Collector{m.rows, m.errors, m.flush, m.corrupt, m.spoolFull, m.appendTimeouts, m.appendWait, m.batch, m.rejectDrop, m.blocks}, m.gauges...)
}
