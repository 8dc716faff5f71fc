package loadgen

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseMix(t *testing.T) {
	valid := []struct {
		in   string
		want Mix
		str  string
	}{
		{"put=50,get=50", Mix{OpPut: 50, OpGet: 50}, "put=50,get=50"},
		{"put=100", Mix{OpPut: 100}, "put=100"},
		{" get = 70 , PUT=20,cas=5,delete=5 ", Mix{OpPut: 20, OpGet: 70, OpCAS: 5, OpDelete: 5}, "put=20,get=70,cas=5,delete=5"},
		{"get=100,cas=0", Mix{OpGet: 100}, "get=100"},
	}
	for _, tt := range valid {
		got, err := ParseMix(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseMix(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		if got.String() != tt.str {
			t.Errorf("ParseMix(%q).String() = %q, want %q", tt.in, got.String(), tt.str)
		}
		if back, err := ParseMix(got.String()); err != nil || back != got {
			t.Errorf("ParseMix(%q) does not round-trip: %v, %v", got.String(), back, err)
		}
	}

	invalid := []struct{ in, want string }{
		{"", "empty mix"},
		{"put=50,get=40", "sum to 90, not 100"},
		{"put=60,get=60", "sum to 120"},
		{"put=50,scan=50", `unknown op "scan"`},
		{"put=50,put=50", "put is given twice"},
		{"put=fifty,get=50", "whole number from 0 to 100"},
		{"put=50.5,get=49.5", "whole number"},
		{"put=-10,get=110", "whole number from 0 to 100"},
		{"put50,get=50", `"put50" is not op=percent`},
		{"put=50,,get=50", `"" is not op=percent`},
		{"=100", "is not op=percent"},
	}
	for _, tt := range invalid {
		_, err := ParseMix(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseMix(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

func TestMixPickFollowsTheShares(t *testing.T) {
	m := Mix{OpPut: 20, OpGet: 70, OpCAS: 0, OpDelete: 10}
	var got [numOps]int
	for r := range 100 {
		got[m.pick(r)]++
	}
	if got != [numOps]int(m) {
		t.Fatalf("pick over 0..99 = %v, want exactly the shares %v", got, m)
	}
}

func TestMixJSONRoundTrips(t *testing.T) {
	m := Mix{OpPut: 20, OpGet: 70, OpDelete: 10}
	b, err := json.Marshal(m)
	if err != nil || string(b) != `{"cas":0,"delete":10,"get":70,"put":20}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var back Mix
	if err := json.Unmarshal(b, &back); err != nil || back != m {
		t.Fatalf("Unmarshal(%s) = %v, %v", b, back, err)
	}
	if err := json.Unmarshal([]byte(`{"scan":100}`), &back); err == nil {
		t.Fatal("an unknown op was accepted")
	}
}
