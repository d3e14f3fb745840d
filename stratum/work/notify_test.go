package work

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// publicPoolShare is testdata/publicpool_share.json: a mining.notify and a
// share from a public-pool test recording on testnet3 (block 2442185) with
// the header hash that share produces.
type publicPoolShare struct {
	Extranonce1     string `json:"extranonce1"`
	Extranonce2Size int    `json:"extranonce2_size"`
	VersionMask     string `json:"version_mask"`
	Notify          Notify `json:"notify"`
	Submit          struct {
		Extranonce2 string `json:"extranonce2"`
		NTime       string `json:"ntime"`
		Nonce       string `json:"nonce"`
		VersionBits string `json:"version_bits"`
	} `json:"submit"`
	ExpectedHash string  `json:"expected_hash"`
	ExpectedDiff float64 `json:"expected_diff"`
}

func loadPublicPoolShare(t testing.TB) publicPoolShare {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "publicpool_share.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s publicPoolShare
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func hexU32(t testing.TB, s string) uint32 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}

// TestPublicPoolShare reproduces a real share end to end from the miner's
// side: notify fields through ParseNotify, the submit through MergeVersion
// and the Hasher, giving the header hash and difficulty public-pool's own
// test expects. It pins the stratum prevhash word swap, the version, nbits
// and ntime byte order and the coinbase/merkle construction.
func TestPublicPoolShare(t *testing.T) {
	s := loadPublicPoolShare(t)
	en1 := mustHex(t, s.Extranonce1)
	j, err := ParseNotify(s.Notify, len(en1), s.Extranonce2Size)
	if err != nil {
		t.Fatal(err)
	}
	if j.Height != 2442185 {
		t.Errorf("height from coinbase = %d, want 2442185", j.Height)
	}
	if got, want := j.PrevHash.String(), "00000000000000022246451e9af7ac4f8bff2527d223f6e623740e92171592f2"; got != want {
		t.Errorf("prevhash = %s, want %s", got, want)
	}
	version := MergeVersion(j.Version, hexU32(t, s.Submit.VersionBits), hexU32(t, s.VersionMask))
	if version != 0x20002000 {
		t.Errorf("merged version = %08x, want 20002000", version)
	}
	var h Hasher
	hash := h.HeaderHash(j, en1, mustHex(t, s.Submit.Extranonce2), hexU32(t, s.Submit.NTime), hexU32(t, s.Submit.Nonce), version)
	if got := hash.String(); got != s.ExpectedHash {
		t.Fatalf("header hash = %s, want %s", got, s.ExpectedHash)
	}
	if d := DiffFromHash(&hash); math.Abs(d-s.ExpectedDiff) > 0.01 {
		t.Errorf("share difficulty = %f, want %f", d, s.ExpectedDiff)
	}
	target := TargetFromDiff(669)
	if !target.Meets(&hash) {
		t.Errorf("hash %s does not meet difficulty 669", hash)
	}
	target = TargetFromDiff(670)
	if target.Meets(&hash) {
		t.Errorf("hash %s meets difficulty 670", hash)
	}
	if j.NetworkTarget.Meets(&hash) {
		t.Errorf("share meets the testnet network target")
	}
	// The notify the Job produces is the notify it came from.
	back := j.Notify(false)
	if !notifyEqual(back, s.Notify) {
		t.Errorf("Notify() = %+v, want %+v", back, s.Notify)
	}
}

func notifyEqual(a, b Notify) bool {
	return a.JobID == b.JobID && a.PrevHash == b.PrevHash && a.Coinb1 == b.Coinb1 && a.Coinb2 == b.Coinb2 &&
		strings.Join(a.MerkleBranch, ",") == strings.Join(b.MerkleBranch, ",") &&
		a.Version == b.Version && a.NBits == b.NBits && a.NTime == b.NTime && a.CleanJobs == b.CleanJobs
}

// TestNotifyRoundTrip builds jobs, sends them through Notify, JSON and
// ParseNotify, and checks the miner side hashes every share exactly as the
// server side does.
func TestNotifyRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 2, 5, 100} {
		b := newTestBuilder(t, func(c *Config) { c.Extranonce2Size = 8 })
		j, err := b.Build(syntheticTemplate(t, n, true), testNow)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(j.Notify(true))
		if err != nil {
			t.Fatal(err)
		}
		var decoded Notify
		if err := json.Unmarshal(raw, &decoded); err != nil {
			t.Fatalf("unmarshal %s: %v", raw, err)
		}
		if !decoded.CleanJobs {
			t.Error("clean_jobs lost")
		}
		mj, err := ParseNotify(decoded, j.Extranonce1Size, j.Extranonce2Size)
		if err != nil {
			t.Fatalf("ParseNotify(%s): %v", raw, err)
		}
		if mj.ID != j.ID || mj.PrevHash != j.PrevHash || mj.Version != j.Version || mj.Bits != j.Bits ||
			mj.NTime != j.NTime || mj.Height != j.Height || mj.NetworkTarget != j.NetworkTarget {
			t.Errorf("n=%d: parsed job header fields differ: %+v vs %+v", n, mj, j)
		}
		var hs, hm Hasher
		en1 := []byte{0xde, 0xad, 0xbe, 0xef}
		for nonce := uint32(0); nonce < 20; nonce++ {
			en2 := []byte{byte(nonce), 1, 2, 3, 4, 5, 6, 7}
			a := hs.HeaderHash(j, en1, en2, j.NTime+nonce, nonce*7919, j.Version)
			c := hm.HeaderHash(mj, en1, en2, j.NTime+nonce, nonce*7919, j.Version)
			if a != c {
				t.Fatalf("n=%d nonce=%d: server hash %s, miner hash %s", n, nonce, a, c)
			}
		}
	}
}

func TestNotifyFormat(t *testing.T) {
	s := loadPublicPoolShare(t)
	raw, err := json.Marshal(s.Notify)
	if err != nil {
		t.Fatal(err)
	}
	want := `["1","171592f223740e92d223f6e68bff25279af7ac4f2246451e0000000200000000",`
	if !strings.HasPrefix(string(raw), want) || !strings.HasSuffix(string(raw), `"20000000","192495f8","64b3f3ec",false]`) {
		t.Errorf("notify JSON = %s", raw)
	}
	empty, err := json.Marshal(Notify{JobID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(empty), `,[],`) {
		t.Errorf("empty branch must encode as [], got %s", empty)
	}
}

func TestNotifyUnmarshalErrors(t *testing.T) {
	for _, in := range []string{
		`{}`, `[]`, `["1"]`,
		`["1","p","c1","c2",[],"v","b","t"]`,
		`["1","p","c1","c2",[],"v","b","t",false,1]`,
		`[1,"p","c1","c2",[],"v","b","t",false]`,
		`["1","p","c1","c2","x","v","b","t",false]`,
		`["1","p","c1","c2",[],"v","b","t","yes"]`,
		`["1","p","c1","c2",[],20000000,"b","t",false]`,
	} {
		var n Notify
		if err := json.Unmarshal([]byte(in), &n); err == nil {
			t.Errorf("Unmarshal(%s) succeeded: %+v", in, n)
		}
	}
}

func TestParseNotifyErrors(t *testing.T) {
	good := loadPublicPoolShare(t).Notify
	if _, err := ParseNotify(good, 4, 4); err != nil {
		t.Fatalf("good notify: %v", err)
	}
	tests := []struct {
		name     string
		mutate   func(*Notify)
		en1, en2 int
		wantErr  string
	}{
		{"empty job id", func(n *Notify) { n.JobID = "" }, 4, 4, "empty job id"},
		{"job id with space", func(n *Notify) { n.JobID = "a b" }, 4, 4, "job id"},
		{"long job id", func(n *Notify) { n.JobID = strings.Repeat("a", 129) }, 4, 4, "job id"},
		{"short prevhash", func(n *Notify) { n.PrevHash = n.PrevHash[2:] }, 4, 4, "prevhash"},
		{"bad prevhash hex", func(n *Notify) { n.PrevHash = "zz" + n.PrevHash[2:] }, 4, 4, "prevhash"},
		{"empty coinb1", func(n *Notify) { n.Coinb1 = "" }, 4, 4, "coinb1"},
		{"odd coinb1", func(n *Notify) { n.Coinb1 += "0" }, 4, 4, "coinb1"},
		{"bad coinb2", func(n *Notify) { n.Coinb2 = "xy" + n.Coinb2 }, 4, 4, "coinb2"},
		{"branch entry short", func(n *Notify) { n.MerkleBranch = []string{"00"} }, 4, 4, "merkle branch [0]"},
		{"branch too long", func(n *Notify) {
			n.MerkleBranch = make([]string, 33)
			for i := range n.MerkleBranch {
				n.MerkleBranch[i] = strings.Repeat("00", 32)
			}
		}, 4, 4, "merkle branch has 33"},
		{"version 7 digits", func(n *Notify) { n.Version = "2000000" }, 4, 4, "version"},
		{"version sign", func(n *Notify) { n.Version = "-2000000" }, 4, 4, "version"},
		{"nbits bad", func(n *Notify) { n.NBits = "1d00fffg" }, 4, 4, "nbits"},
		{"nbits negative", func(n *Notify) { n.NBits = "1d80ffff" }, 4, 4, "negative"},
		{"nbits zero", func(n *Notify) { n.NBits = "00000000" }, 4, 4, "zero target"},
		{"ntime long", func(n *Notify) { n.NTime = "064b3f3ec" }, 4, 4, "ntime"},
		{"extranonce too big for script", func(n *Notify) {}, 4, 8, "coinbase"},
		{"extranonce1 size negative", func(n *Notify) {}, -1, 4, "extranonce1 size"},
		{"extranonce2 size zero", func(n *Notify) {}, 4, 0, "extranonce2 size"},
		{"coinbase trailing bytes", func(n *Notify) { n.Coinb2 += "00" }, 4, 4, "after the transaction"},
		{"coinbase truncated", func(n *Notify) { n.Coinb2 = n.Coinb2[:len(n.Coinb2)-2] }, 4, 4, "not a transaction"},
		{"not the null outpoint", func(n *Notify) { n.Coinb1 = strings.Replace(n.Coinb1, "ffffffff19", "fffffffe19", 1) }, 4, 4, "null outpoint"},
		{"extranonce outside the script", func(n *Notify) {
			// Move the split onto the commitment output's zero value: the
			// transaction still parses but the miner would roll an output.
			idx := strings.Index(n.Coinb2, "0000000000000000266a24")
			n.Coinb1 = n.Coinb1 + strings.Repeat("00", 8) + n.Coinb2[:idx]
			n.Coinb2 = n.Coinb2[idx+16:]
		}, 4, 4, "not inside the input script"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := good
			n.MerkleBranch = append([]string(nil), good.MerkleBranch...)
			tc.mutate(&n)
			_, err := ParseNotify(n, tc.en1, tc.en2)
			if err == nil {
				t.Fatalf("ParseNotify succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

// FuzzParseNotify feeds arbitrary mining.notify params through JSON
// decoding and ParseNotify: no panics, and every accepted notify encodes
// back to fields ParseNotify accepts again with the same job.
func FuzzParseNotify(f *testing.F) {
	s := loadPublicPoolShare(f)
	good, err := json.Marshal(s.Notify)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, 4, 4)
	f.Add(good, 4, 8)
	f.Add([]byte(`["1","00","00","00",[],"20000000","1d00ffff","00000000",true]`), 0, 1)
	f.Add([]byte(`[]`), 4, 4)
	f.Fuzz(func(t *testing.T, raw []byte, en1, en2 int) {
		var n Notify
		if err := json.Unmarshal(raw, &n); err != nil {
			return
		}
		j, err := ParseNotify(n, en1, en2)
		if err != nil {
			return
		}
		again, err := ParseNotify(j.Notify(n.CleanJobs), en1, en2)
		if err != nil {
			t.Fatalf("re-parse of an accepted notify failed: %v", err)
		}
		var h1, h2 Hasher
		e1, e2 := make([]byte, en1), make([]byte, en2)
		if h1.HeaderHash(j, e1, e2, 1, 2, 3) != h2.HeaderHash(again, e1, e2, 1, 2, 3) {
			t.Fatal("re-parsed job hashes differently")
		}
	})
}
