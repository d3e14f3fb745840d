// Package shares is the share ledger: it records every accepted share, job,
// found block and rejected-share count of the stratum server in PostgreSQL
// (schema in package migrations) through a local write-ahead spool, follows
// found blocks until they mature or are orphaned, and answers the ledger's
// questions: hashrate, PPLNS windows, and re-verification of stored shares.
package shares

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/migrations"
	"github.com/wattpool/wattpool/shares/spool"
	"github.com/wattpool/wattpool/stratum"
	"github.com/wattpool/wattpool/stratum/work"
)

// ErrSpoolFull is returned (wrapped) by RecordShare, RecordJob and
// RecordBlock when the spool cannot take the record durably: its byte
// limit is reached because the database has been unreachable for long, the
// disk is full, or a write or fsync failed. The server must then tell the
// miner the share was not recorded.
var ErrSpoolFull = spool.ErrFull

// ErrSpoolTimeout is returned (wrapped) by RecordShare, RecordJob and
// RecordBlock when the record could not be made durable before the call's
// context ended (the disk stalls): the record was withdrawn, is never
// written and can never reach PostgreSQL. The server tells the miner the
// share was not recorded.
var ErrSpoolTimeout = spool.ErrTimeout

// Config holds what a Recorder cannot run without.
type Config struct {
	// Instance names this pool instance; it is stored with every job and
	// share (job ids are unique per instance only).
	Instance string
	// SpoolDir is the write-ahead spool directory, on a local disk. It
	// must belong to this instance alone.
	SpoolDir string
}

type options struct {
	instance        string
	spool           spool.Options
	batchSize       int
	flushInterval   time.Duration
	partitionsAhead int
	blockTimeout    time.Duration
	registerer      prometheus.Registerer
	now             func() time.Time
	retention       retention // share partitions to archives (retention.go)
}

// Option tunes a Recorder.
type Option func(*options)

// WithSyncInterval sets how often spooled records are fsynced (default
// 20ms): the most a power loss can take with it.
func WithSyncInterval(d time.Duration) Option { return func(o *options) { o.spool.SyncInterval = d } }

// WithSyncEveryRecord fsyncs every record before RecordShare returns: no
// loss window, at the price of one fsync per share.
func WithSyncEveryRecord() Option { return func(o *options) { o.spool.SyncEveryRecord = true } }

// WithSegmentSize sets the spool segment size in bytes (default 64 MiB).
// Any size works with any spool limit: when the spool holds half its limit
// the drain seals the active segment it has committed and deletes it.
func WithSegmentSize(bytes int64) Option { return func(o *options) { o.spool.SegmentBytes = bytes } }

// WithSegmentAge sets the age after which a spool segment is sealed
// (default 1 minute).
func WithSegmentAge(d time.Duration) Option { return func(o *options) { o.spool.SegmentAge = d } }

// WithSpoolLimit caps the spool's bytes on disk (default 4 GiB); beyond it
// records are refused with ErrSpoolFull. At ~150 bytes a share, 4 GiB holds
// about 28 million shares: at 20,000 shares/s, 23 minutes of database
// outage. Keep it to a few seconds of peak share traffic at least (20,000
// shares/s write about 3 MB/s): the drain frees room a pass at a time, and
// a limit that one slow pass fills refuses shares while the database is up
// (measured: 1 MiB at 20,000/s does, 4 MiB does not).
func WithSpoolLimit(bytes int64) Option { return func(o *options) { o.spool.LimitBytes = bytes } }

// WithBatchSize sets how many spooled records go to PostgreSQL in one
// transaction (default 20,000).
func WithBatchSize(n int) Option { return func(o *options) { o.batchSize = n } }

// WithFlushInterval sets how often the spool is drained into PostgreSQL
// (default 200ms).
func WithFlushInterval(d time.Duration) Option { return func(o *options) { o.flushInterval = d } }

// WithPartitionsAhead sets how many days of share partitions are kept ready
// (default 7).
func WithPartitionsAhead(days int) Option { return func(o *options) { o.partitionsAhead = days } }

// WithBlockTimeout bounds the synchronous database insert of a found block
// (default 5s); the block is spooled regardless.
func WithBlockTimeout(d time.Duration) Option { return func(o *options) { o.blockTimeout = d } }

// WithRegisterer registers the ledger's metrics (none are registered
// without it).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.registerer = r } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// withSpoolFile wraps the spool's segment files (tests inject a stalled or
// failing disk with it).
func withSpoolFile(wrap func(*os.File) spool.File) Option {
	return func(o *options) { o.spool.WrapFile = wrap }
}

// Recorder is the share ledger's stratum.Sink. New starts its background
// drain goroutine (and the spool's syncer); Close stops them.
type Recorder struct {
	opts    options
	db      *pgxpool.Pool
	log     *zap.Logger
	spool   *spool.Spool
	names   *names
	rejects *rejects
	writer  *writer
	metrics *metrics

	bufs sync.Pool

	cancel   context.CancelFunc
	done     chan struct{}
	closeMu  sync.Mutex
	closed   bool
	dbFailed bool // run goroutine only: log database outages once
	// dbDown and spoolFailing feed Health: the latest pass could not
	// write to PostgreSQL; the latest append to the spool failed.
	dbDown, spoolFailing atomic.Bool
	drainMu              sync.Mutex // the run goroutine, Flush and Close take turns draining
	// passes counts the run goroutine's completed passes: the first one
	// (partitions, start-up replay, reject flush) runs at once and
	// concurrently with the first records, which tests must wait out.
	passes atomic.Uint64
	// partitionsDone is when partitions were last ensured (under drainMu).
	partitionsDone time.Time
}

var _ stratum.Sink = (*Recorder)(nil)

// New opens the spool in cfg.SpoolDir (replaying whatever a previous run
// left there), and starts draining it into db. It does not need the
// database to be up: shares are spooled and drained once it is.
func New(cfg Config, db *pgxpool.Pool, log *zap.Logger, opts ...Option) (*Recorder, error) {
	if cfg.Instance == "" {
		return nil, errors.New("new share recorder: instance name is empty")
	}
	if cfg.SpoolDir == "" {
		return nil, errors.New("new share recorder: spool directory is empty")
	}
	if db == nil {
		return nil, errors.New("new share recorder: no database pool")
	}
	if log == nil {
		log = zap.NewNop()
	}
	o := options{instance: cfg.Instance, batchSize: 20_000, flushInterval: 200 * time.Millisecond,
		partitionsAhead: migrations.DefaultPartitionDaysAhead, blockTimeout: 5 * time.Second, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.batchSize <= 0 || o.flushInterval <= 0 || o.blockTimeout <= 0 {
		return nil, fmt.Errorf("new share recorder: batch size %d, flush interval %s and block timeout %s must be positive",
			o.batchSize, o.flushInterval, o.blockTimeout)
	}
	o.spool.Now = o.now
	o.spool.Log = log
	r := &Recorder{opts: o, db: db, log: log, names: newNames(), done: make(chan struct{})}
	r.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	r.metrics = newMetrics(r)
	o.spool.ObserveWait = func(d time.Duration) { r.metrics.appendWait.Observe(d.Seconds()) }
	o.spool.ObserveBatch = func(n int) { r.metrics.batch.Observe(float64(n)) }
	r.opts.spool = o.spool
	r.rejects = newRejects(o.instance, o.now, r.metrics.rejectDrop.Inc)
	sp, damaged, err := spool.Open(cfg.SpoolDir, o.spool)
	if err != nil {
		return nil, fmt.Errorf("new share recorder: %w", err)
	}
	r.spool = sp
	r.writer = newWriter(r)
	for _, d := range damaged {
		r.reportDamage(d)
	}
	if o.registerer != nil {
		for _, c := range r.metrics.collectors() {
			if err := o.registerer.Register(c); err != nil {
				sp.Close()
				return nil, fmt.Errorf("new share recorder: register metrics: %w", err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(ctx)
	return r, nil
}

func (r *Recorder) reportDamage(d spool.Damaged) {
	r.metrics.corrupt.WithLabelValues(string(d.Cause.Kind)).Inc()
	r.log.Error("ledger: damaged spool segment set aside; intact records kept",
		zap.String("segment", d.Path), zap.String("set_aside", d.SetAside), zap.Int64("good_end", d.GoodEnd),
		zap.Int64("good_records", d.GoodRecords), zap.Int64("lost_bytes", d.LostBytes), zap.Error(d.Cause))
}

// append spools one record, waiting for it at most until ctx ends (see
// spool.AppendContext: a record refused for its deadline is never
// written).
func (r *Recorder) append(ctx context.Context, typ byte, encode func([]byte) []byte) error {
	bp := r.bufs.Get().(*[]byte)
	*bp = encode((*bp)[:0])
	_, err := r.spool.AppendContext(ctx, typ, *bp)
	if cap(*bp) <= 64<<10 {
		r.bufs.Put(bp)
	}
	r.appended(err)
	return err
}

// appended counts an append's failure and feeds Health.
func (r *Recorder) appended(err error) {
	if err != nil {
		if errors.Is(err, spool.ErrTimeout) {
			r.metrics.appendTimeouts.Inc()
		} else {
			r.metrics.spoolFull.Inc()
		}
		r.metrics.errors.WithLabelValues("append").Inc()
	}
	if failing := err != nil; r.spoolFailing.Load() != failing {
		r.spoolFailing.Store(failing)
	}
}

// Health is whether the ledger can take shares: PostgreSQL writes and the
// spool's appends, as the latest attempts of each went.
type Health struct {
	// DatabaseWritable is false while the latest pass failed to write
	// to PostgreSQL (shares wait in the spool).
	DatabaseWritable bool
	// SpoolWritable is false while the latest append was refused (the
	// spool is full or its disk fails): shares are refused with error 20.
	SpoolWritable bool
}

// Health reports the ledger's state. The ledger takes shares while the
// spool does; a full spool with PostgreSQL down takes none.
func (r *Recorder) Health() Health {
	return Health{DatabaseWritable: !r.dbDown.Load(), SpoolWritable: !r.spoolFailing.Load()}
}

// RecordJob spools the job so that every share made for it can be
// re-verified from the database. It waits for the spool at most until ctx
// ends.
func (r *Recorder) RecordJob(ctx context.Context, job *work.Job) error {
	if job == nil {
		return errors.New("record job: nil job")
	}
	typ, enc := recJob, appendJob
	if job.SoloScript != nil {
		typ, enc = recSoloJob, appendSoloJob
	}
	if err := r.append(ctx, typ, func(b []byte) []byte { return enc(b, job, r.opts.instance) }); err != nil {
		return fmt.Errorf("record job %s: %w", job.ID, err)
	}
	return nil
}

// RecordShare spools the share; when it returns nil the share survives a
// crash of this process, and a power loss after the sync interval (at once
// with WithSyncEveryRecord). It waits for the spool at most until ctx
// ends: a share that is not durable by then is refused with an error
// wrapping ErrSpoolTimeout and never written, unless its write had
// already begun, in which case it waits for that write's outcome (only
// the shares of a stalled write wait for the disk).
func (r *Recorder) RecordShare(ctx context.Context, s *stratum.Share) error {
	if s == nil {
		return errors.New("record share: nil share")
	}
	instance := s.Instance
	if instance == "" {
		instance = r.opts.instance
	}
	if err := r.append(ctx, recShare, func(b []byte) []byte { return appendShare(b, s, instance) }); err != nil {
		return fmt.Errorf("record share: %w", err)
	}
	return nil
}

// RecordBlock records the found block and the share that found it
// (fb.Share) as one record: it spools them in one record with an immediate
// fsync and stores both in PostgreSQL at once, in one transaction. It
// succeeds when either worked: a block that reached only the spool is
// stored, with its share, by the drain when the database is back. Either
// way a block is never in the ledger without its share, and when it
// fails neither is recorded. The server does not also call RecordShare
// for that share.
//
// The spool write waits at most until ctx ends; the database insert gets
// its own block timeout even when ctx has ended by then: a block found
// while the disk stalls (its record withdrawn, never written) is still
// stored in PostgreSQL, at the price of a later answer to its miner.
func (r *Recorder) RecordBlock(ctx context.Context, fb *stratum.FoundBlock) error {
	if fb == nil {
		return errors.New("record block: nil block")
	}
	payload := appendFoundBlock(nil, fb, r.opts.instance)
	pos, spoolErr := r.spool.AppendSyncContext(ctx, recFoundBlock, payload)
	r.appended(spoolErr)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.blockTimeout)
	defer cancel()
	// Decoding what was spooled gives the drain's exact rows, so the two
	// paths cannot store different values.
	var row blockRow
	if err := decodeFoundBlock(payload, &row.share.rec, &row.rec); err != nil {
		return fmt.Errorf("record block %s at height %d: %w", fb.Hash, fb.Height, err)
	}
	if spoolErr == nil {
		row.share.id = recordID(pos.SegmentID, pos.Offset)
	} else if _, err := rand.Read(row.share.id[:]); err != nil {
		// Only this path stores the share, so any unique id will do.
		return fmt.Errorf("record block %s at height %d: spool: %w; share id: %v", fb.Hash, fb.Height, spoolErr, err)
	}
	dbErr := func() error {
		aid, wid, err := r.names.resolve(ctx, r.db, row.rec.Account, row.rec.Worker)
		if err != nil {
			return err
		}
		row.share.aid, row.share.wid = aid, wid
		return pgx.BeginFunc(ctx, r.db, func(tx pgx.Tx) error {
			if err := insertShare(ctx, tx, &row.share); err != nil {
				return err
			}
			if err := insertBlock(ctx, tx, &row.rec, aid, wid); err != nil {
				return err
			}
			if err := addSums(ctx, tx, []shareRow{row.share}); err != nil {
				return err
			}
			return r.sealBlockShare(ctx, tx, &row.share)
		})
	}()
	switch {
	case dbErr == nil && spoolErr == nil:
		r.metrics.rows.WithLabelValues("blocks").Inc()
		return nil
	case dbErr == nil:
		r.metrics.rows.WithLabelValues("blocks").Inc()
		r.log.Error("ledger: found block and its share stored in PostgreSQL but not spooled", zap.Int64("height", fb.Height),
			zap.Stringer("hash", fb.Hash), zap.Error(spoolErr))
		return nil
	case spoolErr == nil:
		r.metrics.errors.WithLabelValues("block_insert").Inc()
		r.log.Warn("ledger: found block and its share spooled; database insert failed, the drain will retry",
			zap.Int64("height", fb.Height), zap.Stringer("hash", fb.Hash), zap.Error(dbErr))
		return nil
	default:
		r.metrics.errors.WithLabelValues("block_insert").Inc()
		return fmt.Errorf("record block %s at height %d with its share: spool: %w; database: %v", fb.Hash, fb.Height, spoolErr, dbErr)
	}
}

// RecordReject counts a rejected share in memory; it never blocks on I/O.
func (r *Recorder) RecordReject(rej *stratum.Reject) {
	if rej != nil {
		r.rejects.add(rej)
	}
}

// pendingRecords is the number of spooled records not yet committed.
func (r *Recorder) pendingRecords() uint64 {
	appended := r.spool.Stats().Appended
	consumed := r.writer.consumed.Load()
	if consumed >= appended {
		return 0
	}
	return appended - consumed
}

// lag is the age of the oldest record not yet committed (an upper bound:
// measured from the start of the last drain pass that caught up with it).
func (r *Recorder) lag() time.Duration {
	if r.pendingRecords() == 0 {
		return 0
	}
	return max(0, r.opts.now().Sub(r.writer.caughtUpAt()))
}

// run drains the spool every flush interval and keeps partitions ahead.
func (r *Recorder) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.opts.flushInterval)
	defer t.Stop()
	for {
		r.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// maintainPartitions keeps share partitions created ahead: at the first
// pass and hourly after a success. The caller holds drainMu.
func (r *Recorder) maintainPartitions(ctx context.Context) {
	now := r.opts.now()
	if !r.partitionsDone.IsZero() && now.Sub(r.partitionsDone) < time.Hour {
		return
	}
	if _, err := migrations.EnsurePartitions(ctx, r.db, now, r.opts.partitionsAhead); err != nil {
		r.metrics.errors.WithLabelValues("partitions").Inc()
		if ctx.Err() == nil && !r.dbFailed {
			r.log.Warn("ledger: cannot create share partitions yet (shares_default takes them meanwhile)", zap.Error(err))
		}
		return
	}
	r.partitionsDone = now
	r.archiveIfDue(ctx, now)
}

// pass drains the spool and flushes reject counts once.
func (r *Recorder) pass(ctx context.Context) {
	r.drainMu.Lock()
	defer r.drainMu.Unlock()
	r.maintainPartitions(ctx)
	r.writer.beginPass(r.opts.now(), r.spool.Stats().Appended)
	err := r.writer.drain(ctx)
	if err == nil {
		if rerr := r.flushRejects(ctx); rerr != nil {
			r.metrics.errors.WithLabelValues("reject_flush").Inc()
			err = rerr
		}
	} else {
		r.metrics.errors.WithLabelValues("flush").Inc()
	}
	r.writer.endPass()
	defer r.passes.Add(1)
	r.dbDown.Store(err != nil && ctx.Err() == nil)
	switch {
	case err != nil && ctx.Err() == nil && !r.dbFailed:
		r.dbFailed = true
		r.log.Error("ledger: cannot write to PostgreSQL; shares stay in the spool until it is back",
			zap.Uint64("pending_records", r.pendingRecords()), zap.Error(err))
	case err == nil && r.dbFailed:
		r.dbFailed = false
		r.log.Info("ledger: PostgreSQL writes work again; spool drained")
	}
}

// flushRejects stores the reject aggregate and counts the rows it wrote
// (a retried flush whose first commit went through counts them now, when
// they are known to be stored). The caller holds drainMu.
func (r *Recorder) flushRejects(ctx context.Context) error {
	n, err := r.rejects.flush(ctx, r.db, r.names)
	r.metrics.rows.WithLabelValues("rejects").Add(float64(n))
	return err
}

// Flush drains everything spooled and synced so far into PostgreSQL now
// (after an fsync of the spool) and returns the first error. The
// background drain keeps running; Flush is for tests, tools and shutdown.
func (r *Recorder) Flush(ctx context.Context) error {
	if err := r.spool.Sync(); err != nil {
		return fmt.Errorf("flush ledger: %w", err)
	}
	r.closeMu.Lock() // keeps Close from tearing down under us
	defer r.closeMu.Unlock()
	if r.closed {
		return errors.New("flush ledger: recorder closed")
	}
	return r.flushLocked(ctx)
}

func (r *Recorder) flushLocked(ctx context.Context) error {
	// The run goroutine also drains; the drainLock makes the two take turns.
	r.drainMu.Lock()
	defer r.drainMu.Unlock()
	r.maintainPartitions(ctx)
	r.writer.beginPass(r.opts.now(), r.spool.Stats().Appended)
	defer r.writer.endPass()
	if err := r.writer.drain(ctx); err != nil {
		return fmt.Errorf("flush ledger: %w", err)
	}
	if err := r.flushRejects(ctx); err != nil {
		return fmt.Errorf("flush ledger: %w", err)
	}
	return nil
}

// Close stops accepting records, seals and fsyncs the spool and drains
// what it can into PostgreSQL until ctx ends. Whatever is not drained
// stays in the spool for the next start. Metrics stay registered.
func (r *Recorder) Close(ctx context.Context) error {
	return r.close(ctx, true)
}

func (r *Recorder) close(ctx context.Context, drain bool) error {
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.cancel()
	<-r.done
	err := r.spool.Close()
	if drain {
		r.drainMu.Lock()
		defer r.drainMu.Unlock()
		r.writer.beginPass(r.opts.now(), r.spool.Stats().Appended)
		derr := r.writer.drain(ctx)
		if derr == nil {
			derr = r.flushRejects(ctx)
		}
		r.writer.endPass()
		if derr != nil {
			err = errors.Join(err, fmt.Errorf("close ledger: final drain (records stay spooled): %w", derr))
		}
	}
	return err
}
