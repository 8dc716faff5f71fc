package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carpkv/carpkv/internal/loadgen"
	"github.com/carpkv/carpkv/kvclient"
)

// keyOf is key i of the key space, as carpkvctl bench names it.
func keyOf(dst []byte, i int, size int) []byte { return loadgen.AppendKey(dst, i, size) }

// fill writes keys [0, n) with MultiPut in batches, batch keys at a time,
// and reports how long it took. Any key that fails fails the load: the
// run measures a cluster that holds every key.
func fill(ctx context.Context, c *kvclient.Client, n, keySize, valueSize, batch int, progress func(done int)) (time.Duration, error) {
	start := time.Now()
	rng := rand.New(rand.NewPCG(7, 7))
	value := make([]byte, valueSize)
	for i := range value {
		value[i] = byte(rng.Uint32())
	}
	kvs := make([]kvclient.KV, 0, batch)
	for lo := 0; lo < n; lo += batch {
		kvs = kvs[:0]
		for i := lo; i < min(lo+batch, n); i++ {
			kvs = append(kvs, kvclient.KV{Key: keyOf(nil, i, keySize), Value: value})
		}
		// A key that failed (a timeout on a loaded machine: its outcome is
		// unknown) is written again: a put of the same value is harmless.
		todo := kvs
		for try := 1; len(todo) > 0; try++ {
			rs, err := c.MultiPut(ctx, todo)
			if err == nil {
				break
			}
			if try == 5 {
				return time.Since(start), fmt.Errorf("loading keys %d..%d, attempt %d: %w", lo, lo+len(kvs)-1, try, err)
			}
			var again []kvclient.KV
			for i, r := range rs {
				if r.Err != nil {
					again = append(again, todo[i])
				}
			}
			logf("  %d keys of batch %d..%d failed (%v); writing them again", len(again), lo, lo+len(kvs)-1, err)
			todo = again
		}
		progress(lo + len(kvs))
	}
	return time.Since(start), nil
}

// load is the 90/10 closed-loop load: workers goroutines, each with one
// operation in flight on a uniformly drawn key, recording every operation.
type load struct {
	c         *kvclient.Client
	keys      int
	keySize   int
	valueSize int
	putPct    int
	timeout   time.Duration
	t0        time.Time

	ops  [][]Op // one slice per worker
	done atomic.Int64
	errs atomic.Int64
}

// run starts the workers and returns once ctx ends and every worker has
// stopped. Operations cut short by ctx are not recorded.
func (l *load) run(ctx context.Context, workers int, seed uint64) {
	l.ops = make([][]Op, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { l.ops[w] = l.worker(ctx, seed, uint64(w)) })
	}
	wg.Wait()
}

func (l *load) worker(ctx context.Context, seed, id uint64) []Op {
	rng := rand.New(rand.NewPCG(seed, id))
	value := make([]byte, l.valueSize)
	for i := range value {
		value[i] = byte(rng.Uint32())
	}
	key := make([]byte, 0, l.keySize)
	ops := make([]Op, 0, 1<<16)
	for ctx.Err() == nil {
		k := rng.IntN(l.keys)
		key = keyOf(key[:0], k, l.keySize)
		kind := kindGet
		if rng.IntN(100) < l.putPct {
			kind = kindPut
		}
		octx, cancel := context.WithTimeout(ctx, l.timeout)
		start := time.Since(l.t0)
		var err error
		if kind == kindPut {
			_, err = l.c.Put(octx, key, value)
		} else {
			_, err = l.c.Get(octx, key)
		}
		end := time.Since(l.t0)
		cancel()
		if err != nil && ctx.Err() != nil {
			break // the end of the run, not an outcome of the store
		}
		cl := classify(err)
		ops = append(ops, Op{Start: start, End: end, Key: uint32(k), Kind: kind, Class: cl})
		l.done.Add(1)
		if cl != classOK {
			l.errs.Add(1)
		}
	}
	return ops
}

// classify sorts kvclient's errors. Not found is a failure: every key
// was written before the load began.
func classify(err error) uint8 {
	switch {
	case err == nil:
		return classOK
	case errors.Is(err, kvclient.ErrNotFound):
		return classNotFound
	case errors.Is(err, kvclient.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return classTimeout
	case errors.Is(err, kvclient.ErrUnavailable), errors.Is(err, kvclient.ErrKeyMoving),
		errors.Is(err, kvclient.ErrNotLeader), errors.Is(err, kvclient.ErrWrongGroup), errors.Is(err, kvclient.ErrStaleRing):
		return classUnavailable
	}
	return classOther
}

// all returns every recorded operation; call after run returns.
func (l *load) all() []Op {
	n := 0
	for _, o := range l.ops {
		n += len(o)
	}
	out := make([]Op, 0, n)
	for _, o := range l.ops {
		out = append(out, o...)
	}
	return out
}

// retryCounter is a slog handler for kvclient's debug records: it counts
// the retries of key_moving answers and all the others, per second since
// t0 (kvclient retries inside a call, so the operations do not show them).
type retryCounter struct {
	t0     time.Time
	mu     sync.Mutex
	moving map[int]int
	other  map[int]int
}

func newRetryCounter(t0 time.Time) *retryCounter {
	return &retryCounter{t0: t0, moving: map[int]int{}, other: map[int]int{}}
}

func (r *retryCounter) Enabled(context.Context, slog.Level) bool { return true }
func (r *retryCounter) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *retryCounter) WithGroup(string) slog.Handler            { return r }

func (r *retryCounter) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != "kvclient: retrying" {
		return nil
	}
	moving := false
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			if err, ok := a.Value.Any().(error); ok && errors.Is(err, kvclient.ErrKeyMoving) {
				moving = true
			}
			return false
		}
		return true
	})
	s := int(time.Since(r.t0) / time.Second)
	r.mu.Lock()
	if moving {
		r.moving[s]++
	} else {
		r.other[s]++
	}
	r.mu.Unlock()
	return nil
}

// counts returns the retries per second over [0, secs).
func (r *retryCounter) counts(secs int) (moving, other []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	moving, other = make([]int, secs), make([]int, secs)
	for s := range secs {
		moving[s], other[s] = r.moving[s], r.other[s]
	}
	return moving, other
}
