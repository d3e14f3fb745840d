package shares

import (
	"reflect"
	"testing"

	"github.com/wattpool/wattpool/stratum"
)

func TestCodecRoundTrip(t *testing.T) {
	job := testJob("rt")
	var jr jobRec
	if err := decodeJob(appendJob(nil, job, "pool-a"), &jr); err != nil {
		t.Fatal(err)
	}
	if jr.ID != job.ID || jr.Instance != "pool-a" || jr.PrevHash != job.PrevHash || jr.Bits != job.Bits ||
		string(jr.Coinb1) != string(job.Coinb1) || string(jr.Coinb2) != string(job.Coinb2) ||
		len(jr.MerkleBranch) != 2 || jr.MerkleBranch[1] != job.MerkleBranch[1] || !jr.CreatedAt.Equal(job.CreatedAt) ||
		jr.NetworkDiff != job.NetworkDiff || jr.Extranonce2Size != 4 || jr.Height != job.Height {
		t.Fatalf("job round trip: %+v", jr)
	}
	s := testShare(job, 9)
	s.IsBlock = true
	var sr shareRec
	if err := decodeShare(appendShare(nil, s, "pool-a"), &sr); err != nil {
		t.Fatal(err)
	}
	if !sr.Time.Equal(s.Time) || sr.Account != s.Account || sr.Worker != s.Worker || sr.Group != s.Group ||
		sr.JobID != "rt" || string(sr.Extranonce2) != string(s.Extranonce2) || sr.Nonce != s.Nonce ||
		sr.Version != s.Version || sr.VersionBits != s.VersionBits || sr.Diff != s.Difficulty || sr.Hash != s.Hash || !sr.IsBlock {
		t.Fatalf("share round trip: %+v", sr)
	}
	fb := &stratum.FoundBlock{Share: *s, Height: 5, Hash: s.Hash, CoinbaseValue: 625_000_000, SubmitResult: "rejected: bad-cb", Accepted: false}
	var br blockRec
	if err := decodeBlock(appendBlock(nil, fb, "pool-a"), &br); err != nil {
		t.Fatal(err)
	}
	if br.Height != 5 || br.Hash != s.Hash || br.CoinbaseSats != 625_000_000 || br.SubmitResult != fb.SubmitResult || br.Accepted {
		t.Fatalf("block round trip: %+v", br)
	}
	var fs shareRec
	if err := decodeFoundBlock(appendFoundBlock(nil, fb, "pool-a"), &fs, &br); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fs, sr) || br.Height != 5 || br.Hash != s.Hash || br.CoinbaseSats != 625_000_000 ||
		br.SubmitResult != fb.SubmitResult || br.Accepted || !br.FoundAt.Equal(s.Time) || br.origin != sr.origin {
		t.Fatalf("found block round trip: %+v %+v", fs, br)
	}
	// Truncations and trailing bytes are errors, never panics.
	p := appendShare(nil, s, "pool-a")
	for i := range p {
		if decodeShare(p[:i], &sr) == nil {
			t.Fatalf("share cut at %d decoded", i)
		}
	}
	if decodeShare(append(p, 0), &sr) == nil {
		t.Fatal("trailing byte accepted")
	}
}

// FuzzDecodeRecords feeds arbitrary payloads to the spool record decoders.
func FuzzDecodeRecords(f *testing.F) {
	job := testJob("fz")
	f.Add(recShare, appendShare(nil, testShare(job, 1), "i"))
	f.Add(recJob, appendJob(nil, job, "i"))
	f.Add(recBlock, appendBlock(nil, &stratum.FoundBlock{Share: *testShare(job, 2), Height: 3}, "i"))
	f.Add(recFoundBlock, appendFoundBlock(nil, &stratum.FoundBlock{Share: *testShare(job, 4), Height: 5, SubmitResult: "accepted"}, "i"))
	f.Fuzz(func(t *testing.T, typ byte, p []byte) {
		switch typ % 4 {
		case 3:
			var s shareRec
			var b blockRec
			_ = decodeFoundBlock(p, &s, &b)
		case 0:
			var r shareRec
			if decodeShare(p, &r) == nil {
				var s stratum.Share
				s.Time, s.Account, s.Worker, s.Group = r.Time, r.Account, r.Worker, r.Group
				s.Job = testJob(r.JobID)
				s.Extranonce1, s.Extranonce2, s.NTime, s.Nonce = r.Extranonce1, r.Extranonce2, r.NTime, r.Nonce
				s.VersionBits, s.Version, s.Difficulty, s.Achieved, s.Hash, s.IsBlock = r.VersionBits, r.Version, r.Diff, r.Achieved, r.Hash, r.IsBlock
				var again shareRec
				if err := decodeShare(appendShare(nil, &s, r.Instance), &again); err != nil || !reflect.DeepEqual(again, r) {
					t.Fatalf("decoded share does not survive a re-encode: %v\n%+v\n%+v", err, r, again)
				}
			}
		case 1:
			var r jobRec
			_ = decodeJob(p, &r)
		case 2:
			var r blockRec
			_ = decodeBlock(p, &r)
		}
	})
}
