package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func kvs(n int, prefix string) []KV {
	out := make([]KV, n)
	for i := range out {
		out[i] = KV{Key: fmt.Appendf(nil, "%s%04d", prefix, i), Value: fmt.Appendf(nil, "v%d", i)}
	}
	return out
}

func putBatch(epoch uint64, pairs []KV) Command {
	return Command{Op: OpPutBatch, Body: EncodePuts(pairs), RingEpoch: epoch}
}

func TestPutsRoundTripAndRefusals(t *testing.T) {
	in := []KV{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte{0, 0xff}}, {Key: []byte("c"), Value: bytes.Repeat([]byte("x"), 300)}}
	out, err := DecodePuts(EncodePuts(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d pairs back, want %d", len(out), len(in))
	}
	for i := range in {
		if !bytes.Equal(out[i].Key, in[i].Key) || !bytes.Equal(out[i].Value, in[i].Value) {
			t.Fatalf("pair %d: %q=%q, want %q=%q", i, out[i].Key, out[i].Value, in[i].Key, in[i].Value)
		}
	}
	good := EncodePuts(in)
	for name, b := range map[string][]byte{
		"empty":     {},
		"no pairs":  EncodePuts(nil),
		"empty key": EncodePuts([]KV{{Value: []byte("v")}}),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"too many":  EncodePuts(kvs(MaxBatchKeys+1, "k")),
		"count lie": {0xff, 0x01, 1, 'k', 0},
	} {
		if _, err := DecodePuts(b); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("%s: DecodePuts = %v, want ErrInvalidCommand", name, err)
		}
		if err := (Command{Op: OpPutBatch, Body: b}).Validate(); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("%s: Validate = %v, want ErrInvalidCommand", name, err)
		}
	}
}

// Each pair of a batch is a put of its own: written at a version of its
// own, or refused on its own when another group owns it, and the entry as
// a whole applies once.
func TestPutBatchAppliesEachPairOnItsOwn(t *testing.T) {
	s := openStore(t, t.TempDir())
	spec := RingSpec{Epoch: 5, Mode: "strong", Groups: []RingGroup{{testGroup, 1}, {"g2", 1}}}
	if r := applyNext(t, s, Command{Op: OpSetRing, Ring: spec})[0]; r.Err != nil {
		t.Fatal(r.Err)
	}
	cr := must(spec.Build())
	pairs := kvs(300, "k")
	before := s.Stats().Clock
	r := applyNext(t, s, putBatch(5, pairs))[0]
	if r.Err != nil || len(r.Keys) != len(pairs) {
		t.Fatalf("batch: err %v, %d results for %d pairs", r.Err, len(r.Keys), len(pairs))
	}
	mine, last := 0, before
	for i, kv := range pairs {
		kr := r.Keys[i]
		if owner := cr.Owner(kv.Key); owner != testGroup {
			var re *RingError
			if !errors.As(kr.Err, &re) || !errors.Is(kr.Err, ErrWrongGroup) || re.Owner != owner {
				t.Fatalf("%s owned by %s: %v, want wrong group", kv.Key, owner, kr.Err)
			}
			if _, _, err := s.Get(kv.Key); !errors.Is(err, ErrNotFound) {
				t.Fatalf("refused %s was stored", kv.Key)
			}
			continue
		}
		mine++
		if kr.Err != nil || kr.Version <= last {
			t.Fatalf("%s: version %d err %v; the previous pair had %d", kv.Key, kr.Version, kr.Err, last)
		}
		last = kr.Version
		v, ver, err := s.Get(kv.Key)
		if err != nil || !bytes.Equal(v, kv.Value) || ver != kr.Version {
			t.Fatalf("%s: read %q@%d (%v), want %q@%d", kv.Key, v, ver, err, kv.Value, kr.Version)
		}
	}
	if mine == 0 || mine == len(pairs) {
		t.Fatalf("%d of %d keys owned here: the ring should split them", mine, len(pairs))
	}
	if st := s.Stats(); st.Keys != mine {
		t.Fatalf("%d keys stored, want %d", st.Keys, mine)
	}
	// A stale ring epoch is refused per pair too, and changes nothing.
	r = applyNext(t, s, putBatch(6, pairs[:10]))[0]
	for i, kr := range r.Keys {
		if !errors.Is(kr.Err, ErrStaleRing) {
			t.Fatalf("pair %d at a future epoch: %v, want stale ring", i, kr.Err)
		}
	}
	// A malformed entry is refused whole, deterministically.
	r = applyNext(t, s, Command{Op: OpPutBatch, Body: []byte{1}})[0]
	if !errors.Is(r.Err, ErrInvalidCommand) || r.Keys != nil {
		t.Fatalf("malformed batch: %+v", r)
	}
}

// A batch replayed after a restart is not applied twice (the applied
// index rule), and writing a key again in a batch replaces it.
func TestPutBatchReplayAndOverwrite(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ls := logs(1, putBatch(0, kvs(50, "a")))
	results(t, s.ApplyBatch(ls))
	clock := s.Stats().Clock
	if r := results(t, s.ApplyBatch(ls))[0]; !errors.Is(r.Err, ErrAlreadyApplied) {
		t.Fatalf("replayed batch: %v", r.Err)
	}
	if s.Stats().Clock != clock || s.Stats().Keys != 50 {
		t.Fatalf("replay changed the store: %+v", s.Stats())
	}
	again := kvs(50, "a")
	for i := range again {
		again[i].Value = []byte("new")
	}
	r := applyNext(t, s, putBatch(0, again))[0]
	if st := s.Stats(); st.Keys != 50 || r.Keys[49].Version != clock+50 {
		t.Fatalf("overwrite: %+v, last version %d want %d", st, r.Keys[49].Version, clock+50)
	}
	if v, _, _ := s.Get([]byte("a0007")); string(v) != "new" {
		t.Fatalf("a0007 = %q after the overwrite", v)
	}
}
