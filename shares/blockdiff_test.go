package shares

import (
	"context"
	"errors"
	"testing"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/stratum"
)

func TestBlockNetworkDiff(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	r := newRecorder(t, db, t.TempDir())
	job := testJob("nd1")
	job.NetworkDiff = 123456.75
	if err := r.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	// A second instance with the same job id and another difficulty: the
	// join must use the block's instance too.
	other := testJob("nd1")
	other.NetworkDiff = 1
	if _, err := db.Exec(ctx, `INSERT INTO jobs (instance, job_id, height, prevhash, version, nbits, ntime, coinb1, coinb2,
		merkle_branch, extranonce1_size, extranonce2_size, network_diff, created_at)
		VALUES ('pool-b', 'nd1', 1, $1, 1, 1, 1, '\x00', '\x00', '{}', 4, 4, 1, now())`, other.PrevHash[:]); err != nil {
		t.Fatal(err)
	}
	found := &stratum.FoundBlock{Share: *testShare(job, 1), Height: 9, Hash: chainhash.Hash{9}, SubmitResult: "accepted"}
	lost := &stratum.FoundBlock{Share: *testShare(testJob("never-recorded"), 2), Height: 10, Hash: chainhash.Hash{10}, SubmitResult: "accepted"}
	for _, b := range []*stratum.FoundBlock{found, lost} {
		if err := r.RecordBlock(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l := NewLedger(db)
	if d, err := l.BlockNetworkDiff(ctx, found.Hash); err != nil || d != 123456.75 {
		t.Fatalf("found block: %v %v, want 123456.75", d, err)
	}
	if _, err := l.BlockNetworkDiff(ctx, lost.Hash); !errors.Is(err, ErrUnknownJob) {
		t.Fatalf("block without its job: %v, want ErrUnknownJob", err)
	}
	if _, err := l.BlockNetworkDiff(ctx, chainhash.Hash{11}); !errors.Is(err, ErrUnknownBlock) {
		t.Fatalf("unknown block: %v, want ErrUnknownBlock", err)
	}
}
