package kvclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/carpkv/carpkv/kvclient/wire"
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

// MultiGet reads many keys, each as Get would. The keys are split by owner
// group and the groups are read in parallel; each group's keys travel in
// batches (up to wire.MaxBatchKeys keys each), each served by the group's
// leader after one read-index round (with Stale, by any member from its
// local state). Each key is read and checked on its own: there is no
// snapshot across keys, and a key the ring moved, or that is in hand-off,
// is read again on its own as Get reads it.
//
// The results are in the order of keys. The error is nil when every key
// was read or is absent (Result.Err is ErrNotFound for an absent key),
// else a *BatchError. ctx bounds the whole call; without a deadline each
// batch gets Config.CallTimeout.
func (c *Client) MultiGet(ctx context.Context, keys [][]byte, opts ...ReadOption) ([]Result, error) {
	var o readOptions
	for _, opt := range opts {
		opt(&o)
	}
	out := make([]Result, len(keys))
	c.bulk(ctx, bulkOp{
		n:    len(keys),
		key:  func(i int) []byte { return keys[i] },
		size: func(i int) int { return len(keys[i]) + binary.MaxVarintLen64 },
		send: func(ctx context.Context, g *groupClient, epoch uint64, idx []int) []int {
			return c.getChunk(ctx, g, epoch, keys, idx, o, out)
		},
		single: func(ctx context.Context, i int) {
			v, group, err := c.get(ctx, keys[i], o)
			out[i] = Result{Key: keys[i], Value: v.Data, Version: v.Version, Group: group, Err: err}
		},
	})
	return out, batchErr(out, func(err error) bool { return errors.Is(err, ErrNotFound) })
}

// MultiPut writes many keys, each as Put would. The keys are split by
// owner group and the groups are written in parallel; each group's keys
// travel in batches (up to wire.MaxBatchKeys keys and about
// wire.BatchBytes bytes each) that its leader appends as one Raft entry. A
// pair too large for a batch, and a key the ring moved or that is in
// hand-off, is written on its own as Put writes it.
//
// Atomicity is per key, not per batch: each key is written (or not) on its
// own, and a failed call may have applied any subset of its keys. A key
// listed twice is written twice, in no defined order. Result.Err follows
// Put's rules: ErrTimeout means that key's outcome is unknown (for a batch
// that got no answer, every key of it); ErrUnavailable and the ring errors
// mean it was not applied and may be sent again.
//
// The results are in the order of kvs; the error is nil when every key was
// written, else a *BatchError. ctx bounds the whole call; without a
// deadline each batch gets Config.CallTimeout.
func (c *Client) MultiPut(ctx context.Context, kvs []KV) ([]Result, error) {
	out := make([]Result, len(kvs))
	c.bulk(ctx, bulkOp{
		n:    len(kvs),
		key:  func(i int) []byte { return kvs[i].Key },
		size: func(i int) int { return wire.PairSize(wire.Pair{Key: kvs[i].Key, Value: kvs[i].Value}) },
		send: func(ctx context.Context, g *groupClient, epoch uint64, idx []int) []int {
			return c.putChunk(ctx, g, epoch, kvs, idx, out)
		},
		single: func(ctx context.Context, i int) {
			v, group, err := c.put(ctx, "put", kvs[i].Key, kvs[i].Value, nil)
			out[i] = Result{Key: kvs[i].Key, Version: v, Group: group, Err: err}
		},
	})
	return out, batchErr(out, nil)
}

// bulkOp is a MultiGet or MultiPut for bulk: n keys, each of some size in
// a batch request; send sends one batch of a group's keys and returns the
// keys to do again one by one; single does one key on its own (the Get or
// Put path, with its own routing and retries).
type bulkOp struct {
	n      int
	key    func(i int) []byte
	size   func(i int) int
	send   func(ctx context.Context, g *groupClient, epoch uint64, idx []int) (again []int)
	single func(ctx context.Context, i int)
}

// bulkPipeline is how many batches of one group are in flight at once:
// enough that the leader always has the next one while it commits one.
const bulkPipeline = 4

// bulk runs op: the keys split by owner group under the current ring,
// each group's keys sorted (neighbouring keys share the state machine's
// pages) and cut into batches, the groups in parallel and bulkPipeline
// batches of each at once; then the keys to do again, and those no batch
// can carry, one by one, BatchConcurrency of each group at once.
func (c *Client) bulk(ctx context.Context, op bulkOp) {
	if op.n == 0 {
		return
	}
	rctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, c.cfg.CallTimeout)
		defer cancel()
	}
	var rt *routing
	if !c.closed.Load() {
		rt, _ = c.routing(rctx, &call{op: "batch"})
	}
	if rt == nil {
		// Closed, or no ring: every key fails the same way, on its own.
		c.each(ctx, seq(op.n), op.key, op.single)
		return
	}
	byGroup := map[*groupClient][]int{}
	var alone []int
	for i := range op.n {
		k := op.key(i)
		if len(k) == 0 || op.size(i)+binary.MaxVarintLen64 > wire.BatchBytes {
			alone = append(alone, i)
			continue
		}
		g := rt.groupFor(k)
		byGroup[g] = append(byGroup[g], i)
	}
	var (
		mu    sync.Mutex
		again = alone
		wg    sync.WaitGroup
	)
	for g, idx := range byGroup {
		slices.SortFunc(idx, func(a, b int) int { return bytes.Compare(op.key(a), op.key(b)) })
		chunks := cut(idx, op.size)
		var next atomic.Int64
		for range min(len(chunks), bulkPipeline) {
			wg.Go(func() {
				for {
					j := int(next.Add(1)) - 1
					if j >= len(chunks) {
						return
					}
					if redo := op.send(ctx, g, rt.epoch, chunks[j]); len(redo) > 0 {
						mu.Lock()
						again = append(again, redo...)
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	c.each(ctx, again, op.key, op.single)
}

// cut splits idx into batches of at most wire.MaxBatchKeys keys and about
// wire.BatchBytes bytes.
func cut(idx []int, size func(int) int) [][]int {
	var chunks [][]int
	start, n := 0, binary.MaxVarintLen64
	for j, i := range idx {
		s := size(i)
		if j > start && (j-start >= wire.MaxBatchKeys || n+s > wire.BatchBytes) {
			chunks = append(chunks, idx[start:j])
			start, n = j, binary.MaxVarintLen64
		}
		n += s
	}
	return append(chunks, idx[start:])
}

// each runs do for every index in idx, grouped by the owner of key(i)
// under the current ring: groups in parallel, BatchConcurrency at a time
// within a group. Each do routes its key again, so a key whose owner
// changes mid-call still reaches it.
func (c *Client) each(ctx context.Context, idx []int, key func(int) []byte, do func(context.Context, int)) {
	if len(idx) == 0 {
		return
	}
	byGroup := [][]int{idx}
	if rt := c.rt.Load(); rt != nil && !c.closed.Load() {
		at := map[*groupClient]int{}
		byGroup = nil
		for _, i := range idx {
			var g *groupClient
			if len(key(i)) > 0 {
				g = rt.groupFor(key(i))
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
			wg.Go(func() {
				for {
					j := int(next.Add(1)) - 1
					if j >= len(idx) {
						return
					}
					do(ctx, idx[j])
				}
			})
		}
	}
	wg.Wait()
}

// errBatchNoStream: a batch goes only over the KV stream; an agent that
// does not speak it gets the batch's keys one by one.
var errBatchNoStream = errors.New("batches need the KV stream")

// batchCall is a batch's call to its group's leader, routed by epoch.
func batchCall(op string, n int, req wire.StreamRequest, epoch uint64) *call {
	return &call{op: fmt.Sprintf("%s of %d keys", op, n), stream: &req, route: routeLeader, routed: true, epoch: epoch}
}

// redoOnItsOwn says whether a key's error in a batch answer is one the
// single-key path handles by itself: the ring moved, the key is in
// hand-off, or (MultiGet) the answer was full. Nothing was applied.
func redoOnItsOwn(e *wire.Error) bool {
	switch e.Code {
	case wire.CodeWrongGroup, wire.CodeStaleRing, wire.CodeKeyMoving, wire.CodeUnavailable:
		return true
	}
	return false
}

// sendChunk sends cl, a batch of the keys idx, to g, and hands each key's
// outcome to set: the batch's own error (for every key), the key's error
// (op names the key's single operation), or its result. It returns the
// keys to do again on their own: all of them when nothing was applied
// because the ring moved or the agent does not speak batches, else those
// redoOnItsOwn picks.
func (c *Client) sendChunk(ctx context.Context, g *groupClient, cl *call, idx []int,
	decode func(b []byte, n int) ([]wire.KeyResult, error), op func(i int) string,
	set func(i int, kr wire.KeyResult, err error)) (again []int) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.CallTimeout)
		defer cancel()
	}
	rep, err := g.do(ctx, cl)
	var re *rerouteError
	if errors.As(err, &re) || errors.Is(err, errBatchNoStream) {
		return idx
	}
	var rs []wire.KeyResult
	if err == nil {
		if rs, err = decode(rep.body, len(idx)); err != nil {
			// Served, but the answer cannot say what happened to each.
			err = protocolError(cl, rep.addr, "%v", err)
		}
	}
	for j, i := range idx {
		switch {
		case err != nil:
			set(i, wire.KeyResult{}, err)
		case rs[j].Err != nil && redoOnItsOwn(rs[j].Err):
			again = append(again, i)
		case rs[j].Err != nil:
			set(i, wire.KeyResult{}, newError(op(i), rep.addr, rs[j].Err))
		default:
			set(i, rs[j], nil)
		}
	}
	return again
}

func (c *Client) putChunk(ctx context.Context, g *groupClient, epoch uint64, kvs []KV, idx []int, out []Result) (again []int) {
	pairs := make([]wire.Pair, len(idx))
	for j, i := range idx {
		pairs[j] = wire.Pair{Key: kvs[i].Key, Value: kvs[i].Value}
	}
	cl := batchCall("multiput", len(idx), wire.StreamRequest{Op: wire.StreamMultiPut, Value: wire.AppendPairs(make([]byte, 0, wire.PairsSize(pairs)), pairs)}, epoch)
	return c.sendChunk(ctx, g, cl, idx, wire.DecodePutResults,
		func(i int) string { return fmt.Sprintf("put %q", kvs[i].Key) },
		func(i int, kr wire.KeyResult, err error) {
			out[i] = Result{Key: kvs[i].Key, Version: kr.Version, Group: g.id, Err: err}
		})
}

func (c *Client) getChunk(ctx context.Context, g *groupClient, epoch uint64, keys [][]byte, idx []int, o readOptions, out []Result) (again []int) {
	batch := make([][]byte, len(idx))
	for j, i := range idx {
		batch[j] = keys[i]
	}
	req := wire.StreamRequest{Op: wire.StreamMultiGet, Value: wire.AppendKeys(nil, batch)}
	if o.stale {
		req.Flags |= wire.FlagStale
	}
	cl := batchCall("multiget", len(idx), req, epoch)
	cl.idempotent = true
	if o.stale {
		cl.route = routeAny
	}
	return c.sendChunk(ctx, g, cl, idx, wire.DecodeGetResults,
		func(i int) string { return fmt.Sprintf("get %q", keys[i]) },
		func(i int, kr wire.KeyResult, err error) {
			out[i] = Result{Key: keys[i], Value: kr.Value, Version: kr.Version, Group: g.id, Err: err}
		})
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
