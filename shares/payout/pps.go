package payout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/btcsuite/btcd/wire/v2"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/work"
)

// PPS and FPPS.
//
// A share of difficulty d accepted on a job of network difficulty D_net
// at height h earns
//
//	d / D_net × (subsidy(h) + F) × (1 − fee_bps / 10000)
//
// satoshis, with F = 0 for pps and, for fpps, the average fees per block
// over the newest fpps_fee_blocks templates the pool built at or below h:
// for each of the newest fpps_fee_blocks heights among the stored jobs (the
// newest job at each height, as its template last stood), its coinbase
// value (the outputs of coinb1 | zero extranonce | coinb2) minus its
// subsidy, averaged exactly. The node's own view of fees is not needed, and
// the figure is reproducible from the ledger.
//
// Credits are summed exactly (big.Rat) per account over each UTC hour,
// added to the fraction the account carried out of its previous credited
// hour, and floored to satoshis once; the new fraction is carried on. So
// Σ booked sats = floor(Σ exact credits) per account, whatever the number
// of hours: nothing is lost to rounding, and the fraction is at most one
// satoshi short, never paid twice.

// periodRat is one account's PPS hour.
type periodRat struct {
	shares     int64
	diff       sum
	exact      *big.Rat // net of the fee
	gross      *big.Rat // before the fee
	carryIn    *big.Rat
	sats       int64
	carryOut   *big.Rat
	grossFloor int64
}

func newRat() *big.Rat { return new(big.Rat) }

// floorMulRat returns floor(n × d / D) for non-negative values; 0 when D
// is zero.
func floorMulRat(n int64, d, D *big.Rat) int64 {
	if D == nil || D.Sign() == 0 || d == nil {
		return 0
	}
	r := new(big.Rat).Mul(big.NewRat(n, 1), d)
	r.Quo(r, D)
	return floorRat(r)
}

// floorRat returns floor(r) for r >= 0 within int64.
func floorRat(r *big.Rat) int64 {
	q := new(big.Int).Quo(r.Num(), r.Denom())
	return q.Int64()
}

// Hour is the UTC hour containing t.
func Hour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// CreditPPS credits every hour that has ended (and settled for late
// shares) under pps or fpps and is not credited yet, oldest first, each in
// its own transaction. It returns the hours credited.
func (l *Ledger) CreditPPS(ctx context.Context) ([]time.Time, error) {
	h, err := l.History(ctx)
	if err != nil {
		return nil, err
	}
	var first time.Time
	for _, p := range h {
		if p.Scheme.PerShare() {
			first = Hour(p.From)
			break
		}
	}
	if first.IsZero() {
		return nil, nil
	}
	var last *time.Time
	if err := l.db.QueryRow(ctx, `SELECT max(period_start) FROM payout_journals WHERE kind = 'pps'`).Scan(&last); err != nil {
		return nil, fmt.Errorf("pps: read the last credited hour: %w", err)
	}
	start := first
	if last != nil && !last.Before(start) {
		start = last.UTC().Add(time.Hour)
	}
	if start.Equal(Epoch) {
		// Parameters without an effective_from reach back to the epoch:
		// start at the hour of the first share instead.
		var t *time.Time
		if err := l.db.QueryRow(ctx, `SELECT min(time) FROM shares`).Scan(&t); err != nil {
			return nil, fmt.Errorf("pps: read the first share: %w", err)
		}
		if t == nil {
			return nil, nil
		}
		start = Hour(*t)
	}
	var done []time.Time
	cutoff := l.now().Add(-l.settle)
	for hour := start; !hour.Add(time.Hour).After(cutoff); hour = hour.Add(time.Hour) {
		p, ok := h.At(hour)
		if !ok || !p.Scheme.PerShare() {
			continue
		}
		ok, err := l.CreditHour(ctx, hour)
		if err != nil {
			return done, err
		}
		if ok {
			done = append(done, hour)
		}
	}
	return done, nil
}

// CreditHour credits the pps/fpps hour starting at hour: one journal
// (each account's floored credit, 'pool:pps' the other side) and one
// pps_periods row per account with shares in it. It reports false when the
// hour was credited already or pps/fpps was not in force.
func (l *Ledger) CreditHour(ctx context.Context, hour time.Time) (bool, error) {
	hour = hour.UTC()
	if !hour.Equal(Hour(hour)) {
		return false, fmt.Errorf("pps: %s is not a whole UTC hour", hour.Format(time.RFC3339Nano))
	}
	var credited bool
	var total int64
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM payout_journals WHERE kind = 'pps' AND period_start = $1)`, hour).Scan(&exists); err != nil {
			return fmt.Errorf("pps hour %s: %w", hour.Format(time.RFC3339), err)
		}
		if exists {
			return nil
		}
		h, err := readHistory(ctx, tx)
		if err != nil {
			return err
		}
		p, ok := h.At(hour)
		if !ok || !p.Scheme.PerShare() {
			return nil
		}
		accounts, err := l.hourCredits(ctx, tx, p, hour)
		if err != nil {
			return fmt.Errorf("pps hour %s: %w", hour.Format(time.RFC3339), err)
		}
		names := make([]string, 0, len(accounts))
		for a := range accounts {
			names = append(names, a)
		}
		slices.Sort(names)
		j := journal{kind: JournalPPS, period: hour, hasPeriod: true, bookedAt: hour.Add(time.Hour)}
		for _, a := range names {
			pr := accounts[a]
			carry, err := carryIn(ctx, tx, a, hour)
			if err != nil {
				return err
			}
			pr.carryIn = carry
			t := new(big.Rat).Add(pr.exact, carry)
			pr.sats = floorRat(t)
			pr.carryOut = t.Sub(t, big.NewRat(pr.sats, 1))
			pr.grossFloor = floorRat(new(big.Rat).Add(pr.gross, carry))
			if pr.sats != 0 {
				j.entries = append(j.entries, entry{a, KindCredit, pr.sats})
				total += pr.sats
			}
		}
		if total != 0 {
			j.entries = append(j.entries, entry{AccountPPS, KindPPSFunding, -total})
		}
		id, err := l.writeJournal(ctx, tx, j)
		if err != nil || id == 0 {
			return err
		}
		periods := make([][]any, 0, len(names))
		details := make([][]any, 0, len(names))
		for _, a := range names {
			pr := accounts[a]
			periods = append(periods, []any{hour, a, id, p.From, string(p.Scheme), p.FeeBps, p.FPPSFeeBlocks, pr.shares,
				Decimal(pr.diff.rat()), pr.exact.RatString(), pr.carryIn.RatString(), pr.sats, pr.carryOut.RatString()})
			details = append(details, []any{id, a, Decimal(pr.diff.rat()), pr.grossFloor, pr.sats})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pps_periods"}, []string{"period_start", "account", "journal_id", "params_from",
			"scheme", "fee_bps", "fpps_fee_blocks", "shares", "difficulty", "exact_sats", "carry_in", "sats", "carry_out"},
			pgx.CopyFromRows(periods)); err != nil {
			return fmt.Errorf("pps hour %s: store periods: %w", hour.Format(time.RFC3339), err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"payout_credit_details"}, []string{"journal_id", "account", "difficulty", "gross_sats", "sats"},
			pgx.CopyFromRows(details)); err != nil {
			return fmt.Errorf("pps hour %s: store credit details: %w", hour.Format(time.RFC3339), err)
		}
		credited = true
		return nil
	})
	if err != nil {
		return false, err
	}
	if credited {
		l.log.Info("pps hour credited", zap.Time("hour", hour), zap.Int64("sats", total))
	}
	return credited, nil
}

// carryIn is the fraction account carried out of its last credited hour
// before hour (0 when none).
func carryIn(ctx context.Context, tx pgx.Tx, account string, hour time.Time) (*big.Rat, error) {
	var s string
	err := tx.QueryRow(ctx, `SELECT carry_out FROM pps_periods WHERE account = $1 AND period_start < $2
		ORDER BY period_start DESC LIMIT 1`, account, hour).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return newRat(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("pps: read %s's carried fraction: %w", account, err)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok || r.Sign() < 0 {
		return nil, fmt.Errorf("pps: %s's carried fraction %q is not a non-negative rational", account, s)
	}
	return r, nil
}

// hourCredits sums each account's exact credit over the hour's shares.
func (l *Ledger) hourCredits(ctx context.Context, tx pgx.Tx, p ParamsAt, hour time.Time) (map[string]*periodRat, error) {
	// Difficulty per (account, job), summed exactly, then valued per job.
	// Rows carry the account id, named afterwards (a join per row costs
	// more than the sums).
	names, err := pgSource{ctx: ctx, db: tx}.names(`SELECT id, name FROM accounts`)
	if err != nil {
		return nil, err
	}
	// Solo shares (their job's coinbase paid the miner) never enter pps.
	rows, err := tx.Query(ctx, `SELECT account_id, instance, job_id, share_diff FROM shares
		WHERE time >= $1 AND time < $2 AND job_id NOT LIKE '`+soloJobPattern+`'`, hour, hour.Add(time.Hour))
	if err != nil {
		return nil, fmt.Errorf("read shares: %w", err)
	}
	type idKey struct {
		account       int64
		instance, job string
	}
	type key struct{ account, instance, job string }
	type acc struct {
		shares int64
		diff   sum
	}
	byID := map[idKey]*acc{}
	var ik idKey
	var d float64
	var tmp big.Int
	if _, err := pgx.ForEachRow(rows, []any{&ik.account, &ik.instance, &ik.job, &d}, func() error {
		a := byID[ik]
		if a == nil {
			a = &acc{}
			byID[ik] = a
		}
		a.shares++
		a.diff.addFloat(d, &tmp)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read shares: %w", err)
	}
	byKey := make(map[key]*acc, len(byID))
	for ik, a := range byID {
		name, ok := names[ik.account]
		if !ok {
			return nil, fmt.Errorf("read shares: account id %d is not in accounts", ik.account)
		}
		byKey[key{name, ik.instance, ik.job}] = a
	}
	values := map[[2]string]*big.Rat{}
	fees := map[int64]*big.Rat{}
	keep := new(big.Rat).SetFrac64(MaxFeeBps-p.FeeBps, MaxFeeBps)
	out := map[string]*periodRat{}
	keys := make([]key, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := bytes.Compare([]byte(a.account), []byte(b.account)); c != 0 {
			return c
		}
		if c := bytes.Compare([]byte(a.instance), []byte(b.instance)); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a.job), []byte(b.job))
	})
	for _, k := range keys {
		a := byKey[k]
		jk := [2]string{k.instance, k.job}
		v, ok := values[jk]
		if !ok {
			if v, err = l.valuePerDiff(ctx, tx, p, k.instance, k.job, fees); err != nil {
				return nil, err
			}
			values[jk] = v
		}
		pr := out[k.account]
		if pr == nil {
			pr = &periodRat{exact: newRat(), gross: newRat()}
			out[k.account] = pr
		}
		pr.shares += a.shares
		pr.diff.add(&a.diff)
		g := new(big.Rat).Mul(a.diff.rat(), v)
		pr.gross.Add(pr.gross, g)
		pr.exact.Add(pr.exact, g.Mul(g, keep))
	}
	return out, nil
}

// valuePerDiff is (subsidy(h) + F) / D_net for a job.
func (l *Ledger) valuePerDiff(ctx context.Context, tx pgx.Tx, p ParamsAt, instance, jobID string, fees map[int64]*big.Rat) (*big.Rat, error) {
	var height int64
	var netDiff float64
	err := tx.QueryRow(ctx, `SELECT height, network_diff FROM jobs WHERE instance = $1 AND job_id = $2`, instance, jobID).Scan(&height, &netDiff)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("job %s of instance %s is not in the ledger: its shares cannot be valued", jobID, instance)
	}
	if err != nil {
		return nil, fmt.Errorf("read job %s/%s: %w", instance, jobID, err)
	}
	if !(netDiff > 0) {
		return nil, fmt.Errorf("job %s/%s has network difficulty %v", instance, jobID, netDiff)
	}
	reward := new(big.Rat).SetInt64(work.Subsidy(height, l.net))
	if p.Scheme == FPPS {
		f, ok := fees[height]
		if !ok {
			if f, err = l.averageFees(ctx, tx, height, p.FPPSFeeBlocks); err != nil {
				return nil, err
			}
			fees[height] = f
		}
		reward.Add(reward, f)
	}
	return reward.Quo(reward, new(big.Rat).SetFloat64(netDiff)), nil
}

// averageFees is FPPS's F at height: the mean of coinbase value − subsidy
// over the newest n heights at or below height among the stored jobs (the
// newest job of each height).
func (l *Ledger) averageFees(ctx context.Context, tx pgx.Tx, height, n int64) (*big.Rat, error) {
	rows, err := tx.Query(ctx, `SELECT DISTINCT ON (height) height, coinb1, coinb2, extranonce1_size, extranonce2_size
		FROM jobs WHERE height <= $1 AND solo_script IS NULL ORDER BY height DESC, created_at DESC, job_id DESC LIMIT $2`, height, n)
	if err != nil {
		return nil, fmt.Errorf("fpps: read templates: %w", err)
	}
	var h int64
	var c1, c2 []byte
	var en1, en2 int16
	sumFees := new(big.Int)
	count := int64(0)
	if _, err := pgx.ForEachRow(rows, []any{&h, &c1, &c2, &en1, &en2}, func() error {
		v, err := CoinbaseValue(c1, c2, int(en1)+int(en2))
		if err != nil {
			return fmt.Errorf("fpps: job at height %d: %w", h, err)
		}
		f := v - work.Subsidy(h, l.net)
		if f < 0 {
			f = 0
		}
		sumFees.Add(sumFees, big.NewInt(f))
		count++
		return nil
	}); err != nil {
		return nil, err
	}
	if count == 0 {
		return newRat(), nil
	}
	return new(big.Rat).SetFrac(sumFees, big.NewInt(count)), nil
}

// CoinbaseValue sums the outputs of a job's coinbase, rebuilt as coinb1 |
// extranonceSize zero bytes | coinb2 (the stripped serialization).
func CoinbaseValue(coinb1, coinb2 []byte, extranonceSize int) (int64, error) {
	raw := make([]byte, 0, len(coinb1)+extranonceSize+len(coinb2))
	raw = append(raw, coinb1...)
	raw = append(raw, make([]byte, extranonceSize)...)
	raw = append(raw, coinb2...)
	var tx wire.MsgTx
	if err := tx.DeserializeNoWitness(bytes.NewReader(raw)); err != nil {
		return 0, fmt.Errorf("coinbase does not parse: %w", err)
	}
	var v int64
	for _, o := range tx.TxOut {
		v += o.Value
	}
	return v, nil
}
