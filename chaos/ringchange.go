package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// ringVariants: the change alone, the coordinator's leader killed, a
// source's or destination's leader killed or frozen, a whole group
// restarted (Variants).
const ringVariants = 4

// Timeouts of a ring change fault.
const (
	// changeStartTimeout bounds starting a change (a recycled standby
	// group forming and showing in gossip included).
	changeStartTimeout = 90 * time.Second
	// changeDoneTimeout bounds the change's completion after its fault
	// healed: the coordinator resumes on its own, nobody intervenes.
	changeDoneTimeout = 3 * time.Minute
)

// faultPhases are the phases a mid-change fault waits for before it
// strikes (the first status that shows the phase or a later one).
var faultPhases = []string{wire.PhasePrepare, wire.PhaseCopy, wire.PhaseFreeze, wire.PhaseFinal, wire.PhaseActivate, wire.PhaseCleanup}

var phaseOrder = []string{wire.PhasePrepare, wire.PhaseCopy, wire.PhaseFreeze, wire.PhaseFinal,
	wire.PhaseActivate, wire.PhaseCleanup, wire.PhaseFinish, wire.PhaseDone}

// weightChoices are the weights ring-set-weight gives a group, tried in
// a drawn order (nextWeight takes the first that moves a workload key).
var weightChoices = []float64{2, 0.5, 1, 3, 1.5}

// ringChange runs a ring-change step: it decides the change from the
// committed ring, starts it through kvclient, strikes with the variant's
// fault at the drawn phase, heals it, and waits until the coordinator
// records the change done. A change the step needs first (adding the
// standby before removing a group, when the schedule asks for them in
// that order) is made without a fault.
func (n *Nemesis) ringChange(ctx context.Context, step Step, r *rand.Rand, ev *Event) error {
	cur := n.c.CurrentRing()
	in := ringGroups(cur)
	out := slices.DeleteFunc(n.c.Groups(), func(g string) bool { return slices.Contains(in, g) })
	prep := func(req wire.RingChangeRequest) error {
		ev.Detail += fmt.Sprintf("first %s %s (no fault); ", req.Kind, req.Group)
		rec, problem, err := n.change(ctx, step.N, req, nil)
		n.Changes = append(n.Changes, rec)
		if problem != "" {
			ev.Problem = problem
		}
		return err
	}
	var req wire.RingChangeRequest
	switch step.Kind {
	case RingAddGroup:
		if len(out) == 0 {
			if err := prep(wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: in[len(in)-1]}); err != nil || ev.Problem != "" {
				return err
			}
			cur = n.c.CurrentRing()
			in = ringGroups(cur)
			out = slices.DeleteFunc(n.c.Groups(), func(g string) bool { return slices.Contains(in, g) })
		}
		g := out[0]
		// A group removed earlier acts under the ring that removed it
		// and is refused; an operator wipes its machines and brings them
		// back as a fresh group.
		if l, err := n.c.WaitLeader(ctx, g, 30*time.Second); err == nil {
			if info, err := n.c.Self(ctx, l); err == nil && info.RingEpoch > 0 {
				renamed, err := n.c.RecycleGroup(ctx, g)
				if err != nil {
					return fmt.Errorf("recycling %s: %w", g, err)
				}
				ev.Detail += fmt.Sprintf("%s (removed, at ring epoch %d) wiped and started again as the fresh standby group %s; ", g, info.RingEpoch, renamed)
				g = renamed
			}
		}
		req = wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: g}
	case RingRemoveGroup:
		// Keep at least two groups serving.
		if len(in) < 3 && len(out) > 0 {
			if err := prep(wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: out[0]}); err != nil || ev.Problem != "" {
				return err
			}
			cur = n.c.CurrentRing()
			in = ringGroups(cur)
		}
		req = wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: in[step.Group%len(in)]}
	case RingSetWeight:
		g := in[step.Group%len(in)]
		order := slices.Clone(weightChoices)
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		req = wire.RingChangeRequest{Kind: wire.ChangeSetWeight, Group: g, Weight: nextWeight(cur, g, order, n.Keys)}
	}

	var fault *midChangeFault
	if step.Variant > 0 {
		fault = n.planFault(step, r, cur, req)
	}
	desc := fmt.Sprintf("%s %s", req.Kind, req.Group)
	if req.Kind == wire.ChangeSetWeight {
		desc += fmt.Sprintf(" to %v", req.Weight)
	}
	if fault != nil {
		desc += "; " + fault.what
	}
	ev.Detail += desc
	ev.Before = n.c.describe(ctx, "")
	n.log.Info("nemesis", "n", step.N, "kind", step.Kind, "detail", ev.Detail)
	ev.Start = n.h.Now()
	rec, problem, err := n.change(ctx, step.N, req, fault)
	n.Changes = append(n.Changes, rec)
	ev.Change = &rec
	if fault != nil {
		ev.Targets = fault.targets
		ev.Detail += fault.happened
		ev.Healed = fault.healed
	} else {
		ev.Healed = rec.Done
	}
	if problem != "" {
		ev.Problem = problem
	}
	return err
}

// midChangeFault is the fault a ring change meets, as planned from the
// step, then what happened.
type midChangeFault struct {
	variant int
	phase   string // strike at the first status showing this phase or a later one
	group   string // whose leader, or which group
	pause   bool   // variant 2: SIGSTOP instead of SIGKILL
	hold    time.Duration
	what    string

	targets  []string
	happened string
	healed   int64
}

// planFault draws the fault of a ring-change step.
func (n *Nemesis) planFault(step Step, r *rand.Rand, cur wire.RingSpec, req wire.RingChangeRequest) *midChangeFault {
	f := &midChangeFault{variant: step.Variant, phase: faultPhases[r.IntN(len(faultPhases))], hold: step.Hold}
	coord, _ := kvclient.CoordinatorGroup(&wire.Ring{Groups: ringGroupsOf(cur)})
	involved := ringGroups(cur)
	if !slices.Contains(involved, req.Group) {
		involved = append(involved, req.Group)
	}
	switch step.Variant {
	case 1:
		f.group = coord.ID
		f.what = fmt.Sprintf("SIGKILL the leader of the coordinator group %s at phase %s, restart after %v", f.group, f.phase, f.hold)
	case 2:
		others := slices.DeleteFunc(slices.Clone(involved), func(g string) bool { return g == coord.ID })
		f.group = others[r.IntN(len(others))]
		f.pause = r.IntN(2) == 1
		how := "SIGKILL"
		if f.pause {
			how = "SIGSTOP"
		}
		f.what = fmt.Sprintf("%s the leader of %s (%s) at phase %s for %v", how, f.group, roleIn(f.group, cur, req), f.phase, f.hold)
	case 3:
		f.group = involved[r.IntN(len(involved))]
		f.hold = time.Duration(1000+f.hold.Milliseconds()%3000) * time.Millisecond
		f.what = fmt.Sprintf("SIGKILL every member of %s (%s) at phase %s, start them after %v", f.group, roleIn(f.group, cur, req), f.phase, f.hold)
	}
	return f
}

func ringGroupsOf(spec wire.RingSpec) []wire.RingGroup {
	out := make([]wire.RingGroup, len(spec.Groups))
	for i, g := range spec.Groups {
		out[i] = wire.RingGroup{ID: g.ID, Weight: g.Weight}
	}
	return out
}

// roleIn says what group is to the change: the group added or removed, a
// source or destination of a reweighting, or a group that keeps its keys.
func roleIn(g string, cur wire.RingSpec, req wire.RingChangeRequest) string {
	coord, _ := kvclient.CoordinatorGroup(&wire.Ring{Groups: ringGroupsOf(cur)})
	role := ""
	switch {
	case g == req.Group && req.Kind == wire.ChangeAddGroup:
		role = "the group added, a destination"
	case g == req.Group && req.Kind == wire.ChangeRemoveGroup:
		role = "the group removed, a source"
	case g == req.Group:
		role = "the group reweighted"
	case req.Kind == wire.ChangeAddGroup:
		role = "a source"
	case req.Kind == wire.ChangeRemoveGroup:
		role = "a destination"
	default:
		role = "a source or destination"
	}
	if g == coord.ID {
		role += ", the coordinator"
	}
	return role
}

// change starts req and follows it until done, striking with fault (if
// any) on the way. It returns the change as recorded, a problem (the
// change did not complete, or moved nothing) and an error for the
// harness failing.
func (n *Nemesis) change(ctx context.Context, stepN int, req wire.RingChangeRequest, fault *midChangeFault) (rec RingChangeRecord, problem string, err error) {
	from := n.c.CurrentRing()
	target := from.Epoch + 1
	rec = RingChangeRecord{N: stepN, Kind: req.Kind, Group: req.Group, From: from, Start: n.h.Now()}
	// The target ring as recorded, in case the change never completes.
	if rec.To, err = n.startChange(ctx, req, target); err != nil {
		return rec, "", err
	}
	if fault != nil {
		if err := n.strike(ctx, fault, target, &rec); err != nil {
			return rec, "", err
		}
	}
	done, err := n.waitChange(ctx, target, changeDoneTimeout, &rec)
	if err != nil {
		return rec, fmt.Sprintf("ring change %s %s to epoch %d did not complete within %v after its fault healed: %v",
			req.Kind, req.Group, target, changeDoneTimeout, err), nil
	}
	rec.Done = n.h.Now()
	rec.To = done.To
	rec.Took = done.FinishedAt - done.StartedAt
	rec.Pairs = done.Pairs
	n.c.SetRing(done.To)
	rec.MovedKeys, err = Moved(from, done.To, n.Keys)
	if err != nil {
		return rec, "", err
	}
	n.log.Info("ring change done", "n", stepN, "kind", req.Kind, "group", req.Group, "epoch", target,
		"took", time.Duration(rec.Took)*time.Millisecond, "moved_workload_keys", len(rec.MovedKeys), "pairs", fmt.Sprint(rec.Pairs))
	if len(rec.MovedKeys) == 0 {
		return rec, fmt.Sprintf("ring change %s %s to epoch %d moved no workload key: the step proves nothing about hand-offs", req.Kind, req.Group, target), nil
	}
	var sent uint64
	for _, p := range rec.Pairs {
		sent += p.Keys
	}
	if sent == 0 {
		return rec, fmt.Sprintf("ring change %s %s to epoch %d: %d workload keys changed owner, but the change records no key sent", req.Kind, req.Group, target, len(rec.MovedKeys)), nil
	}
	return rec, "", nil
}

// startChange asks for req until the coordinator records it, retrying
// refusals that time cures (a group without a leader yet, unavailable).
func (n *Nemesis) startChange(ctx context.Context, req wire.RingChangeRequest, target uint64) (wire.RingSpec, error) {
	var to wire.RingSpec
	var fatal error
	err := poll(ctx, changeStartTimeout, func() error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := n.admin.RingChange(cctx, req)
		switch {
		case err == nil:
			to = st.To
			return nil
		case errors.Is(err, kvclient.ErrInvalidArgument) && strings.Contains(err.Error(), "has no leader that answers"):
			return err // a fresh group not visible yet
		case errors.Is(err, kvclient.ErrInvalidArgument) && strings.Contains(err.Error(), "ring changes are coordinated by group"):
			// kvclient picked the coordinator from an older ring (an
			// agent that had not applied the last change answered first).
			return err
		case errors.Is(err, kvclient.ErrInvalidArgument):
			fatal = fmt.Errorf("ring change %s %s refused: %w", req.Kind, req.Group, err)
			return nil
		}
		// Unavailable, in progress, or an unknown outcome: the change may
		// be recorded already.
		if st, serr := n.status(ctx); serr == nil {
			if a := st.Active; a != nil && a.To.Epoch == target && a.Kind == req.Kind && a.Group == req.Group {
				to = a.To
				return nil
			}
			if l := st.Last; l != nil && l.To.Epoch == target && l.Kind == req.Kind && l.Group == req.Group {
				to = l.To
				return nil
			}
		}
		return err
	})
	if fatal != nil {
		return to, fatal
	}
	return to, err
}

func (n *Nemesis) status(ctx context.Context) (*wire.RingChangeAnswer, error) {
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return n.admin.RingChangeStatus(sctx)
}

// waitChange polls until the change to epoch target is recorded done.
func (n *Nemesis) waitChange(ctx context.Context, target uint64, timeout time.Duration, rec *RingChangeRecord) (*wire.RingChangeStatus, error) {
	var done *wire.RingChangeStatus
	err := poll(ctx, timeout, func() error {
		st, err := n.status(ctx)
		if err != nil {
			return err
		}
		if st.Last != nil && st.Last.To.Epoch == target {
			done = st.Last
			return nil
		}
		if st.Active != nil {
			rec.noteError(st.Active.LastError)
			return fmt.Errorf("phase %s (epoch %d), last error %q", st.Active.Phase, st.Active.To.Epoch, st.Active.LastError)
		}
		return errors.New("no change recorded")
	})
	return done, err
}

// strike waits until the change reaches the fault's phase (or ends),
// injects the fault, holds it and heals it.
func (n *Nemesis) strike(ctx context.Context, f *midChangeFault, target uint64, rec *RingChangeRecord) error {
	seen := ""
	_ = pollEvery(ctx, 60*time.Second, 5*time.Millisecond, func() error {
		st, err := n.status(ctx)
		if err != nil {
			return err
		}
		switch {
		case st.Active != nil && st.Active.To.Epoch == target:
			seen = st.Active.Phase
			rec.noteError(st.Active.LastError)
			if slices.Index(phaseOrder, seen) >= slices.Index(phaseOrder, f.phase) {
				return nil
			}
			return errors.New("phase " + seen)
		case st.Last != nil && st.Last.To.Epoch == target:
			seen = wire.PhaseDone
			return nil
		}
		return errors.New("not recorded yet")
	})
	if seen == wire.PhaseDone {
		f.happened = "; the change was complete before the fault struck"
	} else {
		f.happened = fmt.Sprintf("; struck at phase %s", seen)
	}
	switch f.variant {
	case 1, 2:
		l, err := n.c.WaitLeader(ctx, f.group, 30*time.Second)
		if err != nil {
			return err
		}
		f.targets = []string{l.ID}
		sig, thaw := unix.SIGKILL, n.c.Start
		if f.pause {
			sig, thaw = unix.SIGSTOP, n.c.SigCont
		}
		if err := n.c.SignalNow(l, sig); err != nil {
			return err
		}
		if err := hold(ctx, f.hold); err != nil {
			return err
		}
		if err := thaw(ctx, l); err != nil {
			return err
		}
	case 3:
		ms := n.c.Members(f.group)
		f.targets = ids(ms)
		if err := parallel(ms, func(a *Agent) error { return n.c.SignalNow(a, unix.SIGKILL) }); err != nil {
			return err
		}
		if err := hold(ctx, f.hold); err != nil {
			return err
		}
		if err := parallel(ms, func(a *Agent) error { return n.c.Start(ctx, a) }); err != nil {
			return err
		}
	}
	f.healed = n.h.Now()
	return nil
}
