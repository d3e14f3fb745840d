package shares

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/stratum"
	"github.com/wattpool/wattpool/stratum/node"
)

// fakeChain is a main chain of hashes by height.
type fakeChain struct{ main []chainhash.Hash } // main[h] is the block at height h

func (c *fakeChain) BlockHash(_ context.Context, height int64) (chainhash.Hash, error) {
	if height < 0 || height >= int64(len(c.main)) {
		return chainhash.Hash{}, fmt.Errorf("height %d out of range", height)
	}
	return c.main[height], nil
}

func (c *fakeChain) Confirmations(_ context.Context, hash chainhash.Hash) (int64, error) {
	for h, b := range c.main {
		if b == hash {
			return int64(len(c.main) - h), nil
		}
	}
	return -1, nil
}

func (c *fakeChain) extend(n int, tag byte) {
	for range n {
		c.main = append(c.main, chainhash.Hash{tag, byte(len(c.main)), byte(len(c.main) >> 8)})
	}
}

func foundBlock(t *testing.T, r *Recorder, hash chainhash.Hash, height int64) {
	t.Helper()
	fb := &stratum.FoundBlock{Share: *testShare(testJob("t"), int(height)), Height: height, Hash: hash,
		CoinbaseValue: 5_000_000_000, SubmitResult: "accepted", Accepted: true}
	if err := r.RecordBlock(context.Background(), fb); err != nil {
		t.Fatal(err)
	}
}

func history(t *testing.T, db *pgxpool.Pool, hash chainhash.Hash) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), "SELECT status::text FROM block_status_history WHERE hash = $1 ORDER BY id", hash[:])
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

func TestTrackerFollowsBlocksToMaturityOrOrphan(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	r := newRecorder(t, db, t.TempDir())
	chain := &fakeChain{}
	chain.extend(10, 'a')
	ours, doomed := chain.main[5], chain.main[8]
	foundBlock(t, r, ours, 5)
	foundBlock(t, r, doomed, 8)
	clock := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	tr, err := NewTracker(db, chain, r, zaptest.NewLogger(t), WithMaturity(10), WithTrackerClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	ledger := NewLedger(db)
	if c, err := ledger.BlockCounts(ctx, r.opts.instance); err != nil || c != (BlockCounts{Stored: 2, Pending: 2}) {
		t.Fatalf("block counts before the tracker: %+v (%v)", c, err)
	}
	steps := []struct {
		name    string
		act     func()
		changes int
		status  map[chainhash.Hash]string
		counts  BlockCounts
	}{
		{"both confirmed", func() {}, 2, map[chainhash.Hash]string{ours: StatusConfirmed, doomed: StatusConfirmed},
			BlockCounts{Stored: 2, InMainChain: 2}},
		{"no change, no history", func() {}, 0, map[chainhash.Hash]string{ours: StatusConfirmed, doomed: StatusConfirmed},
			BlockCounts{Stored: 2, InMainChain: 2}},
		{"reorg replaces height 8", func() { chain.main = chain.main[:8]; chain.extend(4, 'b') }, 1,
			map[chainhash.Hash]string{ours: StatusConfirmed, doomed: StatusOrphaned}, BlockCounts{Stored: 2, InMainChain: 1, Orphaned: 1}},
		{"ours matures", func() { chain.extend(3, 'b') }, 1, map[chainhash.Hash]string{ours: StatusMature, doomed: StatusOrphaned},
			BlockCounts{Stored: 2, InMainChain: 1, Mature: 1, Orphaned: 1}},
	}
	for _, st := range steps {
		st.act()
		clock = clock.Add(time.Minute)
		changes, err := tr.Poll(ctx)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if len(changes) != st.changes {
			t.Fatalf("%s: changes %+v", st.name, changes)
		}
		for hash, want := range st.status {
			var got string
			var updated time.Time
			if err := db.QueryRow(ctx, "SELECT status::text, updated_at FROM blocks WHERE hash = $1", hash[:]).Scan(&got, &updated); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("%s: block %x is %s, want %s", st.name, hash[:2], got, want)
			}
		}
		if c, err := ledger.BlockCounts(ctx, r.opts.instance); err != nil || c != st.counts {
			t.Fatalf("%s: block counts %+v (%v), want %+v", st.name, c, err, st.counts)
		}
	}
	if c, err := ledger.BlockCounts(ctx, "another-instance"); err != nil || c != (BlockCounts{}) {
		t.Fatalf("another instance's block counts %+v (%v)", c, err)
	}
	if h := history(t, db, ours); fmt.Sprint(h) != "[pending confirmed mature]" {
		t.Fatalf("history of ours: %v", h)
	}
	if h := history(t, db, doomed); fmt.Sprint(h) != "[pending confirmed orphaned]" {
		t.Fatalf("history of the orphan: %v", h)
	}
	// Mature is final: no more polling of it. The orphan is final once
	// its replacement is mature.
	chain.extend(10, 'c')
	tr.Poll(ctx)
	if n := count(t, db, "SELECT count(*) FROM blocks WHERE NOT final"); n != 0 {
		t.Fatalf("%d blocks still open", n)
	}
}

func TestTrackerAgainstBtcd(t *testing.T) {
	ctx := context.Background()
	btcd := testenv.StartBtcd(t)
	hashes := btcd.Generate(t, 10) // heights 1..10
	client, err := node.NewClient(node.Config{Name: "btcd", URL: btcd.RPCURL}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	db := newDB(t)
	r := newRecorder(t, db, t.TempDir())
	ours := hashes[7] // height 8
	foundBlock(t, r, ours, 8)
	tr, err := NewTracker(db, NodeChain{Client: client}, r, zaptest.NewLogger(t), WithMaturity(5))
	if err != nil {
		t.Fatal(err)
	}
	changes, err := tr.Poll(ctx)
	if err != nil || len(changes) != 1 || changes[0].To != StatusConfirmed || changes[0].Confirmations != 3 {
		t.Fatalf("first poll: %+v %v", changes, err)
	}
	// Orphan it: invalidate our block, let the node mine a competing chain.
	if _, err := btcd.Call(ctx, "invalidateblock", ours.String()); err != nil {
		t.Fatalf("invalidateblock: %v", err)
	}
	btcd.Generate(t, 4)
	changes, err = tr.Poll(ctx)
	if err != nil || len(changes) != 1 || changes[0].To != StatusOrphaned {
		t.Fatalf("after reorg: %+v %v", changes, err)
	}
	btcd.Generate(t, 4) // the replacing block at height 8 now has 5 confirmations
	if _, err := tr.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, "SELECT count(*) FROM blocks WHERE final AND status = 'orphaned'"); n != 1 {
		t.Fatal("orphan not final once its replacement matured")
	}
}
