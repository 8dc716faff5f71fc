package main_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpkv/carpkv/internal/testcluster"
	"github.com/carpkv/carpkv/kvclient"
)

// These tests run real carpkv-agent processes: real Raft over TCP, real
// fsync'd disks, real kill -9.

func client(t *testing.T, c *testcluster.Cluster) *kvclient.Client {
	t.Helper()
	cfg := kvclient.DefaultConfig()
	cfg.Addrs = c.Addrs()
	cl, err := kvclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// waitReplicated waits until every running member holds want at key in its
// local state.
func waitReplicated(t *testing.T, c *testcluster.Cluster, key, want string) {
	t.Helper()
	for _, n := range c.Running() {
		testcluster.Eventually(t, 10*time.Second, fmt.Sprintf("%s holds %s", n.ID, key), func() error {
			v, found, err := n.StaleGet(key)
			if err != nil {
				return err
			}
			if !found || v != want {
				return fmt.Errorf("value %q (found %v), want %q", v, found, want)
			}
			return nil
		})
	}
}

func TestAcknowledgedWriteIsReadableOnEveryMember(t *testing.T) {
	c := testcluster.Start(t, "g1", 3)
	c.DumpLogsOnFailure()
	cl := client(t, c)
	ctx := testcluster.Context(t, 30*time.Second)
	v1, err := cl.Put(ctx, []byte("k"), []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	waitReplicated(t, c, "k", "v1")
	got, err := cl.Get(ctx, []byte("k"))
	if err != nil || string(got.Data) != "v1" || got.Version != v1 {
		t.Fatalf("linearizable read: %q v%d, %v; want v1 v%d", got.Data, got.Version, err, v1)
	}
	// A client that knows only one member, any member, gets the
	// linearizable answer (followers redirect it to the leader).
	for _, n := range c.Nodes {
		cfg := kvclient.DefaultConfig()
		cfg.Addrs = []string{n.HTTPAddr}
		one, err := kvclient.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		v, err := one.Get(ctx, []byte("k"))
		_ = one.Close()
		if err != nil || string(v.Data) != "v1" {
			t.Fatalf("client seeded with %s: %q, %v", n.ID, v.Data, err)
		}
	}
}

// load writes unique keys from several goroutines until stop is closed and
// returns the acknowledged ones. Writes that failed with an unknown outcome
// are left out: they may or may not exist.
type load struct {
	mu    sync.Mutex
	acked map[string]string
	count atomic.Int64
	errs  atomic.Int64
	kinds sync.Map // error class -> *atomic.Int64, for the test log
	wg    sync.WaitGroup
	stop  chan struct{}
}

func startLoad(t *testing.T, cl *kvclient.Client, writers int) *load {
	l := &load{acked: map[string]string{}, stop: make(chan struct{})}
	for w := 0; w < writers; w++ {
		l.wg.Add(1)
		go func(w int) {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				k, v := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("value-%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := cl.Put(ctx, []byte(k), []byte(v))
				cancel()
				if err != nil {
					l.errs.Add(1)
					kind := "other"
					for _, e := range []error{kvclient.ErrTimeout, kvclient.ErrUnavailable, kvclient.ErrNotLeader} {
						if errors.Is(err, e) {
							kind = e.Error()
						}
					}
					n, _ := l.kinds.LoadOrStore(kind, new(atomic.Int64))
					n.(*atomic.Int64).Add(1)
					continue
				}
				l.mu.Lock()
				l.acked[k] = v
				l.mu.Unlock()
				l.count.Add(1)
			}
		}(w)
	}
	return l
}

func (l *load) finish() map[string]string {
	close(l.stop)
	l.wg.Wait()
	return l.acked
}

func (l *load) waitFor(t *testing.T, n int64) {
	t.Helper()
	target := l.count.Load() + n
	testcluster.Eventually(t, 60*time.Second, fmt.Sprintf("%d more acknowledged writes", n), func() error {
		if got := l.count.Load(); got < target {
			return fmt.Errorf("%d of %d (errors so far %d)", got, target, l.errs.Load())
		}
		return nil
	})
}

func checkAll(t *testing.T, cl *kvclient.Client, acked map[string]string) {
	t.Helper()
	// One read at a time: soaks check 100,000 keys and more.
	ctx := testcluster.Context(t, 60*time.Second+time.Duration(len(acked))*time.Millisecond)
	for k, want := range acked {
		v, err := cl.Get(ctx, []byte(k))
		if err != nil {
			t.Fatalf("acknowledged write %s lost: %v", k, err)
		}
		if string(v.Data) != want {
			t.Fatalf("acknowledged write %s = %q, want %q", k, v.Data, want)
		}
	}
}

func TestLeaderKillMidLoadKeepsAcknowledgedWrites(t *testing.T) {
	c := testcluster.Start(t, "g1", 3)
	c.DumpLogsOnFailure()
	cl := client(t, c)
	l := startLoad(t, cl, 8)
	l.waitFor(t, 200)
	old := c.Leader(10 * time.Second)
	old.Kill()
	newLeader := c.Leader(20 * time.Second)
	if newLeader == old {
		t.Fatal("killed leader still leads")
	}
	l.waitFor(t, 200) // writes continue under the new leader
	acked := l.finish()
	t.Logf("%d acknowledged writes, %d failed or unknown", len(acked), l.errs.Load())
	l.kinds.Range(func(k, v any) bool {
		t.Logf("  %s: %d", k, v.(*atomic.Int64).Load())
		// The client rides out the election within its deadline: the only
		// failures are writes in flight to the killed leader, whose fate
		// is unknown. Nothing may fail as "unavailable" or "not leader".
		if k != kvclient.ErrTimeout.Error() {
			t.Errorf("%d writes failed with %s during the failover", v.(*atomic.Int64).Load(), k)
		}
		return true
	})
	checkAll(t, cl, acked)

	// The old leader comes back as a follower and catches up.
	old.Start()
	c.WaitMembers(3, 30*time.Second)
	last := fmt.Sprintf("w0-%d", len(acked))
	if _, err := cl.Put(testcluster.Context(t, 10*time.Second), []byte(last), []byte("x")); err != nil {
		t.Fatal(err)
	}
	waitReplicated(t, c, last, "x")
}

func TestRestartedMemberCatchesUp(t *testing.T) {
	c := testcluster.Start(t, "g1", 3)
	c.DumpLogsOnFailure()
	cl := client(t, c)
	leader := c.Leader(10 * time.Second)
	follower := c.Follower(leader)
	follower.Kill()
	ctx := testcluster.Context(t, 60*time.Second)
	for i := 0; i < 300; i++ {
		if _, err := cl.Put(ctx, []byte(fmt.Sprintf("k%d", i)), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	follower.Start()
	waitReplicated(t, c, "k299", "299")
	for i := 0; i < 300; i++ {
		v, found, err := follower.StaleGet(fmt.Sprintf("k%d", i))
		if err != nil || !found || v != fmt.Sprint(i) {
			t.Fatalf("restarted follower: k%d = %q (found %v), %v", i, v, found, err)
		}
	}
}

func TestWholeGroupKilledAndRestartedKeepsAllData(t *testing.T) {
	c := testcluster.Start(t, "g1", 3)
	c.DumpLogsOnFailure()
	cl := client(t, c)
	ctx := testcluster.Context(t, 90*time.Second)
	acked := map[string]string{}
	for i := 0; i < 300; i++ {
		k, v := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
		if _, err := cl.Put(ctx, []byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
		acked[k] = v
	}
	for _, n := range c.Nodes {
		n.Kill() // no graceful anything: durability is fsync's job
	}
	for _, n := range c.Nodes {
		n.Start()
	}
	c.WaitMembers(3, 30*time.Second)
	checkAll(t, cl, acked)
	// Versions keep growing after the restart: no version is reused.
	before, err := cl.Get(ctx, []byte("k1"))
	if err != nil {
		t.Fatal(err)
	}
	after, err := cl.Put(ctx, []byte("k1"), []byte("again"))
	if err != nil || after <= before.Version {
		t.Fatalf("version after restart %d (err %v), before %d", after, err, before.Version)
	}
}

// With the bolt log store, whose head truncation is exact. raft-wal
// truncates the head by whole segments (64 MiB): entries before the
// snapshot stay readable in the first segment, and a new member of a small
// wal group catches up from them instead.
func TestNewMemberJoinsBySnapshotInstallAfterCompaction(t *testing.T) {
	c := testcluster.Start(t, "g1", 3, "--raft-log-store=bolt", "--raft-snapshot-threshold=64", "--raft-snapshot-interval=50ms", "--raft-trailing-logs=16")
	c.DumpLogsOnFailure()
	cl := client(t, c)
	ctx := testcluster.Context(t, 90*time.Second)
	for i := 0; i < 400; i++ {
		if _, err := cl.Put(ctx, []byte(fmt.Sprintf("k%d", i)), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.Leader(10 * time.Second)
	testcluster.Eventually(t, 30*time.Second, "a snapshot on the leader", func() error {
		return hasSnapshot(leader)
	})
	n4 := c.AddNode("g1-n4")
	n4.Args = append(n4.Args, "--join", c.Nodes[0].HTTPAddr, "--join", c.Nodes[1].HTTPAddr)
	n4.Start()
	c.WaitMembers(4, 60*time.Second)
	waitReplicated(t, c, "k399", "399")
	// The log before the snapshot was compacted, so n4 can only have got
	// the early keys from an installed snapshot.
	if err := hasSnapshot(n4); err != nil {
		t.Fatalf("new member has no installed snapshot: %v", err)
	}
	for i := 0; i < 400; i++ {
		v, found, err := n4.StaleGet(fmt.Sprintf("k%d", i))
		if err != nil || !found || v != fmt.Sprint(i) {
			t.Fatalf("new member: k%d = %q (found %v), %v", i, v, found, err)
		}
	}
}

func hasSnapshot(n *testcluster.Node) error {
	entries, err := os.ReadDir(filepath.Join(n.DataDir, "raft", "snapshots"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(n.DataDir, "raft", "snapshots", e.Name(), "state.bin")); err == nil {
			return nil
		}
	}
	return fmt.Errorf("no complete snapshot among %d entries", len(entries))
}

func TestRemovedMemberCannotDisruptTheGroup(t *testing.T) {
	// Raft timings an overloaded test machine does not trip by itself, so
	// that a new term in the window below can only come from the removed
	// node; its own election timer still fires several times in the window.
	c := testcluster.Start(t, "g1", 3, "--raft-heartbeat-timeout=1s", "--raft-election-timeout=1s", "--raft-leader-lease-timeout=500ms")
	c.DumpLogsOnFailure()
	cl := client(t, c)
	ctx := testcluster.Context(t, 60*time.Second)
	leader := c.Leader(10 * time.Second)
	victim := c.Follower(leader)
	if _, err := cl.Remove(ctx, victim.ID); err != nil {
		t.Fatal(err)
	}
	c.WaitMembers(2, 20*time.Second)
	// The removed node restarts with its old state, which still lists it
	// as a voter: it will time out and try to be elected.
	victim.Kill()
	logFrom := len(victim.Log())
	victim.Start()
	before, err := leader.Self()
	if err != nil {
		t.Fatal(err)
	}
	// Observe the group while the removed node runs for a while: the
	// window is the behaviour under test, not a synchronisation.
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if _, err := cl.Put(ctx, []byte(fmt.Sprintf("after-remove-%d", i)), []byte("x")); err != nil {
			t.Fatalf("write %d during the removed node's attempts: %v", i, err)
		}
	}
	after, err := leader.Self()
	if err != nil {
		t.Fatal(err)
	}
	if after.State != "Leader" || after.Term != before.Term {
		t.Fatalf("group disturbed: leader state %s term %d -> %d", after.State, before.Term, after.Term)
	}
	// And it cannot come back under its old ID.
	_, err = cl.Join(ctx, joinRequest(victim))
	if !errors.Is(err, kvclient.ErrInvalidArgument) {
		t.Fatalf("rejoin of a removed ID: %v, want invalid_argument", err)
	}
	// The removed node itself asked to rejoin (it has no registration in
	// the group), was refused for good, and stopped asking: one refusal
	// in its log, not one every few seconds.
	testcluster.Eventually(t, 10*time.Second, victim.ID+" gives up rejoining", func() error {
		if !strings.Contains(victim.Log()[logFrom:], "the group refuses this agent") {
			return errors.New("no refusal logged yet")
		}
		return nil
	})
	if n := strings.Count(victim.Log()[logFrom:], "join attempt failed"); n > 0 {
		t.Fatalf("%s logged %d failed join attempts besides the refusal", victim.ID, n)
	}
}

// TestMachineRestartRebuildsTheStateMachineFromRaft kills every member and
// restarts it as if the machine had rebooted (a new boot ID): each store
// file that was open is then distrusted and discarded, and every member
// rebuilds its state from its Raft snapshot and log. Nothing acknowledged
// may be lost, and versions keep growing.
func TestMachineRestartRebuildsTheStateMachineFromRaft(t *testing.T) {
	bootFile := filepath.Join(t.TempDir(), "boot_id")
	writeBoot := func(id string) {
		if err := os.WriteFile(bootFile, []byte(id+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeBoot("boot-1")
	t.Setenv("CARPKV_BOOT_ID_FILE", bootFile) // inherited by the agents
	c := testcluster.Start(t, "g1", 3, "--raft-snapshot-threshold=64", "--raft-snapshot-interval=50ms", "--raft-trailing-logs=16")
	c.DumpLogsOnFailure()
	cl := client(t, c)
	ctx := testcluster.Context(t, 120*time.Second)
	acked := map[string]string{}
	var last uint64
	var lastKey string
	for i := 0; i < 400; i++ {
		k, v := fmt.Sprintf("k%d", i%250), fmt.Sprintf("v%d", i)
		ver, err := cl.Put(ctx, []byte(k), []byte(v))
		if err != nil {
			t.Fatal(err)
		}
		acked[k], last, lastKey = v, ver, k
	}
	for _, n := range c.Nodes {
		testcluster.Eventually(t, 30*time.Second, n.ID+" has a snapshot", func() error { return hasSnapshot(n) })
	}
	for _, n := range c.Nodes {
		n.Kill()
	}
	writeBoot("boot-2")
	for _, n := range c.Nodes {
		n.Start()
	}
	c.WaitMembers(3, 30*time.Second)
	checkAll(t, cl, acked)
	for _, n := range c.Nodes {
		if !strings.Contains(n.Log(), "discarded_torn_file=true") {
			t.Fatalf("%s did not discard its store file after the simulated machine restart", n.ID)
		}
		// Every member holds the last write, so every earlier one too.
		waitReplicated(t, c, lastKey, acked[lastKey])
		for k, want := range acked {
			v, found, err := n.StaleGet(k)
			if err != nil || !found || v != want {
				t.Fatalf("%s rebuilt: %s = %q (found %v), %v; want %q", n.ID, k, v, found, err, want)
			}
		}
	}
	ver, err := cl.Put(ctx, []byte("k1"), []byte("after"))
	if err != nil || ver <= last {
		t.Fatalf("version after the rebuild %d (err %v), last before %d", ver, err, last)
	}
}
