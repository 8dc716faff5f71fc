package carp

import (
	"math"
	"testing"
)

// Vectors published in Wessels, "Web Caching" (O'Reilly, 2001), appendix C,
// computed with the draft's reference functions.
func TestMemberHashMatchesPublishedVectors(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want uint32
	}{
		{"test1.ircache.net", 0x96010320},
		{"test2.web-cache.com", 0x84965f0f},
		{"test3.squid-cache.org", 0x4f5d7332},
		{"test4.packet-pushers.com", 0xa79af670},
	} {
		if got := MemberHash(tc.id); got != tc.want {
			t.Errorf("MemberHash(%q) = %#08x, want %#08x", tc.id, got, tc.want)
		}
	}
}

func TestKeyHashMatchesPublishedVector(t *testing.T) {
	if got, want := KeyHash([]byte("http://www.squid-cache.org/")), uint32(0x16073a01); got != want {
		t.Errorf("KeyHash = %#08x, want %#08x", got, want)
	}
	if got := KeyHash(nil); got != 0 {
		t.Errorf("KeyHash(nil) = %#x, want 0", got)
	}
}

func TestLoadFactorsMatchPublishedVector(t *testing.T) {
	// Caller's order is kept: the weight-3 member comes first here.
	got := LoadFactors([]float64{3, 1, 2, 1})
	want := []float64{1.242318, 0.869442, 1.064844, 0.869442}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 5e-6 {
			t.Errorf("multiplier %d = %.6f, want %.6f", i, got[i], want[i])
		}
	}
	if got[1] != got[3] {
		t.Errorf("equal loads got different multipliers: %v vs %v", got[1], got[3])
	}
}

func TestLoadFactorsAreScaleFree(t *testing.T) {
	a := LoadFactors([]float64{1, 2, 3, 4})
	b := LoadFactors([]float64{0.1, 0.2, 0.3, 0.4})
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-12 {
			t.Errorf("multiplier %d: %v for loads 1..4, %v for 0.1..0.4", i, a[i], b[i])
		}
	}
	if n := len(LoadFactors(nil)); n != 0 {
		t.Errorf("LoadFactors(nil) has %d entries", n)
	}
}

// With independent uniform scores, member i of multiplier x_i wins with a
// probability computable in closed form; the draft's multipliers must make
// that probability equal the member's load. This checks the formula itself,
// independent of any hash.
func TestLoadFactorsGiveExactSharesForUniformScores(t *testing.T) {
	for _, loads := range [][]float64{{1, 1, 2, 3}, {1, 2, 3, 4}, {5, 1}, {1, 1, 1}, {0.3, 2.5, 1, 1, 4}} {
		x := LoadFactors(loads)
		var sum float64
		for _, l := range loads {
			sum += l
		}
		for i := range loads {
			if got, want := winProbability(x, i), loads[i]/sum; math.Abs(got-want) > 1e-9 {
				t.Errorf("loads %v: member %d wins %.9f, want %.9f", loads, i, got, want)
			}
		}
	}
}

// winProbability integrates P(U_i*x_i > U_j*x_j for all j != i) for
// independent U ~ Uniform(0,1) with Simpson's rule over u = U_i*x_i, on each
// piece between breakpoints where the integrand is a polynomial.
func winProbability(x []float64, i int) float64 {
	f := func(s float64) float64 { // density of winning at score s, times x_i
		p := 1.0
		for j, xj := range x {
			if j != i {
				p *= math.Min(1, s/xj)
			}
		}
		return p
	}
	points := []float64{0, x[i]}
	for _, xj := range x {
		if xj < x[i] {
			points = append(points, xj)
		}
	}
	sortFloats(points)
	var total float64
	for k := 0; k+1 < len(points); k++ {
		a, b := points[k], points[k+1]
		const steps = 2000
		h := (b - a) / steps
		acc := f(a) + f(b)
		for s := 1; s < steps; s++ {
			w := 2.0
			if s%2 == 1 {
				w = 4
			}
			acc += w * f(a+float64(s)*h)
		}
		total += acc * h / 3
	}
	return total / x[i]
}

func sortFloats(v []float64) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

func TestCombineIsTheDraftFormula(t *testing.T) {
	// Worked by hand from the draft: x = 0x16073a01 ^ 0x96010320 = 0x80063921;
	// x += x*0x62531965 (mod 2^32); rotl 21.
	x := uint32(0x16073a01 ^ 0x96010320)
	x += x * 0x62531965
	want := x<<21 | x>>11
	if got := Combine(0x96010320, 0x16073a01); got != want {
		t.Errorf("Combine = %#08x, want %#08x", got, want)
	}
}
