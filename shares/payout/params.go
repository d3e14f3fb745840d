package payout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// ParamsAt is a parameter set and the instant from which it is in force.
type ParamsAt struct {
	Params
	From time.Time
}

// History is every parameter set the ledger has recorded, oldest first.
type History []ParamsAt

// At returns the set in force at t: the one with the greatest From at or
// before t; false when none is (t precedes the first).
func (h History) At(t time.Time) (ParamsAt, bool) {
	for i := len(h) - 1; i >= 0; i-- {
		if !h[i].From.After(t) {
			return h[i], true
		}
	}
	return ParamsAt{}, false
}

// ErrParamsChange is returned for a change of [payouts] that does not
// state a future effective_from.
var ErrParamsChange = errors.New("a change of [payouts] needs a future effective_from")

// Epoch is the effective_from of a first parameter set given without one:
// it governs everything before any later change.
var Epoch = time.Unix(0, 0).UTC()

// Plan decides what the configured set (cfg, in force from from, zero when
// not stated) means against the recorded history at now: nothing to record
// (nil), a set to record, or an error when it changes the parameters
// without a future effective_from. Results already computed keep the
// parameters stored with them either way; Plan only keeps the past from
// being recomputed under new terms.
func (h History) Plan(cfg Params, from, now time.Time) (*ParamsAt, error) {
	if !from.IsZero() && !from.Equal(from.Truncate(time.Hour)) {
		return nil, fmt.Errorf("payouts.effective_from %s must be a whole UTC hour (pps credits whole hours)", from.UTC().Format(time.RFC3339))
	}
	if len(h) == 0 {
		if from.IsZero() {
			from = Epoch
		}
		return &ParamsAt{Params: cfg, From: from.UTC()}, nil
	}
	last := h[len(h)-1]
	if last.Params.Equal(cfg) {
		return nil, nil
	}
	since := "since " + last.From.UTC().Format(time.RFC3339)
	if last.From.After(now) {
		since = "from " + last.From.UTC().Format(time.RFC3339)
	}
	switch {
	case from.IsZero():
		return nil, fmt.Errorf("%w: [payouts] says %s, but the ledger has %s %s; set payouts.effective_from to a future whole UTC hour (results before it keep the parameters they were computed with)",
			ErrParamsChange, cfg, last.Params, since)
	case !from.After(now):
		return nil, fmt.Errorf("%w: [payouts] says %s from %s, which is not in the future (now %s); the ledger has %s %s",
			ErrParamsChange, cfg, from.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), last.Params, since)
	case !from.After(last.From):
		return nil, fmt.Errorf("%w: [payouts] says %s from %s, not after the ledger's newest set (%s %s)",
			ErrParamsChange, cfg, from.UTC().Format(time.RFC3339), last.Params, since)
	}
	return &ParamsAt{Params: cfg, From: from.UTC()}, nil
}

// History reads the recorded parameter sets.
func (l *Ledger) History(ctx context.Context) (History, error) {
	return readHistory(ctx, l.db)
}

func readHistory(ctx context.Context, db DB) (History, error) {
	rows, err := db.Query(ctx, `SELECT effective_from, scheme, fee_bps, pplns_window, fpps_fee_blocks FROM payout_params ORDER BY effective_from`)
	if err != nil {
		return nil, fmt.Errorf("read payout parameters: %w", err)
	}
	var h History
	var p ParamsAt
	var scheme, window string
	_, err = pgx.ForEachRow(rows, []any{&p.From, &scheme, &p.FeeBps, &window, &p.FPPSFeeBlocks}, func() error {
		s, err := ParseScheme(scheme)
		if err != nil {
			return fmt.Errorf("payout parameters from %s: %w", p.From.UTC().Format(time.RFC3339), err)
		}
		w, err := ParseWindowSize(window)
		if err != nil {
			return fmt.Errorf("payout parameters from %s: %w", p.From.UTC().Format(time.RFC3339), err)
		}
		p.Scheme, p.Window = s, w
		p.From = p.From.UTC()
		h = append(h, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read payout parameters: %w", err)
	}
	return h, nil
}

// CheckParams compares the configured set with the history without
// writing: check-config's question. It returns what serve would record.
func (l *Ledger) CheckParams(ctx context.Context, cfg Params, from time.Time) (*ParamsAt, error) {
	h, err := l.History(ctx)
	if err != nil {
		return nil, err
	}
	return h.Plan(cfg, from, l.now())
}

// RecordParams records the configured set when it is new (serve's start):
// under the ledger lock, so two instances starting together record it
// once. It returns the set recorded, or nil when the history already ends
// with it.
func (l *Ledger) RecordParams(ctx context.Context, cfg Params, from time.Time) (*ParamsAt, error) {
	var plan *ParamsAt
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		h, err := readHistory(ctx, tx)
		if err != nil {
			return err
		}
		if plan, err = h.Plan(cfg, from, l.now()); err != nil || plan == nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO payout_params (effective_from, scheme, fee_bps, pplns_window, fpps_fee_blocks, recorded_at, recorded_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, plan.From, string(plan.Scheme), plan.FeeBps, plan.Window.String(), plan.FPPSFeeBlocks, l.now(), l.instance)
		if err != nil {
			return fmt.Errorf("record payout parameters: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if plan != nil {
		l.log.Info("payout parameters recorded", zap.String("params", plan.Params.String()), zap.Time("effective_from", plan.From))
	}
	return plan, nil
}
