package shares

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/stratum"
	"github.com/wattpool/wattpool/stratum/work"
)

// Spool record types. The payload layouts below are the on-disk format of
// the spool: change them only by adding a new type.
const (
	recJob   byte = 1
	recShare byte = 2
	// recBlock is a found block alone, its share spooled separately: only
	// spools written before recFoundBlock existed hold it.
	recBlock byte = 3
	// recFoundBlock is a found block and the share that found it in one
	// record (the share's layout, then the block's fields), so that the
	// two reach PostgreSQL in one transaction or not at all.
	recFoundBlock byte = 4
	// recSoloJob is a solo job (work.Job.SoloScript set): the job's
	// layout, then the output script its coinbase pays the miner.
	recSoloJob byte = 5
)

// Field bounds on decode: a spooled record is checksummed, so a value past
// these means a bug or a foreign file, never an honest record.
const (
	maxString = 1024
	maxBytes  = 64 << 10
	maxBranch = 64
)

var errShort = errors.New("record ends early")

// origin is who found a share or a block and on which job: the fields
// that, after the time, open both share and block records.
type origin struct {
	Instance, Account, Worker, Group, JobID string
}

type shareRec struct {
	Time time.Time
	origin
	Extranonce1, Extranonce2           []byte
	NTime, Nonce, VersionBits, Version uint32
	Diff, Achieved                     float64
	Hash                               chainhash.Hash
	IsBlock                            bool
}

type jobRec struct {
	Instance, ID                     string
	Height                           int64
	PrevHash                         chainhash.Hash
	Version, Bits, NTime             uint32
	Coinb1, Coinb2                   []byte
	Extranonce1Size, Extranonce2Size int
	MerkleBranch                     []chainhash.Hash
	NetworkDiff                      float64
	CreatedAt                        time.Time
	// SoloScript is set on solo jobs only (recSoloJob).
	SoloScript []byte
}

type blockRec struct {
	FoundAt time.Time
	origin
	Height       int64
	Hash         chainhash.Hash
	CoinbaseSats int64
	SubmitResult string
	Accepted     bool
}

func putString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func putBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func putU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func putU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
func putF64(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

// appendOrigin writes the time and origin of a share, the opening of both
// share and block records.
func appendOrigin(b []byte, s *stratum.Share, instance string) []byte {
	b = putU64(b, uint64(s.Time.UnixNano()))
	b = putString(b, instance)
	b = putString(b, s.Account)
	b = putString(b, s.Worker)
	b = putString(b, s.Group)
	jobID := ""
	if s.Job != nil {
		jobID = s.Job.ID
	}
	return putString(b, jobID)
}

func appendShare(b []byte, s *stratum.Share, instance string) []byte {
	b = appendOrigin(b, s, instance)
	b = putBytes(b, s.Extranonce1)
	b = putBytes(b, s.Extranonce2)
	b = putU32(b, s.NTime)
	b = putU32(b, s.Nonce)
	b = putU32(b, s.VersionBits)
	b = putU32(b, s.Version)
	b = putF64(b, s.Difficulty)
	b = putF64(b, s.Achieved)
	b = append(b, s.Hash[:]...)
	return append(b, boolByte(s.IsBlock))
}

func appendJob(b []byte, j *work.Job, instance string) []byte {
	b = putString(b, instance)
	b = putString(b, j.ID)
	b = putU64(b, uint64(j.Height))
	b = append(b, j.PrevHash[:]...)
	b = putU32(b, j.Version)
	b = putU32(b, j.Bits)
	b = putU32(b, j.NTime)
	b = putBytes(b, j.Coinb1)
	b = putBytes(b, j.Coinb2)
	b = binary.AppendUvarint(b, uint64(j.Extranonce1Size))
	b = binary.AppendUvarint(b, uint64(j.Extranonce2Size))
	b = binary.AppendUvarint(b, uint64(len(j.MerkleBranch)))
	for _, h := range j.MerkleBranch {
		b = append(b, h[:]...)
	}
	b = putF64(b, j.NetworkDiff)
	return putU64(b, uint64(j.CreatedAt.UnixNano()))
}

// appendSoloJob is appendJob followed by the solo job's payout script.
func appendSoloJob(b []byte, j *work.Job, instance string) []byte {
	return putBytes(appendJob(b, j, instance), j.SoloScript)
}

func appendBlock(b []byte, fb *stratum.FoundBlock, instance string) []byte {
	b = appendOrigin(b, &fb.Share, instance)
	b = putU64(b, uint64(fb.Height))
	b = append(b, fb.Hash[:]...)
	b = putU64(b, uint64(fb.CoinbaseValue))
	b = putString(b, fb.SubmitResult)
	return append(b, boolByte(fb.Accepted))
}

// appendFoundBlock writes a recFoundBlock payload: the block's share as
// appendShare writes it, then the block's own fields.
func appendFoundBlock(b []byte, fb *stratum.FoundBlock, instance string) []byte {
	b = appendShare(b, &fb.Share, instance)
	b = putU64(b, uint64(fb.Height))
	b = append(b, fb.Hash[:]...)
	b = putU64(b, uint64(fb.CoinbaseValue))
	b = putString(b, fb.SubmitResult)
	return append(b, boolByte(fb.Accepted))
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// dec reads fields off a payload, remembering the first error.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *dec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail(errShort)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) uvarint(limit uint64, what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(fmt.Errorf("%s: bad varint", what))
		return 0
	}
	if v > limit {
		d.fail(fmt.Errorf("%s: %d exceeds %d", what, v, limit))
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) str(what string) string { return string(d.take(int(d.uvarint(maxString, what)))) }

func (d *dec) bytes(what string) []byte {
	v := d.take(int(d.uvarint(maxBytes, what)))
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}

func (d *dec) u32() uint32 {
	v := d.take(4)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(v)
}

func (d *dec) u64() uint64 {
	v := d.take(8)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(v)
}

func (d *dec) f64(what string) float64 {
	v := math.Float64frombits(d.u64())
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.fail(fmt.Errorf("%s: not a finite number", what))
	}
	return v
}

func (d *dec) hash() (h chainhash.Hash) {
	copy(h[:], d.take(32))
	return h
}

func (d *dec) flag(what string) bool {
	v := d.take(1)
	if v == nil {
		return false
	}
	if v[0] > 1 {
		d.fail(fmt.Errorf("%s: flag byte %d", what, v[0]))
	}
	return v[0] == 1
}

func (d *dec) done(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("decode %s record: %w", what, d.err)
	}
	return nil
}

// origin reads what appendOrigin wrote and returns the time.
func (d *dec) origin(o *origin) time.Time {
	t := time.Unix(0, int64(d.u64())).UTC()
	o.Instance = d.str("instance")
	o.Account = d.str("account")
	o.Worker = d.str("worker")
	o.Group = d.str("group")
	o.JobID = d.str("job id")
	return t
}

func decodeShare(p []byte, r *shareRec) error {
	d := dec{b: p}
	d.share(r)
	return d.done("share")
}

// share reads what appendShare wrote.
func (d *dec) share(r *shareRec) {
	r.Time = d.origin(&r.origin)
	r.Extranonce1 = d.bytes("extranonce1")
	r.Extranonce2 = d.bytes("extranonce2")
	r.NTime, r.Nonce, r.VersionBits, r.Version = d.u32(), d.u32(), d.u32(), d.u32()
	r.Diff = d.f64("share difficulty")
	r.Achieved = d.f64("achieved difficulty")
	r.Hash = d.hash()
	r.IsBlock = d.flag("block")
}

// decodeFoundBlock reads a recFoundBlock payload: the share, then the
// block, whose origin and time are the share's.
func decodeFoundBlock(p []byte, s *shareRec, b *blockRec) error {
	d := dec{b: p}
	d.share(s)
	b.FoundAt, b.origin = s.Time, s.origin
	b.Height = int64(d.u64())
	b.Hash = d.hash()
	b.CoinbaseSats = int64(d.u64())
	b.SubmitResult = d.str("submit result")
	b.Accepted = d.flag("accepted")
	return d.done("found block")
}

func decodeJob(p []byte, r *jobRec) error {
	d := dec{b: p}
	d.job(r)
	return d.done("job")
}

// decodeSoloJob reads a recSoloJob payload.
func decodeSoloJob(p []byte, r *jobRec) error {
	d := dec{b: p}
	d.job(r)
	r.SoloScript = d.bytes("solo script")
	if d.err == nil && len(r.SoloScript) == 0 {
		return fmt.Errorf("solo job %s: empty solo script", r.ID)
	}
	return d.done("solo job")
}

// job reads the fields every job record opens with.
func (d *dec) job(r *jobRec) {
	r.Instance = d.str("instance")
	r.ID = d.str("job id")
	r.Height = int64(d.u64())
	r.PrevHash = d.hash()
	r.Version, r.Bits, r.NTime = d.u32(), d.u32(), d.u32()
	r.Coinb1 = d.bytes("coinb1")
	r.Coinb2 = d.bytes("coinb2")
	r.Extranonce1Size = int(d.uvarint(32, "extranonce1 size"))
	r.Extranonce2Size = int(d.uvarint(32, "extranonce2 size"))
	n := int(d.uvarint(maxBranch, "merkle branch length"))
	r.MerkleBranch = make([]chainhash.Hash, 0, n)
	for range n {
		r.MerkleBranch = append(r.MerkleBranch, d.hash())
	}
	r.NetworkDiff = d.f64("network difficulty")
	r.CreatedAt = time.Unix(0, int64(d.u64())).UTC()
}

func decodeBlock(p []byte, r *blockRec) error {
	d := dec{b: p}
	r.FoundAt = d.origin(&r.origin)
	r.Height = int64(d.u64())
	r.Hash = d.hash()
	r.CoinbaseSats = int64(d.u64())
	r.SubmitResult = d.str("submit result")
	r.Accepted = d.flag("accepted")
	return d.done("block")
}
