package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/wire/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Pool defaults.
const (
	DefaultPollInterval    = 250 * time.Millisecond
	DefaultRefreshInterval = 10 * time.Second
	DefaultRetryInterval   = time.Second
	maxRetryInterval       = 30 * time.Second
)

// PoolOption changes a Pool setting.
type PoolOption func(*poolOptions)

type poolOptions struct {
	pollInterval    time.Duration
	refreshInterval time.Duration
	retryInterval   time.Duration
	longPoll        bool
	registerer      prometheus.Registerer
}

// WithPollInterval sets how often the current node is asked for its best
// block hash to detect a new block (default 250 ms). Polling runs even with
// longpoll: it is cheap and covers a longpoll that stalls silently.
func WithPollInterval(d time.Duration) PoolOption {
	return func(o *poolOptions) { o.pollInterval = d }
}

// WithRefreshInterval sets how often a fresh template is fetched to pick
// up new transactions (default 10 s).
func WithRefreshInterval(d time.Duration) PoolOption {
	return func(o *poolOptions) { o.refreshInterval = d }
}

// WithLongPoll turns BIP22 longpoll on or off (default on). It is used only
// when the node offers a longpollid.
func WithLongPoll(on bool) PoolOption {
	return func(o *poolOptions) { o.longPoll = on }
}

// WithRetryInterval sets the pause before retrying when every node failed
// (doubling up to 30 s while failures last) and how often a preferred node
// that failed is probed for recovery (default 1 s).
func WithRetryInterval(d time.Duration) PoolOption {
	return func(o *poolOptions) { o.retryInterval = d }
}

// WithRegisterer registers the pool's metrics (none are registered without).
func WithRegisterer(reg prometheus.Registerer) PoolOption {
	return func(o *poolOptions) { o.registerer = reg }
}

// Pool fetches templates from several nodes with failover: it works with
// the first node (in configuration order) that answers, moves to the next
// when it fails and returns to a preferred node once it answers again.
// Blocks go to every healthy node at once.
type Pool struct {
	clients []*Client
	log     *zap.Logger
	opts    poolOptions
	metrics *poolMetrics
	updates chan Update
	healthy []atomic.Bool
	started atomic.Bool
	// lastTemplate is when a node last answered getblocktemplate (unix
	// ns; 0: never).
	lastTemplate atomic.Int64

	mu   sync.Mutex
	last *Template // last template sent on updates
}

// NewPool prepares a pool over clients, in order of preference.
func NewPool(clients []*Client, log *zap.Logger, opts ...PoolOption) (*Pool, error) {
	if len(clients) == 0 {
		return nil, errors.New("node pool: no nodes configured")
	}
	if log == nil {
		log = zap.NewNop()
	}
	o := poolOptions{
		pollInterval:    DefaultPollInterval,
		refreshInterval: DefaultRefreshInterval,
		retryInterval:   DefaultRetryInterval,
		longPoll:        true,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.pollInterval <= 0 || o.refreshInterval <= 0 || o.retryInterval <= 0 {
		return nil, fmt.Errorf("node pool: intervals must be positive (poll %s, refresh %s, retry %s)",
			o.pollInterval, o.refreshInterval, o.retryInterval)
	}
	names := make(map[string]bool, len(clients))
	for _, c := range clients {
		if c == nil {
			return nil, errors.New("node pool: nil client")
		}
		if names[c.name] {
			return nil, fmt.Errorf("node pool: two nodes named %q", c.name)
		}
		names[c.name] = true
	}
	m, err := newPoolMetrics(o.registerer)
	if err != nil {
		return nil, err
	}
	p := &Pool{
		clients: clients,
		log:     log,
		opts:    o,
		metrics: m,
		updates: make(chan Update, 4),
		healthy: make([]atomic.Bool, len(clients)),
	}
	for i := range clients {
		// Nodes count as healthy until they fail, so that a block found
		// before the first template round still goes everywhere.
		p.setHealthy(i, true)
	}
	return p, nil
}

// Updates delivers templates; it is closed when Run returns.
func (p *Pool) Updates() <-chan Update { return p.updates }

// Run fetches templates and watches for new blocks until ctx is done.
func (p *Pool) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("node pool: Run called twice")
	}
	defer close(p.updates)
	failed := -1
	wait := p.opts.retryInterval
	// An outage is logged once at ERROR when it starts and once when it
	// ends; the retries between are routine and logged at DEBUG.
	var outageSince time.Time
	retries := 0
	for ctx.Err() == nil {
		i, t := p.firstAnswering(ctx, failed)
		if i < 0 {
			if ctx.Err() == nil {
				if outageSince.IsZero() {
					outageSince = time.Now()
					p.log.Error("no node answers getblocktemplate: miners get no new work until one does; retrying", zap.Duration("in", wait))
				} else {
					p.log.Debug("still no node answers getblocktemplate; retrying", zap.Int("retries", retries), zap.Duration("in", wait))
				}
				retries++
			}
			if !sleep(ctx, wait) {
				break
			}
			wait = min(2*wait, maxRetryInterval)
			failed = -1
			continue
		}
		if !outageSince.IsZero() {
			p.log.Info("a node answers getblocktemplate again", zap.String("node", p.clients[i].name),
				zap.Duration("outage", time.Since(outageSince).Round(time.Millisecond)), zap.Int("retries", retries))
			outageSince, retries = time.Time{}, 0
		}
		wait = p.opts.retryInterval
		err := p.serve(ctx, i, t)
		failed = -1
		if err != nil && ctx.Err() == nil {
			p.nodeFailed(i, err)
			failed = i
		}
	}
	return nil
}

// firstAnswering returns the first node, in preference order, that gives a
// template; the node that just failed is tried last. -1 when none answers.
func (p *Pool) firstAnswering(ctx context.Context, failed int) (int, *Template) {
	order := make([]int, 0, len(p.clients))
	for i := range p.clients {
		if i != failed {
			order = append(order, i)
		}
	}
	if failed >= 0 {
		order = append(order, failed)
	}
	for _, i := range order {
		t, err := p.fetch(ctx, i)
		if err == nil {
			return i, t
		}
		if ctx.Err() != nil {
			return -1, nil
		}
		p.nodeFailed(i, err)
	}
	return -1, nil
}

// errPreferredBack ends a session on a fallback node when a preferred one
// answers again.
var errPreferredBack = errors.New("preferred node answers again")

// serve works with node i until it fails, ctx ends, or a node earlier in
// the preference order recovers (then it returns nil).
func (p *Pool) serve(ctx context.Context, i int, first *Template) error {
	c := p.clients[i]
	p.log.Info("using node for templates", zap.String("node", c.name), zap.Int64("height", first.Height))
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()

	s := session{pool: p, client: c, seen: first}
	if err := s.publish(ctx, first); err != nil {
		return err
	}

	done := make(chan error, 2)
	templates := make(chan *Template)
	if p.opts.longPoll && first.LongPollID != "" {
		wg.Go(func() { done <- s.longPoll(ctx, first.LongPollID, templates) })
	}
	if i > 0 {
		wg.Go(func() { done <- p.probePreferred(ctx, i) })
	}

	poll := time.NewTicker(p.opts.pollInterval)
	defer poll.Stop()
	refresh := time.NewTicker(p.opts.refreshInterval)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			if errors.Is(err, errPreferredBack) {
				return nil
			}
			return err
		case t := <-templates:
			if err := s.publish(ctx, t); err != nil {
				return err
			}
		case <-poll.C:
			best, err := c.GetBestBlockHash(ctx)
			if err != nil {
				return err
			}
			if best == s.seen.PrevHash {
				continue
			}
			if err := s.fetchAndPublish(ctx, i); err != nil {
				return err
			}
		case <-refresh.C:
			if err := s.fetchAndPublish(ctx, i); err != nil {
				return err
			}
		}
	}
}

// probePreferred asks the nodes before i, every retry interval, for a
// template; the first that answers ends the session so Run switches back.
func (p *Pool) probePreferred(ctx context.Context, i int) error {
	tick := time.NewTicker(p.opts.retryInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for j := 0; j < i; j++ {
			if _, err := p.fetch(ctx, j); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				p.nodeFailed(j, err)
				continue
			}
			p.log.Info("preferred node answers again", zap.String("node", p.clients[j].name))
			return errPreferredBack
		}
	}
}

// fetch gets one template from node i, timing it and tracking health.
func (p *Pool) fetch(ctx context.Context, i int) (*Template, error) {
	c := p.clients[i]
	start := time.Now()
	t, err := c.GetBlockTemplate(ctx, "")
	if err != nil {
		return nil, err
	}
	p.metrics.fetchSeconds.WithLabelValues(c.name).Observe(time.Since(start).Seconds())
	p.setHealthy(i, true)
	p.lastTemplate.Store(time.Now().UnixNano())
	return t, nil
}

// LastTemplate is when a node last answered getblocktemplate (a fetch or
// a longpoll; the zero time: never), whether or not the template changed:
// how current the pool's work is, for readiness checks.
func (p *Pool) LastTemplate() time.Time {
	if ns := p.lastTemplate.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

func (p *Pool) nodeFailed(i int, err error) {
	c := p.clients[i]
	p.metrics.fetchErrors.WithLabelValues(c.name).Inc()
	if p.healthy[i].Load() {
		p.log.Warn("node failed", zap.String("node", c.name), zap.Error(err))
	} else {
		p.log.Debug("node still failing", zap.String("node", c.name), zap.Error(err))
	}
	p.setHealthy(i, false)
}

func (p *Pool) setHealthy(i int, ok bool) {
	p.healthy[i].Store(ok)
	v := 0.0
	if ok {
		v = 1
	}
	p.metrics.healthy.WithLabelValues(p.clients[i].name).Set(v)
}

// session is the state of serving from one node.
type session struct {
	pool   *Pool
	client *Client
	// seen is the newest template this node gave (sent or not): polling
	// compares the node's best block with its PrevHash.
	seen *Template
}

func (s *session) fetchAndPublish(ctx context.Context, i int) error {
	t, err := s.pool.fetch(ctx, i)
	if err != nil {
		return err
	}
	return s.publish(ctx, t)
}

// longPoll repeats BIP22 longpolls, passing each answer on, until ctx ends
// or the node stops offering a longpollid.
func (s *session) longPoll(ctx context.Context, id string, out chan<- *Template) error {
	for id != "" {
		t, err := s.client.GetBlockTemplate(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("longpoll: %w", err)
		}
		s.pool.lastTemplate.Store(time.Now().UnixNano())
		select {
		case out <- t:
		case <-ctx.Done():
			return nil
		}
		id = t.LongPollID
	}
	// Without a longpollid polling alone detects new blocks.
	<-ctx.Done()
	return nil
}

// publish decides whether t is news and sends it. Templates never go
// backwards: one with a different previous block at the same or a lower
// height is sent only when it comes from the node that made the last one
// and that node's best block confirms the change (a reorg); otherwise it is
// a late answer from before a new block, or a lagging node after failover,
// and is dropped. A template on the same previous block that the node did
// not change (same longpollid, value and transaction count) is not resent.
func (s *session) publish(ctx context.Context, t *Template) error {
	p := s.pool
	if t.Height > s.seen.Height || (t.Height == s.seen.Height && t.FetchedAt.After(s.seen.FetchedAt)) {
		s.seen = t
	}
	p.mu.Lock()
	last := p.last
	p.mu.Unlock()

	newBlock := true
	switch {
	case last == nil:
	case t.PrevHash == last.PrevHash:
		if t.Height != last.Height {
			return nil // same parent, other height: not a template for that parent
		}
		if unchanged(t, last) {
			return nil
		}
		newBlock = false
	case t.Height > last.Height:
	default:
		ok, err := s.confirmReorg(ctx, t, last)
		if err != nil {
			return err
		}
		if !ok {
			p.log.Debug("dropping older template", zap.String("node", t.Source),
				zap.Int64("height", t.Height), zap.Int64("last_height", last.Height))
			return nil
		}
		p.log.Warn("reorg: template at same or lower height on another block", zap.String("node", t.Source),
			zap.Int64("height", t.Height), zap.Int64("last_height", last.Height), zap.Stringer("prev", t.PrevHash))
		s.seen = t
	}

	// The books are kept before the send so that whoever receives the
	// update already sees it in the metrics (a test read them racing the
	// increment); an update lost to shutdown is counted, which no one can
	// observe any more.
	p.mu.Lock()
	p.last = t
	p.mu.Unlock()
	p.metrics.height.Set(float64(t.Height))
	kind := "refresh"
	if newBlock {
		kind = "new_block"
		p.log.Info("new block", zap.String("node", t.Source), zap.Int64("height", t.Height),
			zap.Stringer("prev", t.PrevHash), zap.Int("txs", len(t.Transactions)))
	}
	p.metrics.updates.WithLabelValues(kind).Inc()
	select {
	case p.updates <- Update{Template: t, NewBlock: newBlock}:
	case <-ctx.Done():
	}
	return nil
}

// confirmReorg reports whether t (not higher than last, other parent) is
// the node's real view: same node as last, and its best block is t's parent.
func (s *session) confirmReorg(ctx context.Context, t, last *Template) (bool, error) {
	if t.Source != last.Source {
		return false, nil
	}
	best, err := s.client.GetBestBlockHash(ctx)
	if err != nil {
		return false, err
	}
	return best == t.PrevHash, nil
}

// unchanged reports whether a refresh brought nothing new. Both nodes change
// longpollid whenever their template's transactions change.
func unchanged(t, last *Template) bool {
	return t.LongPollID != "" && t.LongPollID == last.LongPollID &&
		t.CoinbaseValue == last.CoinbaseValue && len(t.Transactions) == len(last.Transactions)
}

// SubmitBlock sends the block to every healthy node at once (to all nodes
// when none is known healthy) and returns the best verdict: accepted beats
// duplicate beats inconclusive beats rejected. The error is non-nil only
// when no node gave a verdict.
func (p *Pool) SubmitBlock(ctx context.Context, block *wire.MsgBlock) (SubmitResult, error) {
	var targets []int
	for i := range p.clients {
		if p.healthy[i].Load() {
			targets = append(targets, i)
		}
	}
	if len(targets) == 0 {
		for i := range p.clients {
			targets = append(targets, i)
		}
	}
	results := make([]SubmitResult, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for k, i := range targets {
		wg.Go(func() { results[k], errs[k] = p.clients[i].SubmitBlock(ctx, block) })
	}
	wg.Wait()

	best := -1
	for k := range targets {
		if errs[k] == nil && (best < 0 || results[k].rank() > results[best].rank()) {
			best = k
		}
	}
	if best < 0 {
		p.metrics.submits.WithLabelValues("error").Inc()
		return results[0], fmt.Errorf("submit block %s: no node gave a verdict: %w", results[0].Hash, errors.Join(errs...))
	}
	// Every node's answer is worth a line: a block is rare and a split
	// verdict between nodes is what an operator needs to see.
	for k := range targets {
		r := results[k]
		if errs[k] != nil {
			p.log.Warn("block submission failed on one node", zap.String("node", r.Node), zap.Stringer("hash", r.Hash), zap.Error(errs[k]))
			continue
		}
		p.log.Info("block submitted", zap.String("node", r.Node), zap.Stringer("hash", r.Hash),
			zap.Stringer("status", r.Status), zap.String("reason", r.Reason), zap.Bool("confirmed", r.Confirmed))
	}
	p.metrics.submits.WithLabelValues(results[best].Status.String()).Inc()
	return results[best], nil
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
