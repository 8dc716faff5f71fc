package wire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Batches on the KV stream: a StreamMultiPut or StreamMultiGet request
// carries many keys of one group in its value, and its answer carries a
// result per key, in the order of the keys. The agent proposes a
// MultiPut's pairs as one Raft entry and serves a MultiGet after one
// read-index round; each key is still checked (size, ownership, hand-off)
// and answered on its own. docs/api.md describes the encodings.

const (
	// StreamMultiPut: Value holds pairs (AppendPairs); Key is empty. The
	// answer's Value holds a write result per pair (AppendPutResults).
	StreamMultiPut StreamOp = 5
	// StreamMultiGet: Value holds keys (AppendKeys); Key is empty; FlagStale
	// as for a get. The answer's Value holds a read result per key
	// (AppendGetResults).
	StreamMultiGet StreamOp = 6
)

// BatchBytes is the request size kvclient keeps a batch under, and
// MaxBatchKeys the number of keys; an agent accepts batch frames of at least
// MaxBatchFrame bytes whatever its key and value limits.
const (
	BatchBytes    = 512 << 10
	MaxBatchFrame = 1 << 20
	MaxBatchKeys  = 4096
)

// Pair is one key and value of a batch.
type Pair struct {
	Key, Value []byte
}

// ErrMalformedBatch is the error of every batch decoder.
var ErrMalformedBatch = errors.New("malformed batch")

// AppendPairs appends the pairs' count, then each key and value with its
// uvarint length. The encoding is also the body of the agents'
// put-batch Raft entries: it must never change.
func AppendPairs(b []byte, pairs []Pair) []byte {
	b = binary.AppendUvarint(b, uint64(len(pairs)))
	for _, p := range pairs {
		b = appendUvarintBytes(b, p.Key)
		b = appendUvarintBytes(b, p.Value)
	}
	return b
}

// PairsSize is the length of AppendPairs(nil, pairs), at most.
func PairsSize(pairs []Pair) int {
	n := binary.MaxVarintLen64
	for _, p := range pairs {
		n += PairSize(p)
	}
	return n
}

// PairSize is what one pair adds to an AppendPairs encoding, at most.
func PairSize(p Pair) int { return 2*binary.MaxVarintLen64 + len(p.Key) + len(p.Value) }

// DecodePairs decodes what AppendPairs encoded: at most max pairs, without
// trailing bytes. Keys and values alias b.
func DecodePairs(b []byte, max int) ([]Pair, error) {
	d := batchDecoder{b: b}
	n := d.count(2, max)
	if d.err != nil {
		return nil, d.err
	}
	pairs := make([]Pair, n)
	for i := range pairs {
		pairs[i] = Pair{Key: d.bytes(), Value: d.bytes()}
	}
	return pairs, d.end()
}

// AppendKeys appends the keys' count, then each key with its uvarint
// length.
func AppendKeys(b []byte, keys [][]byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendUvarintBytes(b, k)
	}
	return b
}

// DecodeKeys decodes what AppendKeys encoded, at most max keys.
func DecodeKeys(b []byte, max int) ([][]byte, error) {
	d := batchDecoder{b: b}
	n := d.count(1, max)
	if d.err != nil {
		return nil, d.err
	}
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = d.bytes()
	}
	return keys, d.end()
}

// KeyResult is the answer for one key of a batch: Err, or the version
// (and for a MultiGet the value).
type KeyResult struct {
	Err     *Error
	Version uint64
	Value   []byte
}

const (
	keyOK    = 0
	keyError = 1
)

// AppendPutResults appends a MultiPut answer: per key, a status byte,
// then the new version (uvarint) or the error (JSON, uvarint length).
func AppendPutResults(b []byte, rs []KeyResult) []byte {
	return appendResults(b, rs, false)
}

// AppendGetResults appends a MultiGet answer: as AppendPutResults, with
// the value (uvarint length) after each version.
func AppendGetResults(b []byte, rs []KeyResult) []byte {
	return appendResults(b, rs, true)
}

func appendResults(b []byte, rs []KeyResult, values bool) []byte {
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for _, r := range rs {
		if r.Err != nil {
			j, err := json.Marshal(r.Err)
			if err != nil {
				j = []byte(`{"code":"` + string(r.Err.Code) + `"}`)
			}
			b = append(b, keyError)
			b = appendUvarintBytes(b, j)
			continue
		}
		b = append(b, keyOK)
		b = binary.AppendUvarint(b, r.Version)
		if values {
			b = appendUvarintBytes(b, r.Value)
		}
	}
	return b
}

// DecodePutResults decodes a MultiPut answer for want keys.
func DecodePutResults(b []byte, want int) ([]KeyResult, error) {
	return decodeResults(b, want, false)
}

// DecodeGetResults decodes a MultiGet answer for want keys. Values alias b.
func DecodeGetResults(b []byte, want int) ([]KeyResult, error) {
	return decodeResults(b, want, true)
}

func decodeResults(b []byte, want int, values bool) ([]KeyResult, error) {
	d := batchDecoder{b: b}
	n := d.count(1, want)
	if d.err == nil && n != want {
		return nil, fmt.Errorf("%w: %d results for %d keys", ErrMalformedBatch, n, want)
	}
	if d.err != nil {
		return nil, d.err
	}
	rs := make([]KeyResult, n)
	for i := range rs {
		switch st := d.byte(); {
		case d.err != nil:
		case st == keyOK:
			rs[i].Version = d.uvarint()
			if values {
				rs[i].Value = d.bytes()
			}
		case st == keyError:
			var e Error
			if j := d.bytes(); d.err == nil && (json.Unmarshal(j, &e) != nil || e.Code == "") {
				d.err = fmt.Errorf("%w: key %d: error %.200q", ErrMalformedBatch, i, j)
			}
			rs[i].Err = &e
		default:
			d.err = fmt.Errorf("%w: key %d: status %d", ErrMalformedBatch, i, st)
		}
	}
	return rs, d.end()
}

func appendUvarintBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// batchDecoder reads fields off b; after the first error every read
// returns a zero value and err keeps that first error.
type batchDecoder struct {
	b   []byte
	err error
}

func (d *batchDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformedBatch}, args...)...)
	}
}

func (d *batchDecoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *batchDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad or truncated varint")
		return 0
	}
	if n > 1 && d.b[n-1] == 0 {
		// A last byte of zero adds nothing: an overlong encoding, which
		// would give one batch two encodings.
		d.fail("non-minimal varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *batchDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("truncated")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// count reads a count of items of at least minSize bytes each, of which
// at most max (and at least one) are allowed.
func (d *batchDecoder) count(minSize, max int) int {
	n := d.uvarint()
	switch {
	case d.err != nil:
		return 0
	case n == 0:
		d.fail("no keys")
	case n > uint64(max):
		d.fail("%d keys, over %d", n, max)
	case n > uint64(len(d.b)/minSize):
		d.fail("truncated")
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

func (d *batchDecoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}
