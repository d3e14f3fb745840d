package minersim

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/work"
)

// sliceHashes is the most hashes one miner computes before the worker moves
// on to the next miner, so thousands of miners share a few workers fairly.
const sliceHashes = 4096

// badNTimeOffset moves ntime past the two-hour future limit every pool
// enforces (Bitcoin's consensus rule for block timestamps).
const badNTimeOffset = 3 * 3600

// cursor is the grinding position in the current job: nonce fastest, then
// the version bits inside the mask, then extranonce2. It is reset when a
// new job arrives.
type cursor struct {
	seq    uint64 // job sequence number the cursor belongs to
	jobID  string // and that job's id and extranonce1
	en1    []byte
	en2    uint64
	nonce  uint32
	inSpan uint64 // nonces scanned for the current (en2, version) pair
	vroll  uint64 // index of the version-bit combination

	// The most recent hash that missed the share target, for
	// deliberately low-difficulty shares.
	lowValid          bool
	lowEn2            uint64
	lowNonce, lowVers uint32
	lowVBits          uint32
}

// advance moves to the next header: the next nonce in the span, else the
// next version-bit combination, else the next extranonce2.
func (c *cursor) advance(span, rolls uint64) {
	c.nonce++
	c.inSpan++
	if c.inSpan < span {
		return
	}
	c.inSpan = 0
	c.nonce = 0
	c.vroll++
	if c.vroll < rolls {
		return
	}
	c.vroll = 0
	c.en2++
}

// depositBits spreads the low bits of k over the set bits of mask, lowest
// first (a software PDEP): k = 0, 1, 2, ... enumerates every value whose
// bits lie inside mask.
func depositBits(k uint64, mask uint32) uint32 {
	var out uint32
	for m := mask; m != 0 && k != 0; m &= m - 1 {
		if k&1 == 1 {
			out |= m & -m
		}
		k >>= 1
	}
	return out
}

// rollCount is the number of version-bit combinations under mask.
func rollCount(rolling bool, mask uint32) uint64 {
	if !rolling {
		return 1
	}
	return uint64(1) << uint(bits.OnesCount32(mask))
}

// putEn2 writes the extranonce2 counter little-endian into b (len(b) bytes,
// higher counter bits dropped), as cgminer lays out its nonce2.
func putEn2(b []byte, v uint64) {
	var full [8]byte
	binary.LittleEndian.PutUint64(full[:], v)
	n := copy(b, full[:])
	clear(b[n:])
}

// shareRecord is one submitted share and what the client knows about it.
type shareRecord struct {
	job     *activeJob
	jobID   string
	en2     []byte
	ntime   uint32
	nonce   uint32
	version uint32
	vbits   uint32
	hash    chainhash.Hash
	isBlock bool
	bad     BadKind
}

func (sh *shareRecord) accepted(minerID int, worker string) AcceptedShare {
	return AcceptedShare{
		MinerID: minerID, Worker: worker, JobID: sh.jobID,
		Extranonce1: sh.job.en1, Extranonce2: sh.en2,
		NTime: sh.ntime, Nonce: sh.nonce, VersionBits: sh.vbits, Version: sh.version,
		Difficulty: sh.job.diff, Hash: sh.hash, IsBlock: sh.isBlock, Bad: sh.bad,
	}
}

// outcome tells the Grinder what a miner waits for after a slice.
type outcome uint8

const (
	outWait  outcome = iota // an event: job, authorization, answer, resume
	outSleep                // the next tick: hash budget or submit timeouts
	outAgain                // nothing: grind again after the other miners
)

// grindSlice computes up to one slice of hashes on the current job and
// submits the first share found. h is the calling worker's scratch.
func (m *Miner) grindSlice(h *work.Hasher) outcome {
	now := m.now()
	m.mu.Lock()
	s := m.sess
	if s == nil || !s.authorized || s.job == nil || m.curtailed.Load() {
		m.mu.Unlock()
		return outWait
	}
	if m.rampingAt(now) {
		m.mu.Unlock()
		return outSleep // the tick looks again until the ramp ends
	}
	if s.inflight > 0 {
		m.expireLocked(s, now)
	}
	if s.inflight >= m.cfg.MaxInFlight {
		m.mu.Unlock()
		// An answer wakes the miner at once; the tick comes back to
		// expire submits a silent pool never answers.
		return outSleep
	}
	paced := false
	if m.cfg.Fast && m.grinder.pacer != nil {
		if !m.grinder.pacer.take(m) {
			m.mu.Unlock()
			return outWait // the pacer wakes the miner when its turn comes
		}
		paced = true
	}
	budget := sliceHashes
	if !m.cfg.Fast {
		budget = s.bucket.take(now, sliceHashes)
		if budget == 0 {
			m.mu.Unlock()
			return outSleep
		}
	}
	// A fast miner with room for several unanswered submits sends the
	// shares of one slice together, in one write, like a proxy relaying
	// a batch of its devices' shares (paced and bad-share runs send one
	// at a time).
	batch := 1
	if m.cfg.Fast && !paced && m.cfg.BadFraction == 0 {
		batch = min(m.cfg.MaxInFlight-s.inflight, maxBatch)
	}
	aj, rolling, mask := s.job, s.rolling, s.mask
	m.mu.Unlock()

	c := &m.cur
	if c.seq != aj.seq {
		if c.jobID == aj.job.ID && bytes.Equal(c.en1, aj.en1) {
			// The same job with the same extranonce1 on a new session:
			// the pool resumed ours and sent the job again. Carry on
			// where we were, or we would grind and submit the shares we
			// sent before the drop a second time.
			c.seq = aj.seq
		} else {
			*c = cursor{seq: aj.seq, jobID: aj.job.ID, en1: aj.en1}
		}
	}
	rolls := rollCount(rolling, mask)
	var en2buf [maxExtranonceBytes]byte
	en2 := en2buf[:aj.en2Size]
	putEn2(en2, c.en2)
	var found *shareRecord
	var more []*shareRecord // shares after the first, when batching
	done := 0
	for done < budget {
		var vbits uint32
		version := aj.job.Version
		if rolling {
			vbits = depositBits(c.vroll, mask)
			version = work.MergeVersion(aj.job.Version, vbits, mask)
		}
		hash := h.HeaderHash(aj.job, aj.en1, en2, aj.job.NTime, c.nonce, version)
		done++
		if aj.target.Meets(&hash) {
			sh := &shareRecord{
				job: aj, jobID: aj.job.ID, en2: append([]byte(nil), en2...),
				ntime: aj.job.NTime, nonce: c.nonce, version: version, vbits: vbits,
				hash: hash, isBlock: aj.job.NetworkTarget.Meets(&hash),
			}
			if found == nil {
				found = sh
			} else {
				more = append(more, sh)
			}
		} else {
			c.lowValid, c.lowEn2, c.lowNonce, c.lowVers, c.lowVBits = true, c.en2, c.nonce, version, vbits
		}
		prevEn2 := c.en2
		c.advance(m.cfg.NonceSpan, rolls)
		if c.en2 != prevEn2 {
			putEn2(en2, c.en2)
		}
		if found != nil && 1+len(more) >= batch {
			break
		}
	}
	if paced && found == nil {
		m.grinder.pacer.give()
	}
	m.hashes.Add(uint64(done))
	m.stats.hashes.Add(uint64(done))
	if !m.cfg.Fast && done < budget {
		m.mu.Lock()
		if m.sess == s {
			s.bucket.give(budget - done)
		}
		m.mu.Unlock()
	}
	switch {
	case len(more) > 0:
		m.sendShares(s, append([]*shareRecord{found}, more...), rolling)
	case found != nil:
		m.submit(s, found, rolling)
	}
	return outAgain
}

// maxBatch bounds the shares sent in one write.
const maxBatch = 64

// sendShares writes several honest shares with one write.
func (m *Miner) sendShares(s *session, shares []*shareRecord, rolling bool) {
	var buf []byte
	for _, sh := range shares {
		id, err := m.register(s, reqSubmit, sh)
		if err != nil {
			return // the session ended; what was registered counts as lost
		}
		buf = appendSubmit(buf, id, m.cfg.User, sh.jobID, sh.en2, sh.ntime, sh.nonce, sh.vbits, rolling)
	}
	if err := m.write(s, buf); err != nil {
		m.log.Debug("submit failed", zap.Error(err))
	}
}

// expireLocked counts submits unanswered for SubmitTimeout as timed out and
// forgets them, so a silent pool cannot stall the miner forever.
func (m *Miner) expireLocked(s *session, now time.Time) {
	for id, p := range s.pending {
		if p.kind == reqSubmit && now.Sub(p.sent) >= m.cfg.SubmitTimeout {
			delete(s.pending, id)
			s.inflight--
			m.stats.timeouts.Add(1)
		}
	}
}

// submit sends a found share, or in its place a deliberately bad one when
// BadFraction says so.
func (m *Miner) submit(s *session, sh *shareRecord, rolling bool) {
	kind := BadNone
	var staleID string
	if m.cfg.BadFraction > 0 {
		m.mu.Lock()
		s.badAcc += m.cfg.BadFraction
		if s.badAcc >= 1 {
			s.badAcc--
			kind = m.pickBadLocked(s)
		}
		staleID = s.staleJobID
		m.mu.Unlock()
	}
	switch kind {
	case BadNone:
		m.sendShare(s, sh, rolling)
	case BadLowDiff:
		c := &m.cur
		low := *sh
		low.en2 = make([]byte, len(sh.en2))
		putEn2(low.en2, c.lowEn2)
		low.nonce, low.version, low.vbits = c.lowNonce, c.lowVers, c.lowVBits
		low.hash, low.isBlock, low.bad = chainhash.Hash{}, false, BadLowDiff
		c.lowValid = false
		m.sendShare(s, &low, rolling)
	case BadStale:
		stale := *sh
		stale.jobID = staleID
		if stale.jobID == "" || stale.jobID == sh.jobID {
			stale.jobID = fabricatedJobID(sh.jobID)
		}
		stale.isBlock, stale.bad = false, BadStale
		m.sendShare(s, &stale, rolling)
	case BadDuplicate:
		m.sendShare(s, sh, rolling)
		dup := *sh
		dup.isBlock, dup.bad = false, BadDuplicate
		m.sendShare(s, &dup, rolling)
	case BadNTime:
		late := *sh
		late.ntime += badNTimeOffset
		late.hash, late.isBlock, late.bad = chainhash.Hash{}, false, BadNTime
		m.sendShare(s, &late, rolling)
	}
}

// pickBadLocked returns the next bad kind in rotation that can be made now
// (a low-difficulty share needs a hash that missed the target, which never
// happens when every hash is a share).
func (m *Miner) pickBadLocked(s *session) BadKind {
	for range numBadKinds {
		s.badNext++
		if s.badNext >= numBadKinds {
			s.badNext = BadLowDiff
		}
		if s.badNext == BadLowDiff && !m.cur.lowValid {
			continue
		}
		return s.badNext
	}
	return BadStale
}

// fabricatedJobID returns a job id the pool never sent: the current id with
// its first character changed, which keeps the pool's id format.
func fabricatedJobID(id string) string {
	if id == "" {
		return "ffffffff"
	}
	b := []byte(id)
	if b[0] == 'f' {
		b[0] = 'e'
	} else {
		b[0] = 'f'
	}
	return string(b)
}

// sendShare writes one mining.submit: worker, job id, extranonce2, ntime,
// nonce and, with version rolling negotiated, the version bits (BIP310).
func (m *Miner) sendShare(s *session, sh *shareRecord, rolling bool) {
	id, err := m.register(s, reqSubmit, sh)
	if err == nil {
		line := appendSubmit(make([]byte, 0, 160+len(m.cfg.User)+len(sh.jobID)), id, m.cfg.User, sh.jobID,
			sh.en2, sh.ntime, sh.nonce, sh.vbits, rolling)
		err = m.write(s, line)
	}
	if err != nil {
		// The reader sees the broken connection and ends the session,
		// which counts the unanswered submit as lost.
		m.log.Debug("submit failed", zap.Error(err))
	}
}

// countSubmit counts a submit once it is registered on a live session, so
// that submitted = accepted + rejected + timeouts + lost always holds.
func (m *Miner) countSubmit(sh *shareRecord) {
	m.submitted.Add(1)
	m.stats.submitted.Add(1)
	if sh.bad != BadNone {
		m.stats.badSent[sh.bad].Add(1)
	} else if sh.isBlock {
		m.stats.blocksFound.Add(1)
	}
}

// bucket is a token bucket of hashes: rate per second, holding at most one
// second of budget so a miner woken late does not burst.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *bucket) init(rate float64, now time.Time) {
	b.rate, b.burst, b.tokens, b.last = rate, max(rate, 1), 0, now
}

// take refills for the time since the last call and removes up to limit
// whole tokens, returning how many it removed.
func (b *bucket) take(now time.Time, limit int) int {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.burst, b.tokens+el.Seconds()*b.rate)
		b.last = now
	}
	n := int(min(b.tokens, float64(limit)))
	b.tokens -= float64(n)
	return n
}

// give returns unused tokens.
func (b *bucket) give(n int) { b.tokens = min(b.burst, b.tokens+float64(n)) }
