package loadgen

import (
	"slices"
	"testing"
)

func TestAppendKeyPadsToTheKeySize(t *testing.T) {
	tests := []struct {
		i, size int
		want    string
	}{
		{42, 16, "k000000000000042"},
		{0, 16, "k000000000000000"},
		{9999, 5, "k9999"},
		{7, 2, "k7"},
	}
	for _, tt := range tests {
		if got := string(AppendKey([]byte("x"), tt.i, tt.size)); got != "x"+tt.want {
			t.Errorf("AppendKey(x, %d, %d) = %q, want %q", tt.i, tt.size, got, "x"+tt.want)
		}
	}
	for _, tt := range []struct{ n, want int }{{1, 2}, {10, 2}, {11, 3}, {10000, 5}, {10001, 6}} {
		if got := MinKeySize(tt.n); got != tt.want {
			t.Errorf("MinKeySize(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

func draw(t *testing.T, dist Dist, n int, seed [2]uint64, count int) []int {
	t.Helper()
	p, err := NewKeyPicker(dist, n, 1.1, seed)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int, count)
	for i := range out {
		out[i] = p.Next()
		if out[i] < 0 || out[i] >= n {
			t.Fatalf("%s picker over %d keys drew %d", dist, n, out[i])
		}
	}
	return out
}

func TestKeyPickersAreDeterministicPerSeed(t *testing.T) {
	for _, dist := range []Dist{Uniform, Zipf} {
		a := draw(t, dist, 10000, [2]uint64{7, 1}, 1000)
		b := draw(t, dist, 10000, [2]uint64{7, 1}, 1000)
		c := draw(t, dist, 10000, [2]uint64{8, 1}, 1000)
		if !slices.Equal(a, b) {
			t.Errorf("%s: two pickers with one seed drew different keys", dist)
		}
		if slices.Equal(a, c) {
			t.Errorf("%s: pickers with different seeds drew the same keys", dist)
		}
	}
}

func TestKeyPickerDistributions(t *testing.T) {
	const n, draws = 1000, 200000
	counts := func(dist Dist) []int {
		c := make([]int, n)
		for _, k := range draw(t, dist, n, [2]uint64{1, 1}, draws) {
			c[k]++
		}
		return c
	}
	u := counts(Uniform)
	if lo, hi := slices.Min(u), slices.Max(u); lo < draws/n/2 || hi > 2*draws/n {
		t.Errorf("uniform: key counts range %d..%d, want all near %d", lo, hi, draws/n)
	}
	z := counts(Zipf)
	if z[0] != slices.Max(z) || z[0] < draws/20 {
		t.Errorf("zipf: key 0 drawn %d times (max %d), want the hottest key by far", z[0], slices.Max(z))
	}
	if z[0] < 2*z[9] || z[9] < z[999] {
		t.Errorf("zipf: counts of keys 0, 9, 999 = %d, %d, %d; want decreasing", z[0], z[9], z[999])
	}
}

func TestNewKeyPickerRejectsBadParameters(t *testing.T) {
	if _, err := NewKeyPicker(Zipf, 10, 1.0, [2]uint64{}); err == nil {
		t.Error("zipf with s=1 was accepted")
	}
	if _, err := NewKeyPicker(Uniform, 0, 0, [2]uint64{}); err == nil {
		t.Error("an empty key space was accepted")
	}
	if _, err := ParseDist("normal"); err == nil {
		t.Error(`ParseDist("normal") was accepted`)
	}
}
