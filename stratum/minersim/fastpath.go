package minersim

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"hash/maphash"
	"strconv"
	"sync"

	"github.com/wattpool/wattpool/stratum/work"
)

// The simulator shares the machine with the pool it measures, so its own
// per-share and per-job costs are kept small: the lines a load test sends
// and receives by the hundred thousand are encoded and recognized without
// encoding/json, and a job broadcast to thousands of miners is parsed
// once. Anything else takes the general path.

// trueResult is the result of an accepted submit.
var trueResult = json.RawMessage("true")

// parseAcceptedFast recognizes `{"id":N,"result":true,"error":null}`, the
// exact form in which pools (wattpool among them) accept a share. Any
// other spelling is left to parseLine's general path.
func parseAcceptedFast(line []byte) (uint64, bool) {
	const prefix, suffix = `{"id":`, `,"result":true,"error":null}`
	if !bytes.HasPrefix(line, []byte(prefix)) || !bytes.HasSuffix(line, []byte(suffix)) {
		return 0, false
	}
	digits := line[len(prefix) : len(line)-len(suffix)]
	if len(digits) == 0 || len(digits) > 19 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	var id uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		id = id*10 + uint64(c-'0')
	}
	return id, true
}

// appendSubmit appends the newline-terminated mining.submit request, byte
// for byte what encodeRequest makes of the same parameters.
func appendSubmit(b []byte, id uint64, user, jobID string, en2 []byte, ntime, nonce, vbits uint32, rolling bool) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"method":"mining.submit","params":[`...)
	b = appendJSONString(b, user)
	b = append(b, ',')
	b = appendJSONString(b, jobID)
	b = append(b, `,"`...)
	b = hex.AppendEncode(b, en2)
	b = append(b, `","`...)
	b = appendHex32(b, ntime)
	b = append(b, `","`...)
	b = appendHex32(b, nonce)
	if rolling {
		b = append(b, `","`...)
		b = appendHex32(b, vbits)
	}
	return append(b, "\"]}\n"...)
}

// appendHex32 appends v as 8 lowercase hex digits (fmt's %08x).
func appendHex32(b []byte, v uint32) []byte {
	const digits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[(v>>uint(shift))&0xf])
	}
	return b
}

// appendJSONString appends s as encoding/json would: plain printable ASCII
// is copied, anything it escapes (quotes, backslashes, control and
// HTML-sensitive characters, non-ASCII) goes through json.Marshal.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// notifyCacheSize is how many distinct mining.notify lines are remembered:
// the pool's current job and a few before it.
const notifyCacheSize = 8

// notifyCache remembers recently parsed mining.notify lines. A pool sends
// the same job line to every connection, so a fleet parses each job once
// instead of once per miner. Jobs are immutable once parsed, so miners
// share them.
type notifyCache struct {
	seed    maphash.Seed
	mu      sync.RWMutex
	entries [notifyCacheSize]*notifyEntry
	next    int
}

// notifyEntry is one remembered line: its parsed params and the jobs
// built from it, per extranonce sizes.
type notifyEntry struct {
	hash   uint64
	line   []byte
	params notifyParams

	mu   sync.Mutex
	jobs map[[2]int]*work.Job
}

func newNotifyCache() *notifyCache { return &notifyCache{seed: maphash.MakeSeed()} }

// get returns the entry of exactly this line, or nil.
func (c *notifyCache) get(line []byte) *notifyEntry {
	h := maphash.Bytes(c.seed, line)
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, e := range c.entries {
		if e != nil && e.hash == h && bytes.Equal(e.line, line) {
			return e
		}
	}
	return nil
}

// put remembers a parsed line (copied), replacing the oldest entry, and
// returns its entry.
func (c *notifyCache) put(line []byte, p notifyParams) *notifyEntry {
	h := maphash.Bytes(c.seed, line)
	c.mu.Lock()
	defer c.mu.Unlock()
	// Looked up again under the write lock: miners that missed in get at
	// the same moment must share one entry, or each parses the line.
	for _, e := range c.entries {
		if e != nil && e.hash == h && bytes.Equal(e.line, line) {
			return e
		}
	}
	e := &notifyEntry{hash: h, line: bytes.Clone(line), params: p}
	c.entries[c.next] = e
	c.next = (c.next + 1) % notifyCacheSize
	return e
}

// job returns the line's job for these extranonce sizes, parsing it the
// first time.
func (e *notifyEntry) job(en1Size, en2Size int) (*work.Job, error) {
	key := [2]int{en1Size, en2Size}
	e.mu.Lock()
	defer e.mu.Unlock()
	if j := e.jobs[key]; j != nil {
		return j, nil
	}
	p := e.params
	j, err := work.ParseNotify(work.Notify{
		JobID: p.JobID, PrevHash: p.PrevHash, Coinb1: p.Coinb1, Coinb2: p.Coinb2,
		MerkleBranch: p.MerkleBranch, Version: p.Version, NBits: p.NBits, NTime: p.NTime,
		CleanJobs: p.CleanJobs,
	}, en1Size, en2Size)
	if err != nil {
		return nil, err
	}
	if e.jobs == nil {
		e.jobs = map[[2]int]*work.Job{}
	}
	e.jobs[key] = j
	return j, nil
}
