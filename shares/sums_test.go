package shares

import (
	"context"
	"math/big"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestExactSumDecimal(t *testing.T) {
	for _, tc := range []struct {
		name  string
		diffs []float64
		want  string
	}{
		{"none", nil, "0"},
		{"integers", []float64{1024, 65536, 3}, "66563"},
		{"halves", []float64{0.5, 0.25, 1.125}, "1.875"},
		// 0.1 is 3602879701896397 / 2^55 exactly.
		{"tenth", []float64{0.1}, "0.1000000000000000055511151231257827021181583404541015625"},
		// 0.1 + 0.2 exactly (not the float sum 0.30000000000000004):
		// 3602879701896397/2^55 + 3602879701896397/2^54.
		{"tenth and fifth", []float64{0.1, 0.2}, "0.3000000000000000166533453693773481063544750213623046875"},
		{"large", []float64{1e20, 1}, "100000000000000000001"},
		{"zero", []float64{0, 0}, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s exactSum
			for _, d := range tc.diffs {
				s.add(d)
			}
			if got := s.decimal(); got != tc.want {
				t.Fatalf("decimal %s, want %s", got, tc.want)
			}
			if s.n != int64(len(tc.diffs)) {
				t.Fatalf("%d shares, want %d", s.n, len(tc.diffs))
			}
		})
	}
}

// checkSums asserts that share_sums holds, for every hour and account,
// exactly the sum and count of the stored non-solo share rows: each share
// summed once, whatever redo or restart stored it.
func checkSums(t testing.TB, db *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	type key struct {
		h   time.Time
		aid int64
	}
	want := map[key]*exactSum{}
	rows, err := db.Query(ctx, `SELECT time, account_id, share_diff FROM shares WHERE job_id NOT LIKE 's%'`)
	if err != nil {
		t.Fatal(err)
	}
	var tm time.Time
	var aid int64
	var d float64
	if _, err := pgx.ForEachRow(rows, []any{&tm, &aid, &d}, func() error {
		k := key{tm.UTC().Truncate(time.Hour), aid}
		if want[k] == nil {
			want[k] = &exactSum{}
		}
		want[k].add(d)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rows, err = db.Query(ctx, `SELECT hour, account_id, diff_sum::text, shares FROM share_sums`)
	if err != nil {
		t.Fatal(err)
	}
	var text string
	var n int64
	got := 0
	if _, err := pgx.ForEachRow(rows, []any{&tm, &aid, &text, &n}, func() error {
		got++
		k := key{tm.UTC(), aid}
		w := want[k]
		if w == nil {
			t.Errorf("share_sums has hour %s account %d (%s, %d shares) without share rows", k.h, aid, text, n)
			return nil
		}
		g, _ := new(big.Rat).SetString(text)
		e, _ := new(big.Rat).SetString(w.decimal())
		if g == nil || g.Cmp(e) != 0 || n != w.n {
			t.Errorf("hour %s account %d: share_sums %s over %d shares, rows %s over %d", k.h, aid, text, n, w.decimal(), w.n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got != len(want) {
		t.Errorf("%d share_sums rows for %d (hour, account) of share rows", got, len(want))
	}
}
