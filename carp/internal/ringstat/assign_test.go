package ringstat

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/carpkv/carpkv/carp"
)

func equalMembers(n int) []carp.Member {
	ms := make([]carp.Member, n)
	for i := range ms {
		ms[i] = carp.Member{ID: fmt.Sprintf("m%03d", i), Weight: 1}
	}
	return ms
}

func ids(ms []carp.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// Vectors from the reference implementation's test suite as published with
// several ports of the paper's code.
func TestJumpHashMatchesReferenceVectors(t *testing.T) {
	for _, tc := range []struct {
		key     uint64
		buckets int
		want    int
	}{
		{1, 1, 0},
		{42, 57, 43},
		{0xDEAD10CC, 1, 0},
		{0xDEAD10CC, 666, 361},
		{256, 1024, 520},
	} {
		if got := JumpHash(tc.key, tc.buckets); got != tc.want {
			t.Errorf("JumpHash(%#x, %d) = %d, want %d", tc.key, tc.buckets, got, tc.want)
		}
	}
}

func TestJumpHashMovesKeysOnlyToTheNewBucket(t *testing.T) {
	keys := RandomKeys(5000, 8, 3)
	for n := 1; n < 40; n++ {
		for _, k := range keys {
			h := carp.StrongKeyHash(k)
			before, after := JumpHash(h, n), JumpHash(h, n+1)
			if before < 0 || before >= n {
				t.Fatalf("JumpHash(_, %d) = %d out of range", n, before)
			}
			if after != before && after != n {
				t.Fatalf("growing %d -> %d buckets moved a key from %d to %d", n, n+1, before, after)
			}
		}
	}
}

func TestKetamaPointsAreLibketamaDigests(t *testing.T) {
	k, err := NewKetama("k", []carp.Member{{ID: "a", Weight: 1}}, 160)
	if err != nil {
		t.Fatal(err)
	}
	if k.Points() != 160 {
		t.Fatalf("%d points, want 160", k.Points())
	}
	d := md5.Sum([]byte("a-39"))
	for h := range 4 {
		p := uint32(d[3+h*4])<<24 | uint32(d[2+h*4])<<16 | uint32(d[1+h*4])<<8 | uint32(d[h*4])
		if _, found := slices.BinarySearch(k.points, p); !found {
			t.Errorf("point %d of digest a-39 (%#x) is missing", h, p)
		}
	}
	if !slices.IsSorted(k.points) {
		t.Error("points are not sorted")
	}
}

func TestKetamaOwnerIsFirstPointAtOrAfterKeyHash(t *testing.T) {
	k, err := NewKetama("k", equalMembers(5), 160)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range SequentialKeys(2000) {
		d := md5.Sum(key)
		h := binary.LittleEndian.Uint32(d[:4])
		want := k.owners[0] // wrap when h is above the last point
		for i, p := range k.points {
			if p >= h {
				want = k.owners[i]
				break
			}
		}
		if got := k.Owner(key); got != want {
			t.Fatalf("Owner(%q) = %s, want %s", key, got, want)
		}
	}
}

func TestKetamaWeightsScaleDigests(t *testing.T) {
	ms := []carp.Member{{ID: "a", Weight: 1}, {ID: "b", Weight: 2}, {ID: "c", Weight: 3}, {ID: "d", Weight: 4}}
	k, err := NewKetama("k", ms, 160)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, o := range k.owners {
		per[o]++
	}
	// floor(w/10 * 4 members * 40 digests) * 4 points
	for id, want := range map[string]int{"a": 64, "b": 128, "c": 192, "d": 256} {
		if per[id] != want {
			t.Errorf("member %s has %d points, want %d", id, per[id], want)
		}
	}
}

func TestOwnersInParallelMatchesSequential(t *testing.T) {
	r, err := carp.New(equalMembers(7))
	if err != nil {
		t.Fatal(err)
	}
	keys := SequentialKeys(50_000)
	got := Owners(Ring("strong", r), keys)
	for i, k := range keys {
		if want := r.Owner(k); got[i] != want {
			t.Fatalf("key %d: parallel owner %s, sequential %s", i, got[i], want)
		}
	}
}

func TestAssignersPlaceOnlyOnTheirMembers(t *testing.T) {
	ms := equalMembers(9)
	spec, _ := carp.New(ms, carp.WithMode(carp.ModeSpec))
	strong, _ := carp.New(ms)
	ket, _ := NewKetama("ketama160", ms, 160)
	jump, _ := NewJump("jump", ids(ms))
	keys := URLKeys(20_000, 5)
	for _, a := range []Assigner{Ring("spec", spec), Ring("strong", strong), ket, jump} {
		counts, err := Counts(Owners(a, keys), ids(ms))
		if err != nil {
			t.Fatalf("%s: %v", a.Name(), err)
		}
		for i, c := range counts {
			if c == 0 {
				t.Errorf("%s: member %s got no keys of 20000", a.Name(), ms[i].ID)
			}
		}
	}
}
