package chaos

import (
	"testing"

	"github.com/carpkv/carpkv/kvclient/wire"
)

func spec(epoch uint64, groups ...wire.RingGroupSpec) wire.RingSpec {
	return wire.RingSpec{Epoch: epoch, Mode: "strong", Groups: groups}
}

func g(id string, w float64) wire.RingGroupSpec { return wire.RingGroupSpec{ID: id, Weight: w} }

func TestRingKeysSpreadOverEveryGroupOfEveryRing(t *testing.T) {
	two, three := spec(1, g("g1", 1), g("g2", 1)), spec(2, g("g1", 1), g("g2", 1), g("g3", 1))
	keys, err := chooseRingKeys([]wire.RingSpec{two, three}, 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []wire.RingSpec{two, three} {
		owners, err := KeyOwners(s, keys)
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, o := range owners {
			count[o]++
		}
		for _, grp := range s.Groups {
			if count[grp.ID] < 8 {
				t.Errorf("epoch %d: %s owns %d of %d keys", s.Epoch, grp.ID, count[grp.ID], len(keys))
			}
		}
	}
	moved, err := Moved(two, three, keys)
	if err != nil || len(moved) < 8 {
		t.Fatalf("adding g3 moves %d keys (%v)", len(moved), err)
	}
}

func TestNextWeightMovesAKey(t *testing.T) {
	three := spec(2, g("g1", 1), g("g2", 1), g("g3", 1))
	keys, err := chooseRingKeys([]wire.RingSpec{three}, 8)
	if err != nil {
		t.Fatal(err)
	}
	w := nextWeight(three, "g2", []float64{1, 1.01, 2, 3}, keys)
	if w == 1 {
		t.Fatalf("kept the weight")
	}
	moved, err := Moved(three, withWeight(three, "g2", w), keys)
	if err != nil || len(moved) == 0 {
		t.Fatalf("weight %v moves %v (%v)", w, moved, err)
	}
}

func TestStableOwnerLeavesOutHandOffs(t *testing.T) {
	two, three := spec(1, g("g1", 1), g("g2", 1)), spec(2, g("g1", 1), g("g2", 1), g("g3", 1))
	keys, err := chooseRingKeys([]wire.RingSpec{two, three}, 4)
	if err != nil {
		t.Fatal(err)
	}
	moved, _ := Moved(two, three, keys)
	var still string
	for _, k := range keys {
		if o2, _ := KeyOwners(two, []string{k}); o2[k] != "" {
			if m, _ := Moved(two, three, []string{k}); len(m) == 0 {
				still = k
			}
		}
	}
	mover := moved[0]
	tl := &Timeline{First: two, Changes: []RingChangeRecord{{From: two, To: three, Start: 100, Done: 200}}}
	before, _ := KeyOwners(two, []string{mover})
	after, _ := KeyOwners(three, []string{mover, still})
	for _, c := range []struct {
		key       string
		call, ret int64
		want      string
	}{
		{mover, 10, 90, before[mover]},
		{mover, 10, 100, ""},  // touches the change
		{mover, 150, 160, ""}, // within it
		{mover, 190, 300, ""},
		{mover, 201, 300, after[mover]},
		{still, 10, 300, after[still]}, // never moves: its owner serves it throughout
	} {
		if got := tl.StableOwner(c.key, c.call, c.ret); got != c.want {
			t.Errorf("%s [%d, %d]: %q, want %q", c.key, c.call, c.ret, got, c.want)
		}
	}
	// A change never seen complete covers the rest of the run.
	open := &Timeline{First: two, Changes: []RingChangeRecord{{From: two, To: three, Start: 100}}}
	if got := open.StableOwner(mover, 500, 600); got != "" {
		t.Errorf("after an incomplete change: %q", got)
	}
}
