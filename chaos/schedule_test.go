package chaos

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"testing"
)

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

func steps(seed uint64, kinds []Kind, n int) []Step {
	s := NewSchedule(seed, kinds, 2)
	out := make([]Step, n)
	for i := range out {
		out[i] = s.Next()
	}
	return out
}

func TestScheduleIsReproducibleFromItsSeed(t *testing.T) {
	a, b := steps(42, AllKinds, 50), steps(42, AllKinds, 50)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave two schedules")
	}
	if reflect.DeepEqual(a, steps(43, AllKinds, 50)) {
		t.Fatal("two seeds gave the same schedule")
	}
}

func TestEveryRoundCoversEveryKind(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		all := steps(seed, AllKinds, 3*len(AllKinds))
		for r := 0; r < 3; r++ {
			seen := map[Kind]bool{}
			for _, s := range all[r*len(AllKinds) : (r+1)*len(AllKinds)] {
				seen[s.Kind] = true
				if s.Group < 0 || s.Group > 1 {
					t.Fatalf("group %d", s.Group)
				}
				if s.Hold < 0 || s.Gap <= 0 {
					t.Fatalf("step %+v", s)
				}
			}
			if len(seen) != len(AllKinds) {
				t.Fatalf("seed %d round %d covers %d kinds", seed, r, len(seen))
			}
		}
	}
}

func TestParseKinds(t *testing.T) {
	if k, err := ParseKinds(""); err != nil || len(k) != len(AllKinds) {
		t.Fatalf("%v %v", k, err)
	}
	if k, err := ParseKinds("kill-leader, partition-oneway"); err != nil || !reflect.DeepEqual(k, []Kind{KillLeader, PartitionOneWay}) {
		t.Fatalf("%v %v", k, err)
	}
	if _, err := ParseKinds("kill-everything"); err == nil {
		t.Fatal("an unknown kind was accepted")
	}
}

func TestOwnerIsParsedFromResourceNames(t *testing.T) {
	for name, want := range map[string]int{
		"carpkv-chaos-1234-2-g1-n3": 1234, "carpkv-chaos-99:agent": 99, "carpkv-chaos-7": 7,
	} {
		if got, ok := ownerOf(name); !ok || got != want {
			t.Errorf("%s: %d %v", name, got, ok)
		}
	}
	for _, name := range []string{"carpkv-chaos-x", "other-1234"} {
		if _, ok := ownerOf(name); ok {
			t.Errorf("%s parsed", name)
		}
	}
}

// ciCoverage lists what the CI seeds' rounds leave out: a kind in a
// variant never run (a ring change's variants count over the three ring
// kinds together: a round has one of each, so three seeds cannot run
// each ring kind in its four variants).
func ciCoverage(seeds []uint64) []string {
	seen := map[Kind]map[int]bool{}
	ring := map[int]bool{}
	for _, seed := range seeds {
		for _, s := range steps(seed, AllKinds, len(AllKinds)) {
			if seen[s.Kind] == nil {
				seen[s.Kind] = map[int]bool{}
			}
			seen[s.Kind][s.Variant] = true
			if s.Kind.isRingChange() {
				ring[s.Variant] = true
			}
		}
	}
	var missing []string
	for _, k := range AllKinds {
		if len(seen[k]) == 0 {
			missing = append(missing, string(k))
		}
		if k.isRingChange() {
			continue
		}
		for v := 0; v < Variants(k); v++ {
			if !seen[k][v] {
				missing = append(missing, fmt.Sprintf("%s variant %d", k, v))
			}
		}
	}
	for v := 0; v < ringVariants; v++ {
		if !ring[v] {
			missing = append(missing, fmt.Sprintf("ring change variant %d", v))
		}
	}
	return missing
}

func TestCISeedsCoverEveryVariant(t *testing.T) {
	if missing := ciCoverage(CISeeds); len(missing) > 0 {
		t.Errorf("CISeeds %v never run: %v", CISeeds, missing)
	}
}

// TestFindCISeeds lists seed triples that cover every variant (run it by
// hand with CARPKV_CHAOS_FIND_SEEDS=1 when the kinds change).
func TestFindCISeeds(t *testing.T) {
	if os.Getenv("CARPKV_CHAOS_FIND_SEEDS") != "1" {
		t.Skip("set CARPKV_CHAOS_FIND_SEEDS=1")
	}
	found := 0
	for a := uint64(1); a < 40 && found < 10; a++ {
		for b := a + 1; b < 40 && found < 10; b++ {
			for c := b + 1; c < 40 && found < 10; c++ {
				if len(ciCoverage([]uint64{a, b, c})) == 0 {
					t.Logf("%d %d %d", a, b, c)
					found++
				}
			}
		}
	}
}

func TestEveryRoundAddsTheStandbyBeforeRemovingAGroup(t *testing.T) {
	for seed := uint64(0); seed < 50; seed++ {
		all := steps(seed, AllKinds, 4*len(AllKinds))
		for r := 0; r < 4; r++ {
			round := all[r*len(AllKinds) : (r+1)*len(AllKinds)]
			a := slices.IndexFunc(round, func(s Step) bool { return s.Kind == RingAddGroup })
			rm := slices.IndexFunc(round, func(s Step) bool { return s.Kind == RingRemoveGroup })
			if a < 0 || rm < 0 || rm < a {
				t.Fatalf("seed %d round %d: add at %d, remove at %d", seed, r, a, rm)
			}
		}
	}
}
