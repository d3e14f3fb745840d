package work

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Coinbase script limits (consensus: 2 to 100 bytes).
const (
	minCoinbaseScript = 2
	maxCoinbaseScript = 100
	// maxHeightPush is the longest BIP34 height push: heights up to
	// 2^31-1 need four bytes of CScriptNum plus the push opcode.
	maxHeightPush = 5
	// maxHeight is the largest height a coinbase can encode the way
	// Bitcoin Core does (its heights are int).
	maxHeight = math.MaxInt32
)

// Script opcodes used in the coinbase script.
const (
	op0         = 0x00
	op1         = 0x51
	opPushData1 = 0x4c
)

// heightPush returns the BIP34 block height push exactly as Bitcoin Core's
// `CScript() << height` builds it, which is what the consensus check
// compares the coinbase script's prefix with: OP_1..OP_16 for heights 1 to
// 16, otherwise a direct push of the minimal CScriptNum encoding (little
// endian, with a 0x00 byte appended when the top bit would read as a sign).
func heightPush(height int64) ([]byte, error) {
	if height < 1 || height > maxHeight {
		return nil, fmt.Errorf("height %d out of range [1, %d]", height, maxHeight)
	}
	if height <= 16 {
		return []byte{byte(op1 - 1 + height)}, nil
	}
	num := make([]byte, 1, maxHeightPush)
	for v := height; v > 0; v >>= 8 {
		num = append(num, byte(v))
	}
	if num[len(num)-1]&0x80 != 0 {
		num = append(num, 0x00)
	}
	num[0] = byte(len(num) - 1)
	return num, nil
}

// parseHeightPush reads a BIP34 height from the start of a coinbase
// script (the inverse of heightPush). ok is false when the script does not
// start with a height push in Core's encoding.
func parseHeightPush(script []byte) (height int64, ok bool) {
	if len(script) == 0 {
		return 0, false
	}
	op := script[0]
	if op >= op1 && op <= op1+15 {
		return int64(op-op1) + 1, true
	}
	if op == op0 || op > 5 || len(script) < 1+int(op) {
		return 0, false
	}
	num := script[1 : 1+int(op)]
	if num[len(num)-1]&0x80 != 0 {
		return 0, false // negative
	}
	for i := len(num) - 1; i >= 0; i-- {
		height = height<<8 | int64(num[i])
	}
	push, err := heightPush(height)
	if err != nil || len(push) != 1+len(num) {
		return 0, false // not Core's canonical form
	}
	return height, true
}

// dataPush returns a script push of data (direct push up to 75 bytes,
// OP_PUSHDATA1 up to 255). An empty slice pushes nothing.
func dataPush(data []byte) []byte {
	switch n := len(data); {
	case n == 0:
		return nil
	case n <= 75:
		return append([]byte{byte(n)}, data...)
	default: // callers keep data under 256 bytes (coinbase script limit)
		return append([]byte{opPushData1, byte(n)}, data...)
	}
}

// pushLen is len(dataPush(data)) without building it.
func pushLen(n int) int {
	switch {
	case n == 0:
		return 0
	case n <= 75:
		return 1 + n
	default:
		return 2 + n
	}
}

// txOut is one coinbase output.
type txOut struct {
	value  int64
	script []byte
	// feeBps, on a solo job's fee output, is the share of the reward it
	// takes (see Builder.BuildFor).
	feeBps int64
}

// coinbaseParts serializes the coinbase transaction without witness and
// returns it split around the extranonce space: coinb1 ends inside the
// input script right before the extranonce, coinb2 starts right after it.
//
// Layout: version 2 | 1 input: null outpoint (32 zero bytes, index
// 0xffffffff) | script = prefix, then extranonceLen bytes | sequence
// 0xffffffff | outputs | lock time 0.
func coinbaseParts(prefix []byte, extranonceLen int, outs []txOut) (coinb1, coinb2 []byte) {
	scriptLen := len(prefix) + extranonceLen
	coinb1 = make([]byte, 0, 4+1+36+1+len(prefix))
	coinb1 = binary.LittleEndian.AppendUint32(coinb1, 2)
	coinb1 = append(coinb1, 1)
	coinb1 = append(coinb1, make([]byte, 32)...)
	coinb1 = binary.LittleEndian.AppendUint32(coinb1, 0xffffffff)
	coinb1 = appendVarInt(coinb1, uint64(scriptLen))
	coinb1 = append(coinb1, prefix...)

	size := 4 + 9 + 4
	for _, o := range outs {
		size += 8 + 9 + len(o.script)
	}
	coinb2 = make([]byte, 0, size)
	coinb2 = binary.LittleEndian.AppendUint32(coinb2, 0xffffffff)
	coinb2 = appendVarInt(coinb2, uint64(len(outs)))
	for _, o := range outs {
		coinb2 = binary.LittleEndian.AppendUint64(coinb2, uint64(o.value))
		coinb2 = appendVarInt(coinb2, uint64(len(o.script)))
		coinb2 = append(coinb2, o.script...)
	}
	coinb2 = binary.LittleEndian.AppendUint32(coinb2, 0)
	return coinb1, coinb2
}

// appendVarInt appends Bitcoin's CompactSize encoding of v.
func appendVarInt(b []byte, v uint64) []byte {
	switch {
	case v < 0xfd:
		return append(b, byte(v))
	case v <= math.MaxUint16:
		return binary.LittleEndian.AppendUint16(append(b, 0xfd), uint16(v))
	case v <= math.MaxUint32:
		return binary.LittleEndian.AppendUint32(append(b, 0xfe), uint32(v))
	default:
		return binary.LittleEndian.AppendUint64(append(b, 0xff), v)
	}
}
