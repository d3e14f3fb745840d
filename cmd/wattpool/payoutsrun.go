package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/shares"
	"github.com/wattpool/wattpool/shares/payout"
)

// payoutInterval is how often serve catches up on crediting without a
// block change to prompt it: pps hours end on the hour, and a block whose
// mature change another instance saw is credited here at the latest.
const payoutInterval = time.Minute

// payoutRunner credits the payout ledger inside serve: at once when the
// block tracker matures or orphans a block, and every payoutInterval. Every
// instance runs one; the ledger's unique journal keys and advisory lock
// make each credit happen once.
type payoutRunner struct {
	ledger   *payout.Ledger
	cfg      config.PayoutsConfig
	log      *zap.Logger
	kick     chan struct{}
	interval time.Duration
	recorded bool
}

// newPayoutRunner records [payouts] in the ledger's history. A change of
// parameters without a future effective_from refuses the start; a
// database that does not answer is only warned about (the runner records
// the parameters before its first credit).
func newPayoutRunner(ctx context.Context, cfg *config.Config, db *pgxpool.Pool, log *zap.Logger) (*payoutRunner, error) {
	p := &payoutRunner{ledger: payout.NewLedger(db, cfg.Instance, cfg.Network, payout.WithLogger(log)), cfg: cfg.Payouts, log: log,
		kick: make(chan struct{}, 1), interval: payoutInterval}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.record(cctx); err != nil {
		if errors.Is(err, payout.ErrParamsChange) {
			return nil, fmt.Errorf("payouts: %w", err)
		}
		log.Warn("payout parameters not recorded yet: crediting waits until the database answers", zap.Error(err))
	}
	return p, nil
}

func (p *payoutRunner) record(ctx context.Context) error {
	if p.recorded {
		return nil
	}
	if _, err := p.ledger.RecordParams(ctx, p.cfg.Params, p.cfg.EffectiveFrom); err != nil {
		return err
	}
	p.recorded = true
	return nil
}

// blockChanged is the tracker's hook: a mature or orphaned block is worth
// a run now. It never blocks.
func (p *payoutRunner) blockChanged(c shares.BlockChange) {
	if p == nil || (c.To != shares.StatusMature && c.To != shares.StatusOrphaned) {
		return
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run credits until ctx ends.
func (p *payoutRunner) run(ctx context.Context) {
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		p.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.kick:
		}
	}
}

func (p *payoutRunner) once(ctx context.Context) {
	if err := p.record(ctx); err != nil {
		if ctx.Err() == nil {
			p.log.Warn("payout parameters not recorded: nothing credited", zap.Error(err))
		}
		return
	}
	rep, err := p.ledger.Run(ctx)
	if err != nil && ctx.Err() == nil {
		p.log.Warn("payout crediting failed; retried on the next run", zap.Error(err))
	}
	for _, s := range rep.Skipped {
		p.log.Warn("block not credited; retried on the next run", zap.String("reason", s))
	}
}

// checkConfigPayouts compares [payouts] with the parameters the ledger
// has, without recording anything: check-config's question. It reports
// false for a change serve would refuse.
func checkConfigPayouts(ctx context.Context, w io.Writer, cfg *config.Config) bool {
	p := cfg.Payouts
	fmt.Fprintf(w, "  payouts %s, payout threshold %d sats", p.Params, p.ThresholdSats)
	if !p.EffectiveFrom.IsZero() {
		fmt.Fprintf(w, ", effective from %s", p.EffectiveFrom.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	if cfg.DatabaseURL == "" {
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := connect(cctx, cfg.DatabaseURL)
	if err != nil {
		fmt.Fprintln(w, "  payouts not compared with the ledger: the database does not answer")
		return true
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var pgErr *pgconn.PgError
	plan, err := payout.NewLedger(conn, cfg.Instance, cfg.Network).CheckParams(cctx, p.Params, p.EffectiveFrom)
	switch {
	case err != nil && errors.Is(err, payout.ErrParamsChange):
		fmt.Fprintf(w, "  PROBLEM payouts: %v\n", err)
		return false
	case err != nil && errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table
		fmt.Fprintln(w, "  payouts not compared with the ledger: the database is not migrated (wattpool migrate)")
	case err != nil:
		fmt.Fprintf(w, "  payouts not compared with the ledger: %v\n", err)
	case plan != nil:
		fmt.Fprintf(w, "  payouts: serve will record this set, in force from %s\n", plan.From.Format(time.RFC3339))
	default:
		fmt.Fprintln(w, "  payouts: the ledger's newest set is this one")
	}
	return true
}
