package cluster

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/carpkv/carpkv/agent/store"
	"github.com/carpkv/carpkv/kvclient/wire"
)

func ring(epoch uint64, groups ...string) store.RingSpec {
	r := store.RingSpec{Epoch: epoch, Mode: "strong"}
	for _, g := range groups {
		r.Groups = append(r.Groups, store.RingGroup{ID: g, Weight: 1})
	}
	return r
}

func states(epoch uint64, groups ...string) map[string]wire.MoveState {
	out := map[string]wire.MoveState{}
	for _, g := range groups {
		out[g] = wire.MoveState{Group: g, RingEpoch: epoch, Leader: &wire.Leader{ID: g + "-n1", HTTP: g + ":1"}}
	}
	return out
}

func TestNextRingRefusesWithTheCulpritNamed(t *testing.T) {
	cur := ring(4, "g1", "g2")
	leads := map[string]float64{"g3": 2}
	ok := states(4, "g1", "g2")
	ok["g3"] = wire.MoveState{Group: "g3"}
	tests := []struct {
		name   string
		cur    store.RingSpec
		req    wire.RingChangeRequest
		states map[string]wire.MoveState
		code   wire.Code
		says   string
	}{
		{"no ring yet", ring(0), wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g3"}, ok, wire.CodeUnavailable, "no ring"},
		{"no group", cur, wire.RingChangeRequest{Kind: wire.ChangeAddGroup}, ok, wire.CodeInvalidArgument, "no group"},
		{"add twice", cur, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g2"}, ok, wire.CodeInvalidArgument, "g2 is in the ring"},
		{"add leaderless", cur, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g7"}, ok, wire.CodeInvalidArgument, "g7 has no leader that answers"},
		{"add NaN", cur, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g3", Weight: math.NaN()}, ok, wire.CodeInvalidArgument, "finite"},
		{"add Inf", cur, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g3", Weight: math.Inf(1)}, ok, wire.CodeInvalidArgument, "finite"},
		{"add negative", cur, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g3", Weight: -2}, ok, wire.CodeInvalidArgument, "above 0"},
		{"remove missing", cur, wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: "g3"}, ok, wire.CodeInvalidArgument, "g3 is not in the ring"},
		{"remove last", ring(4, "g1"), wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: "g1"}, ok, wire.CodeInvalidArgument, "last group"},
		{"weight zero", cur, wire.RingChangeRequest{Kind: wire.ChangeSetWeight, Group: "g1"}, ok, wire.CodeInvalidArgument, "above 0"},
		{"weight same", cur, wire.RingChangeRequest{Kind: wire.ChangeSetWeight, Group: "g1", Weight: 1}, ok, wire.CodeInvalidArgument, "already"},
		{"weight unknown group", cur, wire.RingChangeRequest{Kind: wire.ChangeSetWeight, Group: "g9", Weight: 2}, ok, wire.CodeInvalidArgument, "g9 is not in the ring"},
		{"unknown kind", cur, wire.RingChangeRequest{Kind: "merge", Group: "g1"}, ok, wire.CodeInvalidArgument, "unknown kind"},
		{"group silent", cur, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g3"}, states(4, "g1", "g3"), wire.CodeUnavailable, "g2 has no leader that answers"},
		{"group behind", cur, wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: "g2"}, states(3, "g1", "g2"), wire.CodeUnavailable, "at ring epoch 3"},
		{"group busy", cur, wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: "g2"},
			map[string]wire.MoveState{"g1": {RingEpoch: 4}, "g2": {RingEpoch: 4, Target: 5}}, wire.CodeRingChangeInProgress, "g2 is still in the change"},
		{"new group of another ring", cur, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g3"},
			map[string]wire.MoveState{"g1": {RingEpoch: 4}, "g2": {RingEpoch: 4}, "g3": {RingEpoch: 2}}, wire.CodeInvalidArgument, "not this ring's 4"},
		{"new group with keys", cur, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g3"},
			map[string]wire.MoveState{"g1": {RingEpoch: 4}, "g2": {RingEpoch: 4}, "g3": {RingEpoch: 4, Keys: 7}}, wire.CodeInvalidArgument, "still holds 7 keys"},
	}
	for _, tc := range tests {
		_, err := NextRing(tc.cur, tc.req, leads, tc.states)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != tc.code || !strings.Contains(we.Message, tc.says) {
			t.Errorf("%s: %v; want %s saying %q", tc.name, err, tc.code, tc.says)
		}
	}
}

func TestNextRingBuildsTheNextEpoch(t *testing.T) {
	cur := ring(4, "g1", "g3")
	leads := map[string]float64{"g2": 2}
	st := states(4, "g1", "g3")
	st["g2"] = wire.MoveState{Group: "g2"}
	next, err := NextRing(cur, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g2"}, leads, st)
	if err != nil {
		t.Fatal(err)
	}
	if next.Epoch != 5 || len(next.Groups) != 3 || next.Groups[1] != (store.RingGroup{ID: "g2", Weight: 2}) {
		t.Fatalf("added: %+v (want epoch 5, g2 in order with its leader's weight 2)", next)
	}
	// A group this ring removed (it adopted the ring, holds nothing) comes back.
	st["g2"] = wire.MoveState{Group: "g2", RingEpoch: 4}
	if _, err := NextRing(cur, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g2"}, leads, st); err != nil {
		t.Fatalf("re-adding a removed group: %v", err)
	}
	next, err = NextRing(cur, wire.RingChangeRequest{Kind: wire.ChangeSetWeight, Group: "g3", Weight: 0.5}, nil, states(4, "g1", "g3"))
	if err != nil || next.Groups[1].Weight != 0.5 || cur.Groups[1].Weight != 1 {
		t.Fatalf("reweighted: %+v, %v (the current ring must not change)", next, err)
	}
	next, err = NextRing(cur, wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: "g1"}, nil, states(4, "g1", "g3"))
	if err != nil || len(next.Groups) != 1 || next.Groups[0].ID != "g3" || len(cur.Groups) != 2 {
		t.Fatalf("removed: %+v, %v", next, err)
	}
}

func TestEstimatesFollowTheShares(t *testing.T) {
	from, to := ring(1, "g1", "g2", "g3"), ring(2, "g1", "g2", "g3", "g4")
	est := Estimates(from, to, map[string]int{"g1": 3000, "g2": 3000, "g3": 3000})
	for _, g := range []string{"g1", "g2", "g3"} {
		if est[g] < 700 || est[g] > 800 { // a quarter of each group's keys
			t.Errorf("add g4: estimate for %s = %d, want about 750", g, est[g])
		}
	}
	est = Estimates(to, from, map[string]int{"g1": 10, "g2": 10, "g3": 10, "g4": 2500})
	if est["g4"] != 2500 || est["g1"] != 0 {
		t.Errorf("remove g4: %v, want every key of g4 and none of the others", est)
	}
}

// change returns a recorded change from ring from to ring to at phase.
func change(from, to store.RingSpec, phase string, sources ...wire.SourceProgress) wire.RingChangeStatus {
	return wire.RingChangeStatus{From: from.Wire(), To: to.Wire(), Phase: phase, Sources: sources}
}

// The whole change, phase by phase, as the coordinator sees the groups'
// states evolve: each answer is what a correct coordinator must do next.
func TestNextActionWalksTheChange(t *testing.T) {
	from, to := ring(1, "g1", "g2"), ring(2, "g1", "g2", "g3")
	st := states(1, "g1", "g2")
	st["g3"] = wire.MoveState{Group: "g3"}
	want := func(ch wire.RingChangeStatus, s map[string]wire.MoveState, kind, group, step string, final bool) {
		t.Helper()
		a := NextAction(ch, s)
		if a.Kind != kind || a.Group != group || a.Step != step || a.Final != final {
			t.Fatalf("phase %s: %+v, want %s %s %s final=%v", ch.Phase, a, kind, group, step, final)
		}
	}
	ch := change(from, to, wire.PhasePrepare)
	want(ch, st, ActStep, "g1", wire.StepPrepare, false)
	for _, g := range []string{"g1", "g2", "g3"} {
		s := st[g]
		s.Target = 2
		st[g] = s
	}
	if a := NextAction(ch, st); a.Kind != ActAdvance || a.Phase != wire.PhaseCopy {
		t.Fatalf("all prepared: %+v", a)
	}
	// A silent group stops the change where it is.
	silent := map[string]wire.MoveState{"g1": st["g1"], "g3": st["g3"]}
	if a := NextAction(ch, silent); a.Kind != ActWait || a.Group != "g2" {
		t.Fatalf("g2 silent: %+v", a)
	}

	ch = change(from, to, wire.PhaseCopy)
	want(ch, st, ActCopy, "g1", "", false)
	if a := NextAction(ch, st); len(a.Groups) != 2 {
		t.Fatalf("first round: %+v, want both sources side by side", a)
	}
	ch.Sources = []wire.SourceProgress{{Group: "g1", Rounds: 1, LastRound: SmallRound + 1}}
	want(ch, st, ActCopy, "g1", "", false) // a big round: copy again
	ch.Sources[0].LastRound = 10
	want(ch, st, ActCopy, "g2", "", false)
	if a := NextAction(ch, st); len(a.Groups) != 1 {
		t.Fatalf("g1 done copying: %+v, want g2 alone", a)
	}
	ch.Sources = append(ch.Sources, wire.SourceProgress{Group: "g2", Rounds: MaxCopyRounds, LastRound: 1 << 20})
	if a := NextAction(ch, st); a.Kind != ActAdvance || a.Phase != wire.PhaseFreeze {
		t.Fatalf("copied (g2 at the round limit): %+v", a)
	}

	ch.Phase = wire.PhaseFreeze
	want(ch, st, ActStep, "g1", wire.StepFreeze, false)
	for _, g := range []string{"g1", "g2"} {
		s := st[g]
		s.Frozen = true
		st[g] = s
	}
	if a := NextAction(ch, st); a.Kind != ActAdvance || a.Phase != wire.PhaseFinal {
		t.Fatalf("frozen: %+v", a)
	}

	ch.Phase = wire.PhaseFinal
	want(ch, st, ActCopy, "g1", "", true)
	ch.Sources[0].Sealed, ch.Sources[1].Sealed = true, true
	if a := NextAction(ch, st); a.Kind != ActAdvance || a.Phase != wire.PhaseActivate {
		t.Fatalf("sealed: %+v", a)
	}

	// Destinations adopt first, then the sources.
	ch.Phase = wire.PhaseActivate
	want(ch, st, ActStep, "g1", wire.StepActivate, false)
	st["g1"] = wire.MoveState{Group: "g1", RingEpoch: 2, Target: 2}
	st["g2"] = wire.MoveState{Group: "g2", RingEpoch: 2, Target: 2}
	want(ch, st, ActStep, "g3", wire.StepActivate, false)
	st["g3"] = wire.MoveState{Group: "g3", RingEpoch: 2, Target: 2}
	if a := NextAction(ch, st); a.Kind != ActAdvance || a.Phase != wire.PhaseCleanup {
		t.Fatalf("adopted: %+v", a)
	}

	ch.Phase = wire.PhaseCleanup
	want(ch, st, ActStep, "g1", wire.StepCleanup, false)
	ch.Sources[0].Cleaned, ch.Sources[1].Cleaned = true, true
	if a := NextAction(ch, st); a.Kind != ActAdvance || a.Phase != wire.PhaseFinish {
		t.Fatalf("cleaned: %+v", a)
	}

	ch.Phase = wire.PhaseFinish
	want(ch, st, ActStep, "g1", wire.StepFinish, false)
	for g := range st {
		st[g] = wire.MoveState{Group: g, RingEpoch: 2}
	}
	if a := NextAction(ch, st); a.Kind != ActAdvance || a.Phase != wire.PhaseDone {
		t.Fatalf("finished: %+v", a)
	}
}

// When a group removed by the change is the destination order's tail, the
// activation still reaches it: every group of either ring adopts the ring.
func TestNextActionActivatesRemovedSourcesLast(t *testing.T) {
	from, to := ring(3, "g1", "g2", "g3"), ring(4, "g2", "g3")
	st := map[string]wire.MoveState{
		"g1": {Group: "g1", RingEpoch: 3, Target: 4, Frozen: true},
		"g2": {Group: "g2", RingEpoch: 4, Target: 4},
		"g3": {Group: "g3", RingEpoch: 4, Target: 4},
	}
	a := NextAction(change(from, to, wire.PhaseActivate), st)
	if a.Kind != ActStep || a.Group != "g1" || a.Step != wire.StepActivate {
		t.Fatalf("%+v, want the removed g1 to adopt last", a)
	}
}
