package chaos

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"golang.org/x/sys/unix"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// A ring change lives in the Raft logs, not in the coordinator's memory
// (DESIGN.md, "Ring changes"): the coordinator group's leader dies with a
// change half done, and the next leader must finish it, with nobody
// asking again. Replayed deterministically: g3 (standby) is added while
// clients write; every member of g3 is killed at once, so the change
// cannot get past activate (g3 must adopt the ring); once the coordinator reports the
// failure it retries, its leader is killed too; a new leader of g1 must
// show the change still active from its log, and once g3 and the old
// leader are back the change must complete on its own. The clients'
// history is checked like a chaos run's: every key linearizable (moved
// ones included), the version clock, durability, and every member holding
// exactly its group's keys under the new ring.
func TestChaosRingChangeCoordinatorKilledMidChangeCompletes(t *testing.T) {
	ctx, c, log := newTestCluster(t, 1)
	first := c.CurrentRing()
	all := wire.RingSpec{Epoch: first.Epoch + 1, Mode: first.Mode}
	for _, g := range c.Groups() {
		all.Groups = append(all.Groups, wire.RingGroupSpec{ID: g, Weight: 1})
	}
	keys, err := chooseRingKeys([]wire.RingSpec{first, all}, 4)
	if err != nil {
		t.Fatal(err)
	}
	newKV := func() *kvclient.Client {
		kv, err := kvclient.New(kvclient.Config{Addrs: c.Addrs(), RequestTimeout: 2 * time.Second, DialTimeout: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { kv.Close() })
		return kv
	}
	kv, admin := newKV(), newKV()
	h := NewHistory()
	wl := NewWorkload(WorkloadConfig{Workers: 4, Keys: keys, OpTimeout: 5 * time.Second, Think: 20 * time.Millisecond, Seed: 7}, kv, h)
	stop, wlDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(wlDone)
		wl.Run(ctx, stop)
	}()
	stopped := false
	stopWorkload := func() {
		if !stopped {
			stopped = true
			close(stop)
			<-wlDone
		}
	}
	defer stopWorkload()
	n := NewNemesis(c, h, nil, admin, log)
	n.Keys = keys
	if err := poll(ctx, 30*time.Second, func() error {
		if len(h.Ops()) < 200 {
			return errors.New("too few operations yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	start := h.Now()
	if _, err := n.startChange(ctx, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g3"}, 2); err != nil {
		t.Fatal(err)
	}
	// At once (from the host, not through the engine): the change must
	// not get far.
	g3 := c.Members("g3")
	if err := parallel(g3, func(a *Agent) error { return c.SignalNow(a, unix.SIGKILL) }); err != nil {
		t.Fatal(err)
	}
	// The coordinator meets the dead group and retries.
	var seen *wire.RingChangeStatus
	if err := poll(ctx, 60*time.Second, func() error {
		st, err := n.status(ctx)
		if err != nil {
			return err
		}
		if st.Last != nil && st.Last.To.Epoch == 2 {
			return errors.New("the change completed without g3")
		}
		if st.Active == nil || st.Active.LastError == "" {
			return errors.New("no failure reported yet")
		}
		seen = st.Active
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("g3 down: the change is at phase %s, last error %q", seen.Phase, seen.LastError)
	old, err := c.WaitLeader(ctx, "g1", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(ctx, old); err != nil {
		t.Fatal(err)
	}
	nl, err := c.WaitLeaderWithout(ctx, "g1", old, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, 30*time.Second, func() error {
		var ans wire.RingChangeAnswer
		if _, _, err := c.api.do(ctx, "GET", nl.HTTP(), wire.PathRingChange, "", nil, &ans); err != nil {
			return err
		}
		if ans.Active == nil || ans.Active.To.Epoch != 2 || !ans.Active.Live {
			return fmt.Errorf("the new leader %s does not drive the change: %+v", nl.ID, ans)
		}
		// g3 must adopt the ring (activate, destinations first) before
		// anything is cleaned up: with g3 down the change cannot get
		// past activate. How far it got before g3 died is a race.
		if ans.Active.Phase == wire.PhaseCleanup || ans.Active.Phase == wire.PhaseFinish {
			t.Fatalf("the change reached phase %s with g3 down", ans.Active.Phase)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("g1's leader %s killed; %s leads and drives the change from its log", old.ID, nl.ID)

	if err := parallel(append(g3, old), func(a *Agent) error { return c.Start(ctx, a) }); err != nil {
		t.Fatal(err)
	}
	done, err := n.waitChange(ctx, 2, changeDoneTimeout, &RingChangeRecord{})
	if err != nil {
		t.Fatalf("the change did not complete once g3 was back: %v", err)
	}
	c.SetRing(done.To)
	rec := RingChangeRecord{Kind: wire.ChangeAddGroup, Group: "g3", From: first, To: done.To, Start: start, Done: h.Now(), Pairs: done.Pairs}
	moved, _ := Moved(first, done.To, keys)
	t.Logf("the change completed in %v; %d workload keys moved; pairs %+v", time.Duration(done.FinishedAt-done.StartedAt)*time.Millisecond, len(moved), done.Pairs)
	if err := c.WaitHealthy(ctx, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := hold(ctx, 2*time.Second); err != nil { // clients against the new ring
		t.Fatal(err)
	}
	problems := checkpoint(ctx, c, kv, h, wl, keys)
	stopWorkload()
	ops := h.Ops()
	tl := &Timeline{First: first, Changes: []RingChangeRecord{rec}}
	for i := range ops {
		ops[i].Group = tl.StableOwner(ops[i].Key, ops[i].Call, ops[i].Return)
	}
	results, err := CheckLinearizable(ops, 5*time.Minute, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Result != porcupine.Ok {
			problems = append(problems, fmt.Sprintf("key %q: %s", r.Key, r.Result))
		}
	}
	problems = append(problems, CheckVersionOrder(ops)...)
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("%d operations, %d keys linearizable", len(ops), len(results))
}

// A group removed from the ring is brought back the operator's way: its
// agents stopped, their data wiped, started again fresh under the same
// group ID, with the cluster's --expect-groups. It must wait as a standby
// group (ring epoch 0) until a ring change adds it. Found by the soak
// (SEED=2026 DURATION=10m, step 18): g1, removed at epoch 4 and started
// fresh, was refused by add-group "group g1 acts under ring epoch 1
// already: it belongs to another ring". A fresh group at epoch 0 whose ID
// is the smallest of the groups gossip shows with a leader takes itself
// for the coordinator (cluster.Coordinator falls back to the smallest
// visible group when the agent's own ring is at epoch 0) and commits a
// first ring of its own (cluster.FirstRing: the expect-groups smallest
// IDs, {g1, g2} at epoch 1) although the cluster is at epoch 4 without
// it. Such a group can never be added again, and it acts under a ring
// in which it owns keys that the real ring gives to other groups. Fixed:
// no agent proposes a first ring once any agent gossips a ring epoch.
func TestChaosRemovedSmallestGroupComesBackAsStandby(t *testing.T) {
	ctx, c, log := newTestCluster(t, 1)
	admin, err := kvclient.New(kvclient.Config{Addrs: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	n := NewNemesis(c, NewHistory(), nil, admin, log)
	change := func(req wire.RingChangeRequest, epoch uint64) {
		t.Helper()
		if _, err := n.startChange(ctx, req, epoch); err != nil {
			t.Fatal(err)
		}
		done, err := n.waitChange(ctx, epoch, changeDoneTimeout, &RingChangeRecord{})
		if err != nil {
			t.Fatal(err)
		}
		c.SetRing(done.To)
	}
	change(wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g3"}, 2)
	change(wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: "g1"}, 3)
	old := c.Members("g1")
	if err := parallel(old, func(a *Agent) error {
		if err := c.Stop(ctx, a); err != nil {
			return err
		}
		return c.Destroy(ctx, a)
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.StartGroup(ctx, "g1", 3); err != nil {
		t.Fatal(err)
	}
	// Give the fresh group time to do what it does with a ring.
	if err := c.WaitHealthy(ctx, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, a := range c.Members("g1") {
		info, err := c.Self(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if info.RingEpoch != 0 {
			t.Errorf("fresh %s acts under ring epoch %d; the cluster is at epoch 3 without g1, so it should be standby (epoch 0)", a.ID, info.RingEpoch)
		}
	}
	change(wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g1"}, 4)
}
