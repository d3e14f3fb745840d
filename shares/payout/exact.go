package payout

import (
	"math"
	"math/big"
	"math/bits"
	"strings"
)

// sum is an exact sum of float64 values: m * 2^e. Every finite float64 is
// an integer times a power of two, so a sum of them is one too; keeping
// it as a big integer and one exponent adds without rounding and without
// the gcd work of big.Rat on every share (measured: what keeps a window of
// millions of shares under a second). Results leave as big.Rat.
type sum struct {
	m big.Int
	e int
}

// splitFloat returns f = mant * 2^exp with mant odd (or zero). f must be
// finite and non-negative.
func splitFloat(f float64) (mant uint64, exp int) {
	if f == 0 {
		return 0, 0
	}
	frac, e := math.Frexp(f)
	mant = uint64(math.Ldexp(frac, 53))
	exp = e - 53
	tz := bits.TrailingZeros64(mant)
	return mant >> tz, exp + tz
}

// align lowers d's exponent to e (e <= d.e) without changing its value.
func (d *sum) align(e int) {
	if e < d.e {
		if d.m.Sign() != 0 {
			d.m.Lsh(&d.m, uint(d.e-e))
		}
		d.e = e
	}
}

// addFloat adds f (finite, non-negative); tmp is scratch.
func (d *sum) addFloat(f float64, tmp *big.Int) {
	mant, exp := splitFloat(f)
	if mant == 0 {
		return
	}
	if d.m.Sign() == 0 {
		d.m.SetUint64(mant)
		d.e = exp
		return
	}
	d.align(exp)
	tmp.SetUint64(mant)
	tmp.Lsh(tmp, uint(exp-d.e))
	d.m.Add(&d.m, tmp)
}

// subFloat subtracts f (finite, non-negative); tmp is scratch.
func (d *sum) subFloat(f float64, tmp *big.Int) {
	mant, exp := splitFloat(f)
	if mant == 0 {
		return
	}
	d.align(exp)
	tmp.SetUint64(mant)
	tmp.Lsh(tmp, uint(exp-d.e))
	d.m.Sub(&d.m, tmp)
}

// cmpFloatScratch compares d with f (finite, non-negative) using a and b
// as scratch, so a walk compares without allocating.
func (d *sum) cmpFloatScratch(f float64, a, b *big.Int) int {
	mant, exp := splitFloat(f)
	if mant == 0 {
		return d.m.Sign()
	}
	e := min(d.e, exp)
	a.Lsh(&d.m, uint(d.e-e))
	b.SetUint64(mant)
	b.Lsh(b, uint(exp-e))
	return a.Cmp(b)
}

// add adds another exact sum.
func (d *sum) add(o *sum) {
	if o.m.Sign() == 0 {
		return
	}
	if d.m.Sign() == 0 {
		d.m.Set(&o.m)
		d.e = o.e
		return
	}
	d.align(o.e)
	var t big.Int
	t.Lsh(&o.m, uint(o.e-d.e))
	d.m.Add(&d.m, &t)
}

// rat returns the sum as a big.Rat.
func (d *sum) rat() *big.Rat {
	r := new(big.Rat).SetInt(&d.m)
	if d.e > 0 {
		return r.Mul(r, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), uint(d.e))))
	}
	if d.e < 0 {
		return r.Quo(r, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), uint(-d.e))))
	}
	return r
}

// sumOfRat converts a dyadic rational (denominator a power of two, as
// every value here is) into a sum; ok is false for any other rational.
func sumOfRat(r *big.Rat) (s sum, ok bool) {
	den := r.Denom()
	if den.Sign() <= 0 || den.BitLen()-1 != int(den.TrailingZeroBits()) {
		return s, false
	}
	s.m.Set(r.Num())
	s.e = -int(den.TrailingZeroBits())
	return s, true
}

// Decimal prints a rational exactly when its decimal expansion is finite
// (every dyadic rational's is: each difficulty here is a sum of float64
// values), trimmed of trailing zeros; other rationals are printed rounded
// to 40 decimal places and marked with a trailing "~".
func Decimal(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	den := new(big.Int).Set(r.Denom())
	twos := den.TrailingZeroBits()
	den.Rsh(den, twos)
	fives := uint(0)
	five := big.NewInt(5)
	var q, m big.Int
	for den.Cmp(big.NewInt(1)) != 0 {
		q.QuoRem(den, five, &m)
		if m.Sign() != 0 {
			return r.FloatString(40) + "~"
		}
		den.Set(&q)
		fives++
	}
	s := r.FloatString(int(max(twos, fives)))
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
