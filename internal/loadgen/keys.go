package loadgen

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// Dist is how keys are drawn from the key space.
type Dist string

// The key distributions.
const (
	// Uniform draws every key with the same probability.
	Uniform Dist = "uniform"
	// Zipf draws key i with probability proportional to 1/(1+i)^s: key 0
	// is the hottest.
	Zipf Dist = "zipf"
)

// ParseDist accepts "uniform" and "zipf".
func ParseDist(s string) (Dist, error) {
	switch d := Dist(s); d {
	case Uniform, Zipf:
		return d, nil
	}
	return "", fmt.Errorf("unknown distribution %q: want uniform or zipf", s)
}

// KeyPicker draws key indexes in [0, n). Its sequence is a function of its
// seed only. Not safe for concurrent use.
type KeyPicker interface {
	Next() int
}

// NewKeyPicker returns a picker over n keys drawing with dist (zipfS is
// Zipf's exponent, > 1), seeded with seed.
func NewKeyPicker(dist Dist, n int, zipfS float64, seed [2]uint64) (KeyPicker, error) {
	if n < 1 {
		return nil, fmt.Errorf("key space of %d keys: want at least 1", n)
	}
	rng := rand.New(rand.NewPCG(seed[0], seed[1]))
	switch dist {
	case Uniform:
		return &uniformPicker{rng: rng, n: n}, nil
	case Zipf:
		if !(zipfS > 1) {
			return nil, fmt.Errorf("zipf exponent %v: want > 1", zipfS)
		}
		return &zipfPicker{z: rand.NewZipf(rng, zipfS, 1, uint64(n-1))}, nil
	}
	return nil, fmt.Errorf("unknown distribution %q", dist)
}

type uniformPicker struct {
	rng *rand.Rand
	n   int
}

func (p *uniformPicker) Next() int { return p.rng.IntN(p.n) }

type zipfPicker struct{ z *rand.Zipf }

func (p *zipfPicker) Next() int { return int(p.z.Uint64()) }

// MinKeySize is the shortest key size that keeps n keys distinct: "k" and
// the digits of n-1.
func MinKeySize(n int) int { return 1 + len(strconv.Itoa(max(n-1, 0))) }

// AppendKey appends key i of a key space to dst: "k" then i zero-padded
// to size bytes in all ("k00000000000042" for size 16). size must be at
// least MinKeySize of the key space.
func AppendKey(dst []byte, i, size int) []byte {
	dst = append(dst, 'k')
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], int64(i), 10)
	for range size - 1 - len(d) {
		dst = append(dst, '0')
	}
	return append(dst, d...)
}
