package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/internal/webhook"
	"github.com/wattpool/wattpool/shares"
	"github.com/wattpool/wattpool/stratum"
)

// Notification types (the "type" field of every POST).
const (
	eventBlockFound     = "block.found"
	eventBlockConfirmed = "block.confirmed"
	eventBlockOrphaned  = "block.orphaned"
	eventBlockMature    = "block.mature"
	eventNodeUnhealthy  = "node.unhealthy"
	eventNodeHealthy    = "node.healthy"
	eventLedgerDown     = "ledger.unhealthy"
	eventLedgerUp       = "ledger.healthy"
)

// notification is one event as it is logged and POSTed.
type notification struct {
	Type     string    `json:"type"`
	Time     time.Time `json:"time"`
	Instance string    `json:"instance"`
	// Block is set for block.* events.
	Block *notifyBlock `json:"block,omitempty"`
	// Reason says what is wrong (unhealthy) or what recovered.
	Reason string `json:"reason,omitempty"`
}

type notifyBlock struct {
	Hash         string `json:"hash"`
	Height       int64  `json:"height"`
	CoinbaseSats int64  `json:"coinbase_sats,omitempty"`
	Account      string `json:"account,omitempty"`
	Worker       string `json:"worker,omitempty"`
	SubmitResult string `json:"submit_result,omitempty"`
	// Recorded is false for a found block the ledger could not record
	// (the miner was told its share was not recorded): the block went to
	// the node all the same.
	Recorded      *bool  `json:"recorded,omitempty"`
	Status        string `json:"status,omitempty"`
	PrevStatus    string `json:"previous_status,omitempty"`
	Confirmations int64  `json:"confirmations,omitempty"`
}

// notifyQueue bounds the events waiting for the webhook: a receiver that
// is down for long costs the oldest notifications, never the pool's memory
// or a miner's answer.
const notifyQueue = 256

// notifyRetries and notifyBackoff: a POST that fails is tried again, the
// backoff doubling, before the event is counted as failed.
const (
	notifyRetries = 3
	notifyBackoff = time.Second
)

// notifier logs every operator event and, when [notify] has a url, POSTs
// it signed to the operator's receiver from a goroutine of its own, so no
// miner waits for a webhook.
type notifier struct {
	instance string
	log      *zap.Logger
	client   *webhook.Client // nil: log only
	queue    chan notification
	now      func() time.Time
	backoff  time.Duration

	sent    *prometheus.CounterVec
	dropped prometheus.Counter

	mu      sync.Mutex
	healthy map[string]string // "node"/"ledger" -> the reason it is unhealthy ("" when healthy)
}

// newNotifier builds the notifier of cfg's [notify] table; the secret is
// read through lookup from the variable the table names.
func newNotifier(cfg *config.Config, lookup env, log *zap.Logger, reg prometheus.Registerer) (*notifier, error) {
	n := &notifier{
		instance: cfg.Instance, log: log, queue: make(chan notification, notifyQueue), now: time.Now,
		backoff: notifyBackoff, healthy: map[string]string{},
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wattpool_notify_sent_total", Help: "Notifications POSTed, by type and result (ok, failed).",
		}, []string{"type", "result"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wattpool_notify_dropped_total", Help: "Notifications dropped because the webhook queue was full.",
		}),
	}
	reg.MustRegister(n.sent, n.dropped)
	if cfg.Notify.URL == nil {
		return n, nil
	}
	secret, ok := lookup(cfg.Notify.SecretEnv)
	if !ok || secret == "" {
		return nil, fmt.Errorf("notify.secret_env: environment variable %s is not set or empty (it holds the webhook's HMAC secret)", cfg.Notify.SecretEnv)
	}
	c, err := webhook.NewClient(cfg.Notify.URL.String(), []byte(secret), cfg.Notify.Timeout, nil, log)
	if err != nil {
		return nil, fmt.Errorf("notify.url: %w", err)
	}
	n.client = c
	return n, nil
}

// emit logs ev and queues it for the webhook without blocking.
func (n *notifier) emit(ev notification) {
	ev.Time, ev.Instance = n.now().UTC(), n.instance
	fields := []zap.Field{zap.String("event", ev.Type)}
	if b := ev.Block; b != nil {
		fields = append(fields, zap.String("hash", b.Hash), zap.Int64("height", b.Height))
		if b.Status != "" {
			fields = append(fields, zap.String("status", b.Status), zap.Int64("confirmations", b.Confirmations))
		}
	}
	if ev.Reason != "" {
		fields = append(fields, zap.String("reason", ev.Reason))
	}
	switch ev.Type {
	case eventBlockOrphaned, eventNodeUnhealthy, eventLedgerDown:
		n.log.Warn("notify: "+ev.Type, fields...)
	default:
		n.log.Info("notify: "+ev.Type, fields...)
	}
	if n.client == nil {
		return
	}
	select {
	case n.queue <- ev:
	default:
		n.dropped.Inc()
		n.log.Warn("notify: webhook queue full; event dropped", zap.String("event", ev.Type))
	}
}

// run POSTs queued events until ctx ends, then gives what is still queued
// (a shutdown's last events) one try each within flush.
func (n *notifier) run(ctx context.Context, flush time.Duration) {
	if n.client == nil {
		return
	}
	for {
		select {
		case ev := <-n.queue:
			n.post(ctx, ev)
			continue
		case <-ctx.Done():
		}
		break
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flush)
	defer cancel()
	for {
		select {
		case ev := <-n.queue:
			if err := n.client.Post(fctx, mustJSON(ev)); err != nil {
				n.sent.WithLabelValues(ev.Type, "failed").Inc()
				n.log.Warn("notify: webhook failed at shutdown; event not delivered", zap.String("event", ev.Type), zap.Error(err))
			} else {
				n.sent.WithLabelValues(ev.Type, "ok").Inc()
			}
		default:
			return
		}
	}
}

func mustJSON(ev notification) []byte {
	b, _ := json.Marshal(ev) // plain data: cannot fail
	return b
}

func (n *notifier) post(ctx context.Context, ev notification) {
	body, err := json.Marshal(ev)
	if err != nil { // a notification is plain data: this is a bug
		n.log.DPanic("notify: encode", zap.Error(err))
		return
	}
	wait := n.backoff
	for try := 1; ; try++ {
		err = n.client.Post(ctx, body)
		if err == nil {
			n.sent.WithLabelValues(ev.Type, "ok").Inc()
			return
		}
		if try > notifyRetries || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait *= 2
	}
	n.sent.WithLabelValues(ev.Type, "failed").Inc()
	n.log.Warn("notify: webhook failed; event not delivered", zap.String("event", ev.Type), zap.Error(err))
}

// blockFound is the event of a block the pool found and submitted;
// recorded says whether the ledger stored it.
func (n *notifier) blockFound(fb *stratum.FoundBlock, recorded bool) {
	n.emit(notification{Type: eventBlockFound, Block: &notifyBlock{
		Hash: fb.Hash.String(), Height: fb.Height, CoinbaseSats: fb.CoinbaseValue,
		Account: fb.Share.Account, Worker: fb.Share.Worker, SubmitResult: fb.SubmitResult, Recorded: &recorded,
	}})
}

// blockChanged is the block tracker's hook.
func (n *notifier) blockChanged(c shares.BlockChange) {
	typ := ""
	switch c.To {
	case shares.StatusConfirmed:
		typ = eventBlockConfirmed
	case shares.StatusOrphaned:
		typ = eventBlockOrphaned
	case shares.StatusMature:
		typ = eventBlockMature
	default:
		return // back to pending: the next change says where it went
	}
	n.emit(notification{Type: typ, Block: &notifyBlock{Hash: c.Hash.String(), Height: c.Height,
		Status: c.To, PrevStatus: c.From, Confirmations: c.Confirmations}})
}

// health reports a component's state ("node", "ledger"): an event only
// when it changes. reason is empty when healthy.
func (n *notifier) health(component, reason string) {
	n.mu.Lock()
	prev, seen := n.healthy[component]
	changed := prev != reason && (seen || reason != "")
	n.healthy[component] = reason
	n.mu.Unlock()
	if !changed || (prev != "" && reason != "") {
		return // unchanged, or unhealthy for another reason: still unhealthy
	}
	ev := notification{Reason: reason}
	switch {
	case component == "node" && reason != "":
		ev.Type = eventNodeUnhealthy
	case component == "node":
		ev.Type, ev.Reason = eventNodeHealthy, "a node answers getblocktemplate again"
	case reason != "":
		ev.Type = eventLedgerDown
	default:
		ev.Type, ev.Reason = eventLedgerUp, "the ledger takes shares again"
	}
	n.emit(ev)
}

// watchHealth turns readiness into node and ledger health events, checking
// every interval until ctx ends.
func (a *app) watchHealth(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		r := a.ready(time.Now())
		node, ledger := "", ""
		for _, why := range r.Reasons {
			switch {
			// "no template from any node yet" at start-up is not an
			// outage: only a template that went stale is.
			case strings.HasPrefix(why, "no template from any node for"):
				node = why
			case strings.HasPrefix(why, "ledger:"):
				ledger = why
			}
		}
		a.notify.health("node", node)
		if a.recorder != nil {
			a.notify.health("ledger", ledger)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// notifySink is the app's sink with found blocks announced once they are
// recorded.
type notifySink struct {
	stratum.Sink
	n *notifier
}

// RecordBlock records the block, then announces it (also when recording
// failed: the block was submitted all the same).
func (s notifySink) RecordBlock(ctx context.Context, fb *stratum.FoundBlock) error {
	err := s.Sink.RecordBlock(ctx, fb)
	s.n.blockFound(fb, err == nil)
	return err
}
