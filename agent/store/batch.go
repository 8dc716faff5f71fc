package store

import (
	"fmt"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// A bulk write (kvclient's MultiPut) of many keys owned by one group is one
// OpPutBatch entry: one Raft append, one replication round and one state
// machine transaction for all of them, where a Put each costs an entry, a
// request and an answer per key. Atomicity stays per key: each pair is
// admitted (ownership, hand-off) and written exactly as an OpPut without a
// precondition would be, at a version of its own, and gets a result of its
// own; a pair refused does not stop the others.

// KV is one pair of an OpPutBatch.
type KV = wire.Pair

// MaxBatchKeys bounds the pairs of one OpPutBatch. The agent's request
// limits bound its bytes.
const MaxBatchKeys = 16384

// EncodePuts encodes the pairs of an OpPutBatch (wire.AppendPairs: the KV
// stream's MultiPut request carries the same bytes, so the agent proposes
// a batch whose every key it accepts without copying it).
func EncodePuts(kvs []KV) []byte {
	return wire.AppendPairs(make([]byte, 0, wire.PairsSize(kvs)), kvs)
}

// CheckPair says whether an OpPutBatch may carry kv: exactly what
// Validate requires of an OpPut. The agent checks each pair with it before
// proposing, so one bad pair is refused on its own, not with its batch.
func CheckPair(kv KV) error {
	return Command{Op: OpPut, Key: kv.Key, Value: kv.Value}.Validate()
}

// DecodePuts decodes what EncodePuts encoded, refusing (with
// ErrInvalidCommand) no pairs, more than MaxBatchKeys, truncated or
// trailing input, and pairs CheckPair refuses. Keys and values alias b.
func DecodePuts(b []byte) ([]KV, error) {
	kvs, err := wire.DecodePairs(b, MaxBatchKeys)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCommand, err)
	}
	for i, kv := range kvs {
		if err := CheckPair(kv); err != nil {
			return nil, fmt.Errorf("pair %d: %w", i, err)
		}
	}
	return kvs, nil
}

// putBatch applies an OpPutBatch: each pair as an unconditional OpPut, in
// order, under the ring in force at this entry.
func (b *batch) putBatch(c Command, res *Result) error {
	kvs, err := DecodePuts(c.Body)
	if err != nil {
		res.Err = err
		return nil
	}
	res.Keys = make([]KeyResult, len(kvs))
	for i, kv := range kvs {
		var r Result
		if err := b.put(Command{Op: OpPut, Key: kv.Key, Value: kv.Value, RingEpoch: c.RingEpoch}, &r); err != nil {
			return err
		}
		res.Keys[i] = KeyResult{Version: r.Version, Err: r.Err}
	}
	return nil
}
