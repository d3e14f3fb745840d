package shares

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/stratum"
	"github.com/wattpool/wattpool/stratum/work"
)

// blockShare is a found block made of share i of job.
func blockShare(job *work.Job, i int, tag byte) *stratum.FoundBlock {
	s := testShare(job, i)
	s.IsBlock = true
	return &stratum.FoundBlock{Share: *s, Height: 812345, Hash: chainhash.Hash{tag, 0xb1}, CoinbaseValue: 312_500_000,
		SubmitResult: "accepted", Accepted: true}
}

// blockAndShare counts the rows of the found block and of its share.
func blockAndShare(t *testing.T, ctx context.Context, l *Ledger, fb *stratum.FoundBlock) (blocks, shares int64) {
	t.Helper()
	if err := l.db.QueryRow(ctx, "SELECT count(*) FROM blocks WHERE hash = $1", fb.Hash[:]).Scan(&blocks); err != nil {
		t.Fatal(err)
	}
	if err := l.db.QueryRow(ctx, "SELECT count(*) FROM shares WHERE hash = $1 AND is_block AND share_diff = $2",
		fb.Share.Hash[:], fb.Share.Difficulty).Scan(&shares); err != nil {
		t.Fatal(err)
	}
	return blocks, shares
}

// fillSpool records shares until the spool refuses one.
func fillSpool(t *testing.T, r *Recorder, job *work.Job) {
	t.Helper()
	for i := 1000; i < 100_000; i++ {
		if err := r.RecordShare(context.Background(), testShare(job, i)); err != nil {
			if !errors.Is(err, ErrSpoolFull) {
				t.Fatalf("share %d: %v, want ErrSpoolFull", i, err)
			}
			return
		}
	}
	t.Fatal("the spool never filled")
}

// TestFoundBlockAndShareAreOneRecord: a found block and its share reach
// the ledger together or not at all, whichever of the spool and the
// database fails.
func TestFoundBlockAndShareAreOneRecord(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	l := NewLedger(db)
	job := testJob("fb")
	nowhere := newPool(t, "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")

	t.Run("both work: stored at once, the drain does not double the share", func(t *testing.T) {
		r := newRecorder(t, db, t.TempDir())
		fb := blockShare(job, 1, 1)
		if err := r.RecordBlock(ctx, fb); err != nil {
			t.Fatal(err)
		}
		if b, s := blockAndShare(t, ctx, l, fb); b != 1 || s != 1 {
			t.Fatalf("right after RecordBlock: %d block, %d share rows, want 1 and 1", b, s)
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if b, s := blockAndShare(t, ctx, l, fb); b != 1 || s != 1 {
			t.Fatalf("after the drain: %d block, %d share rows, want 1 and 1", b, s)
		}
	})

	t.Run("spool full, database up: both stored at once", func(t *testing.T) {
		r := newRecorder(t, db, t.TempDir(), WithSpoolLimit(8_000))
		fillSpool(t, r, job)
		fb := blockShare(job, 2, 2)
		if err := r.RecordBlock(ctx, fb); err != nil {
			t.Fatal(err)
		}
		if b, s := blockAndShare(t, ctx, l, fb); b != 1 || s != 1 {
			t.Fatalf("%d block, %d share rows, want 1 and 1", b, s)
		}
	})

	t.Run("database down: both spooled, both drained later", func(t *testing.T) {
		dir := t.TempDir()
		r := newRecorder(t, nowhere, dir)
		fb := blockShare(job, 3, 3)
		if err := r.RecordBlock(ctx, fb); err != nil {
			t.Fatal(err)
		}
		if err := r.close(ctx, false); err != nil {
			t.Fatal(err)
		}
		if b, s := blockAndShare(t, ctx, l, fb); b != 0 || s != 0 {
			t.Fatalf("before the drain: %d block, %d share rows", b, s)
		}
		r2 := newRecorder(t, db, dir)
		if err := r2.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if b, s := blockAndShare(t, ctx, l, fb); b != 1 || s != 1 {
			t.Fatalf("after the drain: %d block, %d share rows, want 1 and 1", b, s)
		}
	})

	t.Run("spool full and database down: neither, and an error", func(t *testing.T) {
		dir := t.TempDir()
		r := newRecorder(t, nowhere, dir, WithSpoolLimit(8_000))
		fillSpool(t, r, job)
		fb := blockShare(job, 4, 4)
		err := r.RecordBlock(ctx, fb)
		if !errors.Is(err, ErrSpoolFull) {
			t.Fatalf("RecordBlock with nowhere to go: %v, want ErrSpoolFull", err)
		}
		if err := r.close(ctx, false); err != nil {
			t.Fatal(err)
		}
		r2 := newRecorder(t, db, dir)
		if err := r2.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if b, s := blockAndShare(t, ctx, l, fb); b != 0 || s != 0 {
			t.Fatalf("%d block, %d share rows, want neither", b, s)
		}
	})

	// Every stored block has its share.
	if n := count(t, db, `SELECT count(*) FROM blocks b WHERE NOT EXISTS
		(SELECT 1 FROM shares s WHERE s.hash = b.hash OR (s.is_block AND s.time = b.found_at))`); n != 0 {
		t.Fatalf("%d blocks without their share", n)
	}
}

// TestVerifyBlockCreditedAtNetworkDiff: a block whose hash missed the
// share target is credited at its job's network difficulty (the stratum
// server's cap) and verifies; crediting it at the share difficulty, or
// crediting a non-block at the network difficulty, is a mismatch.
func TestVerifyBlockCreditedAtNetworkDiff(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	r := newRecorder(t, db, t.TempDir())
	job := testJob("regtest")
	job.Bits = 0x207fffff // regtest: about every second hash is a block
	job.NetworkTarget = work.TargetFromBits(job.Bits)
	job.NetworkDiff = job.NetworkTarget.Diff()
	if err := r.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	one := work.TargetFromDiff(1)
	var block, plain []*stratum.Share
	for i := 0; len(block) < 2 || len(plain) < 1; i++ {
		s := testShare(job, i)
		switch {
		case one.Meets(&s.Hash):
			continue // a hash of difficulty 1: 2^-32, never here
		case job.NetworkTarget.Meets(&s.Hash):
			s.IsBlock = true
			block = append(block, s)
		default:
			plain = append(plain, s)
		}
	}
	block[0].Difficulty = job.NetworkDiff // the cap: verifies
	block[1].Difficulty = 1               // the share difficulty it missed
	plain[0].Difficulty = job.NetworkDiff // not a block: the cap does not apply
	for _, s := range []*stratum.Share{block[0], block[1], plain[0]} {
		if err := r.RecordShare(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := NewLedger(db).Verify(ctx, VerifyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checked != 3 || rep.Mismatches != 2 {
		t.Fatalf("report %+v, want 3 checked, 2 mismatches", rep)
	}
	bad := map[string]bool{}
	for _, m := range rep.Details {
		bad[m.Stored.String()] = true
		if m.Problem != "hash does not meet the credited share difficulty 1" &&
			m.Problem != "hash does not meet the credited share difficulty "+formatG(job.NetworkDiff) {
			t.Errorf("problem %q", m.Problem)
		}
	}
	if bad[block[0].Hash.String()] || !bad[block[1].Hash.String()] || !bad[plain[0].Hash.String()] {
		t.Fatalf("mismatches %v: want the block at diff 1 and the plain share at the network difficulty", bad)
	}
}

func formatG(v float64) string { return fmt.Sprintf("%g", v) }
