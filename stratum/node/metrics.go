package node

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// poolMetrics are the Pool's metrics. Labels are bounded: node names come
// from the configuration, results from SubmitStatus.
type poolMetrics struct {
	fetchSeconds *prometheus.HistogramVec // node
	fetchErrors  *prometheus.CounterVec   // node
	healthy      *prometheus.GaugeVec     // node
	height       prometheus.Gauge
	updates      *prometheus.CounterVec // kind: new_block, refresh
	submits      *prometheus.CounterVec // result
}

func newPoolMetrics(reg prometheus.Registerer) (*poolMetrics, error) {
	m := &poolMetrics{
		fetchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wattpool_node_template_fetch_seconds",
			Help: "Time to fetch and parse one getblocktemplate (longpolls excluded).",
			// 1 ms .. ~4 s: a local node answers in milliseconds, a full
			// mainnet template takes tens to hundreds.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 13),
		}, []string{"node"}),
		fetchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wattpool_node_errors_total",
			Help: "Failed calls to a node (templates, polls, probes).",
		}, []string{"node"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wattpool_node_healthy",
			Help: "1 when the node answered its last call, else 0.",
		}, []string{"node"}),
		height: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wattpool_node_template_height",
			Help: "Height of the block the current template builds.",
		}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wattpool_node_template_updates_total",
			Help: "Templates handed to the job builder, by kind (new_block, refresh).",
		}, []string{"kind"}),
		submits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wattpool_node_block_submits_total",
			Help: "Blocks submitted, by best verdict over all nodes.",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.fetchSeconds, m.fetchErrors, m.healthy, m.height, m.updates, m.submits} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				return nil, fmt.Errorf("node metrics: already registered (one Pool per registry): %w", err)
			}
			return nil, fmt.Errorf("node metrics: %w", err)
		}
	}
	return m, nil
}
