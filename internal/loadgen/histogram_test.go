package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramBucketsTileTheRange(t *testing.T) {
	if got := bucketOf(uint64(MaxValue)) + 1; got != numBuckets {
		t.Fatalf("numBuckets = %d, want bucketOf(MaxValue)+1 = %d", numBuckets, got)
	}
	var next uint64
	for i := range numBuckets {
		lo, w := bucketRange(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d (the end of the previous one)", i, lo, next)
		}
		if bucketOf(lo) != i || bucketOf(lo+w-1) != i {
			t.Fatalf("bucket %d = [%d, %d) but bucketOf maps its ends to %d and %d", i, lo, lo+w, bucketOf(lo), bucketOf(lo+w-1))
		}
		if lo >= 1000 && float64(w)/float64(lo) > 1.0/subCount {
			t.Fatalf("bucket %d = [%d, +%d) is wider than 1/%d of its start", i, lo, w, subCount)
		}
		next = lo + w
	}
	if next <= uint64(MaxValue) {
		t.Fatalf("buckets end at %d, below MaxValue %d", next, MaxValue)
	}
}

// reference is the quantile of a sorted sample as Histogram defines it:
// the value of rank ceil(q·n), at least 1.
func reference(sorted []time.Duration, q float64) time.Duration {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[min(rank, len(sorted))-1]
}

func TestHistogramQuantilesWithinOnePercentOfASortedSample(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform 1µs-10ms": func() time.Duration { return time.Microsecond + time.Duration(rng.Int64N(int64(10*time.Millisecond))) },
		"lognormal around 1ms": func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.5) * float64(time.Millisecond))
		},
		"exponential mean 300µs": func() time.Duration { return time.Duration(rng.ExpFloat64() * 300e3) },
		"bimodal 200µs and 2s": func() time.Duration {
			if rng.IntN(100) < 97 {
				return 200*time.Microsecond + time.Duration(rng.IntN(50e3))
			}
			return 2*time.Second + time.Duration(rng.IntN(1e8))
		},
		"wide 1µs-60s": func() time.Duration {
			return time.Duration(math.Exp(rng.Float64()*math.Log(60e9/1e3)) * 1e3)
		},
	}
	quantiles := []float64{0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1}
	for name, gen := range dists {
		for _, n := range []int{1, 7, 1000, 200000} {
			h := NewHistogram()
			sample := make([]time.Duration, n)
			for i := range sample {
				sample[i] = gen()
				h.Record(sample[i])
			}
			slices.Sort(sample)
			for _, q := range quantiles {
				got, want := h.Quantile(q), reference(sample, q)
				if diff := math.Abs(float64(got - want)); diff > 0.01*float64(want) && diff > 1 {
					t.Errorf("%s, n=%d: Quantile(%v) = %v, sorted sample says %v (%.2f%% off)",
						name, n, q, got, want, 100*diff/float64(want))
				}
			}
			if h.Min() != sample[0] || h.Max() != sample[n-1] || h.Count() != uint64(n) {
				t.Errorf("%s, n=%d: min/max/count = %v/%v/%d, want %v/%v/%d",
					name, n, h.Min(), h.Max(), h.Count(), sample[0], sample[n-1], n)
			}
		}
	}
}

func TestHistogramMergeEqualsRecordingEverythingInOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	all := NewHistogram()
	parts := []*Histogram{NewHistogram(), NewHistogram(), NewHistogram(), NewHistogram()}
	for i := range 50000 {
		d := time.Duration(rng.ExpFloat64() * float64(time.Millisecond) * float64(1+i%4))
		all.Record(d)
		parts[i%4].Record(d)
	}
	merged := NewHistogram()
	merged.Merge(NewHistogram()) // an empty one changes nothing
	for _, p := range parts {
		merged.Merge(p)
	}
	if *merged != *all {
		t.Fatalf("merged %+v\nwant %+v", merged.Summary(), all.Summary())
	}
}

func TestHistogramEdges(t *testing.T) {
	h := NewHistogram()
	if s := h.Summary(); s != (Summary{}) {
		t.Fatalf("empty summary = %+v, want zeros", s)
	}
	h.Record(-time.Second)
	if h.Min() != 0 || h.Quantile(0.5) != 0 {
		t.Fatalf("a negative value must count as 0: %+v", h.Summary())
	}
	h = NewHistogram()
	h.Record(2 * time.Minute) // above MaxValue
	h.Record(time.Millisecond)
	if h.Max() != 2*time.Minute || h.Quantile(1) != 2*time.Minute {
		t.Fatalf("max = %v, p100 = %v; want the exact 2m", h.Max(), h.Quantile(1))
	}
	if p := h.Quantile(0.99); p < MaxValue-MaxValue/100 || p > 2*time.Minute {
		t.Fatalf("p99 of {1ms, 2m} = %v, want about MaxValue (clamped)", p)
	}
	if m := h.Mean(); m != (2*time.Minute+time.Millisecond)/2 {
		t.Fatalf("mean = %v, want the exact mean", m)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := NewHistogram()
	for i := 0; b.Loop(); i++ {
		h.Record(time.Duration(i&0xfffff) * 1000)
	}
}

func TestHistogramCDFIsMonotoneAndEndsAtTheMax(t *testing.T) {
	if NewHistogram().CDF() != nil {
		t.Fatal("an empty histogram has a CDF")
	}
	h := NewHistogram()
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	cdf := h.CDF()
	for i := 1; i < len(cdf); i++ {
		if cdf[i].Q <= cdf[i-1].Q || cdf[i].Latency < cdf[i-1].Latency {
			t.Fatalf("point %d %+v after %+v", i, cdf[i], cdf[i-1])
		}
	}
	if last := cdf[len(cdf)-1]; last.Q != 1 || last.Latency != h.Max() {
		t.Fatalf("last point %+v, max %v", last, h.Max())
	}
	if mid := cdf[49]; mid.Q != 0.5 || mid.Latency != h.Quantile(0.5) {
		t.Fatalf("median point %+v", mid)
	}
}
