package kvclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// KV is one key and its value, for MultiPut.
type KV struct {
	Key, Value []byte
}

// Result is the outcome of one key of a MultiGet or MultiPut, at the index
// of the key in the request.
type Result struct {
	Key []byte
	// Value is what MultiGet read; nil for MultiPut.
	Value []byte
	// Version is the version MultiGet read, or the new version MultiPut
	// wrote.
	Version uint64
	// Group is the group that served the key (or was tried last): its
	// owner under the ring the Client routed by.
	Group string
	// Err is the key's error, exactly as Get or Put would return it: nil
	// on success, ErrNotFound for an absent key (MultiGet), ErrTimeout for
	// a write whose outcome is unknown, and so on.
	Err error
}

// BatchError reports the keys of a MultiGet or MultiPut that failed. It
// wraps the first failure (in key order), so errors.Is(err, ErrTimeout)
// says whether that one may have been applied; each Result says the rest.
type BatchError struct {
	Failed, Total int
	First         error
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("kvclient: %d of %d keys failed; first: %v", e.Failed, e.Total, e.First)
}

func (e *BatchError) Unwrap() error { return e.First }

// MultiGet reads many keys, each as Get would: the keys are split by owner
// group, the groups are read in parallel, and up to
// Config.BatchConcurrency keys of each group at once. Each read is its own
// linearizable (or, with Stale, local) read: there is no snapshot across
// keys.
//
// The results are in the order of keys. The error is nil when every key
// was read or is absent (Result.Err is ErrNotFound for an absent key),
// else a *BatchError. ctx bounds the whole batch; without a deadline each
// key gets Config.CallTimeout.
func (c *Client) MultiGet(ctx context.Context, keys [][]byte, opts ...ReadOption) ([]Result, error) {
	var o readOptions
	for _, opt := range opts {
		opt(&o)
	}
	out := make([]Result, len(keys))
	c.batch(ctx, len(keys), func(i int) []byte { return keys[i] }, func(ctx context.Context, i int) {
		v, group, err := c.get(ctx, keys[i], o)
		out[i] = Result{Key: keys[i], Value: v.Data, Version: v.Version, Group: group, Err: err}
	})
	return out, batchErr(out, func(err error) bool { return errors.Is(err, ErrNotFound) })
}

// MultiPut writes many keys, each as Put would: split by owner group, the
// groups in parallel, up to Config.BatchConcurrency keys of each group at
// once.
//
// Atomicity is per key, not per batch: each key is written (or not) on its
// own, and a failed batch may have applied any subset of its keys. A key
// listed twice is written twice, in no defined order. Result.Err follows
// Put's rules: ErrTimeout means that key's outcome is unknown; ErrUnavailable
// and the ring errors mean it was not applied and may be sent again.
//
// The results are in the order of kvs; the error is nil when every key was
// written, else a *BatchError. ctx bounds the whole batch; without a
// deadline each key gets Config.CallTimeout.
func (c *Client) MultiPut(ctx context.Context, kvs []KV) ([]Result, error) {
	out := make([]Result, len(kvs))
	c.batch(ctx, len(kvs), func(i int) []byte { return kvs[i].Key }, func(ctx context.Context, i int) {
		v, group, err := c.put(ctx, "put", kvs[i].Key, kvs[i].Value, nil)
		out[i] = Result{Key: kvs[i].Key, Version: v, Group: group, Err: err}
	})
	return out, batchErr(out, nil)
}

// batch runs do for every index, grouped by the owner of key(i) under the
// current ring: groups in parallel, BatchConcurrency at a time within a
// group. Each do routes its key again, so a key whose owner changes
// mid-batch still reaches it.
func (c *Client) batch(ctx context.Context, n int, key func(int) []byte, do func(context.Context, int)) {
	if n == 0 {
		return
	}
	// One ring for the split; fetched once for the whole batch.
	rctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, c.cfg.CallTimeout)
		defer cancel()
	}
	var byGroup [][]int
	if c.closed.Load() {
		byGroup = [][]int{seq(n)}
	} else if rt, err := c.routing(rctx, &call{op: "batch"}); err != nil {
		byGroup = [][]int{seq(n)} // every key fails the same way, on its own
	} else {
		at := map[*groupClient]int{}
		for i := range n {
			g := rt.groupFor(key(i))
			if len(key(i)) == 0 {
				g = nil
			}
			k, ok := at[g]
			if !ok {
				k = len(byGroup)
				at[g] = k
				byGroup = append(byGroup, nil)
			}
			byGroup[k] = append(byGroup[k], i)
		}
	}
	var wg sync.WaitGroup
	for _, idx := range byGroup {
		var next atomic.Int64
		for range min(len(idx), c.cfg.BatchConcurrency) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					j := int(next.Add(1)) - 1
					if j >= len(idx) {
						return
					}
					do(ctx, idx[j])
				}
			}()
		}
	}
	wg.Wait()
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// batchErr is nil if no result failed (ignoring those ok accepts).
func batchErr(rs []Result, ok func(error) bool) error {
	var be *BatchError
	for _, r := range rs {
		if r.Err == nil || ok != nil && ok(r.Err) {
			continue
		}
		if be == nil {
			be = &BatchError{Total: len(rs), First: r.Err}
		}
		be.Failed++
	}
	if be == nil {
		return nil
	}
	return be
}
