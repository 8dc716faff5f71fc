package loadgen

import "testing"

func TestVersionsRemembersTheLastSetPerKey(t *testing.T) {
	var v Versions
	if got := v.Get([]byte("a")); got != 0 {
		t.Fatalf("unseen key: %d", got)
	}
	v.Set([]byte("a"), 7)
	v.Set([]byte("b"), 3)
	v.Set([]byte("a"), 9)
	if v.Get([]byte("a")) != 9 || v.Get([]byte("b")) != 3 {
		t.Fatalf("a=%d b=%d, want 9 and 3", v.Get([]byte("a")), v.Get([]byte("b")))
	}
}
