package shares

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wattpool/wattpool/stratum/work"
)

// Hourly difficulty sums (migration 008): the transaction that stores
// shares adds the difficulty of the rows it stored (stored flags, so a
// redone batch or a found block's share stored twice is summed once) to
// share_sums, per UTC hour and account, exactly. Solo shares are left out
// as every payout scheme leaves them out. shares/payout reads the sums for
// the whole hours inside a window instead of their rows.

// exactSum is an exact sum of float64 values, m × 2^e.
type exactSum struct {
	m big.Int
	e int
	n int64 // shares summed
}

// add adds f (finite, non-negative: the recorder stores no other).
func (s *exactSum) add(f float64) {
	s.n++
	if f == 0 || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return
	}
	frac, e := math.Frexp(f)
	mant := uint64(math.Ldexp(frac, 53))
	exp := e - 53
	tz := bits.TrailingZeros64(mant)
	mant, exp = mant>>tz, exp+tz
	var t big.Int
	t.SetUint64(mant)
	if s.m.Sign() == 0 {
		s.m.Set(&t)
		s.e = exp
		return
	}
	if exp < s.e {
		s.m.Lsh(&s.m, uint(s.e-exp))
		s.e = exp
	}
	t.Lsh(&t, uint(exp-s.e))
	s.m.Add(&s.m, &t)
}

// decimal is the sum's exact decimal expansion: m × 2^-k = m × 5^k / 10^k,
// finite for every binary fraction.
func (s *exactSum) decimal() string {
	if s.m.Sign() == 0 {
		return "0"
	}
	if s.e >= 0 {
		return new(big.Int).Lsh(&s.m, uint(s.e)).String()
	}
	k := -s.e
	v := new(big.Int).Exp(big.NewInt(5), big.NewInt(int64(k)), nil)
	digits := v.Mul(v, &s.m).String()
	if len(digits) <= k {
		digits = strings.Repeat("0", k-len(digits)+1) + digits
	}
	return digits[:len(digits)-k] + "." + digits[len(digits)-k:]
}

type sumKey struct {
	hour time.Time
	aid  int64
}

// sumsFromSQL sets the first whole hour once: the hour after now or after
// the newest share already stored, whichever is later (rows stored before
// any writer kept sums are older than it).
const sumsFromSQL = `INSERT INTO share_sums_from (hour)
SELECT date_trunc('hour', greatest(now(), (SELECT max(time) FROM shares)), 'UTC') + interval '1 hour'
ON CONFLICT DO NOTHING`

// sumsAddSQL adds a batch's sums, keys in (hour, account) order so that
// two writers' upserts cannot deadlock.
const sumsAddSQL = `INSERT INTO share_sums (hour, account_id, diff_sum, shares)
SELECT h, a, s::numeric, n FROM unnest($1::timestamptz[], $2::bigint[], $3::text[], $4::bigint[]) AS u(h, a, s, n)
ON CONFLICT (hour, account_id) DO UPDATE SET diff_sum = share_sums.diff_sum + excluded.diff_sum, shares = share_sums.shares + excluded.shares`

// addSums adds the stored, non-solo rows among rows to share_sums in tx.
func addSums(ctx context.Context, tx pgx.Tx, rows ...[]shareRow) error {
	m := map[sumKey]*exactSum{}
	for _, rs := range rows {
		for i := range rs {
			r := &rs[i]
			if !r.stored || strings.HasPrefix(r.rec.JobID, work.SoloJobPrefix) {
				continue
			}
			// pgx sends microseconds truncated, so the stored time's hour
			// is the Go time's.
			k := sumKey{r.rec.Time.UTC().Truncate(time.Hour), r.aid}
			s := m[k]
			if s == nil {
				s = &exactSum{}
				m[k] = s
			}
			s.add(r.rec.Diff)
		}
	}
	if len(m) == 0 {
		return nil
	}
	keys := make([]sumKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b sumKey) int {
		if c := a.hour.Compare(b.hour); c != 0 {
			return c
		}
		return cmp.Compare(a.aid, b.aid)
	})
	hours := make([]time.Time, len(keys))
	aids := make([]int64, len(keys))
	sums := make([]string, len(keys))
	ns := make([]int64, len(keys))
	for i, k := range keys {
		hours[i], aids[i], sums[i], ns[i] = k.hour, k.aid, m[k].decimal(), m[k].n
	}
	if _, err := tx.Exec(ctx, sumsAddSQL, hours, aids, sums, ns); err != nil {
		return fmt.Errorf("add hourly share sums: %w", err)
	}
	return nil
}
