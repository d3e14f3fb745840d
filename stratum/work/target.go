package work

import (
	"errors"
	"fmt"
	"math"
	"math/big"

	"github.com/btcsuite/btcd/chainhash/v2"
)

// diff1Float is the difficulty-1 target 0xFFFF * 2^208 as a float64; it is
// exact because 0xFFFF needs only 16 bits of mantissa.
var diff1Float = math.Ldexp(0xFFFF, 208)

// diff1Int is the difficulty-1 target as an integer, for exact divisions.
var diff1Int = new(big.Int).Lsh(big.NewInt(0xFFFF), 208)

// maxTarget is 2^256-1, where easy difficulties saturate.
var maxTarget = func() Target {
	var t Target
	for i := range t {
		t[i] = 0xff
	}
	return t
}()

// ErrInvalidDiff is returned by ValidDiff for a difficulty that cannot be
// turned into a share target.
var ErrInvalidDiff = errors.New("invalid difficulty")

// ValidDiff reports whether d can be used as a share difficulty: finite and
// greater than zero. Fractional difficulties are legal (diff 0.001 is a
// target 1000 times easier than diff 1). Callers validate configuration and
// miner suggestions with it before calling TargetFromDiff.
func ValidDiff(d float64) error {
	if math.IsNaN(d) || math.IsInf(d, 0) || d <= 0 {
		return fmt.Errorf("%w: %v (must be finite and > 0)", ErrInvalidDiff, d)
	}
	return nil
}

// TargetFromDiff returns the share target diff1 / diff, rounded down, as a
// big-endian 256-bit number. Difficulties so small that the target exceeds
// 2^256-1 saturate at 2^256-1 (every hash meets it).
//
// A difficulty rejected by ValidDiff (zero, negative, NaN, infinite) yields
// the zero target, which no hash can meet: a forgotten validation then fails
// closed (shares rejected) instead of crediting everything.
func TargetFromDiff(diff float64) Target {
	if ValidDiff(diff) != nil {
		return Target{}
	}
	// diff = mant * 2^exp exactly, with mant a 53-bit integer, so the
	// division below is exact integer arithmetic on the float's value.
	frac, exp := math.Frexp(diff)
	mant := new(big.Int).SetUint64(uint64(math.Ldexp(frac, 53)))
	exp -= 53
	num := new(big.Int).Set(diff1Int)
	if exp >= 0 {
		mant.Lsh(mant, uint(exp))
	} else {
		num.Lsh(num, uint(-exp))
	}
	q := num.Quo(num, mant)
	if q.BitLen() > 256 {
		return maxTarget
	}
	var t Target
	q.FillBytes(t[:])
	return t
}

// TargetFromBits decodes a compact ("nBits") target. Encodings that are
// negative, zero or overflow 256 bits give the zero target, which no hash
// meets; CheckBits says why such an encoding is invalid.
func TargetFromBits(bits uint32) Target {
	t, err := targetFromBits(bits)
	if err != nil {
		return Target{}
	}
	return t
}

// CheckBits reports whether bits is a valid compact target: positive, not
// overflowing 256 bits.
func CheckBits(bits uint32) error {
	_, err := targetFromBits(bits)
	return err
}

// targetFromBits decodes the compact format the way Bitcoin Core's
// arith_uint256::SetCompact does: a 3-byte mantissa (bit 23 is the sign)
// times 256^(exponent-3).
func targetFromBits(bits uint32) (Target, error) {
	var t Target
	exponent := int(bits >> 24)
	mantissa := bits & 0x007fffff
	if bits&0x00800000 != 0 && mantissa != 0 {
		return t, fmt.Errorf("bits %08x: negative target", bits)
	}
	if exponent <= 3 {
		mantissa >>= 8 * uint(3-exponent)
		exponent = 3
	}
	if mantissa == 0 {
		return t, fmt.Errorf("bits %08x: zero target", bits)
	}
	if exponent > 34 || (mantissa > 0xff && exponent > 33) || (mantissa > 0xffff && exponent > 32) {
		return t, fmt.Errorf("bits %08x: target overflows 256 bits", bits)
	}
	// The least significant mantissa byte lands exponent-3 bytes above the
	// end of the big-endian array; higher bytes beyond the array are zero
	// (guaranteed by the overflow check above).
	for i := 0; i < 3; i++ {
		b := byte(mantissa >> (8 * uint(i)))
		pos := 31 - (exponent - 3) - i
		if pos >= 0 && pos < 32 {
			t[pos] = b
		}
	}
	return t, nil
}

// DiffFromHash returns the difficulty a hash achieves, diff1 / hash, as
// float64. h is in internal (little-endian) byte order, as a block header
// hash comes out of sha256d. A zero hash gives +Inf. It does not allocate.
func DiffFromHash(h *chainhash.Hash) float64 {
	var v float64
	for i := len(h) - 1; i >= 0; i-- {
		v = v*256 + float64(h[i])
	}
	return diff1Float / v
}

// Diff returns the difficulty of the target, diff1 / target (+Inf for the
// zero target).
func (t *Target) Diff() float64 {
	var v float64
	for _, b := range t {
		v = v*256 + float64(b)
	}
	return diff1Float / v
}

// Meets reports whether the hash, in internal little-endian byte order, is
// less than or equal to the big-endian target: the proof-of-work rule. It
// compares byte by byte from the most significant end and does not
// allocate.
func (t *Target) Meets(h *chainhash.Hash) bool {
	for i := 0; i < 32; i++ {
		hb := h[31-i]
		if hb != t[i] {
			return hb < t[i]
		}
	}
	return true
}

// String returns the target as 64 lowercase hex digits, most significant
// first (the form getblocktemplate's "target" uses).
func (t Target) String() string {
	return fmt.Sprintf("%x", t[:])
}
