package work

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/btcsuite/btcd/txscript/v2"
)

// TestHeightPush checks BIP34 height pushes against Bitcoin Core's
// `CScript() << height` encoding (and btcd's standardCoinbaseScript, which
// uses ScriptBuilder.AddInt64 the same way). 840000's push 0340d10c is the
// start of mainnet block 840000's coinbase script.
func TestHeightPush(t *testing.T) {
	tests := []struct {
		height int64
		want   string
	}{
		{1, "51"}, // OP_1
		{16, "60"},
		{17, "0111"},
		{127, "017f"},
		{128, "028000"}, // 0x80 alone would read as negative zero
		{255, "02ff00"},
		{256, "020001"},
		{32767, "02ff7f"},
		{32768, "03008000"},
		{8388607, "03ffff7f"},
		{8388608, "0400008000"},
		{840000, "0340d10c"},
		{227931, "035b7a03"}, // BIP34 activation height on mainnet
		{maxHeight, "04ffffff7f"},
	}
	for _, tc := range tests {
		got, err := heightPush(tc.height)
		if err != nil {
			t.Fatalf("heightPush(%d): %v", tc.height, err)
		}
		if hex.EncodeToString(got) != tc.want {
			t.Errorf("heightPush(%d) = %x, want %s", tc.height, got, tc.want)
		}
		btcd, err := txscript.NewScriptBuilder().AddInt64(tc.height).Script()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, btcd) {
			t.Errorf("heightPush(%d) = %x, btcd ScriptBuilder %x", tc.height, got, btcd)
		}
		h, ok := parseHeightPush(append(got, 0x04, 1, 2, 3, 4))
		if !ok || h != tc.height {
			t.Errorf("parseHeightPush(%x) = %d, %v", got, h, ok)
		}
	}
	for _, bad := range []int64{0, -1, maxHeight + 1} {
		if _, err := heightPush(bad); err == nil {
			t.Errorf("heightPush(%d) succeeded", bad)
		}
	}
	// Non-canonical or foreign script starts are not heights.
	for _, s := range []string{"", "00", "0180", "020100", "4c0111", "0601020304050607", "03ffff"} {
		if h, ok := parseHeightPush(mustHex(t, s)); ok {
			t.Errorf("parseHeightPush(%s) = %d", s, h)
		}
	}
}

func TestAppendVarInt(t *testing.T) {
	tests := []struct {
		v    uint64
		want string
	}{
		{0, "00"}, {0xfc, "fc"}, {0xfd, "fdfd00"}, {0xffff, "fdffff"},
		{0x10000, "fe00000100"}, {0xffffffff, "feffffffff"}, {0x100000000, "ff0000000001000000"},
	}
	for _, tc := range tests {
		if got := hex.EncodeToString(appendVarInt(nil, tc.v)); got != tc.want {
			t.Errorf("appendVarInt(%d) = %s, want %s", tc.v, got, tc.want)
		}
	}
}

func TestDataPush(t *testing.T) {
	if dataPush(nil) != nil || pushLen(0) != 0 {
		t.Error("empty data must push nothing")
	}
	for _, n := range []int{1, 75, 76, 255} {
		data := bytes.Repeat([]byte{'x'}, n)
		p := dataPush(data)
		if len(p) != pushLen(n) {
			t.Errorf("len(dataPush(%d)) = %d, pushLen %d", n, len(p), pushLen(n))
		}
		// The push must parse back as exactly this data.
		tok := txscript.MakeScriptTokenizer(0, p)
		if !tok.Next() || !bytes.Equal(tok.Data(), data) || tok.Next() || tok.Err() != nil {
			t.Errorf("dataPush(%d) = %x does not parse as one push", n, p)
		}
	}
}
