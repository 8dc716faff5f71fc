package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestBatchEncodingsRoundTrip(t *testing.T) {
	pairs := []Pair{{[]byte("a"), []byte("1")}, {[]byte{0, 0xff}, []byte{}}, {[]byte("c"), bytes.Repeat([]byte("x"), 300)}}
	enc := AppendPairs(nil, pairs)
	if len(enc) > PairsSize(pairs) {
		t.Fatalf("PairsSize %d under the encoding's %d bytes", PairsSize(pairs), len(enc))
	}
	got, err := DecodePairs(enc, 3)
	if err != nil || !reflect.DeepEqual(got, pairs) {
		t.Fatalf("pairs: %q, %v", got, err)
	}
	if _, err := DecodePairs(enc, 2); !errors.Is(err, ErrMalformedBatch) {
		t.Fatalf("3 pairs with a limit of 2: %v", err)
	}
	keys := [][]byte{[]byte("a"), []byte("bb"), {}}
	gk, err := DecodeKeys(AppendKeys(nil, keys), 10)
	if err != nil || !reflect.DeepEqual(gk, keys) {
		t.Fatalf("keys: %q, %v", gk, err)
	}
	rs := []KeyResult{
		{Version: 7, Value: []byte("v")},
		{Err: &Error{Code: CodeWrongGroup, Message: "owned by g2", Epoch: 4}},
		{Version: 1 << 62, Value: []byte{}},
	}
	gr, err := DecodeGetResults(AppendGetResults(nil, rs), 3)
	if err != nil || !reflect.DeepEqual(gr, rs) {
		t.Fatalf("get results: %+v, %v", gr, err)
	}
	for i := range rs {
		rs[i].Value = nil
	}
	pr, err := DecodePutResults(AppendPutResults(nil, rs), 3)
	if err != nil || !reflect.DeepEqual(pr, rs) {
		t.Fatalf("put results: %+v, %v", pr, err)
	}
	if _, err := DecodePutResults(AppendPutResults(nil, rs), 4); !errors.Is(err, ErrMalformedBatch) {
		t.Fatalf("3 results where 4 were asked: %v", err)
	}
}

func TestBatchDecodersRefuseMalformedInput(t *testing.T) {
	good := AppendPairs(nil, []Pair{{[]byte("k"), []byte("v")}})
	for name, b := range map[string][]byte{
		"empty":       {},
		"no pairs":    {0},
		"truncated":   good[:len(good)-1],
		"trailing":    append(append([]byte{}, good...), 0),
		"overlong":    {0x81, 0x00, 1, 'k', 1, 'v'},
		"count lie":   {0xff, 0xff, 0x03, 1, 'k', 1, 'v'},
		"length lie":  {1, 0x7f, 'k'},
		"huge varint": {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"bad status":  nil, // below
	} {
		if b == nil {
			continue
		}
		if _, err := DecodePairs(b, MaxBatchKeys); !errors.Is(err, ErrMalformedBatch) {
			t.Errorf("%s: DecodePairs = %v", name, err)
		}
	}
	if _, err := DecodeGetResults([]byte{1, 9}, 1); !errors.Is(err, ErrMalformedBatch) {
		t.Errorf("unknown status: %v", err)
	}
	if _, err := DecodePutResults([]byte{1, keyError, 2, '{', '}'}, 1); !errors.Is(err, ErrMalformedBatch) {
		t.Errorf("error without a code: %v", err)
	}
}

// FuzzDecodePairs: never a panic, only ErrMalformedBatch, and whatever
// decodes encodes back to the same bytes (the Raft entry is canonical).
func FuzzDecodePairs(f *testing.F) {
	f.Add(AppendPairs(nil, []Pair{{[]byte("k"), []byte("v")}, {[]byte("x"), nil}}))
	f.Add([]byte{1, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		pairs, err := DecodePairs(b, MaxBatchKeys)
		if err != nil {
			if !errors.Is(err, ErrMalformedBatch) {
				t.Fatalf("error %v is not ErrMalformedBatch", err)
			}
			return
		}
		if enc := AppendPairs(nil, pairs); !bytes.Equal(enc, b) {
			t.Fatalf("not canonical: %x re-encodes to %x", b, enc)
		}
	})
}
