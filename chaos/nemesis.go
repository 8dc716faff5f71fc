package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/carpkv/carpkv/kvclient"
)

// Event is one fault as it happened. Times are on the history's clock.
type Event struct {
	N       int      `json:"n"`
	Kind    Kind     `json:"kind"`
	Group   string   `json:"group,omitempty"`
	Targets []string `json:"targets,omitempty"` // agent IDs
	Detail  string   `json:"detail"`
	// Before is how the target group's members saw themselves just
	// before the fault (state, leader, applied index).
	Before string `json:"before,omitempty"`
	Start  int64  `json:"start_ns"`
	Healed int64  `json:"healed_ns"`
	// Recovered: the cluster was healthy again (every member ready, one
	// leader per group, the expected voters).
	Recovered int64 `json:"recovered_ns,omitempty"`
	// Unavailable is how long the target group took to acknowledge a write
	// after the fault began (or, for restart-group, after the members were
	// started again); 0 if not measured, -1 if no write was acknowledged
	// in time.
	Unavailable time.Duration `json:"unavailable_ns,omitempty"`
	Err         string        `json:"error,omitempty"`
	// Change is the ring change of a ring-change fault.
	Change *RingChangeRecord `json:"change,omitempty"`
	// Problem is what a ring-change fault found wrong (the change did not
	// complete, moved no key, ...): a failure of the run, not of the
	// harness.
	Problem string `json:"problem,omitempty"`
}

// Nemesis injects the faults of a schedule into a cluster.
type Nemesis struct {
	c     *Cluster
	h     *History
	log   *slog.Logger
	probe *Prober
	admin *kvclient.Client // starts and follows ring changes

	// Keys are the keys ring changes must move some of (the workload's).
	Keys []string
	// Changes are the ring changes made so far, in order.
	Changes []RingChangeRecord
}

// NewNemesis returns a nemesis for c; probe measures unavailability;
// admin starts and follows ring changes.
func NewNemesis(c *Cluster, h *History, probe *Prober, admin *kvclient.Client, log *slog.Logger) *Nemesis {
	return &Nemesis{c: c, h: h, log: log, probe: probe, admin: admin}
}

// hold waits d: the fault's duration, which is the schedule, not a
// synchronisation.
func hold(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pickN returns n distinct agents of as, chosen by r.
func pickN(r *rand.Rand, as []*Agent, n int) []*Agent {
	perm := r.Perm(len(as))
	out := make([]*Agent, 0, n)
	for _, i := range perm[:min(n, len(as))] {
		out = append(out, as[i])
	}
	return out
}

func ids(as []*Agent) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

func without(as []*Agent, drop ...*Agent) []*Agent {
	var out []*Agent
	for _, a := range as {
		keep := true
		for _, d := range drop {
			keep = keep && a != d
		}
		if keep {
			out = append(out, a)
		}
	}
	return out
}

// parallel runs fn on every agent at once and joins the errors.
func parallel(as []*Agent, fn func(*Agent) error) error {
	errs := make([]error, len(as))
	var wg sync.WaitGroup
	for i, a := range as {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(a)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Run injects step's fault, holds it, and heals it. It returns when the
// fault is healed (not when the cluster has recovered: the caller waits
// for that). An error means the fault could not be injected or healed.
func (n *Nemesis) Run(ctx context.Context, step Step) (ev Event, err error) {
	r := step.rng()
	groups := n.c.Groups()
	// Faults aimed at a group aim at one that serves keys.
	inRing := n.c.RingGroups()
	group := inRing[step.Group%len(inRing)]
	ev = Event{N: step.N, Kind: step.Kind, Group: group}
	var measured <-chan time.Duration
	defer func() {
		if err != nil {
			ev.Err = err.Error()
			// Leave nothing behind, whatever failed.
			if herr := n.c.HealAll(context.WithoutCancel(ctx)); herr != nil {
				err = errors.Join(err, herr)
			}
		}
		if ev.Healed == 0 {
			ev.Healed = n.h.Now()
		}
		if measured != nil {
			ev.Unavailable = <-measured
		}
	}()
	leader := func() (*Agent, error) { return n.c.WaitLeader(ctx, group, 30*time.Second) }
	members := n.c.Members(group)
	pickVariant := step.Variant
	mark := func(targets []*Agent, detail string, args ...any) {
		ev.Targets = ids(targets)
		ev.Detail = fmt.Sprintf(detail, args...)
		ev.Before = n.c.describe(ctx, ev.Group)
		n.log.Info("nemesis", "n", step.N, "kind", step.Kind, "group", group, "targets", ev.Targets, "detail", ev.Detail, "hold", step.Hold)
	}

	if step.Kind.isRingChange() {
		ev.Group = ""
		return ev, n.ringChange(ctx, step, r, &ev)
	}
	switch step.Kind {
	case KillLeader:
		l, err := leader()
		if err != nil {
			return ev, err
		}
		mark([]*Agent{l}, "SIGKILL leader %s of %s, restart after %v", l.ID, group, step.Hold)
		ev.Start = n.h.Now()
		if err := n.c.Kill(ctx, l); err != nil {
			return ev, err
		}
		measured = n.probe.Measure(ctx, group, time.Now())
		if err := hold(ctx, step.Hold); err != nil {
			return ev, err
		}
		return ev, n.c.Start(ctx, l)

	case KillMember:
		victim := members[r.IntN(len(members))]
		mark([]*Agent{victim}, "SIGKILL %s, restart after %v", victim.ID, step.Hold)
		ev.Start = n.h.Now()
		if err := n.c.Kill(ctx, victim); err != nil {
			return ev, err
		}
		if err := hold(ctx, step.Hold); err != nil {
			return ev, err
		}
		return ev, n.c.Start(ctx, victim)

	case KillMinority:
		var victims []*Agent
		for _, g := range groups {
			ms := n.c.Members(g)
			victims = append(victims, pickN(r, ms, (len(ms)-1)/2)...)
		}
		ev.Group = ""
		mark(victims, "SIGKILL a minority of every group at once, restart after %v", step.Hold)
		ev.Start = n.h.Now()
		if err := parallel(victims, func(a *Agent) error { return n.c.Kill(ctx, a) }); err != nil {
			return ev, err
		}
		if err := hold(ctx, step.Hold); err != nil {
			return ev, err
		}
		return ev, parallel(victims, func(a *Agent) error { return n.c.Start(ctx, a) })

	case PauseLeader, PauseMember:
		var victim *Agent
		if step.Kind == PauseLeader {
			if victim, err = leader(); err != nil {
				return ev, err
			}
		} else {
			victim = members[r.IntN(len(members))]
		}
		freeze, thaw, how := n.c.SigStop, n.c.SigCont, "SIGSTOP/SIGCONT"
		if pickVariant == 1 {
			freeze, thaw, how = n.c.Freeze, n.c.Thaw, "docker pause/unpause"
		}
		mark([]*Agent{victim}, "%s %s for %v", how, victim.ID, step.Hold)
		ev.Start = n.h.Now()
		if err := freeze(ctx, victim); err != nil {
			return ev, err
		}
		if step.Kind == PauseLeader {
			measured = n.probe.Measure(ctx, group, time.Now())
		}
		if err := hold(ctx, step.Hold); err != nil {
			return ev, err
		}
		return ev, thaw(ctx, victim)

	case PartitionLeader:
		l, err := leader()
		if err != nil {
			return ev, err
		}
		others := without(n.c.Agents(false), l)
		mark([]*Agent{l}, "leader %s cut off from every other agent for %v (clients still reach it)", l.ID, step.Hold)
		ev.Start = n.h.Now()
		if err := n.c.fw.CutBoth(ctx, []string{l.IP}, IPs(others)); err != nil {
			return ev, err
		}
		measured = n.probe.Measure(ctx, group, time.Now())
		if err := hold(ctx, step.Hold); err != nil {
			return ev, err
		}
		return ev, n.c.fw.Heal(ctx)

	case PartitionSplit:
		var side []*Agent
		for _, g := range groups {
			ms := n.c.Members(g)
			side = append(side, pickN(r, ms, max(1, (len(ms)-1)/2))...)
		}
		rest := without(n.c.Agents(false), side...)
		ev.Group = ""
		mark(side, "partition: %s | %s for %v", strings.Join(ids(side), ","), strings.Join(ids(rest), ","), step.Hold)
		ev.Start = n.h.Now()
		if err := n.c.fw.CutBoth(ctx, IPs(side), IPs(rest)); err != nil {
			return ev, err
		}
		if err := hold(ctx, step.Hold); err != nil {
			return ev, err
		}
		return ev, n.c.fw.Heal(ctx)

	case PartitionClients:
		mark(members, "group %s cut off from the clients for %v", group, step.Hold)
		ev.Start = n.h.Now()
		if err := n.c.fw.CutFromHost(ctx, IPs(members)); err != nil {
			return ev, err
		}
		if err := hold(ctx, step.Hold); err != nil {
			return ev, err
		}
		return ev, n.c.fw.Heal(ctx)

	case PartitionOneWay:
		l, err := leader()
		if err != nil {
			return ev, err
		}
		followers := without(members, l)
		from, to, what := []*Agent{l}, followers, "leader -> followers"
		if pickVariant == 1 {
			from, to, what = followers, []*Agent{l}, "followers -> leader"
		}
		mark([]*Agent{l}, "one-way cut %s (leader %s) for %v", what, l.ID, step.Hold)
		ev.Start = n.h.Now()
		if err := n.c.fw.CutOneWay(ctx, IPs(from), IPs(to)); err != nil {
			return ev, err
		}
		measured = n.probe.Measure(ctx, group, time.Now())
		if err := hold(ctx, step.Hold); err != nil {
			return ev, err
		}
		return ev, n.c.fw.Heal(ctx)

	case TransferLeadership:
		l, err := leader()
		if err != nil {
			return ev, err
		}
		followers := without(members, l)
		to := followers[r.IntN(len(followers))].ID
		if pickVariant == 1 {
			to = "" // any up-to-date follower
		}
		mark([]*Agent{l}, "transfer leadership of %s from %s to %q", group, l.ID, to)
		ev.Start = n.h.Now()
		if err := n.c.TransferLeadership(ctx, l, to); err != nil {
			// Raft may refuse (a follower behind); that is an answer,
			// not a harness failure.
			ev.Detail += fmt.Sprintf("; refused: %v", err)
			return ev, nil
		}
		if err := poll(ctx, 15*time.Second, func() error {
			nl, err := n.c.Leader(ctx, group)
			if err == nil && nl == l {
				err = errors.New("leadership did not move")
			}
			if err == nil && to != "" && nl.ID != to {
				err = fmt.Errorf("%s leads, not %s", nl.ID, to)
			}
			return err
		}); err != nil {
			ev.Detail += fmt.Sprintf("; after the transfer: %v", err)
		}
		return ev, nil

	case ReplaceMember:
		victim := members[r.IntN(len(members))]
		how := "SIGKILL it, remove it"
		if pickVariant == 1 {
			how = fmt.Sprintf("remove it and leave it running with its old state for %v, a zombie, then destroy it", step.Hold)
		}
		mark([]*Agent{victim}, "replace %s with a fresh member (%s)", victim.ID, how)
		ev.Start = n.h.Now()
		if pickVariant == 0 {
			if err := n.c.Kill(ctx, victim); err != nil {
				return ev, err
			}
		}
		if err := n.c.RemoveMember(ctx, victim, 60*time.Second); err != nil {
			return ev, fmt.Errorf("removing %s: %w", victim.ID, err)
		}
		if pickVariant == 1 {
			victim.setState(stateEvicted)
		}
		fresh, err := n.c.AddFresh(ctx, group)
		if err != nil {
			return ev, err
		}
		ev.Targets = append(ev.Targets, fresh.ID)
		ev.Detail += "; fresh member " + fresh.ID + " at " + fresh.IP
		if pickVariant == 1 {
			// The removed member must not disturb the group (pre-vote,
			// and votes refused to servers outside the configuration).
			if err := hold(ctx, step.Hold); err != nil {
				return ev, err
			}
		}
		return ev, n.c.Destroy(ctx, victim)

	case RestartGroup:
		stop, how := n.c.Kill, "SIGKILL"
		if pickVariant == 1 {
			stop, how = n.c.Stop, "SIGTERM"
		}
		mark(members, "restart all of %s (%s), down for %v", group, how, step.Hold)
		ev.Start = n.h.Now()
		if err := parallel(members, func(a *Agent) error { return stop(ctx, a) }); err != nil {
			return ev, err
		}
		if err := hold(ctx, step.Hold); err != nil {
			return ev, err
		}
		started := time.Now()
		err := parallel(members, func(a *Agent) error { return n.c.Start(ctx, a) })
		if err == nil {
			measured = n.probe.Measure(ctx, group, started)
		}
		return ev, err
	}
	return ev, fmt.Errorf("unknown fault kind %q", step.Kind)
}
