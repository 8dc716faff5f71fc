package cluster

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/carpkv/carpkv/agent/store"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// The decisions of a ring change (docs/design.md "Ring changes"), as plain
// functions: NextRing validates an operator's request against the ring and
// the groups' states; NextAction says what the coordinator does next given
// the recorded change and what each group's leader reports. changerun.go
// acts on them.

// refuse is a ring change request refused before anything started, as
// the answer the operator gets (invalid_argument, unavailable,
// ring_change_in_progress).
func refuse(code wire.Code, format string, args ...any) error {
	return &wire.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// NextRing returns the ring that req asks for after ring cur (epoch E+1),
// or why it is refused. weights are the group weights the groups' agents
// were started with (an added group's default weight); states are what the
// groups' leaders report, keyed by group (a group missing there did not
// answer: an added group must have formed and elected a leader).
func NextRing(cur store.RingSpec, req wire.RingChangeRequest, weights map[string]float64, states map[string]wire.MoveState) (store.RingSpec, error) {
	if cur.Epoch == 0 {
		return store.RingSpec{}, refuse(wire.CodeUnavailable, "no ring is committed yet: the cluster is still forming")
	}
	if req.Group == "" {
		return store.RingSpec{}, refuse(wire.CodeInvalidArgument, "ring change: no group named")
	}
	i := slices.IndexFunc(cur.Groups, func(g store.RingGroup) bool { return g.ID == req.Group })
	in := i >= 0
	validWeight := func(w float64) error {
		if math.IsNaN(w) || math.IsInf(w, 0) || w <= 0 {
			return refuse(wire.CodeInvalidArgument, "ring change: weight %v of group %s must be a finite number above 0", w, req.Group)
		}
		return nil
	}
	next := store.RingSpec{Epoch: cur.Epoch + 1, Mode: cur.Mode, Groups: slices.Clone(cur.Groups)}
	switch req.Kind {
	case wire.ChangeAddGroup:
		if in {
			return store.RingSpec{}, refuse(wire.CodeInvalidArgument, "add-group: group %s is in the ring already (epoch %d)", req.Group, cur.Epoch)
		}
		if _, ok := states[req.Group]; !ok {
			return store.RingSpec{}, refuse(wire.CodeInvalidArgument, "add-group: group %s has no leader that answers: start its agents and wait until it has formed", req.Group)
		}
		w := req.Weight
		if w == 0 {
			w = weights[req.Group]
		}
		if w == 0 {
			w = 1
		}
		if err := validWeight(w); err != nil {
			return store.RingSpec{}, err
		}
		next.Groups = append(next.Groups, store.RingGroup{ID: req.Group, Weight: w})
		slices.SortFunc(next.Groups, func(a, b store.RingGroup) int { return strings.Compare(a.ID, b.ID) })
	case wire.ChangeRemoveGroup:
		if !in {
			return store.RingSpec{}, refuse(wire.CodeInvalidArgument, "remove-group: group %s is not in the ring (epoch %d)", req.Group, cur.Epoch)
		}
		if len(cur.Groups) == 1 {
			return store.RingSpec{}, refuse(wire.CodeInvalidArgument, "remove-group: group %s is the last group of the ring; its keys would have nowhere to go", req.Group)
		}
		next.Groups = slices.Delete(next.Groups, i, i+1)
	case wire.ChangeSetWeight:
		if !in {
			return store.RingSpec{}, refuse(wire.CodeInvalidArgument, "set-weight: group %s is not in the ring (epoch %d)", req.Group, cur.Epoch)
		}
		if err := validWeight(req.Weight); err != nil {
			return store.RingSpec{}, err
		}
		if cur.Groups[i].Weight == req.Weight {
			return store.RingSpec{}, refuse(wire.CodeInvalidArgument, "set-weight: group %s has weight %v already", req.Group, req.Weight)
		}
		next.Groups[i].Weight = req.Weight
	default:
		return store.RingSpec{}, refuse(wire.CodeInvalidArgument, "ring change: unknown kind %q (want %s, %s or %s)", req.Kind, wire.ChangeAddGroup, wire.ChangeRemoveGroup, wire.ChangeSetWeight)
	}
	if _, err := next.Build(); err != nil {
		return store.RingSpec{}, refuse(wire.CodeInvalidArgument, "ring change: %v", err)
	}
	// Every group involved must be reachable, at the current epoch (a new
	// group: standby, at epoch 0), and in no other change.
	for _, g := range Involved(cur, next) {
		st, ok := states[g]
		switch {
		case !ok:
			return store.RingSpec{}, refuse(wire.CodeUnavailable, "ring change: group %s has no leader that answers; nothing started", g)
		case st.Target != 0:
			return store.RingSpec{}, refuse(wire.CodeRingChangeInProgress, "ring change: group %s is still in the change to epoch %d", g, st.Target)
		case cur.Has(g) && st.RingEpoch != cur.Epoch:
			return store.RingSpec{}, refuse(wire.CodeUnavailable, "ring change: group %s is at ring epoch %d, not %d yet; try again shortly", g, st.RingEpoch, cur.Epoch)
		case !cur.Has(g) && st.RingEpoch != 0 && st.RingEpoch != cur.Epoch:
			// A standby group is at epoch 0; a group this ring removed
			// adopted the current ring when it left and may come back.
			return store.RingSpec{}, refuse(wire.CodeInvalidArgument, "add-group: group %s acts under ring epoch %d, not this ring's %d: restart its agents with empty data directories to add it", g, st.RingEpoch, cur.Epoch)
		case !cur.Has(g) && st.Keys != 0:
			return store.RingSpec{}, refuse(wire.CodeInvalidArgument, "add-group: group %s still holds %d keys", g, st.Keys)
		}
	}
	return next, nil
}

// Involved lists, sorted, the groups of either ring.
func Involved(from, to store.RingSpec) []string {
	var out []string
	for _, r := range []store.RingSpec{from, to} {
		for _, g := range r.Groups {
			if !slices.Contains(out, g.ID) {
				out = append(out, g.ID)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Estimates returns, per source group, how many keys are expected to leave
// it: its key count times the share of its keys that CARP gives to others
// under the next ring. With highest-score-wins, keys only move from groups
// whose share falls to groups whose share rises.
func Estimates(from, to store.RingSpec, keys map[string]int) map[string]uint64 {
	out := map[string]uint64{}
	rf, err1 := from.Build()
	rt, err2 := to.Build()
	if err1 != nil || err2 != nil {
		return out
	}
	for _, g := range from.Groups {
		sf := rf.Share(g.ID)
		st := 0.0
		if to.Has(g.ID) {
			st = rt.Share(g.ID)
		}
		if sf <= 0 || st >= sf {
			out[g.ID] = 0
			continue
		}
		out[g.ID] = uint64(math.Round(float64(keys[g.ID]) * (sf - st) / sf))
	}
	return out
}

// Copy rounds: a source is copied again while its last round moved more
// than SmallRound records, at most MaxCopyRounds times; then it is frozen,
// and its final round carries only what changed since.
const (
	SmallRound    = 2000
	MaxCopyRounds = 4
)

// Action kinds.
const (
	ActWait    = "wait"    // nothing to do until a group answers or catches up
	ActStep    = "step"    // commit Step in Group
	ActCopy    = "copy"    // run a copy round of source Group (Final: the sealing round)
	ActAdvance = "advance" // record the next phase, Phase
)

// Action is the coordinator's next move.
type Action struct {
	Kind  string
	Group string
	// Groups are all the groups a step or copy action is for: their steps
	// or rounds run side by side (Group is the first of them).
	Groups []string
	Step   string
	Final  bool
	Phase  string
	Reason string
}

// NextAction is the change's decision logic: given the recorded change and
// the state each group's leader reports (a group missing from states did
// not answer), what to do next. It only looks forward: each phase's work
// is checked against the groups' committed states, so after a crash or a
// leader change the new coordinator repeats at most one step, which the
// groups' state machines make harmless.
func NextAction(ch wire.RingChangeStatus, states map[string]wire.MoveState) Action {
	from, to := store.RingSpecFromWire(ch.From), store.RingSpecFromWire(ch.To)
	target := to.Epoch
	adopted := func(st wire.MoveState) bool { return st.RingEpoch >= target }
	src := func(g string) wire.SourceProgress {
		for _, s := range ch.Sources {
			if s.Group == g {
				return s
			}
		}
		return wire.SourceProgress{Group: g}
	}
	// each is the step for every group of groups that needs it (they are
	// committed side by side), a wait if one of them has no leader that
	// answers, or nil when none needs it.
	each := func(groups []string, step string, needs func(st wire.MoveState) bool) *Action {
		var todo []string
		for _, g := range groups {
			st, ok := states[g]
			if !ok {
				return &Action{Kind: ActWait, Group: g, Reason: "group " + g + " has no leader that answers"}
			}
			if needs(st) {
				todo = append(todo, g)
			}
		}
		if len(todo) == 0 {
			return nil
		}
		return &Action{Kind: ActStep, Step: step, Group: todo[0], Groups: todo}
	}
	ids := func(r store.RingSpec) []string {
		out := make([]string, len(r.Groups))
		for i, g := range r.Groups {
			out[i] = g.ID
		}
		slices.Sort(out)
		return out
	}
	all, sources, dests := Involved(from, to), ids(from), ids(to)
	advance := func(p string) Action { return Action{Kind: ActAdvance, Phase: p} }

	switch ch.Phase {
	case wire.PhasePrepare:
		if a := each(all, wire.StepPrepare, func(st wire.MoveState) bool {
			return !adopted(st) && st.Target != target
		}); a != nil {
			return *a
		}
		return advance(wire.PhaseCopy)
	case wire.PhaseCopy:
		if a := copies(sources, states, false, func(p wire.SourceProgress) bool {
			return p.Rounds == 0 || (p.LastRound > SmallRound && p.Rounds < MaxCopyRounds)
		}, src); a != nil {
			return *a
		}
		return advance(wire.PhaseFreeze)
	case wire.PhaseFreeze:
		if a := each(sources, wire.StepFreeze, func(st wire.MoveState) bool {
			return !adopted(st) && !st.Frozen
		}); a != nil {
			return *a
		}
		return advance(wire.PhaseFinal)
	case wire.PhaseFinal:
		if a := copies(sources, states, true, func(p wire.SourceProgress) bool { return !p.Sealed }, src); a != nil {
			return *a
		}
		return advance(wire.PhaseActivate)
	case wire.PhaseActivate:
		// Destinations first, then the groups the change removes: a
		// group that adopted the ring sends clients on to the new owner,
		// which should be serving by then.
		removed := slices.DeleteFunc(slices.Clone(sources), func(g string) bool { return slices.Contains(dests, g) })
		for _, batch := range [][]string{dests, removed} {
			if a := each(batch, wire.StepActivate, func(st wire.MoveState) bool { return !adopted(st) }); a != nil {
				return *a
			}
		}
		return advance(wire.PhaseCleanup)
	case wire.PhaseCleanup:
		var todo []string
		for _, g := range sources {
			if !src(g).Cleaned {
				todo = append(todo, g)
			}
		}
		if a := each(todo, wire.StepCleanup, func(wire.MoveState) bool { return true }); a != nil {
			return *a
		}
		return advance(wire.PhaseFinish)
	case wire.PhaseFinish:
		if a := each(all, wire.StepFinish, func(st wire.MoveState) bool { return st.Target != 0 }); a != nil {
			return *a
		}
		return advance(wire.PhaseDone)
	}
	return Action{Kind: ActWait, Reason: "change is " + ch.Phase}
}

// copies is the copy action for every source that needs a round, or a wait
// if one of them has no leader that answers; nil when none needs one.
func copies(sources []string, states map[string]wire.MoveState, final bool, needs func(wire.SourceProgress) bool, src func(string) wire.SourceProgress) *Action {
	var groups []string
	for _, g := range sources {
		if !needs(src(g)) {
			continue
		}
		if _, ok := states[g]; !ok {
			return &Action{Kind: ActWait, Group: g, Reason: "group " + g + " has no leader that answers"}
		}
		groups = append(groups, g)
	}
	if len(groups) == 0 {
		return nil
	}
	return &Action{Kind: ActCopy, Group: groups[0], Groups: groups, Final: final}
}
