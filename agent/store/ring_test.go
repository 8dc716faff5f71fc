package store

import (
	"errors"
	"fmt"
	"testing"
)

// Invariant 3 at apply time: under a committed ring, a group refuses keys
// another group owns, and requests routed by a newer ring than its own.
func TestWritesAreCheckedAgainstTheAppliedRing(t *testing.T) {
	s := openStore(t, t.TempDir())
	// Before any ring the group is standalone and takes every key.
	if r := applyNext(t, s, put("before", "x"))[0]; r.Err != nil {
		t.Fatalf("put without a ring: %v", r.Err)
	}
	spec := RingSpec{Epoch: 5, Mode: "strong", Groups: []RingGroup{{testGroup, 1}, {"g2", 1}}}
	if r := applyNext(t, s, Command{Op: OpSetRing, Ring: spec})[0]; r.Err != nil {
		t.Fatal(r.Err)
	}
	cr, err := spec.Build()
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := 0, 0
	for i := 0; i < 200; i++ {
		key := fmt.Sprintf("k%d", i)
		c := put(key, "v")
		c.RingEpoch = 5
		r := applyNext(t, s, c)[0]
		var re *RingError
		switch owner := cr.Owner([]byte(key)); owner {
		case testGroup:
			mine++
			if r.Err != nil {
				t.Fatalf("%s owned here refused: %v", key, r.Err)
			}
		default:
			theirs++
			if !errors.As(r.Err, &re) || !errors.Is(r.Err, ErrWrongGroup) || re.Epoch != 5 || re.Owner != owner {
				t.Fatalf("%s owned by %s: result %v, want wrong group at epoch 5", key, owner, r.Err)
			}
			if _, _, err := s.Get([]byte(key)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("refused key %s was stored", key)
			}
		}
		if err := s.CheckOwner([]byte(key), 5); (err == nil) != (cr.Owner([]byte(key)) == testGroup) {
			t.Fatalf("CheckOwner(%s) = %v disagrees with apply", key, err)
		}
	}
	if mine == 0 || theirs == 0 {
		t.Fatalf("degenerate split %d/%d", mine, theirs)
	}
	// A client ahead of the group is refused whatever the key.
	ahead := put("k0", "v")
	ahead.RingEpoch = 6
	if r := applyNext(t, s, ahead)[0]; !errors.Is(r.Err, ErrStaleRing) {
		t.Fatalf("client at epoch 6, group at 5: %v, want stale ring", r.Err)
	}
	// A client behind is judged by the group's ring (epoch 0: no ring).
	if got := s.Ring(); got.Epoch != 5 || len(got.Groups) != 2 {
		t.Fatalf("Ring() = %+v", got)
	}
	// The ring survives a reopen.
	dir := s.dir
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, dir)
	if s2.Epoch() != 5 {
		t.Fatalf("epoch after reopen %d", s2.Epoch())
	}
}
