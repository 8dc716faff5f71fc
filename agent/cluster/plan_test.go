package cluster

import (
	"reflect"
	"testing"

	"github.com/carpkv/carpkv/agent/store"
)

func agent(id, group string, mods ...func(*Agent)) Agent {
	a := Agent{ID: id, Group: group, HTTP: id + ":80", Raft: id + ":70", Weight: 1, Alive: true}
	for _, m := range mods {
		m(&a)
	}
	return a
}

var (
	withState = func(a *Agent) { a.HasState = true }
	dead      = func(a *Agent) { a.Alive = false }
	leading   = func(a *Agent) { a.Leader = a.ID }
)

func ids(as []Agent) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

func TestBootstrapPlanPicksOneAgentDeterministically(t *testing.T) {
	a, b, c, d := agent("a", "g1"), agent("b", "g1"), agent("c", "g1"), agent("d", "g1")
	other := agent("0", "g2") // smaller ID, other group: irrelevant
	for _, tc := range []struct {
		name      string
		self      Agent
		view      []Agent
		expect    int
		bootstrap bool
		servers   []string
	}{
		{"too few visible", a, []Agent{a, b, other}, 3, false, nil},
		{"smallest bootstraps all", a, []Agent{c, a, b, other}, 3, true, []string{"a", "b", "c"}},
		{"others wait", b, []Agent{a, b, c}, 3, false, nil},
		{"more than expected: the smallest expect", a, []Agent{a, b, c, d}, 3, true, []string{"a", "b", "c"}},
		{"a dead agent does not count", a, []Agent{a, b, agent("c", "g1", dead)}, 3, false, nil},
		{"group already formed: join instead", a, []Agent{a, b, agent("c", "g1", withState)}, 3, false, nil},
		{"self has state", agent("a", "g1", withState), []Agent{a, b, c}, 3, false, nil},
		{"expect off", a, []Agent{a, b, c}, 0, false, nil},
		{"single-node group", a, []Agent{a}, 1, true, []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers, ok := BootstrapPlan(tc.self, tc.view, tc.expect)
			if ok != tc.bootstrap || !reflect.DeepEqual(ids(servers), tc.servers) {
				t.Fatalf("BootstrapPlan = %v, %v; want %v, %v", ids(servers), ok, tc.servers, tc.bootstrap)
			}
		})
	}
	// Every agent of the same view agrees on who bootstraps.
	view := []Agent{d, c, b, a}
	n := 0
	for _, self := range view {
		if _, ok := BootstrapPlan(self, view, 3); ok {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d agents would bootstrap", n)
	}
}

func TestJoinTargetsPutTheLeaderFirst(t *testing.T) {
	self := agent("d", "g1")
	view := []Agent{
		self,
		agent("a", "g1", withState),
		agent("b", "g1", withState, leading),
		agent("c", "g1"),                     // no state yet: cannot add anyone
		agent("e", "g1", withState, dead),    // dead
		agent("x", "g2", withState, leading), // other group
	}
	if got, want := JoinTargets(self, view), []string{"b:80", "a:80"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("JoinTargets = %v, want %v", got, want)
	}
}

func TestFirstRingWaitsForEveryExpectedGroupLeader(t *testing.T) {
	l1 := agent("g1-n1", "g1", leading)
	l2 := agent("g2-n1", "g2", leading, func(a *Agent) { a.Weight = 2 })
	f3 := agent("g3-n1", "g3") // g3 has no leader yet
	if _, ok := FirstRing([]Agent{l1, l2, f3}, 3, "strong"); ok {
		t.Fatal("ring proposed before g3 has a leader")
	}
	l3 := agent("g3-n2", "g3", leading)
	spec, ok := FirstRing([]Agent{l3, l1, l2, f3}, 3, "strong")
	want := store.RingSpec{Epoch: 1, Mode: "strong", Groups: []store.RingGroup{{ID: "g1", Weight: 1}, {ID: "g2", Weight: 2}, {ID: "g3", Weight: 1}}}
	if !ok || !reflect.DeepEqual(spec, want) {
		t.Fatalf("FirstRing = %+v, %v; want %+v", spec, ok, want)
	}
	if _, err := spec.Build(); err != nil {
		t.Fatal(err)
	}
	if c := Coordinator(store.RingSpec{}, []Agent{l3, l2, l1}); c != "g1" {
		t.Fatalf("coordinator before the ring: %s", c)
	}
	if c := Coordinator(store.RingSpec{Epoch: 4, Groups: []store.RingGroup{{ID: "g9", Weight: 1}, {ID: "g5", Weight: 1}}}, nil); c != "g5" {
		t.Fatalf("coordinator of a committed ring: %s", c)
	}
}

// A standby group whose ID sorts first must not take itself for the
// coordinator of a cluster without a ring and commit one of its own.
func TestNoFirstRingOnceAnyAgentHasARing(t *testing.T) {
	standby := agent("a0-n1", "a0", leading)
	l1 := agent("g1-n1", "g1", leading, func(a *Agent) { a.RingEpoch = 3 })
	l2 := agent("g2-n1", "g2", leading, func(a *Agent) { a.RingEpoch = 3 })
	if spec, ok := FirstRing([]Agent{standby, l1, l2}, 2, "strong"); ok {
		t.Fatalf("a standby group proposed %+v in a cluster at ring epoch 3", spec)
	}
}

func TestBehindListsGroupsWhoseLeaderHasAnOlderRing(t *testing.T) {
	ring := store.RingSpec{Epoch: 2, Groups: []store.RingGroup{{ID: "g1", Weight: 1}, {ID: "g2", Weight: 1}, {ID: "g3", Weight: 1}}}
	view := []Agent{
		agent("a", "g1", leading, func(a *Agent) { a.RingEpoch = 2 }),
		agent("b", "g2", leading, func(a *Agent) { a.RingEpoch = 1 }),
		agent("c", "g3", func(a *Agent) { a.RingEpoch = 0 }), // no leader visible: later
		agent("d", "g4", leading),                            // not in the ring
	}
	got := Behind(ring, view)
	if len(got) != 1 || got[0].ID != "g2" || got[0].Leader.HTTP != "b:80" {
		t.Fatalf("Behind = %+v", got)
	}
}
