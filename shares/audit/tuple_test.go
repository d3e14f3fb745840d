package audit

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

func sampleRow() Row {
	return Row{Time: time.Date(2000, 1, 1, 0, 0, 1, 2500, time.UTC), ID: [16]byte{15: 1}, Instance: "a",
		AccountID: 2, WorkerID: 3, Group: "g", JobID: "j", Extranonce1: []byte{0xaa}, Extranonce2: []byte{},
		NTime: 4, Nonce: 5, VersionBits: 6, Version: 7, ShareDiff: 1, AchievedDiff: 0.5, Hash: []byte{0xbb}, IsBlock: true}
}

func TestAppendTupleIsPostgresBinaryCopy(t *testing.T) {
	// Hand-built from PostgreSQL's binary send formats: 17 fields; time
	// 1 s 2 µs after 2000-01-01 (the 500 ns dropped) = 1000002 µs.
	want := "0011" +
		"00000008" + "00000000000f4242" + // time
		"00000010" + "00000000000000000000000000000001" + // share_id
		"00000001" + "61" + // instance "a"
		"00000008" + "0000000000000002" + "00000008" + "0000000000000003" +
		"00000001" + "67" + "00000001" + "6a" + // group "g", job "j"
		"00000001" + "aa" + "00000000" + // extranonce1, empty extranonce2
		"00000008" + "0000000000000004" + "00000008" + "0000000000000005" +
		"00000008" + "0000000000000006" + "00000008" + "0000000000000007" +
		"00000008" + "3ff0000000000000" + "00000008" + "3fe0000000000000" + // 1.0, 0.5
		"00000001" + "bb" + "00000001" + "01"
	r := sampleRow()
	got := AppendTuple(nil, &r)
	if hex.EncodeToString(got) != want {
		t.Fatalf("tuple\n%x\nwant\n%s", got, want)
	}
	back, err := ParseTuple(got)
	if err != nil {
		t.Fatal(err)
	}
	r.Time = r.Time.Truncate(time.Microsecond)
	if back.Time != r.Time || back.ID != r.ID || back.Instance != "a" || back.AccountID != 2 || back.WorkerID != 3 ||
		back.ShareDiff != 1 || back.AchievedDiff != 0.5 || !back.IsBlock || !bytes.Equal(back.Hash, r.Hash) || back.Version != 7 {
		t.Fatalf("parsed %+v", back)
	}
	if TupleID(got) != r.ID || !TupleTime(got).Equal(r.Time) {
		t.Fatalf("id %x time %v", TupleID(got), TupleTime(got))
	}
}

func TestParseTupleRejects(t *testing.T) {
	r := sampleRow()
	good := AppendTuple(nil, &r)
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"16 fields", append([]byte{0, 16}, good[2:]...), "16 fields"},
		{"short time", append(append([]byte{0, 17, 0, 0, 0, 4}, good[6:10]...), good[14:]...), "column time is 4 bytes"},
		{"null instance", append(append(bytes.Clone(good[:34]), 0xff, 0xff, 0xff, 0xff), good[39:]...), "column instance is NULL"},
		{"truncated", good[:len(good)-1], "not one whole tuple"},
		{"trailing byte", append(bytes.Clone(good), 0), "not one whole tuple"},
		{"is_block 2", append(bytes.Clone(good[:len(good)-1]), 2), "is_block byte 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTuple(tc.b)
			if !errors.Is(err, ErrBadTuple) || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTupleStreamSplitsAnywhere(t *testing.T) {
	r := sampleRow()
	stream := appendHeader(nil)
	for i := range 3 {
		r.ID[0] = byte(i)
		stream = AppendTuple(stream, &r)
	}
	stream = appendTrailer(stream)
	for cut := 0; cut <= len(stream); cut++ {
		var ids []byte
		st := newTupleStream(func(t []byte) error { ids = append(ids, TupleID(t)[0]); return nil })
		if _, err := st.Write(stream[:cut]); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if _, err := st.Write(stream[cut:]); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if err := st.Close(); err != nil || !bytes.Equal(ids, []byte{0, 1, 2}) {
			t.Fatalf("cut %d: ids %v, %v", cut, ids, err)
		}
	}
	st := newTupleStream(func([]byte) error { return nil })
	st.Write(stream[:len(stream)-2])
	if err := st.Close(); err == nil {
		t.Fatal("a stream without its trailer closed cleanly")
	}
}

func TestLocatorRoundTrip(t *testing.T) {
	id := func(seg, off uint64) (b [16]byte) {
		for i := range 8 {
			b[i] = byte(seg >> (56 - 8*i))
			b[8+i] = byte(off >> (56 - 8*i))
		}
		return b
	}
	rows := []Sealed{{ID: id(7, 19)}, {ID: id(7, 150)}, {ID: id(7, 100000)}, {ID: id(9, 19)}}
	for i := range rows {
		rows[i].Digest[0] = byte(i + 1)
	}
	b := encodeLocator(rows)
	// 0 + 16-byte id + 8; uvarint(131) = 2 bytes + 8; uvarint(99850) = 3
	// bytes + 8; a new segment: 0 + 16 + 8.
	if len(b) != 25+10+11+25 {
		t.Fatalf("locator of %d bytes", len(b))
	}
	got, err := decodeLocator(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if got[i].ID != rows[i].ID || got[i].Prefix[0] != byte(i+1) {
			t.Fatalf("entry %d: %+v", i, got[i])
		}
	}
	for _, bad := range [][]byte{{5}, b[:len(b)-1], {0, 1, 2}} {
		if _, err := decodeLocator(bad); err == nil {
			t.Fatalf("locator %x decoded", bad)
		}
	}
}

// FuzzTupleStream feeds archive bytes (outside input) split at any point:
// the parser must not panic, and every tuple it passes on must parse.
func FuzzTupleStream(f *testing.F) {
	r := sampleRow()
	stream := appendTrailer(AppendTuple(appendHeader(nil), &r))
	f.Add(stream, 10)
	f.Add(stream[:30], 3)
	f.Add([]byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\xff\xff\xff\xff"), 5)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		if cut < 0 || cut > len(b) {
			cut = len(b) / 2
		}
		st := newTupleStream(func(tu []byte) error {
			if _, err := ParseTuple(tu); err != nil && !errors.Is(err, ErrBadTuple) {
				t.Fatalf("tuple %x: %v", tu, err)
			}
			return nil
		})
		if _, err := st.Write(b[:cut]); err != nil {
			return
		}
		if _, err := st.Write(b[cut:]); err != nil {
			return
		}
		_ = st.Close()
	})
}

func TestSealedBetween(t *testing.T) {
	id := func(seg, off uint64) (b [16]byte) {
		for i := range 8 {
			b[i] = byte(seg >> (56 - 8*i))
			b[8+i] = byte(off >> (56 - 8*i))
		}
		return b
	}
	// Segment 0 sealed offsets 100-200 of spool segment 7, segment 1 the
	// found block's share at 500.
	x := &index{runs: []runRef{{Run: Run{Prefix: 7, First: 100, Last: 200}}, {Run: Run{Prefix: 7, First: 500, Last: 500}, seg: 1}}}
	for _, tc := range []struct {
		a, b [16]byte
		want bool
	}{
		{id(7, 10), id(7, 20), false},
		{id(7, 10), id(7, 300), true},
		{id(7, 300), id(7, 400), false},
		{id(7, 400), id(7, 600), true},
		{id(7, 600), id(7, 700), false},
		{id(7, 10), id(8, 120), false}, // another spool segment: a new run anyway
		{id(6, 10), id(6, 900), false},
	} {
		if got := x.sealedBetween(tc.a, tc.b); got != tc.want {
			t.Errorf("between %x and %x: %v, want %v", tc.a[8:], tc.b[8:], got, tc.want)
		}
	}
	if x.lookup(id(7, 150)) != 0 || x.lookup(id(7, 500)) != 1 || x.lookup(id(7, 300)) != -1 || x.lookup(id(7, 99)) != -1 {
		t.Fatal("lookup")
	}
}
