package shares

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// TestSoloJobRoundTrip: a solo job's record carries the job and the
// script it pays; cut or padded records and an empty script are errors.
func TestSoloJobRoundTrip(t *testing.T) {
	job := testJob("solo1")
	job.SoloScript = []byte{0x00, 0x14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	p := appendSoloJob(nil, job, "pool-a")
	var solo, plain jobRec
	if err := decodeSoloJob(p, &solo); err != nil {
		t.Fatal(err)
	}
	if err := decodeJob(appendJob(nil, job, "pool-a"), &plain); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(solo.SoloScript, job.SoloScript) {
		t.Fatalf("solo script %x, want %x", solo.SoloScript, job.SoloScript)
	}
	solo.SoloScript = nil
	if !reflect.DeepEqual(solo, plain) {
		t.Fatalf("solo job fields %+v differ from the plain record's %+v", solo, plain)
	}
	for i := range p {
		if decodeSoloJob(p[:i], &solo) == nil {
			t.Fatalf("solo job cut at %d decoded", i)
		}
	}
	if decodeSoloJob(append(p, 0), &solo) == nil {
		t.Fatal("trailing byte accepted")
	}
	job.SoloScript = []byte{}
	if err := decodeSoloJob(appendSoloJob(nil, job, "pool-a"), &solo); err == nil || !strings.Contains(err.Error(), "empty solo script") {
		t.Fatalf("empty solo script: %v", err)
	}
}

// FuzzDecodeSoloJob: arbitrary payloads never panic the solo job decoder,
// and whatever decodes survives a re-encode.
func FuzzDecodeSoloJob(f *testing.F) {
	job := testJob("fz")
	job.SoloScript = []byte{0x51}
	f.Add(appendSoloJob(nil, job, "i"))
	f.Fuzz(func(t *testing.T, p []byte) {
		var r jobRec
		if decodeSoloJob(p, &r) != nil {
			return
		}
		j := testJob(r.ID)
		j.Height, j.PrevHash, j.Version, j.Bits, j.NTime = r.Height, r.PrevHash, r.Version, r.Bits, r.NTime
		j.Coinb1, j.Coinb2, j.Extranonce1Size, j.Extranonce2Size = r.Coinb1, r.Coinb2, r.Extranonce1Size, r.Extranonce2Size
		j.MerkleBranch, j.NetworkDiff, j.CreatedAt, j.SoloScript = r.MerkleBranch, r.NetworkDiff, r.CreatedAt, r.SoloScript
		var again jobRec
		if err := decodeSoloJob(appendSoloJob(nil, j, r.Instance), &again); err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("decoded solo job does not survive a re-encode: %v\n%+v\n%+v", err, r, again)
		}
	})
}
