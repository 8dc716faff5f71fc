package ringstat

import (
	"bytes"
	"slices"
	"testing"
)

func TestSequentialKeysAreUserN(t *testing.T) {
	got := SequentialKeys(3)
	want := []string{"user:0", "user:1", "user:2"}
	if len(got) != len(want) {
		t.Fatalf("got %d keys, want %d", len(got), len(want))
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("key %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestGeneratorsAreDeterministicPerSeed(t *testing.T) {
	for _, shape := range Shapes {
		a := Keys(shape, 1000, 7)
		b := Keys(shape, 1000, 7)
		if !slices.EqualFunc(a, b, bytes.Equal) {
			t.Errorf("%v: same seed gave different keys", shape)
		}
		if shape == Sequential {
			continue
		}
		if c := Keys(shape, 1000, 8); slices.EqualFunc(a, c, bytes.Equal) {
			t.Errorf("%v: seeds 7 and 8 gave the same keys", shape)
		}
	}
}

func TestGeneratedKeysAreDistinctAndShaped(t *testing.T) {
	const n = 200_000
	for _, shape := range Shapes {
		keys := Keys(shape, n, 1)
		if len(keys) != n {
			t.Fatalf("%v: %d keys, want %d", shape, len(keys), n)
		}
		seen := make(map[string]struct{}, n)
		for _, k := range keys {
			seen[string(k)] = struct{}{}
			switch shape {
			case Random:
				if len(k) != 16 {
					t.Fatalf("random key of length %d", len(k))
				}
			case URL:
				if k[0] != '/' {
					t.Fatalf("url key %q does not start with /", k)
				}
			}
		}
		if len(seen) != n {
			t.Errorf("%v: %d distinct keys of %d", shape, len(seen), n)
		}
	}
}

func TestKeysDoNotShareCapacity(t *testing.T) {
	keys := URLKeys(2, 1)
	next := string(keys[1])
	_ = append(keys[0], "overwrite"...)
	if string(keys[1]) != next {
		t.Errorf("appending to key 0 changed key 1 to %q", keys[1])
	}
}

func TestParseShapeRoundTrips(t *testing.T) {
	for _, s := range Shapes {
		if got, err := ParseShape(s.String()); err != nil || got != s {
			t.Errorf("ParseShape(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseShape("zipf"); err == nil {
		t.Error("ParseShape accepted an unknown shape")
	}
}
