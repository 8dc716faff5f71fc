// Package carp places keys on weighted members with the Cache Array Routing
// Protocol (draft-vinod-carp-v1-03): every member scores every key, the
// highest score wins, and per-member load-factor multipliers skew the scores
// so that each member wins its weighted share of the keys.
//
// The package is pure: no I/O, no goroutines, no clocks, no globals, no
// locks. A Ring is an immutable value; Owner and Rank are functions of the
// ring and the key, deterministic across processes and platforms.
//
// Two scoring modes exist. ModeSpec reproduces the draft bit for bit (its
// published test vectors are in the tests). ModeStrong, the default, keeps
// CARP's structure (highest score wins, the draft's multipliers) but scores
// with 64-bit hashes and a full finaliser, because the draft's combine
// function mixes too weakly to balance keys: see docs/carp.md.
package carp

import (
	"math"
	"math/bits"
	"sort"
)

// carpPrime is the multiplier of the draft's hash mixing step.
const carpPrime = 0x62531965

// KeyHash is the draft's URL hash (section 3.1), applied to a key:
//
//	for each octet c: h += rotl(h, 19) + c
//
// in unsigned 32-bit arithmetic, starting from zero. Octets are unsigned.
func KeyHash(key []byte) uint32 {
	var h uint32
	for _, c := range key {
		h += bits.RotateLeft32(h, 19) + uint32(c)
	}
	return h
}

// MemberHash is the draft's proxy (member) hash (section 3.1): the URL hash
// of the member's name followed by h += h*0x62531965 and rotl(h, 21).
func MemberHash(id string) uint32 {
	var h uint32
	for i := 0; i < len(id); i++ {
		h += bits.RotateLeft32(h, 19) + uint32(id[i])
	}
	h += h * carpPrime
	return bits.RotateLeft32(h, 21)
}

// Combine is the draft's combination of a member hash and a key hash
// (section 3.2): x = key ^ member; x += x*0x62531965; rotl(x, 21).
//
// This is the weak step that ModeStrong replaces: after the rotation the top
// bits of the result come from the low bits of key^member, so the scores a
// key receives from different members are correlated.
func Combine(memberHash, keyHash uint32) uint32 {
	x := keyHash ^ memberHash
	x += x * carpPrime
	return bits.RotateLeft32(x, 21)
}

// LoadFactors returns the draft's load-factor multipliers (section 3.3) for
// the given relative loads, in the caller's order. Loads are normalised to
// sum to 1 first; they must be positive and finite (Ring validation ensures
// it; here a bad load yields NaN multipliers rather than a panic).
//
// With K members and loads P_1 <= ... <= P_K (sorted ascending):
//
//	X_1 = (K*P_1)^(1/K)
//	X_n = ((K-n+1)*(P_n - P_{n-1}) / (X_1*...*X_{n-1}) + X_{n-1}^(K-n+1))^(1/(K-n+1))
//
// Where two sorted loads are equal the formula reduces analytically to
// X_n = X_{n-1}; we take that value directly so members of equal weight get
// bit-identical multipliers (pow round trips are not exact in float64).
// Computation is float64 throughout; explicit conversions stop the compiler
// from fusing multiply-adds, which would make results differ by platform.
func LoadFactors(relativeLoads []float64) []float64 {
	k := len(relativeLoads)
	out := make([]float64, k)
	if k == 0 {
		return out
	}
	var sum float64
	for _, l := range relativeLoads {
		sum += l
	}
	order := make([]int, k)
	for i := range order {
		order[i] = i
	}
	// Stable so the result is independent of sort implementation details.
	sort.SliceStable(order, func(a, b int) bool {
		return relativeLoads[order[a]] < relativeLoads[order[b]]
	})

	var (
		product = 1.0 // X_1 * ... * X_{n-1}
		xLast   = 0.0 // X_{n-1}; zero makes the first pow term vanish
		pLast   = 0.0 // P_{n-1}
	)
	for n := 1; n <= k; n++ {
		i := order[n-1]
		p := relativeLoads[i] / sum
		var x float64
		if n > 1 && p == pLast {
			x = xLast
		} else {
			kn := float64(k - n + 1)
			x = float64(kn*(p-pLast)) / product
			x = float64(x + math.Pow(xLast, kn))
			x = math.Pow(x, 1/kn)
		}
		out[i] = x
		product = float64(product * x)
		xLast, pLast = x, p
	}
	return out
}
