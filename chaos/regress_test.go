package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient"
)

// Regression tests for what the nemesis found, each replaying the fault
// sequence that exposed the bug, deterministically, against the same
// containerised cluster (CARPKV_CHAOS=1, make chaos).

// startTestCluster starts a 2×3 cluster for one test (skipped without
// CARPKV_CHAOS=1) and picks, per group, one key of the workload's kind
// (key[group]) and the prober's key (probe[group]). The cluster's logs and
// data are kept in the results dir if the test fails.
func startTestCluster(t *testing.T) (ctx context.Context, c *Cluster, key, probe map[string]string) {
	t.Helper()
	ctx, c, _ = newTestCluster(t, 0)
	ring, err := c.Ring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys, probe, err := chooseKeys(ring, 1)
	if err != nil {
		t.Fatal(err)
	}
	key = map[string]string{}
	for k, g := range keys {
		key[g] = k
	}
	return ctx, c, key, probe
}

// newTestCluster starts a 2×3 cluster and standby groups of 3 for one
// test (skipped without CARPKV_CHAOS=1); its logs and data are kept in
// the results dir if the test fails.
func newTestCluster(t *testing.T, standby int) (context.Context, *Cluster, *slog.Logger) {
	t.Helper()
	return newTestClusterWith(t, standby, DefaultAgentArgs)
}

// newTestClusterWith is newTestCluster with the agents' flags.
func newTestClusterWith(t *testing.T, standby int, agentArgs []string) (context.Context, *Cluster, *slog.Logger) {
	t.Helper()
	image, ctx := needDocker(t)
	root := os.Getenv("CARPKV_CHAOS_RESULTS")
	if root == "" {
		root = filepath.Join(os.TempDir(), "carpkv-chaos-results")
	}
	dir := filepath.Join(root, time.Now().Format("20060102-150405")+"-"+t.Name())
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	name := fmt.Sprintf("%s%d-%d", Prefix, os.Getpid(), runs.Add(1))
	c, err := StartCluster(ctx, ClusterConfig{Groups: 2, Standby: standby, Replicas: 3, AgentArgs: agentArgs, Dir: dir, Log: log}, name, image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background(), t.Failed()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if t.Failed() {
			t.Logf("agent logs and data: %s", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	})
	return ctx, c, log
}

// A client's ring lists a group's members as gossip saw them when the ring
// was fetched, without those gossip reported dead. Found by the nemesis
// (partition-oneway after kill and pause faults, RAPID=1): a client whose
// ring was fetched while two members of g1 were dead keeps only the third
// as g1's address; once that one is cut off from its peers it answers
// not_leader without a hint, and the client retries it alone until its
// deadline, although the other two (restarted) members have a leader and
// take writes.
// ringWithOneMemberOfG1 kills two members of g1, waits until gossip says
// they are dead, starts a client (with cfg, given agents of g2) whose first
// call fetches the ring, so that its ring lists one member of g1 (the
// survivor), then starts the two again and waits until the cluster is
// healthy. The client does not notice them come back.
func ringWithOneMemberOfG1(t *testing.T, ctx context.Context, c *Cluster, key map[string]string, cfg kvclient.Config) (*kvclient.Client, *Agent) {
	t.Helper()
	g1 := c.Members("g1")
	down, survivor := g1[:2], g1[2]
	for _, a := range down {
		if err := c.Kill(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	g2 := c.Members("g2")
	if err := poll(ctx, 30*time.Second, func() error {
		ms, err := c.api.gossipMembers(ctx, g2[0].HTTP())
		if err != nil {
			return err
		}
		dead := 0
		for _, m := range ms {
			for _, a := range down {
				if m.ID == a.ID && m.State == "dead" {
					dead++
				}
			}
		}
		if dead != len(down) {
			return fmt.Errorf("gossip: %d of %v dead", dead, ids(down))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The application starts now, knowing agents of g2 only; its first
	// call fetches the ring.
	cfg.Addrs = []string{g2[0].HTTP(), g2[1].HTTP()}
	kv, err := kvclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = kv.Put(wctx, []byte(key["g2"]), []byte("v"))
	cancel()
	if err != nil {
		t.Fatalf("write to g2: %v", err)
	}

	for _, a := range down {
		if err := c.Start(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitHealthy(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	return kv, survivor
}

func TestChaosClientFindsTheLeaderAfterItsRingWasFetchedWithMembersDown(t *testing.T) {
	ctx, c, key, _ := startTestCluster(t)
	kv, survivor := ringWithOneMemberOfG1(t, ctx, c, key, kvclient.Config{})

	// Now the survivor is cut off from every other agent; the clients
	// still reach it. The two others keep (or elect) a leader.
	others := without(c.Agents(false), survivor)
	if err := c.fw.CutBoth(ctx, []string{survivor.IP}, IPs(others)); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.fw.Heal(context.Background()) }()
	leader, err := c.WaitLeaderWithout(ctx, "g1", survivor, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("g1: %s cut off, %s leads the other two; the client's ring was fetched while the others were dead", survivor.ID, leader.ID)

	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := kv.Put(wctx, []byte(key["g1"]), []byte("v")); err != nil {
		t.Fatalf("write to g1, whose majority has leader %s, failed after %v: %v", leader.ID, time.Since(start).Round(time.Millisecond), err)
	}
	t.Logf("write to g1 acknowledged after %v", time.Since(start).Round(time.Millisecond))
}

// hashicorp/raft's NetworkTransport pools connections per peer and hands a
// pooled one out without checking it. A follower that once led the group
// keeps the connections its heartbeats used; if a peer restarts meanwhile,
// they are closed at the other end, and each later RPC on one fails with
// EOF. For a (pre-)vote that costs a whole election round. Found by the
// nemesis (partition-leader and partition-oneway in the soak: writes
// stopped for the whole partition, 6-8 s, while two members could talk):
// the only candidate with the longest log failed its pre-vote RPC to the
// other member with EOF round after round.
//
// Replayed here: B leads for a while (heartbeats to C leave pooled
// connections), hands leadership back to A, C restarts, C falls behind
// (A's packets to C are dropped while writes go on), then A is cut off:
// B is the only member C and B can elect, and B's first pre-vote to C must
// not fail on a stale connection.
func TestChaosElectionAfterAPeerRestartDoesNotFailOnStaleConnections(t *testing.T) {
	ctx, c, _, probes := startTestCluster(t)
	kv, err := kvclient.New(kvclient.Config{Addrs: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	write := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := kv.Put(wctx, []byte(probes["g1"]), []byte(fmt.Sprint(i)))
			cancel()
			if err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
	}

	g1 := c.Members("g1")
	a, b, cc := g1[0], g1[1], g1[2]
	makeLeader(t, ctx, c, "g1", b)
	write(50)
	makeLeader(t, ctx, c, "g1", a)
	if err := c.Kill(ctx, cc); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, cc); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	write(10)

	// C falls behind: A's packets to C are dropped while A and B commit.
	if err := c.fw.CutOneWay(ctx, []string{a.IP}, []string{cc.IP}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.fw.Heal(context.Background()) }()
	write(20)
	// Now A is cut off from both.
	cut := time.Now()
	if err := c.fw.CutBoth(ctx, []string{a.IP}, []string{b.IP, cc.IP}); err != nil {
		t.Fatal(err)
	}
	nl, err := c.WaitLeaderWithout(ctx, "g1", a, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	elected := time.Since(cut)
	if nl != b {
		t.Fatalf("%s was elected, but %s had the longer log", nl.ID, b.ID)
	}
	logs, err := containerLogs(ctx, b.Name)
	if err != nil {
		t.Fatal(err)
	}
	var stale []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "failed to make requestVote RPC") && strings.Contains(line, "Voter "+cc.ID+" ") {
			stale = append(stale, line)
		}
	}
	t.Logf("%s elected %v after %s was cut off", b.ID, elected.Round(time.Millisecond), a.ID)
	if len(stale) > 0 {
		t.Fatalf("%s's vote requests to %s failed %d times (an election round each):\n%s",
			b.ID, cc.ID, len(stale), strings.Join(stale, "\n"))
	}
}

// The same client bug, as the soak met it: a client's ring, fetched once,
// still lists members of a group that were replaced since (their
// addresses are gone) and not the fresh ones. While the group's leader is
// cut off from its peers, the client alternates between it (no leader
// known) and the dead addresses (unreachable), so neither kind of answer
// ever fills a round, the ring is never fetched again, and writes fail
// until the partition heals, although the fresh members have a leader.
func TestChaosClientFindsReplacedMembersWhenItsRingIsStale(t *testing.T) {
	ctx, c, key, _ := startTestCluster(t)
	kv, err := kvclient.New(kvclient.Config{Addrs: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	put := func(group string, timeout time.Duration) error {
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := kv.Put(wctx, []byte(key[group]), []byte("v"))
		return err
	}
	if err := put("g1", 10*time.Second); err != nil {
		t.Fatalf("first write (fetches the ring): %v", err)
	}

	// Two members of g1 are replaced; the client does not notice.
	g1 := c.Members("g1")
	keep := g1[0]
	if l, err := c.WaitLeader(ctx, "g1", 30*time.Second); err != nil {
		t.Fatal(err)
	} else if l != keep {
		if err := c.TransferLeadership(ctx, l, keep.ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, old := range g1[1:] {
		if err := c.Kill(ctx, old); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveMember(ctx, old, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := c.Destroy(ctx, old); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AddFresh(ctx, "g1"); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitHealthy(ctx, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// The one member the client still knows leads; now it is cut off from
	// the fresh ones, and has stepped down.
	if _, err := c.WaitLeader(ctx, "g1", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	fresh := without(c.Members("g1"), keep)
	if err := c.fw.CutBoth(ctx, []string{keep.IP}, IPs(without(c.Agents(false), keep))); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.fw.Heal(context.Background()) }()
	leader, err := c.WaitLeaderWithout(ctx, "g1", keep, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, 10*time.Second, func() error {
		info, err := c.Self(ctx, keep)
		if err == nil && info.State == "Leader" {
			err = errors.New("still leads")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("g1: %s (the only member the client knows) cut off; %s leads %v", keep.ID, leader.ID, ids(fresh))

	start := time.Now()
	if err := put("g1", 15*time.Second); err != nil {
		t.Fatalf("write to g1, whose fresh members have leader %s, failed after %v: %v", leader.ID, time.Since(start).Round(time.Millisecond), err)
	}
	t.Logf("write to g1 acknowledged after %v", time.Since(start).Round(time.Millisecond))
}

// makeLeader transfers the leadership of group to want and waits until it
// leads.
func makeLeader(t *testing.T, ctx context.Context, c *Cluster, group string, want *Agent) {
	t.Helper()
	if err := poll(ctx, 30*time.Second, func() error {
		l, err := c.Leader(ctx, group)
		if err != nil || l == want {
			return err
		}
		if err := c.TransferLeadership(ctx, l, want.ID); err != nil {
			return err
		}
		return errors.New("transferred; confirming")
	}); err != nil {
		t.Fatal(err)
	}
}

// freezeAndWrite freezes a, the leader of g1, waits until the two others
// elect a leader, then calls put as an application does (each call with its
// own 1 s deadline; a timeout, an unknown outcome, is not the end) until a
// write to g1 is acknowledged. It fails the test if none is within 10 s of
// the freeze.
func freezeAndWrite(t *testing.T, ctx context.Context, c *Cluster, a *Agent, put func(time.Duration) error) {
	t.Helper()
	if err := c.SigStop(ctx, a); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.SigCont(context.Background(), a) }()
	frozen := time.Now()
	leader, err := c.WaitLeaderWithout(ctx, "g1", a, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("g1: %s frozen; %s leads after %v", a.ID, leader.ID, time.Since(frozen).Round(time.Millisecond))
	var last error
	for time.Since(frozen) < 10*time.Second {
		if last = put(time.Second); last == nil {
			t.Logf("write to g1 acknowledged %v after %s froze", time.Since(frozen).Round(time.Millisecond), a.ID)
			return
		}
	}
	t.Fatalf("no write to g1 acknowledged in the 10 s after %s froze, although %s leads: last error: %v", a.ID, leader.ID, last)
}

// The client bug once more, in the form soak 3 met it after the first
// fix: the client's ring lists, for g1, a member that was replaced since
// (its address is gone) and the leader, and not the members that joined
// or came back after the ring was fetched. When that leader freezes, every
// call tries the gone address (not reachable), then the frozen leader,
// whose silence ends the write with an unknown outcome: no call ever sees
// a round of fruitless answers, the ring is never fetched again, and the
// client writes nothing until the leader thaws, although the two other
// members elected a leader within a second or two.
func TestChaosClientFindsTheLeaderWhenTheOnlyMemberItKnowsIsFrozen(t *testing.T) {
	ctx, c, key, _ := startTestCluster(t)
	g1, g2 := c.Members("g1"), c.Members("g2")
	a, b, cc := g1[0], g1[1], g1[2]
	makeLeader(t, ctx, c, "g1", a)

	// The client's ring is fetched while C is down: it knows A and B.
	if err := c.Kill(ctx, cc); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, 30*time.Second, func() error {
		ms, err := c.api.gossipMembers(ctx, g2[0].HTTP())
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.ID == cc.ID && m.State == "dead" {
				return nil
			}
		}
		return fmt.Errorf("gossip does not say %s is dead yet", cc.ID)
	}); err != nil {
		t.Fatal(err)
	}
	kv, err := kvclient.New(kvclient.Config{Addrs: []string{g2[0].HTTP(), g2[1].HTTP()}, RequestTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	put := func(group string, timeout time.Duration) error {
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := kv.Put(wctx, []byte(key[group]), []byte("v"))
		return err
	}
	if err := put("g2", 10*time.Second); err != nil {
		t.Fatalf("write to g2 (fetches the ring): %v", err)
	}
	// C comes back, B is replaced by a fresh member; the client notices
	// neither.
	if err := c.Start(ctx, cc); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveMember(ctx, b, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Destroy(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddFresh(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	makeLeader(t, ctx, c, "g1", a)

	// A freezes; the two others elect a leader.
	freezeAndWrite(t, ctx, c, a, func(d time.Duration) error { return put("g1", d) })
}

// Finding 4 (docs/testing.md): the client's ring lists one member of g1,
// which leads; it freezes, and the two others elect a leader. The write in
// flight to the frozen leader ends with an unknown outcome, as it must;
// the calls after it must find the new leader, not write to the frozen
// one until it thaws. Run over both transports: on the KV stream a
// connection opens only when the agent answers the upgrade, so the frozen
// agent is "not reachable, nothing sent"; over HTTP its kernel accepts
// connections and each request counts as sent, so the client must itself
// stop starting calls there and fetch the ring again (it did neither
// before the fix: nothing acknowledged in 10 s).
func TestChaosClientWhoseOnlyKnownMemberFreezesFindsTheNewLeader(t *testing.T) {
	for _, transport := range []string{kvclient.TransportStream, kvclient.TransportHTTP} {
		t.Run(transport, func(t *testing.T) {
			ctx, c, key, _ := startTestCluster(t)
			kv, survivor := ringWithOneMemberOfG1(t, ctx, c, key, kvclient.Config{RequestTimeout: 500 * time.Millisecond, Transport: transport})
			makeLeader(t, ctx, c, "g1", survivor)
			put := func(timeout time.Duration) error {
				wctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				_, err := kv.Put(wctx, []byte(key["g1"]), []byte("v"))
				return err
			}
			// The client writes to g1 through the survivor, the one member it knows.
			if err := put(10 * time.Second); err != nil {
				t.Fatalf("write to g1 through %s: %v", survivor.ID, err)
			}
			freezeAndWrite(t, ctx, c, survivor, put)
		})
	}
}
