package work

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/stratum/node"
)

// Extranonce size defaults and limits, in bytes.
const (
	DefaultExtranonce1Size = 4
	DefaultExtranonce2Size = 4
	MinExtranonce2Size     = 2
	MaxExtranonce2Size     = 8
	MaxExtranonce1Size     = 8
)

// maxMoney is 21 million BTC in satoshis: no coinbase may claim more.
const maxMoney = 21_000_000 * 100_000_000

// Config configures a Builder.
type Config struct {
	// Params is the network the pool mines on.
	Params *chaincfg.Params
	// PayoutScript is the output script the coinbase pays the whole block
	// reward to (see PayoutScript for turning an address into one).
	PayoutScript []byte
	// PoolTag is pushed into every coinbase script so blocks can be
	// attributed to the pool; it may be empty. With the extranonce and the
	// height it must fit the 100-byte coinbase script limit.
	PoolTag string
	// Extranonce1Size is the byte length of the per-connection extranonce
	// chosen by the pool (0 means DefaultExtranonce1Size; 1 to 8).
	Extranonce1Size int
	// Extranonce2Size is the byte length of the extranonce rolled by the
	// miner (0 means DefaultExtranonce2Size; 2 to 8).
	Extranonce2Size int
}

// Builder turns templates into jobs. It is safe for concurrent use.
type Builder struct {
	params          *chaincfg.Params
	payoutScript    []byte
	tagPush         []byte
	extranonce1Size int
	extranonce2Size int
	// seq numbers jobs. It starts at the wall clock in nanoseconds when
	// the Builder is made, so a restarted instance continues above every
	// ID the previous run could have used unless that run built more than
	// one job per nanosecond on average.
	seq atomic.Uint64
	// derived is the merkle branch and witness commitment of the last
	// template built, which BuildFor reuses for the same template.
	derived atomic.Pointer[derivedWork]
}

// NewBuilder validates cfg and returns a Builder.
func NewBuilder(cfg Config) (*Builder, error) {
	if cfg.Params == nil {
		return nil, errors.New("work config: Params is nil")
	}
	if err := checkPayoutScript(cfg.PayoutScript); err != nil {
		return nil, fmt.Errorf("work config: PayoutScript: %w", err)
	}
	en1, en2 := cfg.Extranonce1Size, cfg.Extranonce2Size
	if en1 == 0 {
		en1 = DefaultExtranonce1Size
	}
	if en2 == 0 {
		en2 = DefaultExtranonce2Size
	}
	if en1 < 1 || en1 > MaxExtranonce1Size {
		return nil, fmt.Errorf("work config: Extranonce1Size %d out of range [1, %d]", cfg.Extranonce1Size, MaxExtranonce1Size)
	}
	if en2 < MinExtranonce2Size || en2 > MaxExtranonce2Size {
		return nil, fmt.Errorf("work config: Extranonce2Size %d out of range [%d, %d]",
			cfg.Extranonce2Size, MinExtranonce2Size, MaxExtranonce2Size)
	}
	// Worst case without coinbaseaux: the longest height push, the tag,
	// the extranonce push opcode and the extranonce itself.
	fixed := maxHeightPush + 1 + en1 + en2
	if n := pushLen(len(cfg.PoolTag)); fixed+n > maxCoinbaseScript {
		room := maxCoinbaseScript - fixed - 1
		if room > 75 {
			room--
		}
		return nil, fmt.Errorf("work config: PoolTag is %d bytes; at most %d fit in the %d-byte coinbase script next to %d bytes of extranonce",
			len(cfg.PoolTag), room, maxCoinbaseScript, en1+en2)
	}
	b := &Builder{
		params:          cfg.Params,
		payoutScript:    bytes.Clone(cfg.PayoutScript),
		tagPush:         dataPush([]byte(cfg.PoolTag)),
		extranonce1Size: en1,
		extranonce2Size: en2,
	}
	b.seq.Store(uint64(time.Now().UnixNano()))
	return b, nil
}

// PayoutScript returns the pool's payout script, which pool jobs pay and
// solo jobs pay their fee to.
func (b *Builder) PayoutScript() []byte { return b.payoutScript }

// Params returns the network the builder makes jobs for, the one solo
// miners' addresses must belong to.
func (b *Builder) Params() *chaincfg.Params { return b.params }

// Extranonce1Size returns the configured extranonce1 length in bytes.
func (b *Builder) Extranonce1Size() int { return b.extranonce1Size }

// Extranonce2Size returns the configured extranonce2 length in bytes.
func (b *Builder) Extranonce2Size() int { return b.extranonce2Size }

// Build makes a job from a template: the coinbase paying the full
// CoinbaseValue to the payout script (plus the segwit commitment when the
// block needs one), split around the extranonce, the merkle branch and the
// header fields. now is recorded as the job's creation time.
//
// Build refuses templates that would give a block the node rejects: bad
// fields, a coinbase script over 100 bytes, or a witness commitment from
// the node that differs from the one computed from the transactions.
func (b *Builder) Build(t *node.Template, now time.Time) (*Job, error) {
	return b.build(t, now, nil, []txOut{{script: b.payoutScript}})
}

// MaxFeeBps is the largest pool fee BuildFor takes: 10000 basis points,
// the whole reward.
const MaxFeeBps = 10_000

// BuildFor makes a solo job from a template: like Build, but the coinbase
// pays payoutScript (the solo miner's address) the CoinbaseValue minus
// the pool fee, and feeScript (the pool's) the fee:
//
//	fee   = floor(CoinbaseValue × feeBps / 10000)
//	miner = CoinbaseValue − fee
//
// The fee output comes second and is left out when fee is 0 (feeBps 0, or
// a reward too small for one satoshi of fee); the miner's output is left
// out when it would be 0 (feeBps 10000). The witness commitment, when the
// block needs one, stays the last output. The job's SoloScript is
// payoutScript, and its ID starts with SoloJobPrefix, so that its shares
// are told apart from the pool's by the job ID they are stored with.
func (b *Builder) BuildFor(t *node.Template, now time.Time, payoutScript, feeScript []byte, feeBps int64) (*Job, error) {
	if err := checkPayoutScript(payoutScript); err != nil {
		return nil, fmt.Errorf("build solo job: miner's %w", err)
	}
	if feeBps < 0 || feeBps > MaxFeeBps {
		return nil, fmt.Errorf("build solo job: fee %d bps out of range [0, %d]", feeBps, MaxFeeBps)
	}
	if feeBps > 0 {
		if err := checkPayoutScript(feeScript); err != nil {
			return nil, fmt.Errorf("build solo job: pool fee %w", err)
		}
	}
	solo := bytes.Clone(payoutScript)
	outs := []txOut{{script: solo}, {script: feeScript, feeBps: feeBps}}
	return b.build(t, now, solo, outs)
}

// SoloJobPrefix starts the ID of every solo job (pool job IDs are
// lowercase hex, which never starts with it): a stored share row names its
// job, so the payout reader leaves solo shares out with a filter on the
// row itself, without a join that would cost the window its streaming
// order.
const SoloJobPrefix = "s"

// SoloFee returns the pool fee of a solo coinbase of value satoshis,
// floor(value × feeBps / 10000), computed without overflow (value ×
// feeBps would overflow int64 for rewards above 9.2e14 sat at 10000
// bps). value and feeBps must be in range (0..21e14, 0..10000).
func SoloFee(value, feeBps int64) int64 {
	return value/MaxFeeBps*feeBps + value%MaxFeeBps*feeBps/MaxFeeBps
}

// build is Build and BuildFor. outs are the coinbase outputs before the
// witness commitment: the first gets the CoinbaseValue less what the
// others take; an output with feeBps takes SoloFee of the value (and is
// left out at 0 sat, as is a first output left with 0). solo becomes the
// job's SoloScript.
func (b *Builder) build(t *node.Template, now time.Time, solo []byte, outs []txOut) (*Job, error) {
	idPrefix := ""
	if solo != nil {
		idPrefix = SoloJobPrefix
	}
	if err := b.checkTemplate(t); err != nil {
		return nil, fmt.Errorf("build job: %w", err)
	}
	height, err := heightPush(t.Height)
	if err != nil {
		return nil, fmt.Errorf("build job: template Height: %w", err)
	}
	extranonceLen := b.extranonce1Size + b.extranonce2Size
	prefix := make([]byte, 0, len(height)+len(t.CoinbaseAux)+len(b.tagPush)+1)
	prefix = append(prefix, height...)
	prefix = append(prefix, t.CoinbaseAux...)
	prefix = append(prefix, b.tagPush...)
	prefix = append(prefix, byte(extranonceLen)) // push of the extranonce
	if n := len(prefix) + extranonceLen; n < minCoinbaseScript || n > maxCoinbaseScript {
		return nil, fmt.Errorf("build job: coinbase script would be %d bytes (height %d, coinbaseaux %d, pool tag push %d, extranonce %d); consensus allows %d to %d",
			n, len(height), len(t.CoinbaseAux), len(b.tagPush), 1+extranonceLen, minCoinbaseScript, maxCoinbaseScript)
	}

	// A pool job derives its template's merkle branch and witness
	// commitment afresh; solo jobs of the same template reuse them (they
	// differ only in the coinbase outputs): with 3,000 transactions that
	// is most of a build's 1.7 ms.
	d := b.derived.Load()
	if solo == nil || d == nil || d.t != t {
		if d, err = derive(t); err != nil {
			return nil, fmt.Errorf("build job: %w", err)
		}
		b.derived.Store(d)
	}

	rest := t.CoinbaseValue
	for i := 1; i < len(outs); i++ {
		outs[i].value = SoloFee(t.CoinbaseValue, outs[i].feeBps)
		rest -= outs[i].value
	}
	outs[0].value = rest
	kept := outs[:1]
	for _, o := range outs[1:] {
		if o.value > 0 {
			kept = append(kept, o)
		}
	}
	if kept[0].value == 0 && len(kept) > 1 {
		kept = kept[1:] // a solo fee of 10000 bps leaves the miner nothing
	}
	outs = kept
	if d.commitment != nil {
		outs = append(outs, txOut{value: 0, script: d.commitment})
	}
	coinb1, coinb2 := coinbaseParts(prefix, extranonceLen, outs)

	target, err := targetFromBits(t.Bits)
	if err != nil { // checked in checkTemplate; kept for safety
		return nil, fmt.Errorf("build job: template Bits: %w", err)
	}
	j := &Job{
		ID:              idPrefix + strconv.FormatUint(b.seq.Add(1), 16),
		Template:        t,
		Height:          t.Height,
		PrevHash:        t.PrevHash,
		Version:         uint32(t.Version),
		Bits:            t.Bits,
		NTime:           uint32(t.CurTime),
		Coinb1:          coinb1,
		Coinb2:          coinb2,
		Extranonce1Size: b.extranonce1Size,
		Extranonce2Size: b.extranonce2Size,
		MerkleBranch:    d.branch,
		NetworkTarget:   target,
		NetworkDiff:     target.Diff(),
		CreatedAt:       now,
		SoloScript:      solo,
	}
	return j, nil
}

// derivedWork is what a job takes from its template's transactions alone:
// the merkle branch and the witness commitment script (nil when the block
// needs none). It is immutable; jobs share its slices.
type derivedWork struct {
	t          *node.Template
	branch     []chainhash.Hash
	commitment []byte
}

// derive computes a template's merkle branch and witness commitment,
// refusing a node commitment that differs from the computed one.
func derive(t *node.Template) (*derivedWork, error) {
	txids := make([]chainhash.Hash, len(t.Transactions))
	witness := t.WitnessCommitment != nil
	for i := range t.Transactions {
		tx := &t.Transactions[i]
		txids[i] = tx.TxID
		if tx.WTxID != tx.TxID {
			witness = true
		}
	}
	d := &derivedWork{t: t, branch: merkleBranch(txids)}
	if witness {
		wtxids := make([]chainhash.Hash, len(t.Transactions))
		for i := range t.Transactions {
			wtxids[i] = t.Transactions[i].WTxID
		}
		d.commitment = witnessCommitmentScript(wtxids)
		if t.WitnessCommitment != nil && !bytes.Equal(d.commitment, t.WitnessCommitment) {
			return nil, fmt.Errorf("template WitnessCommitment %x differs from %x computed from the transactions' wtxids",
				t.WitnessCommitment, d.commitment)
		}
	}
	return d, nil
}

// checkTemplate validates the template fields Build relies on; errors
// name the field.
func (b *Builder) checkTemplate(t *node.Template) error {
	if t == nil {
		return errors.New("template is nil")
	}
	if t.Height < 1 || t.Height > maxHeight {
		return fmt.Errorf("template Height %d out of range [1, %d]", t.Height, maxHeight)
	}
	if t.CoinbaseValue < 0 || t.CoinbaseValue > maxMoney {
		return fmt.Errorf("template CoinbaseValue %d sat out of range [0, %d]", t.CoinbaseValue, int64(maxMoney))
	}
	target, err := targetFromBits(t.Bits)
	if err != nil {
		return fmt.Errorf("template Bits: %w", err)
	}
	if b.params.PowLimit != nil {
		var limit Target
		if b.params.PowLimit.Sign() > 0 && b.params.PowLimit.BitLen() <= 256 {
			b.params.PowLimit.FillBytes(limit[:])
			if bytes.Compare(target[:], limit[:]) > 0 {
				return fmt.Errorf("template Bits %08x: target above the %s proof-of-work limit", t.Bits, b.params.Name)
			}
		}
	}
	if t.CurTime <= 0 || t.CurTime > math.MaxUint32 {
		return fmt.Errorf("template CurTime %d out of range [1, %d]", t.CurTime, uint32(math.MaxUint32))
	}
	if c := t.WitnessCommitment; c != nil && (len(c) != witnessCommitmentLen || !isWitnessCommitment(c)) {
		return fmt.Errorf("template WitnessCommitment %x is not a %d-byte OP_RETURN aa21a9ed commitment script", c, witnessCommitmentLen)
	}
	if len(t.CoinbaseAux) > maxCoinbaseScript {
		return fmt.Errorf("template CoinbaseAux is %d bytes; the whole coinbase script may hold %d", len(t.CoinbaseAux), maxCoinbaseScript)
	}
	for i := range t.Transactions {
		if len(t.Transactions[i].Data) == 0 {
			return fmt.Errorf("template Transactions[%d] (txid %s): empty Data", i, t.Transactions[i].TxID)
		}
	}
	return nil
}
