package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/migrations"
	"github.com/wattpool/wattpool/shares"
	"github.com/wattpool/wattpool/stratum"
	"github.com/wattpool/wattpool/stratum/node"
	"github.com/wattpool/wattpool/stratum/work"
)

// app is one running pool: template source, job builder, share sink,
// stratum server and HTTP server, built from one configuration. serve and
// demo both run it.
type app struct {
	cfg     *config.Config
	log     *zap.Logger
	level   zap.AtomicLevel
	reg     *prometheus.Registry
	started time.Time

	source   node.Source
	clients  []*node.Client
	builder  *work.Builder
	db       *pgxpool.Pool
	recorder *shares.Recorder // nil without a database
	tracker  *shares.Tracker  // nil without a database or without nodes
	payouts  *payoutRunner    // nil without a database (payoutsrun.go)
	sink     stratum.Sink
	server   *stratum.Server

	httpLn  net.Listener // nil when HTTP is off
	httpSrv *http.Server

	alloc *allocLive // nil when allocator.mode is off
	fleet *fleetView // nil without allocator.inventory (fleetview.go)

	// draining is set once shutdown began: /readyz answers 503.
	draining atomic.Bool
	// notify logs and POSTs operator events (blocks, node and ledger
	// health).
	notify *notifier
}

// newApp builds every part of the pool without starting any; on error it
// releases what it built. When the configuration asks for it, migrations
// are applied here, before anything can record a share.
func newApp(ctx context.Context, cfg *config.Config, log *zap.Logger, level zap.AtomicLevel) (a *app, err error) {
	a = &app{cfg: cfg, log: log, level: level, reg: prometheus.NewRegistry(), started: time.Now()}
	// The returns below set a to nil: release what was built through a
	// copy (closing through a was a nil dereference on every start-up
	// error after the first part, such as an unparsable database URL).
	built := a
	defer func() {
		if err != nil {
			built.close(context.Background())
			a = nil
		}
	}()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "wattpool_build_info",
			Help:        "Always 1; the labels name the running build and instance.",
			ConstLabels: prometheus.Labels{"version": versionString(), "instance": cfg.Instance, "network": cfg.Network.Name},
		}, func() float64 { return 1 }))
	if a.notify, err = newNotifier(cfg, os.LookupEnv, log.Named("notify"), a.reg); err != nil {
		return nil, err
	}
	if err := a.buildSource(); err != nil {
		return nil, err
	}
	a.builder, err = work.NewBuilder(work.Config{Params: cfg.Network, PayoutScript: cfg.PayoutScript,
		PoolTag: cfg.PoolTag, Extranonce2Size: cfg.Extranonce2Size})
	if err != nil {
		return nil, fmt.Errorf("job builder: %w", err)
	}
	if err := a.buildSink(ctx); err != nil {
		return nil, err
	}
	if err := a.buildAllocator(); err != nil {
		return nil, err
	}
	a.buildFleetView()
	a.server, err = stratum.New(stratumConfig(cfg), a.builder, a.source, notifySink{a.sink, a.notify}, log.Named("stratum"),
		stratum.WithRegisterer(a.reg))
	if err != nil {
		return nil, err
	}
	if cfg.HTTPAddr != "" {
		// Bind now so a taken port fails start-up, not a goroutine later.
		var lc net.ListenConfig
		if a.httpLn, err = lc.Listen(ctx, "tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("http: listen on %s: %w", cfg.HTTPAddr, err)
		}
		a.httpSrv = &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: zap.NewStdLog(log.Named("http"))}
	}
	return a, nil
}

func (a *app) buildSource() error {
	cfg := a.cfg
	if cfg.TemplateFile != "" {
		fs, err := node.NewFileSource(cfg.TemplateFile, a.log.Named("template"), node.WithFileRefresh(cfg.RefreshInterval))
		if err != nil {
			return err
		}
		a.source = fs
		a.log.Warn("replaying a template file instead of asking a node: found blocks go nowhere",
			zap.String("file", cfg.TemplateFile))
		return nil
	}
	for _, n := range cfg.Nodes {
		c, err := node.NewClient(node.Config{Name: n.Name, URL: n.URL, CAFile: n.CAFile, Timeout: cfg.NodeTimeout},
			a.log.Named("node"))
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		a.clients = append(a.clients, c)
	}
	p, err := node.NewPool(a.clients, a.log.Named("node"), node.WithPollInterval(cfg.PollInterval),
		node.WithRefreshInterval(cfg.RefreshInterval), node.WithLongPoll(cfg.LongPoll), node.WithRegisterer(a.reg))
	if err != nil {
		return err
	}
	a.source = p
	return nil
}

func (a *app) buildSink(ctx context.Context) error {
	cfg := a.cfg
	if cfg.DatabaseURL == "" {
		a.log.Warn("no database configured: accepted shares are logged, not stored")
		a.sink = stratum.NewLogSink(a.log.Named("shares"))
		return nil
	}
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		// pgx errors may quote the URL; say which setting instead.
		return errors.New("database.url does not parse as a PostgreSQL URL")
	}
	if a.db, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return fmt.Errorf("database %s: %w", config.Redact(cfg.DatabaseURL), err)
	}
	if cfg.Migrate {
		if err := applyMigrations(ctx, a.db, a.log); err != nil {
			return err
		}
	} else if err := checkSchema(ctx, a.db, a.log); err != nil {
		return err
	}
	a.recorder, err = shares.New(shares.Config{Instance: cfg.Instance, SpoolDir: cfg.SpoolDir}, a.db,
		a.log.Named("shares"), shares.WithRegisterer(a.reg), shares.WithSpoolLimit(cfg.SpoolLimit),
		spoolSyncOption(cfg.SpoolSync), shares.WithRetention(cfg.Audit.ArchiveDir, cfg.Audit.Retention))
	if err != nil {
		return err
	}
	a.sink = a.recorder
	if a.payouts, err = newPayoutRunner(ctx, cfg, a.db, a.log.Named("payouts")); err != nil {
		return err
	}
	if len(a.clients) > 0 {
		a.tracker, err = shares.NewTracker(a.db, failoverChain(a.clients), a.recorder, a.log.Named("blocks"),
			shares.WithOnChange(func(c shares.BlockChange) { a.notify.blockChanged(c); a.payouts.blockChanged(c) }))
		if err != nil {
			return err
		}
	}
	return nil
}

// ErrSchemaBehind is returned by serve on a database whose schema is older
// than the binary's: every write would fail with a missing relation.
var ErrSchemaBehind = errors.New("the database schema is behind this wattpool")

// checkSchema refuses a database whose schema is not the one this binary
// carries. A database that cannot be reached is let through with a
// warning: the pool starts and spools shares until it comes back (and an
// unmigrated one is then reported by the ledger's errors).
func checkSchema(ctx context.Context, db *pgxpool.Pool, log *zap.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := db.Acquire(cctx)
	if err != nil {
		log.Warn("database unreachable at start: schema version not checked, shares are spooled until it answers", zap.Error(err))
		return nil
	}
	defer conn.Release()
	cur, latest, err := migrations.Version(cctx, conn.Conn())
	if err != nil {
		return fmt.Errorf("check the database schema: %w", err)
	}
	switch {
	case cur < latest:
		return fmt.Errorf("%w: it is at version %d of %d: run `wattpool migrate` (or set database.migrate = true)", ErrSchemaBehind, cur, latest)
	case cur > latest:
		return fmt.Errorf("the database schema is at version %d, newer than this wattpool's %d: run the newer wattpool", cur, latest)
	}
	log.Info("database schema up to date", zap.Int32("version", cur))
	return nil
}

// applyMigrations brings the schema up to date on one connection of db.
func applyMigrations(ctx context.Context, db *pgxpool.Pool, log *zap.Logger) error {
	conn, err := db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: connect: %w", err)
	}
	defer conn.Release()
	if err := migrations.Apply(ctx, conn.Conn()); err != nil {
		return err
	}
	cur, latest, err := migrations.Version(ctx, conn.Conn())
	if err != nil {
		return err
	}
	log.Info("database schema up to date", zap.Int32("version", cur), zap.Int32("latest", latest))
	return nil
}

// failoverChain asks the nodes in order until one answers, so the block
// tracker follows blocks through the same failover as templates.
type failoverChain []*node.Client

func (c failoverChain) BlockHash(ctx context.Context, height int64) (chainhash.Hash, error) {
	var errs []error
	for _, cl := range c {
		h, err := cl.GetBlockHash(ctx, height)
		if err == nil {
			return h, nil
		}
		errs = append(errs, err)
	}
	return chainhash.Hash{}, errors.Join(errs...)
}

func (c failoverChain) Confirmations(ctx context.Context, hash chainhash.Hash) (int64, error) {
	var errs []error
	for _, cl := range c {
		info, err := cl.GetBlockHeader(ctx, hash)
		if err == nil {
			return info.Confirmations, nil
		}
		errs = append(errs, err)
	}
	return 0, errors.Join(errs...)
}

// spoolSyncOption turns instance.spool_sync_interval into the ledger's
// fsync policy: 0 means an fsync per share before the miner is answered.
func spoolSyncOption(d time.Duration) shares.Option {
	if d == 0 {
		return shares.WithSyncEveryRecord()
	}
	return shares.WithSyncInterval(d)
}

// stratumConfig maps the configuration onto the server's, keeping the
// server's defaults for what the file does not expose.
func stratumConfig(cfg *config.Config) stratum.Config {
	sc := stratum.Default()
	sc.Instance, sc.InstanceID = cfg.Instance, cfg.InstanceID
	sc.VersionMask = cfg.VersionMask
	sc.Extranonce2Size = cfg.Extranonce2Size
	sc.RefreshInterval = cfg.JobRefresh
	sc.SessionResumeWindow, sc.MaxParkedSessions = cfg.SessionResumeWindow, cfg.MaxParkedSessions
	sc.MaxConnections, sc.MaxConnectionsPerIP = cfg.MaxConnections, cfg.MaxConnectionsPerIP
	sc.ProxyTrusted, sc.HandshakeTimeout = cfg.ProxyTrusted, cfg.HandshakeTimeout
	sc.Vardiff = stratum.VardiffConfig{
		TargetInterval: cfg.Vardiff.TargetInterval, RetargetInterval: cfg.Vardiff.RetargetInterval,
		RetargetShares: cfg.Vardiff.RetargetShares, MaxFactor: cfg.Vardiff.MaxFactor, Tolerance: cfg.Vardiff.Tolerance,
	}
	sc.Ban = cfg.Ban
	sc.Listeners = nil
	for _, l := range cfg.Listeners {
		sc.Listeners = append(sc.Listeners, stratum.ListenerConfig{Name: l.Name, Addr: l.Addr,
			StartDiff: l.StartDiff, MinDiff: l.MinDiff, MaxDiff: l.MaxDiff, MaxConnections: l.MaxConnections,
			ProxyProtocol: l.ProxyProtocol, TLSCert: l.TLSCert, TLSKey: l.TLSKey, Solo: l.Solo})
	}
	sc.SoloFeeBps = cfg.Payouts.FeeBps
	sc.Groups = nil
	for _, g := range cfg.Groups {
		sc.Groups = append(sc.Groups, stratum.GroupRule{Pattern: g.Pattern, Group: g.Group})
	}
	return sc
}

// healthInterval is how often node and ledger health are checked for
// notifications; notifyFlush bounds the last notifications at shutdown.
const (
	healthInterval = 5 * time.Second
	notifyFlush    = 5 * time.Second
)

// run serves until ctx is done, then drains: the stratum server finishes
// in-flight messages, the ledger flushes its spool, HTTP stops last so
// /healthz and /metrics stay up during the drain. reload receives new
// configurations (SIGHUP).
func (a *app) run(ctx context.Context, reload <-chan *config.Config) error {
	stopDrainFlag := context.AfterFunc(ctx, func() { a.draining.Store(true) })
	defer stopDrainFlag()
	httpErr := make(chan error, 1)
	if a.httpSrv != nil {
		a.log.Info("http listening", zap.Stringer("addr", a.httpLn.Addr()))
		// The goroutine gets its own copies: when the stratum server
		// fails at once (a port in use), close clears the fields before
		// a goroutine reading them would have started.
		srv, ln := a.httpSrv, a.httpLn
		go func() { httpErr <- srv.Serve(ln) }()
	}
	srvCtx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	srvErr := make(chan error, 1)
	go func() { srvErr <- a.server.Run(srvCtx) }()
	trackerDone := make(chan struct{})
	if a.tracker != nil {
		go func() {
			defer close(trackerDone)
			_ = a.tracker.Run(srvCtx, a.cfg.BlockCheckInterval)
		}()
	} else {
		close(trackerDone)
	}
	payoutsDone := make(chan struct{})
	if a.payouts != nil {
		go func() { defer close(payoutsDone); a.payouts.run(srvCtx) }()
	} else {
		close(payoutsDone)
	}
	var allocDone <-chan struct{}
	if a.alloc != nil {
		allocDone = a.alloc.run(srvCtx)
	}
	// Notifications outlive the server so the drain's events go out; the
	// health watch stops with the server.
	notifyCtx, stopNotify := context.WithCancel(context.WithoutCancel(ctx))
	notifyDone := make(chan struct{})
	go func() { defer close(notifyDone); a.notify.run(notifyCtx, notifyFlush) }()
	healthDone := make(chan struct{})
	go func() { defer close(healthDone); a.watchHealth(srvCtx, healthInterval) }()
	defer func() { stopNotify(); <-notifyDone }()

	var err error
loop:
	for {
		select {
		case err = <-srvErr:
			srvErr = nil
			break loop
		case e := <-httpErr:
			err = fmt.Errorf("http server: %w", e)
			break loop
		case next := <-reload:
			a.apply(next)
		}
	}
	stopServer()
	if srvErr != nil {
		if e := <-srvErr; err == nil {
			err = e
		}
	}
	<-trackerDone
	<-payoutsDone
	<-healthDone
	if a.alloc != nil {
		<-allocDone
	}
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	if cerr := a.close(drainCtx); err == nil {
		err = cerr
	}
	return err
}

// close releases everything newApp built, flushing the ledger first.
func (a *app) close(ctx context.Context) error {
	var errs []error
	if a.alloc != nil {
		a.alloc.close()
		a.alloc = nil
	}
	if a.recorder != nil {
		if err := a.recorder.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close share ledger: %w", err))
		}
		a.recorder = nil
	}
	if a.db != nil {
		a.db.Close()
		a.db = nil
	}
	for _, c := range a.clients {
		c.Close()
	}
	a.clients = nil
	if a.httpSrv != nil {
		if err := a.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop http server: %w", err))
		}
		a.httpSrv = nil
	}
	if a.httpLn != nil {
		// Shutdown closed it if Serve ran; otherwise nobody did.
		_ = a.httpLn.Close()
		a.httpLn = nil
	}
	return errors.Join(errs...)
}
