package stratum

import (
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/wattpool/wattpool/stratum/work"
)

// grindSplit finds a nonce whose share meets target with extranonce1 good
// and does not with bad, so a share is accepted only when the server
// judges it with the right one.
func grindSplit(t testing.TB, job *work.Job, good, bad []byte, en2 string, target *work.Target) uint32 {
	t.Helper()
	e2, _ := hex.DecodeString(en2)
	var h work.Hasher
	for nonce := uint32(0); nonce < 1<<20; nonce++ {
		if hg := h.HeaderHash(job, good, e2, job.NTime, nonce, job.Version); !target.Meets(&hg) {
			continue
		}
		if hb := h.HeaderHash(job, bad, e2, job.NTime, nonce, job.Version); !target.Meets(&hb) {
			return nonce
		}
	}
	t.Fatal("no nonce found")
	return 0
}

// grindNeither finds a nonce whose share meets target with neither
// extranonce1.
func grindNeither(t testing.TB, job *work.Job, a, b []byte, en2 string, target *work.Target) uint32 {
	t.Helper()
	e2, _ := hex.DecodeString(en2)
	var h work.Hasher
	for nonce := uint32(0); nonce < 1<<20; nonce++ {
		ha := h.HeaderHash(job, a, e2, job.NTime, nonce, job.Version)
		hb := h.HeaderHash(job, b, e2, job.NTime, nonce, job.Version)
		if !target.Meets(&ha) && !target.Meets(&hb) {
			return nonce
		}
	}
	t.Fatal("no nonce found")
	return 0
}

func (s *recSink) lastShareEn1() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return hex.EncodeToString(s.shares[len(s.shares)-1].Extranonce1)
}

// TestExtranonceChangeInFlight: after mining.set_extranonce the current
// job is re-sent under the same id with the new extranonce1. A share on
// it made with the old extranonce1 (the miner had not switched yet) is
// accepted and credited with the old one, a share made with the new one
// is accepted and credited with the new one, each is a duplicate when
// submitted again, and a share good with neither is low difficulty. The
// replaced extranonce1 stays reserved while the job's old slot holds it.
// The session then parks under its current extranonce1 and, resumed,
// still judges both kinds of share right; the replaced extranonce1 is
// freed when the parked session is dropped.
func TestExtranonceChangeInFlight(t *testing.T) {
	cfg := testConfig()
	cfg.Listeners[0].StartDiff = 1.0 / (1 << 24) // one hash in 256 is a share
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
	c := e.dial()
	subID, _ := c.subscribeOffering(nil)
	c.authorizeAndWork("acct.rig1")
	job := e.sink.lastJob()
	target := work.TargetFromDiff(c.diff)
	if r := c.call("mining.extranonce.subscribe"); string(r.Result) != "true" {
		t.Fatalf("extranonce.subscribe: %s", r.raw)
	}
	oldEn1 := append([]byte(nil), c.en1...)
	if err := e.s.ChangeExtranonce(e.s.Connections()[0].ID); err != nil {
		t.Fatal(err)
	}
	m := c.next("mining.set_extranonce")
	var en1Hex, jobID string
	json.Unmarshal(m.Params[0], &en1Hex)
	newEn1, _ := hex.DecodeString(en1Hex)
	n := c.next("mining.notify")
	json.Unmarshal(n.Params[0], &jobID)
	if jobID != job.ID || string(n.Params[8]) != "true" {
		t.Fatalf("job after the change: %s, want %s again, clean", n.raw, job.ID)
	}
	e.s.mu.Lock()
	_, reserved := e.s.en1Used[en1Value([4]byte(oldEn1))]
	e.s.mu.Unlock()
	if !reserved {
		t.Fatalf("replaced extranonce1 %x freed while a job slot holds it", oldEn1)
	}

	check := func(when string, good, bad []byte, en2 string) {
		t.Helper()
		nonce := grindSplit(t, job, good, bad, en2, &target)
		if r := c.submitShare(job, en2, nonce); string(r.Result) != "true" {
			t.Fatalf("%s: share made with extranonce1 %x: %s", when, good, r.raw)
		}
		if got := e.sink.lastShareEn1(); got != hex.EncodeToString(good) {
			t.Fatalf("%s: share credited with extranonce1 %s, want %x", when, got, good)
		}
		if r := c.submitShare(job, en2, nonce); errCode(t, r) != 22 {
			t.Fatalf("%s: share made with extranonce1 %x again: %s, want code 22", when, good, r.raw)
		}
	}
	check("before the miner took the change", oldEn1, newEn1, "00000001")
	check("after the miner took the change", newEn1, oldEn1, "00000002")
	if r := c.submitShare(job, "00000003", grindNeither(t, job, oldEn1, newEn1, "00000003", &target)); errCode(t, r) != 23 {
		t.Fatalf("share good with neither extranonce1: %s, want code 23", r.raw)
	}

	// Park and resume: the session comes back with the current
	// extranonce1 and both slots.
	e.dropAndWaitParked(c, 1)
	b := e.dial()
	id, got := b.subscribeOffering(subID)
	if id != subID || got != en1Hex {
		t.Fatalf("resume after the change gave %s %s, want %s %s", id, got, subID, en1Hex)
	}
	b.authorizeAndWork("acct.rig1")
	c = b
	check("after resume, old extranonce1", oldEn1, newEn1, "00000004")
	check("after resume, new extranonce1", newEn1, oldEn1, "00000005")
	nonce := grindSplit(t, job, oldEn1, newEn1, "00000001", &target)
	if r := c.submitShare(job, "00000001", nonce); errCode(t, r) != 22 {
		t.Fatalf("share of before the drop resubmitted after resume: %s, want code 22", r.raw)
	}

	// Dropped for good, the session frees both extranonce1s.
	e.dropAndWaitParked(c, 1)
	e.clock.Add(e.s.cfg.Load().SessionResumeWindow + 1)
	e.s.pruneParked(e.clock.Now())
	e.s.mu.Lock()
	_, oldHeld := e.s.en1Used[en1Value([4]byte(oldEn1))]
	_, newHeld := e.s.en1Used[en1Value([4]byte(newEn1))]
	e.s.mu.Unlock()
	if oldHeld || newHeld {
		t.Fatalf("expired session still reserves extranonce1s: old %v new %v", oldHeld, newHeld)
	}
}
