package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram is a log-linear latency histogram in the manner of
// HdrHistogram: every power of two of nanoseconds is split into
// 2^subBits equal buckets, so a bucket is at most 1/128 of its lower
// bound wide and a quantile read from it (its midpoint) is within 0.4% of
// the recorded value, from 1µs to MaxValue. Values below 128ns are exact.
// It has a fixed size (~30 KiB), records in constant time without
// allocating, and merges by adding buckets.
//
// A Histogram is not safe for concurrent use: give each worker its own and
// Merge them at the end.
type Histogram struct {
	counts   [numBuckets]uint64
	n        uint64
	sum      float64 // ns, for the mean
	min, max time.Duration
	clamped  uint64 // values above MaxValue, counted in its bucket
}

const (
	subBits  = 7
	subCount = 1 << subBits
	// MaxValue is the largest value the buckets resolve; larger values are
	// counted in its bucket (Max still reports them exactly).
	MaxValue = 60 * time.Second
)

// numBuckets covers [0, MaxValue]: bucketOf(MaxValue)+1 (checked by a test).
const numBuckets = 3808

// bucketOf is the index of v's bucket: v itself below subCount, then
// subCount buckets per power of two.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - 1 - subBits
	return (shift+1)<<subBits + int(v>>shift) - subCount
}

// bucketRange is the lowest value of bucket i and its width.
func bucketRange(i int) (lo, width uint64) {
	if i < subCount {
		return uint64(i), 1
	}
	shift := uint(i>>subBits) - 1
	return uint64(i&(subCount-1)+subCount) << shift, 1 << shift
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{} }

// Record adds one value; negative values count as 0.
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 0)
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += float64(d)
	if d > MaxValue {
		h.clamped++
		d = MaxValue
	}
	h.counts[bucketOf(uint64(d))]++
}

// Merge adds every value of o (nil: none) to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
	h.clamped += o.clamped
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Min and Max are the exact extremes (0 when empty).
func (h *Histogram) Min() time.Duration { return h.min }
func (h *Histogram) Max() time.Duration { return h.max }

// Mean is the exact mean (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value at quantile q in [0, 1]: the value of rank
// ceil(q·n) (at least 1) in sorted order, to within the bucket precision,
// and never outside [Min, Max]. Quantile(1) is Max exactly. 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, w := bucketRange(i)
			v := time.Duration(lo + (w-1)/2)
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

// Summary is a histogram's usual numbers, in nanoseconds for machines.
type Summary struct {
	Count uint64        `json:"count"`
	Min   time.Duration `json:"min_ns"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summary returns h's count, extremes, mean and p50/p90/p99/p99.9.
func (h *Histogram) Summary() Summary {
	return Summary{
		Count: h.n, Min: h.min, Mean: h.Mean(), Max: h.max,
		P50: h.Quantile(0.5), P90: h.Quantile(0.9), P99: h.Quantile(0.99), P999: h.Quantile(0.999),
	}
}

// CDFPoint is one point of a latency distribution: a share Q of the
// operations took at most Latency.
type CDFPoint struct {
	Q       float64       `json:"q"`
	Latency time.Duration `json:"latency_ns"`
}

// CDFQuantiles are the quantiles CDF reports: every percent, then finer
// towards the tail.
var CDFQuantiles = func() []float64 {
	var qs []float64
	for i := 1; i <= 99; i++ {
		qs = append(qs, float64(i)/100)
	}
	return append(qs, 0.995, 0.999, 0.9995, 0.9999, 1)
}()

// CDF returns h at CDFQuantiles; nil if h is empty.
func (h *Histogram) CDF() []CDFPoint {
	if h.n == 0 {
		return nil
	}
	out := make([]CDFPoint, len(CDFQuantiles))
	for i, q := range CDFQuantiles {
		out[i] = CDFPoint{Q: q, Latency: h.Quantile(q)}
	}
	return out
}
