package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPlanLaysOutNodesPortsAndArgs(t *testing.T) {
	dir := t.TempDir()
	s, err := Plan(Options{Dir: dir, AgentBin: "/x/carpkv-agent", Groups: 3, Replicas: 2, ExtraArgs: []string{"--log-level", "debug"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Nodes) != 6 || s.Nodes[0].ID != "g1-n1" || s.Nodes[5].ID != "g3-n2" || s.Nodes[3].Group != "g2" {
		t.Fatalf("nodes %v", s.NodeIDs())
	}
	seen := map[string]bool{}
	for _, n := range s.Nodes {
		for _, a := range []string{n.RaftAddr, n.HTTPAddr, n.GossipAddr} {
			if !strings.HasPrefix(a, "127.0.0.1:") || seen[a] {
				t.Fatalf("address %s reused or not loopback", a)
			}
			seen[a] = true
		}
		if n.DataDir != filepath.Join(dir, "data", n.ID) || n.Log != filepath.Join(dir, "logs", n.ID+".log") {
			t.Fatalf("%s: dirs %s %s", n.ID, n.DataDir, n.Log)
		}
	}
	args := strings.Join(s.Nodes[3].Args, " ")
	for _, want := range []string{
		"--node-id g2-n2 --group g2 --data-dir " + s.Nodes[3].DataDir,
		"--raft-addr " + s.Nodes[3].RaftAddr, "--http-addr " + s.Nodes[3].HTTPAddr, "--gossip-addr " + s.Nodes[3].GossipAddr,
		"--gossip-profile local", "--retry-join " + s.Nodes[0].GossipAddr, "--retry-join " + s.Nodes[2].GossipAddr,
		"--bootstrap-expect 2", "--expect-groups 3", "--group-weight 1",
		"--raft-heartbeat-timeout 300ms", "--raft-election-timeout 300ms", "--raft-leader-lease-timeout 150ms",
		"--log-level debug",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	for _, bad := range []Options{{Groups: 0, Replicas: 1}, {Groups: 1, Replicas: 0}, {Groups: 1, Replicas: 10}, {Groups: 30, Replicas: 3}} {
		if _, err := Plan(bad); err == nil {
			t.Errorf("Plan(%+v) accepted", bad)
		}
	}
}

func TestStateFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "no local cluster") {
		t.Fatalf("Load of an empty dir: %v", err)
	}
	s, err := Plan(Options{Dir: dir, AgentBin: "/x/carpkv-agent", Groups: 2, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	s.Nodes[4].PID = 4242
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	got.Created, s.Created = got.Created.UTC(), s.Created.UTC()
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
	if got.Node("g2-n2").PID != 4242 || got.Node("nope") != nil {
		t.Fatalf("Node lookups")
	}
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(`{"version": 99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Fatalf("Load of a newer state file: %v", err)
	}
}

// helperNode is a node whose "agent" is a shell that says "ready-PID" once
// its SIGTERM handling is set up, then waits: it exits on SIGTERM, or
// ignores it if stubborn. (Not a Go helper: under the race detector its
// signal handling and exit are too slow to test a grace period with.)
func helperNode(t *testing.T, id string, stubborn bool) (*Node, string) {
	t.Helper()
	dir := t.TempDir()
	n := &Node{ID: id, DataDir: filepath.Join(dir, "data", id), Log: filepath.Join(dir, "logs", id+".log")}
	trap := `trap 'exit 0' TERM`
	if stubborn {
		trap = `trap '' TERM`
	}
	// The data dir is $0: it shows in the command line, as an agent's does.
	n.Args = []string{"-c", trap + `; echo ready-$$; while :; do sleep 0.05; done`, n.DataDir}
	t.Cleanup(func() {
		_ = n.Signal(syscall.SIGKILL)
		_ = WaitExit(context.Background(), []*Node{n})
	})
	return n, "/bin/sh"
}

func TestStartKillAndAlive(t *testing.T) {
	n, bin := helperNode(t, "g1-n1", false)
	if n.Alive() {
		t.Fatal("alive before start")
	}
	if err := Start(n, bin); err != nil {
		t.Fatal(err)
	}
	if !n.Alive() {
		t.Fatal("not alive after start")
	}
	if err := Start(n, bin); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Start: %v", err)
	}
	// A PID that is not this node's agent (here: the test itself) is not
	// taken for it, so it is never signalled.
	other := Node{ID: "x", PID: os.Getpid(), DataDir: "/no/such/carpkv/dir"}
	if other.Alive() {
		t.Fatal("a process that does not run the node's data dir counts as alive")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Kill(ctx, n); err != nil {
		t.Fatal(err)
	}
	if n.Alive() {
		t.Fatal("alive after Kill (a zombie must not count)")
	}
	tail, err := Tail(n.Log, 5)
	if err != nil || !strings.Contains(tail, "carpkvctl: starting g1-n1") {
		t.Fatalf("log tail %q, %v", tail, err)
	}
}

func TestStopTerminatesThenKillsStragglers(t *testing.T) {
	polite, bin := helperNode(t, "g1-n1", false)
	if err := Start(polite, bin); err != nil {
		t.Fatal(err)
	}
	stubborn, _ := helperNode(t, "g1-n2", true)
	if err := Start(stubborn, bin); err != nil {
		t.Fatal(err)
	}
	// The helpers handle signals only once their trap is set.
	waitReady(t, polite)
	waitReady(t, stubborn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := Stop(ctx, []*Node{polite, stubborn}, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Stopped, []string{"g1-n1"}) || !slices.Equal(res.Killed, []string{"g1-n2"}) {
		t.Fatalf("Stop = %+v", res)
	}
	if polite.Alive() || stubborn.Alive() {
		t.Fatal("a node survived Stop")
	}
}

// waitReady polls the helper's log until it says it is ready, with a
// deadline.
func waitReady(t *testing.T, n *Node) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if tail, _ := Tail(n.Log, 5); strings.Contains(tail, fmt.Sprintf("ready-%d", n.PID)) {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s never got ready", n.ID)
		}
	}
}

func TestPlanGroupCopiesTheOthersArgsWithItsOwnValues(t *testing.T) {
	dir := t.TempDir()
	s, err := Plan(Options{Dir: dir, AgentBin: "/x/carpkv-agent", Groups: 3, Replicas: 1, ExtraArgs: []string{"--log-level=debug"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Nodes[2].Removed = true // g3 was removed: its ID is not reused
	if _, err := s.PlanGroup(1, 1); err == nil || !strings.Contains(err.Error(), "no agent") {
		t.Fatalf("PlanGroup with nothing running: %v", err)
	}
	s.Nodes[1].PID = os.Getpid() // g2-n1 "runs": Alive checks its command line
	s.Nodes[1].DataDir = ""      // ... which contains ""
	nodes, err := s.PlanGroup(2, 2.5)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].ID != "g4-n1" || nodes[1].ID != "g4-n2" || nodes[1].Group != "g4" {
		t.Fatalf("nodes %+v", nodes)
	}
	n := nodes[1]
	args := strings.Join(n.Args, " ")
	for _, want := range []string{
		"--node-id g4-n2 --group g4 --data-dir " + filepath.Join(dir, "data", "g4-n2"),
		"--raft-addr " + n.RaftAddr, "--http-addr " + n.HTTPAddr, "--gossip-addr " + n.GossipAddr,
		"--bootstrap-expect 2", "--expect-groups 3", "--group-weight 2.5", "--log-level=debug",
		"--retry-join " + s.Nodes[1].GossipAddr,
	} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if strings.Count(args, "--retry-join") != 1 || strings.Count(args, "--node-id") != 1 {
		t.Errorf("args %q: seeds or IDs repeated", args)
	}
	for _, bad := range []int{0, 10} {
		if _, err := s.PlanGroup(bad, 1); err == nil {
			t.Errorf("PlanGroup(%d replicas) accepted", bad)
		}
	}
}

func TestWithArgsReplacesValuesAndRepeatedFlags(t *testing.T) {
	got := withArgs([]string{"--a", "1", "--seed", "x", "--b=2", "--seed", "y", "--keep", "k"},
		map[string]string{"--a": "9", "--b": "8", "--c": "7"}, "--seed", []string{"z"})
	want := []string{"--a", "9", "--b", "8", "--keep", "k", "--c", "7", "--seed", "z"}
	if !slices.Equal(got, want) {
		t.Fatalf("withArgs = %q, want %q", got, want)
	}
}
