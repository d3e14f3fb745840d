package payout

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// TestSumMatchesRat: the scaled-integer sum agrees with big.Rat on every
// operation, over values from subnormal to huge.
func TestSumMatchesRat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() float64 {
		switch rng.IntN(6) {
		case 0:
			return 0
		case 1:
			return math.SmallestNonzeroFloat64 * float64(1+rng.IntN(1000))
		case 2:
			return rng.Float64() * 1e-10
		case 3:
			return float64(rng.IntN(1 << 20))
		case 4:
			return rng.ExpFloat64() * 1e15
		}
		return rng.Float64()
	}
	var tmp, a, b big.Int
	for range 200 {
		var s sum
		ref := new(big.Rat)
		for range 50 {
			f := pick()
			if rng.IntN(4) == 0 {
				s.subFloat(f, &tmp)
				ref.Sub(ref, new(big.Rat).SetFloat64(f))
			} else {
				s.addFloat(f, &tmp)
				ref.Add(ref, new(big.Rat).SetFloat64(f))
			}
			if s.rat().Cmp(ref) != 0 {
				t.Fatalf("sum %s, big.Rat %s", s.rat().RatString(), ref.RatString())
			}
			g := pick()
			want := ref.Cmp(new(big.Rat).SetFloat64(g))
			if got := s.cmpFloatScratch(g, &a, &b); got != want {
				t.Fatalf("cmp(%s, %g) = %d, want %d", ref.RatString(), g, got, want)
			}
		}
		var other sum
		other.addFloat(pick(), &tmp)
		ref.Add(ref, other.rat())
		s.add(&other)
		back, ok := sumOfRat(s.rat())
		if s.rat().Cmp(ref) != 0 || !ok || back.rat().Cmp(ref) != 0 {
			t.Fatalf("add/sumOfRat: %s, want %s", s.rat().RatString(), ref.RatString())
		}
	}
	if _, ok := sumOfRat(big.NewRat(1, 3)); ok {
		t.Fatal("1/3 taken as a binary fraction")
	}
}
