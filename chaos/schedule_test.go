package chaos

import (
	"os"
	"reflect"
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

func TestCISeedsCoverEveryVariant(t *testing.T) {
	seen := map[Kind]map[int]bool{}
	for _, seed := range CISeeds {
		for _, s := range steps(seed, AllKinds, len(AllKinds)) {
			if seen[s.Kind] == nil {
				seen[s.Kind] = map[int]bool{}
			}
			seen[s.Kind][s.Variant] = true
		}
	}
	for _, k := range AllKinds {
		for v := 0; v < Variants(k); v++ {
			if !seen[k][v] {
				t.Errorf("CISeeds %v never run %s in variant %d", CISeeds, k, v)
			}
		}
	}
}
