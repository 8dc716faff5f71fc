// Package ringstat measures how key-placement schemes spread keys: balance
// across members, accuracy of weighted shares, and how many keys move when
// the member set changes. It compares carp rings with two baselines (a
// ketama-style ring and jump consistent hashing) and backs the ring
// benchmarks and cmd/carp-report.
//
// Everything here is deterministic: key sets come from fixed seeds, and the
// parallel helpers write each key's result to its own slot, so the output
// never depends on scheduling.
package ringstat

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// Shape is a family of keys.
type Shape int

const (
	// Sequential keys are "user:0", "user:1", ...: long shared prefixes
	// and low-entropy suffixes, the common worst case for weak hashes.
	Sequential Shape = iota
	// Random keys are 16 uniformly random bytes.
	Random
	// URL keys are URL-like paths with shared prefixes and several
	// numeric fields, drawn from a handful of templates.
	URL
)

// Shapes lists every shape in report order.
var Shapes = []Shape{Sequential, Random, URL}

func (s Shape) String() string {
	switch s {
	case Sequential:
		return "sequential"
	case Random:
		return "random"
	case URL:
		return "url"
	}
	return fmt.Sprintf("Shape(%d)", int(s))
}

// ParseShape is the inverse of Shape.String.
func ParseShape(s string) (Shape, error) {
	for _, sh := range Shapes {
		if sh.String() == s {
			return sh, nil
		}
	}
	return 0, fmt.Errorf("ringstat: unknown key shape %q (want sequential, random or url)", s)
}

// Keys returns n keys of the given shape. Random and URL keys are a function
// of seed; sequential keys ignore it (they are always user:0 .. user:n-1).
func Keys(shape Shape, n int, seed uint64) [][]byte {
	switch shape {
	case Sequential:
		return SequentialKeys(n)
	case Random:
		return RandomKeys(n, 16, seed)
	case URL:
		return URLKeys(n, seed)
	}
	panic(fmt.Sprintf("ringstat: unknown shape %d", int(shape)))
}

// newRand returns the package's generator: PCG with a fixed second word, so
// one uint64 seed names one stream.
func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

// keyBuffer packs keys back to back in one allocation; slicing happens at the
// end because appends may move the buffer.
type keyBuffer struct {
	buf  []byte
	ends []int
}

func newKeyBuffer(n, avgLen int) *keyBuffer {
	return &keyBuffer{buf: make([]byte, 0, n*avgLen), ends: make([]int, 0, n)}
}

func (kb *keyBuffer) end() { kb.ends = append(kb.ends, len(kb.buf)) }

func (kb *keyBuffer) keys() [][]byte {
	out := make([][]byte, len(kb.ends))
	start := 0
	for i, e := range kb.ends {
		out[i] = kb.buf[start:e:e] // full slice: appending to a key cannot clobber the next
		start = e
	}
	return out
}

// SequentialKeys returns "user:0" .. "user:<n-1>".
func SequentialKeys(n int) [][]byte {
	kb := newKeyBuffer(n, 12)
	for i := range n {
		kb.buf = append(kb.buf, "user:"...)
		kb.buf = strconv.AppendInt(kb.buf, int64(i), 10)
		kb.end()
	}
	return kb.keys()
}

// RandomKeys returns n keys of length uniformly random bytes each.
func RandomKeys(n, length int, seed uint64) [][]byte {
	rng := newRand(seed)
	buf := make([]byte, n*length)
	for i := 0; i < len(buf); i += 8 {
		v := rng.Uint64()
		for j := i; j < i+8 && j < len(buf); j++ {
			buf[j] = byte(v)
			v >>= 8
		}
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = buf[i*length : (i+1)*length : (i+1)*length]
	}
	return out
}

var (
	urlSections = []string{"users", "accounts", "orders", "products", "teams"}
	urlSorts    = []string{"newest", "oldest", "price", "rating"}
	urlExts     = []string{".png", ".jpg", ".css", ".js"}
	urlHosts    = []string{"cdn1", "cdn2", "static", "img"}
)

// URLKeys returns n URL-like paths drawn from five templates, e.g.
//
//	/api/v1/users/4821/orders/771038?page=3
//	/api/v2/products/90211/reviews?sort=price&page=12
//	/static/cdn2/assets/5f2c9a01d3e4b677.css
//	/blog/2019/07/post-88213.html
//	/search?q=term48213&lang=en&offset=40
//
// The numeric ranges make collisions negligible for a few million keys.
func URLKeys(n int, seed uint64) [][]byte {
	rng := newRand(seed)
	kb := newKeyBuffer(n, 40)
	b := kb.buf
	for range n {
		switch rng.IntN(5) {
		case 0:
			b = append(b, "/api/v1/"...)
			b = append(b, urlSections[rng.IntN(len(urlSections))]...)
			b = append(b, '/')
			b = strconv.AppendInt(b, int64(rng.IntN(10_000_000)), 10)
			b = append(b, "/orders/"...)
			b = strconv.AppendInt(b, int64(rng.IntN(1_000_000_000)), 10)
			b = append(b, "?page="...)
			b = strconv.AppendInt(b, int64(1+rng.IntN(50)), 10)
		case 1:
			b = append(b, "/api/v2/products/"...)
			b = strconv.AppendInt(b, int64(rng.IntN(100_000_000)), 10)
			b = append(b, "/reviews?sort="...)
			b = append(b, urlSorts[rng.IntN(len(urlSorts))]...)
			b = append(b, "&page="...)
			b = strconv.AppendInt(b, int64(1+rng.IntN(100)), 10)
		case 2:
			b = append(b, "/static/"...)
			b = append(b, urlHosts[rng.IntN(len(urlHosts))]...)
			b = append(b, "/assets/"...)
			b = strconv.AppendUint(b, rng.Uint64(), 16)
			b = append(b, urlExts[rng.IntN(len(urlExts))]...)
		case 3:
			b = append(b, "/blog/"...)
			b = strconv.AppendInt(b, int64(2000+rng.IntN(26)), 10)
			b = append(b, '/')
			m := 1 + rng.IntN(12)
			if m < 10 {
				b = append(b, '0')
			}
			b = strconv.AppendInt(b, int64(m), 10)
			b = append(b, "/post-"...)
			b = strconv.AppendInt(b, int64(rng.IntN(1_000_000_000)), 10)
			b = append(b, ".html"...)
		default:
			b = append(b, "/search?q=term"...)
			b = strconv.AppendInt(b, int64(rng.IntN(1_000_000_000)), 10)
			b = append(b, "&lang=en&offset="...)
			b = strconv.AppendInt(b, int64(20*rng.IntN(50)), 10)
		}
		kb.buf = b
		kb.end()
	}
	return kb.keys()
}
