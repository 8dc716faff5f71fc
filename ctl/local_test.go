package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/carpkv/carpkv/ctl/localcluster"
)

// localEnv gives the test its own local cluster directory and makes the
// agents `local` starts fake ones (this test binary, see fakeAgentMain);
// every agent still running at the end is killed.
func localEnv(t *testing.T, mode string) (dir, bin string) {
	t.Helper()
	dir = t.TempDir()
	t.Setenv("CARPKV_LOCAL_DIR", dir)
	t.Setenv("CARPKV_ADDR", "")
	t.Setenv("CARPKV_FAKE_AGENT", mode)
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st, err := localcluster.Load(dir)
		if err != nil {
			return
		}
		for _, n := range st.Alive() {
			_ = n.Signal(syscall.SIGKILL)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = localcluster.WaitExit(ctx, st.Alive())
	})
	return dir, bin
}

// sessionOf reads a process's session ID from /proc.
func sessionOf(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid pgrp session ...
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 4 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return strconv.Atoi(f[3])
}

func loadState(t *testing.T, dir string) *localcluster.State {
	t.Helper()
	st, err := localcluster.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestLocalUpStartsEveryAgentAndWaitsForTheRing(t *testing.T) {
	dir, bin := localEnv(t, "normal")
	r := runCLI(t, "", "local", "up", "--groups", "2", "--replicas", "2", "--agent-bin", bin, "--wait", "20s", "--agent-arg=--log-level=debug")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "ring committed in") || !strings.Contains(r.stdout, "g2-n1") {
		t.Fatalf("local up printed:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "groups with a leader 2/2") {
		t.Errorf("no progress on stderr:\n%s", r.stderr)
	}
	st := loadState(t, dir)
	if len(st.Nodes) != 4 || len(st.Alive()) != 4 || st.Groups != 2 || st.Replicas != 2 {
		t.Fatalf("state: %d nodes, %d alive, %d×%d", len(st.Nodes), len(st.Alive()), st.Groups, st.Replicas)
	}
	for _, n := range st.Nodes {
		if _, err := os.Stat(n.Log); err != nil {
			t.Errorf("%s: no log: %v", n.ID, err)
		}
		if filepath.Dir(n.DataDir) != filepath.Join(dir, "data") {
			t.Errorf("%s: data dir %s", n.ID, n.DataDir)
		}
		// --agent-arg comes last, so it wins over the local defaults.
		if len(n.Args) == 0 || n.Args[len(n.Args)-1] != "--log-level=debug" {
			t.Errorf("%s: args %q do not end with the --agent-arg", n.ID, n.Args)
		}
		// Their own session: a Ctrl-C of the terminal does not reach them.
		if sid, err := sessionOf(n.PID); err != nil || sid != n.PID {
			t.Errorf("%s: session %d (%v), want its own (%d)", n.ID, sid, err, n.PID)
		}
	}

	// A second up refuses to touch the running cluster.
	r = runCLI(t, "", "local", "up", "--agent-bin", bin)
	if r.code == 0 || !strings.Contains(r.stderr, "already running") || !strings.Contains(r.stderr, "--fresh") {
		t.Fatalf("second local up = %+v", r)
	}
	// Commands without --addr or CARPKV_ADDR use it.
	r = runCLI(t, "", "ring", "show")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "epoch 1") || !strings.Contains(r.stdout, "g1-n1") && !strings.Contains(r.stdout, "g2-n1") {
		t.Fatalf("ring show against the local cluster:\n%s", r.stdout)
	}

	// --fresh replaces it: new processes, new ports.
	old := st.Nodes[0]
	mustSucceed(t, runCLI(t, "", "local", "up", "--groups", "1", "--replicas", "1", "--fresh", "--agent-bin", bin, "--wait", "20s"))
	st = loadState(t, dir)
	if len(st.Nodes) != 1 || !st.Nodes[0].Alive() || old.Alive() {
		t.Fatalf("after --fresh: %d nodes; old g1-n1 alive %v", len(st.Nodes), old.Alive())
	}
}

func TestLocalKillStartDown(t *testing.T) {
	dir, bin := localEnv(t, "normal")
	mustSucceed(t, runCLI(t, "", "local", "up", "-g", "1", "-r", "2", "--agent-bin", bin, "--wait", "20s"))
	st := loadState(t, dir)
	victim := *st.Node("g1-n2")

	r := runCLI(t, "", "local", "kill", "g1-n2")
	mustSucceed(t, r)
	if victim.Alive() || !strings.Contains(r.stdout, "killed g1-n2") {
		t.Fatalf("local kill = %+v; alive %v", r, victim.Alive())
	}
	if r := runCLI(t, "", "local", "kill", "g1-n2"); r.code == 0 || !strings.Contains(r.stderr, "not running") {
		t.Fatalf("killing a dead node = %+v", r)
	}
	if r := runCLI(t, "", "local", "kill", "g9-n9"); r.code != 3 || !strings.Contains(r.stderr, "nodes: g1-n1 g1-n2") {
		t.Fatalf("killing an unknown node = %+v", r)
	}

	r = runCLI(t, "", "local", "status")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "1 of 2 agents running") || !strings.Contains(r.stdout, "stopped") {
		t.Fatalf("local status:\n%s", r.stdout)
	}

	r = runCLI(t, "", "local", "start", "g1-n2")
	mustSucceed(t, r)
	st = loadState(t, dir)
	if n := st.Node("g1-n2"); !n.Alive() || n.PID == victim.PID {
		t.Fatalf("after start: %+v", n)
	}
	r = runCLI(t, "", "local", "logs", "g1-n2", "-n", "3")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "carpkvctl: starting g1-n2") {
		t.Fatalf("local logs:\n%s", r.stdout)
	}
	if r := runCLI(t, "", "local", "logs", "g1-n2", "--path"); strings.TrimSpace(r.stdout) != st.Node("g1-n2").Log {
		t.Fatalf("local logs --path = %q", r.stdout)
	}

	r = runCLI(t, "", "local", "status", "-o", "json")
	mustSucceed(t, r)
	var ls struct {
		Nodes  []localNode    `json:"nodes"`
		Status *clusterStatus `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ls); err != nil || len(ls.Nodes) != 2 || !ls.Nodes[1].Running || ls.Status == nil {
		t.Fatalf("local status -o json: %v\n%s", err, r.stdout)
	}

	nodes := st.Alive()
	r = runCLI(t, "", "local", "down")
	mustSucceed(t, r)
	for _, n := range nodes {
		if n.Alive() {
			t.Fatalf("%s still alive after down", n.ID)
		}
	}
	if !strings.Contains(r.stdout, "stopped 2 agents") || !strings.Contains(r.stdout, "data and logs kept") {
		t.Fatalf("local down printed %q", r.stdout)
	}
	// Without a running cluster, commands say how to get one.
	r = runCLI(t, "", "get", "k")
	if r.code != 3 || !strings.Contains(r.stderr, "is stopped") {
		t.Fatalf("get with the local cluster stopped = %+v", r)
	}
	// up starts the same cluster again, same ports.
	mustSucceed(t, runCLI(t, "", "local", "up", "--agent-bin", bin, "--wait", "20s"))
	again := loadState(t, dir)
	if again.Nodes[0].HTTPAddr != st.Nodes[0].HTTPAddr || len(again.Alive()) != 2 {
		t.Fatalf("restarted cluster: %+v", again.Nodes)
	}
	mustSucceed(t, runCLI(t, "", "local", "down", "--purge"))
	if _, err := os.Stat(filepath.Join(dir, localcluster.StateFile)); !os.IsNotExist(err) {
		t.Fatalf("state file after --purge: %v", err)
	}
	if r := runCLI(t, "", "local", "down"); r.code != 0 || !strings.Contains(r.stdout, "no local cluster") {
		t.Fatalf("down without a cluster = %+v", r)
	}
}

func TestLocalUpFailsWithTheLogsWhenAnAgentDies(t *testing.T) {
	localEnv(t, "normal")
	// An "agent" that exits at once.
	r := runCLI(t, "", "local", "up", "-g", "1", "-r", "1", "--agent-bin", "/bin/false", "--wait", "10s")
	if r.code == 0 || !strings.Contains(r.stderr, "exited") || !strings.Contains(r.stderr, "NOT RUNNING") || !strings.Contains(r.stderr, "local down") {
		t.Fatalf("local up with a dying agent = %+v", r)
	}
}

func TestLocalUpWithoutAnAgentBinarySaysWhereItLooked(t *testing.T) {
	localEnv(t, "normal")
	t.Setenv("PATH", t.TempDir())
	r := runCLI(t, "", "local", "up")
	if r.code == 0 || !strings.Contains(r.stderr, "carpkv-agent not found") {
		t.Fatalf("local up without an agent = %+v", r)
	}
}

func TestLocalDownKillsAgentsThatIgnoreSIGTERM(t *testing.T) {
	dir, bin := localEnv(t, "stubborn")
	mustSucceed(t, runCLI(t, "", "local", "up", "-g", "1", "-r", "2", "--agent-bin", bin, "--wait", "20s"))
	st := loadState(t, dir)
	r := runCLI(t, "", "local", "down", "--grace", "300ms")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "SIGKILLed after 300ms: g1-n1, g1-n2") {
		t.Fatalf("local down printed %q", r.stdout)
	}
	for _, n := range st.Nodes {
		if n.Alive() {
			t.Fatalf("%s survived", n.ID)
		}
	}
}

func TestResolveAddrsPrefersFlagThenEnvThenLocalCluster(t *testing.T) {
	_, bin := localEnv(t, "normal")
	if r := runCLI(t, "", "get", "k"); r.code != 3 || !strings.Contains(r.stderr, "carpkvctl local up") {
		t.Fatalf("no address anywhere = %+v", r)
	}
	mustSucceed(t, runCLI(t, "", "local", "up", "-g", "1", "-r", "1", "--agent-bin", bin, "--wait", "20s"))
	other := cluster(t, 1)
	g := cluster(t, 1) // sets CARPKV_ADDR

	// CARPKV_ADDR over the local cluster (whose fake agents serve no keys).
	mustSucceed(t, runCLI(t, "", "put", "k", "from-env"))
	if v, _ := g.Value([]byte("k")); string(v) != "from-env" {
		t.Fatalf("CARPKV_ADDR's group holds %q", v)
	}
	// --addr over CARPKV_ADDR.
	mustSucceed(t, runCLI(t, "", "--addr", other.Agent(0).Addr(), "put", "k", "from-flag"))
	if v, _ := other.Value([]byte("k")); string(v) != "from-flag" {
		t.Fatalf("--addr's group holds %q", v)
	}
	if v, _ := g.Value([]byte("k")); string(v) != "from-env" {
		t.Fatalf("--addr did not win: CARPKV_ADDR's group holds %q", v)
	}
	// Neither: the local cluster.
	t.Setenv("CARPKV_ADDR", "")
	r := runCLI(t, "", "ring", "owner", "k")
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "g1 (leader g1-n1 at 127.0.0.1:") {
		t.Fatalf("ring owner against the local cluster: %q", r.stdout)
	}
}

func TestLocalAddGroupThenRemoveGroup(t *testing.T) {
	dir, bin := localEnv(t, "normal")
	mustSucceed(t, runCLI(t, "", "local", "up", "-g", "2", "-r", "1", "--agent-bin", bin, "--wait", "20s", "--agent-arg=--log-level=debug"))

	r := runCLI(t, "", "local", "add-group", "--weight", "2")
	mustSucceed(t, r)
	st := loadState(t, dir)
	g3 := st.Node("g3-n1")
	if len(st.Nodes) != 3 || g3 == nil || !g3.Alive() || g3.Group != "g3" {
		t.Fatalf("after add-group: nodes %v", st.NodeIDs())
	}
	args := strings.Join(g3.Args, " ")
	for _, want := range []string{"--group g3", "--expect-groups 2", "--bootstrap-expect 1", "--group-weight 2", "--log-level=debug"} {
		if !strings.Contains(args, want) {
			t.Errorf("g3-n1 args %q lack %q", args, want)
		}
	}
	if !strings.Contains(r.stderr, "group g3 has a leader: g3-n1") || !strings.Contains(r.stdout, "ring change done: add g3") {
		t.Fatalf("add-group printed:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	if tail, _ := localcluster.Tail(st.Node("g1-n1").Log, 5); !strings.Contains(tail, "ring change add-group g3 weight 2") {
		t.Fatalf("the coordinator's log:\n%s", tail)
	}

	if r := runCLI(t, "", "local", "remove-group", "g9"); r.code != exitInvalid || !strings.Contains(r.stderr, "groups: g1 g2 g3") {
		t.Fatalf("remove-group of an unknown group: %+v", r)
	}
	r = runCLI(t, "", "local", "remove-group", "g3")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "ring change done: remove g3") || !strings.Contains(r.stdout, "stopped group g3 (g3-n1)") {
		t.Fatalf("remove-group printed:\n%s", r.stdout)
	}
	st = loadState(t, dir)
	if g3 := st.Node("g3-n1"); !g3.Removed || g3.Alive() || g3.PID != 0 {
		t.Fatalf("g3-n1 after remove-group: %+v", g3)
	}
	r = runCLI(t, "", "local", "status")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "2 groups, 2 of 2 agents running (and 1 of removed groups)") || len(rowsOf(r.stdout, "g3-n1 ")) != 1 || rowsOf(r.stdout, "g3-n1 ")[0][2] != "removed" {
		t.Fatalf("local status:\n%s", r.stdout)
	}
	if r := runCLI(t, "", "local", "start", "g3-n1"); r.code == 0 || !strings.Contains(r.stderr, "removed") {
		t.Fatalf("start of a removed node: %+v", r)
	}
	// A restart of the whole cluster leaves the removed group out.
	mustSucceed(t, runCLI(t, "", "local", "down"))
	mustSucceed(t, runCLI(t, "", "local", "up", "--agent-bin", bin, "--wait", "20s"))
	if st := loadState(t, dir); st.Node("g3-n1").Alive() || len(st.Alive()) != 2 {
		t.Fatalf("local up started a removed node: %d alive", len(st.Alive()))
	}
	// The next group gets a new ID: g3's data is still there.
	mustSucceed(t, runCLI(t, "", "local", "add-group", "--no-wait"))
	if st := loadState(t, dir); st.Node("g4-n1") == nil || !st.Node("g4-n1").Alive() {
		t.Fatalf("second add-group: nodes %v", st.NodeIDs())
	}
}

func TestLocalAddGroupNeedsARunningCluster(t *testing.T) {
	localEnv(t, "normal")
	if r := runCLI(t, "", "local", "add-group"); r.code == 0 || !strings.Contains(r.stderr, "local up") {
		t.Fatalf("add-group without a cluster: %+v", r)
	}
	if r := runCLI(t, "", "local", "add-group", "--weight", "-1"); r.code != exitInvalid {
		t.Fatalf("add-group --weight -1: %+v", r)
	}
}
