package stratum

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/node"
	"github.com/wattpool/wattpool/stratum/work"
)

// maxFutureNTime is the consensus limit on a header time ahead of now.
const maxFutureNTime = 7200

// verdict is the outcome of checking one share, before any sink call.
type verdict struct {
	reason RejectReason
	msg    string // reply text for rejects
	// poolFault marks rejects the miner did nothing wrong for (the ledger
	// could not record the share, or the pool left it on one job too long):
	// they never count towards a ban.
	poolFault bool
	worker    *connWorker
	job       *work.Job
	diff      float64
}

// submit validates one mining.submit, records it and replies. Order
// matters: a block goes to the node before anyone is told anything, an
// accepted share reaches the sink before the miner hears "true".
func (c *conn) submit(m *Message) {
	start := time.Now()
	now := c.s.now()
	sc := c.s.scratch.Get().(*scratch)
	defer c.s.scratch.Put(sc)
	v := c.checkShare(m, now, sc)
	c.s.metrics.validation.Observe(time.Since(start).Seconds())
	if v.reason != RejectNone {
		c.rejectShare(m, &v, now, sc)
		return
	}
	sh := &sc.share
	var err error
	if sh.IsBlock {
		// The block and its share are one record (RecordBlock): a block
		// is never in the ledger without the share that found it.
		err = c.foundBlock(sh)
	} else {
		ctx := c.s.sinkCall(c.s.cfg.Load().SinkTimeout)
		err = c.s.sink.RecordShare(ctx, sh)
		c.s.endSinkCall(ctx)
	}
	if err != nil {
		c.s.metrics.sinkErrors.WithLabelValues("record_share").Inc()
		// Sampled: with the spool full every share fails the same way, and
		// the metric above already counts each one.
		c.s.sinkErrLog.Error("record share; rejecting it as not recorded", zap.Uint64("conn", c.id), zap.Error(err))
		v.reason, v.msg, v.poolFault = RejectNotRecorded, "Share not recorded, please retry later", true
		c.rejectShare(m, &v, now, sc)
		return
	}
	c.s.accepted.Add(1)
	c.l.metrics.accepted.Inc()
	v.worker.stats.addShare(v.diff, now, sh.IsBlock)
	c.lastShareRT = time.Now()
	c.mu.Lock()
	c.vd.Record(now)
	c.mu.Unlock()
	c.reply(func(b []byte) []byte { return appendResult(b, m.ID, []byte("true")) })
	c.countForBan(true)
}

// rejectShare counts, records and answers a rejected share.
func (c *conn) rejectShare(m *Message, v *verdict, now time.Time, sc *scratch) {
	c.s.rejected[v.reason].Add(1)
	c.l.metrics.rejected[v.reason].Inc()
	r := &sc.reject
	*r = Reject{Time: now, Reason: v.reason, Difficulty: v.diff}
	if v.worker != nil {
		st := v.worker.stats
		r.Account, r.Worker, r.Group = st.account, st.worker, st.groupOf()
		st.addReject(v.reason)
	}
	c.s.sink.RecordReject(r)
	msg := v.msg
	c.reply(func(b []byte) []byte { return appendError(b, m.ID, v.reason.Code(), msg) })
	if !v.poolFault {
		c.countForBan(false)
	}
}

// checkShare applies every rule to a submit and, when the share is good,
// fills sc.share. It does not allocate.
func (c *conn) checkShare(m *Message, now time.Time, sc *scratch) (v verdict) {
	if m.NParams != 5 && m.NParams != 6 {
		return verdict{reason: RejectMalformed, msg: "mining.submit takes 5 or 6 params"}
	}
	var p [6][]byte
	for i := 0; i < m.NParams; i++ {
		b, ok := m.Params[i].Bytes()
		if !ok {
			return verdict{reason: RejectMalformed, msg: "mining.submit params must be strings"}
		}
		p[i] = b
	}

	c.mu.Lock()
	if !c.subscribed {
		c.mu.Unlock()
		return verdict{reason: RejectNotSubscribed, msg: "Not subscribed"}
	}
	v.worker = c.findWorkerLocked(p[0])
	if v.worker == nil {
		c.mu.Unlock()
		return verdict{reason: RejectUnauthorized, msg: "Unauthorized worker"}
	}
	slot := c.findJobLocked(p[1], nil)
	cur := c.s.block.Load()
	if slot == nil || cur == nil || slot.entry.gen != cur.gen {
		c.mu.Unlock()
		v.reason, v.msg = RejectStale, "Job not found (stale)"
		return v
	}
	entry, diff, target, en1, mask, rolling := slot.entry, slot.diff, slot.target, slot.en1, c.mask, c.rolling
	c.mu.Unlock()
	job := entry.job
	v.job, v.diff = job, diff

	en2 := sc.en2[:job.Extranonce2Size]
	if decodeHex(en2, p[2]) != nil {
		v.reason, v.msg = RejectMalformed, "extranonce2 must be hex of the subscribed size"
		return v
	}
	ntime, err := parseHex32(p[3])
	if err != nil {
		v.reason, v.msg = RejectMalformed, "ntime must be 8 hex digits"
		return v
	}
	if job.Template != nil && job.Template.MinTime > 0 && int64(ntime) < job.Template.MinTime {
		v.reason, v.msg = RejectMalformed, "ntime is before the template's mintime"
		return v
	}
	if int64(ntime) > now.Unix()+maxFutureNTime {
		v.reason, v.msg = RejectMalformed, "ntime is more than 2 hours in the future"
		return v
	}
	nonce, err := parseHex32(p[4])
	if err != nil {
		v.reason, v.msg = RejectMalformed, "nonce must be 8 hex digits"
		return v
	}
	var vbits uint32
	if m.NParams == 6 {
		if vbits, err = parseHex32(p[5]); err != nil {
			v.reason, v.msg = RejectMalformed, "version bits must be 8 hex digits"
			return v
		}
		if !rolling && vbits != 0 {
			v.reason, v.msg = RejectMalformed, "version rolling was not negotiated"
			return v
		}
		if vbits&^mask != 0 {
			v.reason, v.msg = RejectMalformed, "version bits outside the negotiated mask"
			return v
		}
	}
	version := work.MergeVersion(job.Version, vbits, mask)
	if job.Template != nil && version&job.Template.VBRequired != job.Template.VBRequired {
		// A block without a bit the node requires (BIP9 vbrequired) would
		// be refused by it, so such a share can never pay.
		v.reason, v.msg = RejectMalformed, "version bits clear a bit the node requires"
		return v
	}

	h := c.s.hashers.Get().(*work.Hasher)
	hash := h.HeaderHash(job, en1[:], en2, ntime, nonce, version)
	isBlock := job.NetworkTarget.Meets(&hash)
	for !isBlock && !target.Meets(&hash) {
		// The job may have been sent before with another extranonce1
		// (ChangeExtranonce re-sends it under the same id): the share may
		// be work the miner did with that one before it took the change.
		c.mu.Lock()
		older := c.olderSlotLocked(p[1], slot, en1)
		if older == nil || older.entry.gen != cur.gen {
			c.mu.Unlock()
			c.s.hashers.Put(h)
			v.reason, v.msg = RejectLowDifficulty, "Low difficulty share"
			return v
		}
		slot, entry, diff, target, en1 = older, older.entry, older.diff, older.target, older.en1
		c.mu.Unlock()
		v.diff = diff
		hash = h.HeaderHash(job, en1[:], en2, ntime, nonce, version)
		isBlock = job.NetworkTarget.Meets(&hash)
	}
	c.s.hashers.Put(h)
	if isBlock && !target.Meets(&hash) {
		// A block whose hash misses the share target (share difficulty
		// above the network's: regtest, testnet's 20-minute rule) is
		// credited at the target it met, the network difficulty, as
		// ckpool caps it: crediting the share difficulty would pay for
		// work the hash does not prove, and `shares verify` would flag it.
		diff = job.NetworkDiff
		v.diff = diff
	}

	key := dupKey{en1: en1, ntime: ntime, nonce: nonce, version: version}
	copy(key.en2[:], en2)
	c.mu.Lock()
	if slot.entry != entry {
		// The slot was reused while we hashed: the job left the window.
		c.mu.Unlock()
		v.reason, v.msg = RejectStale, "Job not found (stale)"
		return v
	}
	if _, dup := slot.dup[key]; dup {
		c.mu.Unlock()
		v.reason, v.msg = RejectDuplicate, "Duplicate share"
		return v
	}
	if len(slot.dup) >= maxSharesPerJob {
		c.mu.Unlock()
		v.reason, v.msg, v.poolFault = RejectStale, "Too many shares for this job, wait for the next one", true
		return v
	}
	if slot.dup == nil {
		slot.dup = make(map[dupKey]struct{}, 16)
	}
	slot.dup[key] = struct{}{}
	c.mu.Unlock()

	st := v.worker.stats
	sc.en1 = en1
	sc.share = Share{
		Time: now, Instance: c.s.cfg.Load().Instance,
		Account: st.account, Worker: st.worker, Group: st.groupOf(),
		Job: job, Extranonce1: sc.en1[:], Extranonce2: en2,
		NTime: ntime, Nonce: nonce, VersionBits: vbits, Version: version,
		Difficulty: diff, Achieved: work.DiffFromHash(&hash), Hash: hash, IsBlock: isBlock,
	}
	return v
}

// foundBlock assembles the block, submits it to the node and records it
// together with its share, before the miner is answered. The node gets
// the block whatever the ledger does; the returned error is the ledger's
// (neither the block nor its share was recorded).
func (c *conn) foundBlock(sh *Share) error {
	cfg := c.s.cfg.Load()
	job := sh.Job
	fb := FoundBlock{Share: *sh, Height: job.Height, Hash: sh.Hash}
	if job.Template != nil {
		fb.CoinbaseValue = job.Template.CoinbaseValue
	}
	block, err := job.Block(sh.Extranonce1, sh.Extranonce2, sh.NTime, sh.Nonce, sh.Version)
	if err != nil {
		c.s.metrics.blocks.WithLabelValues("assembly_failed").Inc()
		c.log().Error("BLOCK FOUND BUT COULD NOT BE ASSEMBLED", zap.Int64("height", job.Height),
			zap.Stringer("hash", &sh.Hash), zap.String("job", job.ID), zap.Error(err))
		fb.SubmitResult = "rejected: assembly failed: " + err.Error()
	} else {
		ctx, cancel := context.WithTimeout(c.s.opCtx, cfg.BlockSubmitTimeout)
		res, err := c.s.source.SubmitBlock(ctx, block)
		cancel()
		switch {
		case err != nil:
			fb.SubmitResult = "inconclusive: " + err.Error()
		case res.Reason != "":
			fb.SubmitResult = res.Status.String() + ": " + res.Reason
		default:
			fb.SubmitResult = res.Status.String()
		}
		fb.Accepted = err == nil && (res.Status == node.SubmitAccepted || res.Status == node.SubmitDuplicate)
		label := "rejected"
		if fb.Accepted {
			label = "accepted"
		} else if err != nil || res.Status == node.SubmitInconclusive {
			label = "inconclusive"
		}
		c.s.metrics.blocks.WithLabelValues(label).Inc()
		c.log().Warn("BLOCK FOUND", zap.Int64("height", job.Height), zap.Stringer("hash", &sh.Hash),
			zap.String("account", sh.Account), zap.String("worker", sh.Worker), zap.String("job", job.ID),
			zap.Int64("coinbase_sats", fb.CoinbaseValue), zap.String("result", fb.SubmitResult), zap.Error(err))
	}
	c.s.blocks.Add(1)
	ctx, cancel := context.WithTimeout(c.s.opCtx, cfg.SinkTimeout)
	defer cancel()
	if err := c.s.sink.RecordBlock(ctx, &fb); err != nil {
		c.s.metrics.sinkErrors.WithLabelValues("record_block").Inc()
		c.log().Error("FOUND BLOCK AND ITS SHARE NOT RECORDED", zap.Int64("height", job.Height), zap.Stringer("hash", &sh.Hash),
			zap.String("account", sh.Account), zap.String("worker", sh.Worker), zap.Int64("coinbase_sats", fb.CoinbaseValue), zap.Error(err))
		return err
	}
	return nil
}
