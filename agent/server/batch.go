package server

import (
	"context"
	"time"

	"github.com/carpkv/carpkv/agent/store"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// Batches on the KV stream (wire/batch.go): a MultiPut's pairs become one
// Raft entry (store.OpPutBatch), a MultiGet's keys are read after one
// read-index round. Every key is checked as a single get or put checks it
// and answered on its own; an answer for the whole request (not_leader,
// timeout, ...) applies to every key, exactly as it would to one.

// multiGetBudget bounds the values of one MultiGet answer; the keys after
// it are answered unavailable (ask again), so the answer stays far under
// kvclient's MaxResponseBytes whatever the batch.
const multiGetBudget = 4 << 20

func (sc *streamConn) handleBatch(ctx context.Context, req *wire.StreamRequest, start time.Time, op string, fail func(error)) {
	if len(req.Key) > 0 {
		fail(&wire.Error{Code: wire.CodeInvalidArgument, Message: "a batch carries its keys in the value, not the key"})
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sc.s.deadline(time.Duration(req.TimeoutUS)*time.Microsecond))
	defer cancel()
	if req.Op == wire.StreamMultiGet {
		sc.multiGet(ctx, req, start, op, fail)
		return
	}
	sc.multiPut(ctx, req, start, op, fail)
}

func (sc *streamConn) multiPut(ctx context.Context, req *wire.StreamRequest, start time.Time, op string, fail func(error)) {
	pairs, err := wire.DecodePairs(req.Value, wire.MaxBatchKeys)
	if err != nil {
		fail(&wire.Error{Code: wire.CodeInvalidArgument, Message: err.Error()})
		return
	}
	results := make([]wire.KeyResult, len(pairs))
	ok := make([]int, 0, len(pairs)) // the pairs proposed, by index
	for i, p := range pairs {
		if e := sc.checkPair(p); e != nil {
			results[i].Err = e
			continue
		}
		ok = append(ok, i)
	}
	var index uint64
	if len(ok) > 0 {
		body := req.Value // as sent when every pair is accepted: no copy
		if len(ok) < len(pairs) {
			keep := make([]wire.Pair, len(ok))
			for j, i := range ok {
				keep[j] = pairs[i]
			}
			body = store.EncodePuts(keep)
		}
		res, err := sc.s.apply(ctx, store.Command{Op: store.OpPutBatch, Body: body, RingEpoch: req.RingEpoch})
		if err != nil {
			fail(err)
			return
		}
		if len(res.Keys) != len(ok) {
			fail(&wire.Error{Code: wire.CodeInternal, Message: "the state machine answered a batch of the wrong length"})
			return
		}
		index = res.Index
		for j, i := range ok {
			if kr := res.Keys[j]; kr.Err != nil {
				results[i].Err = toWire(kr.Err)
			} else {
				results[i].Version = kr.Version
			}
		}
	}
	sc.answer(req.ID, op, start, &wire.StreamResponse{Index: index, Value: wire.AppendPutResults(nil, results)})
}

// checkPair is a single put's checks for one pair of a batch: the
// agent's limits, then what the state machine accepts (store.CheckPair),
// so that the entry proposed holds only pairs it will apply.
func (sc *streamConn) checkPair(p wire.Pair) *wire.Error {
	if e := sc.s.checkKey(p.Key); e != nil {
		return e
	}
	if len(p.Value) > sc.s.limits.MaxValueBytes {
		return sc.s.valueTooLarge()
	}
	if err := store.CheckPair(p); err != nil {
		return toWire(err)
	}
	return nil
}

func (sc *streamConn) multiGet(ctx context.Context, req *wire.StreamRequest, start time.Time, op string, fail func(error)) {
	keys, err := wire.DecodeKeys(req.Value, wire.MaxBatchKeys)
	if err != nil {
		fail(&wire.Error{Code: wire.CodeInvalidArgument, Message: err.Error()})
		return
	}
	results := make([]wire.KeyResult, len(keys))
	ok := make([]int, 0, len(keys))
	for i, k := range keys {
		if e := sc.s.checkKey(k); e != nil {
			results[i].Err = e
			continue
		}
		ok = append(ok, i)
	}
	var index uint64
	if len(ok) > 0 {
		owned := make([][]byte, len(ok))
		for j, i := range ok {
			owned[j] = keys[i]
		}
		reads, idx, err := sc.s.node.GetMany(ctx, owned, req.Flags&wire.FlagStale != 0, req.RingEpoch, multiGetBudget)
		if err != nil {
			fail(err)
			return
		}
		index = idx
		for j, i := range ok {
			if r := reads[j]; r.Err != nil {
				results[i].Err = toWire(r.Err)
			} else {
				results[i] = wire.KeyResult{Version: r.Version, Value: r.Value}
			}
		}
	}
	sc.answer(req.ID, op, start, &wire.StreamResponse{Index: index, Value: wire.AppendGetResults(nil, results)})
}
