package chaos

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

func TestClassifyFollowsTheClientsErrorContract(t *testing.T) {
	agentErr := func(code wire.Code) error {
		return &kvclient.Error{Op: "put", Addr: "a:1", Code: code, Wire: &wire.Error{Code: code}}
	}
	cas := &kvclient.CASError{Key: []byte("k"), Expected: 3, Current: 7, Err: agentErr(wire.CodeCASFailed).(*kvclient.Error)}
	tests := []struct {
		name    string
		kind    OpKind
		err     error
		want    Outcome
		version uint64
	}{
		{"success", OpPut, nil, OutcomeOK, 0},
		{"cas failed carries the current version", OpCAS, cas, OutcomeCASFailed, 7},
		{"not found", OpDelete, agentErr(wire.CodeNotFound), OutcomeNotFound, 0},
		{"timeout: unknown", OpPut, agentErr(wire.CodeTimeout), OutcomeUnknown, 0},
		{"wrapped timeout: unknown", OpCAS, fmt.Errorf("x: %w", kvclient.ErrTimeout), OutcomeUnknown, 0},
		{"unavailable: nothing applied", OpPut, agentErr(wire.CodeUnavailable), OutcomeFailed, 0},
		{"not leader: nothing applied", OpPut, agentErr(wire.CodeNotLeader), OutcomeFailed, 0},
		{"wrong group: nothing applied", OpDelete, agentErr(wire.CodeWrongGroup), OutcomeFailed, 0},
		{"stale ring: nothing applied", OpDelete, agentErr(wire.CodeStaleRing), OutcomeFailed, 0},
		{"gave up after not_leader", OpPut, fmt.Errorf("%w (gave up: %w)", agentErr(wire.CodeNotLeader), errors.New("deadline")), OutcomeFailed, 0},
		{"internal error: unknown", OpPut, agentErr(wire.CodeInternal), OutcomeUnknown, 0},
		{"anything else: unknown", OpPut, errors.New("surprise"), OutcomeUnknown, 0},
		{"client closed: unknown", OpPut, kvclient.ErrClosed, OutcomeUnknown, 0},
		{"a read without an answer proves nothing", OpGet, agentErr(wire.CodeTimeout), OutcomeFailed, 0},
		{"a read of an absent key", OpGet, agentErr(wire.CodeNotFound), OutcomeNotFound, 0},
	}
	for _, tt := range tests {
		got, v := Classify(tt.kind, tt.err)
		if got != tt.want || v != tt.version {
			t.Errorf("%s: got %s %d, want %s %d", tt.name, got, v, tt.want, tt.version)
		}
	}
}

func TestUnknownWritesReturnAtTheHorizonOrAtTheirFirstObservation(t *testing.T) {
	ops := []Op{
		{ID: 0, Key: "k", Kind: OpPut, Value: "seen", Call: 10, Return: 20, Outcome: OutcomeUnknown},
		{ID: 1, Key: "k", Kind: OpPut, Value: "never", Call: 11, Return: 21, Outcome: OutcomeUnknown},
		{ID: 2, Key: "k", Kind: OpPut, Value: "refused", Call: 12, Return: 22, Outcome: OutcomeFailed},
		{ID: 3, Key: "k", Kind: OpGet, Value: "seen", Call: 30, Return: 40, Outcome: OutcomeOK, Version: 4},
		{ID: 4, Key: "k", Kind: OpGet, Value: "seen", Call: 50, Return: 60, Outcome: OutcomeOK, Version: 4},
	}
	h := horizon(ops)
	if h != 61 {
		t.Fatalf("horizon %d", h)
	}
	pops, src := porcupineOps(ops, h)
	if len(pops) != 4 || src[2].ID != 3 {
		t.Fatalf("the definitely failed write is left out: %+v", src)
	}
	if pops[0].Return != 40 {
		t.Errorf("an unknown write observed by a read returns when that read returned: %d", pops[0].Return)
	}
	if pops[1].Return != h {
		t.Errorf("an unknown write never observed returns at the horizon: %d", pops[1].Return)
	}
}

func TestStatsMedianAndWorst(t *testing.T) {
	s := NewStats([]time.Duration{3 * time.Second, time.Second, -1, 2 * time.Second, 4 * time.Second})
	if s.N != 4 || s.Missed != 1 || s.Median != 2500*time.Millisecond || s.Worst != 4*time.Second {
		t.Fatalf("%+v", s)
	}
	if s := NewStats(nil); s.N != 0 || s.String() != "none measured (0 missed)" {
		t.Fatalf("%+v %s", s, s)
	}
}

func TestChooseKeysGivesEveryGroupItsKeys(t *testing.T) {
	r := wire.Ring{Epoch: 1, Mode: "strong", Groups: []wire.RingGroup{{ID: "g1", Weight: 1}, {ID: "g2", Weight: 1}, {ID: "g3", Weight: 2}}}
	keys, probes, err := chooseKeys(r, 8)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, g := range keys {
		count[g]++
	}
	for _, g := range []string{"g1", "g2", "g3"} {
		if count[g] != 8 || probes[g] == "" {
			t.Errorf("group %s: %d keys, probe %q", g, count[g], probes[g])
		}
		if _, clash := keys[probes[g]]; clash {
			t.Errorf("probe key %q is also a workload key", probes[g])
		}
	}
}
