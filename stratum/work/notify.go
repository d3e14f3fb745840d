package work

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
)

// Limits on notify fields accepted by ParseNotify.
const (
	maxJobIDLen       = 128
	maxBranchLen      = 32 // 2^32 transactions would not fit a block
	maxCoinbaseLen    = 100_000
	maxExtranonceSize = 32
)

// Notify holds the fields of a mining.notify message as strings, in the
// Stratum v1 conventions miners expect:
//   - PrevHash is the previous block hash in internal byte order with each
//     4-byte word byte-swapped, as 64 hex digits;
//   - Coinb1, Coinb2 and each MerkleBranch entry are raw bytes in hex
//     (branch hashes in internal byte order);
//   - Version, NBits and NTime are 8 hex digits of the big-endian uint32.
//
// Its JSON form is the params array of mining.notify:
// [job_id, prevhash, coinb1, coinb2, merkle_branch, version, nbits, ntime,
// clean_jobs].
type Notify struct {
	JobID, PrevHash, Coinb1, Coinb2 string
	MerkleBranch                    []string
	Version, NBits, NTime           string
	// CleanJobs tells miners to drop work on earlier jobs (new block).
	CleanJobs bool
}

// Notify returns the job's mining.notify fields. A notify is the same for
// every connection (extranonce1 is not part of it), so callers build it
// once per job and broadcast the serialized bytes.
func (j *Job) Notify(clean bool) Notify {
	swapped := swapWords(j.PrevHash)
	branch := make([]string, len(j.MerkleBranch))
	for i := range j.MerkleBranch {
		branch[i] = hex.EncodeToString(j.MerkleBranch[i][:])
	}
	return Notify{
		JobID:        j.ID,
		PrevHash:     hex.EncodeToString(swapped[:]),
		Coinb1:       hex.EncodeToString(j.Coinb1),
		Coinb2:       hex.EncodeToString(j.Coinb2),
		MerkleBranch: branch,
		Version:      hex8(j.Version),
		NBits:        hex8(j.Bits),
		NTime:        hex8(j.NTime),
		CleanJobs:    clean,
	}
}

// ParseNotify validates notify fields received from a pool and rebuilds
// the Job they describe (without Template, so Job.Block is unavailable),
// for the miner side to hash shares with the same Hasher the server uses.
// extranonce1Size is the length of the extranonce1 the pool assigned at
// subscribe and extranonce2Size the extranonce2 length it asked for.
//
// Every field is checked: hex syntax and lengths, a decodable compact
// target, and a coinbase that, with the extranonce space filled, parses as
// exactly one transaction spending the null outpoint with the extranonce
// space inside its input script.
func ParseNotify(n Notify, extranonce1Size, extranonce2Size int) (*Job, error) {
	if extranonce1Size < 0 || extranonce1Size > maxExtranonceSize {
		return nil, fmt.Errorf("parse notify: extranonce1 size %d out of range [0, %d]", extranonce1Size, maxExtranonceSize)
	}
	if extranonce2Size < 1 || extranonce2Size > maxExtranonceSize {
		return nil, fmt.Errorf("parse notify: extranonce2 size %d out of range [1, %d]", extranonce2Size, maxExtranonceSize)
	}
	if err := checkJobID(n.JobID); err != nil {
		return nil, fmt.Errorf("parse notify: %w", err)
	}
	j := &Job{
		ID:              n.JobID,
		Extranonce1Size: extranonce1Size,
		Extranonce2Size: extranonce2Size,
	}
	var swapped chainhash.Hash
	if err := decodeFixedHex(swapped[:], n.PrevHash); err != nil {
		return nil, fmt.Errorf("parse notify: job %s: prevhash: %w", n.JobID, err)
	}
	j.PrevHash = swapWords(swapped)
	var err error
	if j.Coinb1, err = decodeHex(n.Coinb1, maxCoinbaseLen); err != nil {
		return nil, fmt.Errorf("parse notify: job %s: coinb1: %w", n.JobID, err)
	}
	if j.Coinb2, err = decodeHex(n.Coinb2, maxCoinbaseLen); err != nil {
		return nil, fmt.Errorf("parse notify: job %s: coinb2: %w", n.JobID, err)
	}
	if len(n.MerkleBranch) > maxBranchLen {
		return nil, fmt.Errorf("parse notify: job %s: merkle branch has %d entries, at most %d", n.JobID, len(n.MerkleBranch), maxBranchLen)
	}
	j.MerkleBranch = make([]chainhash.Hash, len(n.MerkleBranch))
	for i, s := range n.MerkleBranch {
		if err := decodeFixedHex(j.MerkleBranch[i][:], s); err != nil {
			return nil, fmt.Errorf("parse notify: job %s: merkle branch [%d]: %w", n.JobID, i, err)
		}
	}
	if j.Version, err = parseHex8(n.Version); err != nil {
		return nil, fmt.Errorf("parse notify: job %s: version: %w", n.JobID, err)
	}
	if j.Bits, err = parseHex8(n.NBits); err != nil {
		return nil, fmt.Errorf("parse notify: job %s: nbits: %w", n.JobID, err)
	}
	if j.NTime, err = parseHex8(n.NTime); err != nil {
		return nil, fmt.Errorf("parse notify: job %s: ntime: %w", n.JobID, err)
	}
	if j.NetworkTarget, err = targetFromBits(j.Bits); err != nil {
		return nil, fmt.Errorf("parse notify: job %s: nbits: %w", n.JobID, err)
	}
	j.NetworkDiff = j.NetworkTarget.Diff()
	script, err := checkCoinbase(j.Coinb1, j.Coinb2, extranonce1Size+extranonce2Size)
	if err != nil {
		return nil, fmt.Errorf("parse notify: job %s: coinbase: %w", n.JobID, err)
	}
	if h, ok := parseHeightPush(script); ok {
		j.Height = h
	}
	return j, nil
}

// checkCoinbase checks that coinb1 | extranonce | coinb2 is one coinbase
// transaction (no witness serialization) whose input script contains the
// whole extranonce space, and returns that input script (with the
// extranonce space zeroed).
func checkCoinbase(coinb1, coinb2 []byte, extranonceLen int) ([]byte, error) {
	raw := make([]byte, 0, len(coinb1)+extranonceLen+len(coinb2))
	raw = append(raw, coinb1...)
	raw = append(raw, make([]byte, extranonceLen)...)
	raw = append(raw, coinb2...)
	var tx wire.MsgTx
	r := bytes.NewReader(raw)
	if err := tx.DeserializeNoWitness(r); err != nil {
		return nil, fmt.Errorf("not a transaction: %w", err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d bytes after the transaction", r.Len())
	}
	if len(tx.TxIn) != 1 {
		return nil, fmt.Errorf("%d inputs, a coinbase has 1", len(tx.TxIn))
	}
	in := tx.TxIn[0]
	if in.PreviousOutPoint.Index != wire.MaxPrevOutIndex || in.PreviousOutPoint.Hash != (chainhash.Hash{}) {
		return nil, fmt.Errorf("input spends %v, not the null outpoint", in.PreviousOutPoint)
	}
	if len(tx.TxOut) == 0 {
		return nil, errors.New("no outputs")
	}
	// The input script starts after version (4), input count (1, since
	// there is one input), outpoint (36) and the script length varint.
	scriptStart := 4 + 1 + 36 + wire.VarIntSerializeSize(uint64(len(in.SignatureScript)))
	scriptEnd := scriptStart + len(in.SignatureScript)
	if len(coinb1) < scriptStart || len(coinb1)+extranonceLen > scriptEnd {
		return nil, fmt.Errorf("extranonce space at bytes [%d, %d) is not inside the input script at [%d, %d)",
			len(coinb1), len(coinb1)+extranonceLen, scriptStart, scriptEnd)
	}
	return in.SignatureScript, nil
}

// MarshalJSON encodes the notify as the mining.notify params array.
func (n Notify) MarshalJSON() ([]byte, error) {
	branch := n.MerkleBranch
	if branch == nil {
		branch = []string{}
	}
	return json.Marshal([]any{n.JobID, n.PrevHash, n.Coinb1, n.Coinb2, branch, n.Version, n.NBits, n.NTime, n.CleanJobs})
}

// UnmarshalJSON decodes a mining.notify params array. It checks the shape
// and JSON types only; ParseNotify validates the contents.
func (n *Notify) UnmarshalJSON(data []byte) error {
	var params []json.RawMessage
	if err := json.Unmarshal(data, &params); err != nil {
		return fmt.Errorf("mining.notify params: %w", err)
	}
	if len(params) != 9 {
		return fmt.Errorf("mining.notify params: %d elements, want 9", len(params))
	}
	var out Notify
	strs := []*string{&out.JobID, &out.PrevHash, &out.Coinb1, &out.Coinb2}
	for i, p := range strs {
		if err := json.Unmarshal(params[i], p); err != nil {
			return fmt.Errorf("mining.notify params[%d]: %w", i, err)
		}
	}
	if err := json.Unmarshal(params[4], &out.MerkleBranch); err != nil {
		return fmt.Errorf("mining.notify params[4] (merkle branch): %w", err)
	}
	strs = []*string{&out.Version, &out.NBits, &out.NTime}
	for i, p := range strs {
		if err := json.Unmarshal(params[5+i], p); err != nil {
			return fmt.Errorf("mining.notify params[%d]: %w", 5+i, err)
		}
	}
	if err := json.Unmarshal(params[8], &out.CleanJobs); err != nil {
		return fmt.Errorf("mining.notify params[8] (clean jobs): %w", err)
	}
	*n = out
	return nil
}

// swapWords reverses the bytes of each 4-byte word: the stratum prevhash
// transform (its own inverse).
func swapWords(h chainhash.Hash) chainhash.Hash {
	var out chainhash.Hash
	for i := 0; i < len(h); i += 4 {
		binary.BigEndian.PutUint32(out[i:], binary.LittleEndian.Uint32(h[i:]))
	}
	return out
}

// hex8 formats a uint32 as 8 lowercase hex digits, big endian.
func hex8(v uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return hex.EncodeToString(b[:])
}

// parseHex8 parses exactly 8 hex digits as a big-endian uint32.
func parseHex8(s string) (uint32, error) {
	var b [4]byte
	if err := decodeFixedHex(b[:], s); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b[:]), nil
}

// decodeFixedHex decodes s into dst, requiring exactly 2*len(dst) hex
// digits.
func decodeFixedHex(dst []byte, s string) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("%q is %d characters, want %d hex digits", truncate(s), len(s), 2*len(dst))
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return fmt.Errorf("%q: %w", truncate(s), err)
	}
	return nil
}

// decodeHex decodes a non-empty hex string of at most max bytes.
func decodeHex(s string, max int) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	if len(s) > 2*max {
		return nil, fmt.Errorf("%d hex digits, at most %d", len(s), 2*max)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", truncate(s), err)
	}
	return b, nil
}

// checkJobID accepts printable ASCII IDs of reasonable length: a job ID is
// echoed back in mining.submit and stored with shares.
func checkJobID(id string) error {
	if id == "" {
		return errors.New("empty job id")
	}
	if len(id) > maxJobIDLen {
		return fmt.Errorf("job id is %d bytes, at most %d", len(id), maxJobIDLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return fmt.Errorf("job id %s has a non-printable or space character at %d", strconv.Quote(id), i)
		}
	}
	return nil
}

// truncate shortens long strings quoted in error messages.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
