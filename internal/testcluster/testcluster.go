// Package testcluster runs real carpkv-agent processes on loopback for
// integration tests: real binaries, real Raft over TCP, real disks, and
// real kill -9. Every wait polls a condition with a deadline.
package testcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient/wire"
)

var (
	buildOnce sync.Once
	agentBin  string
	buildErr  error
)

// AgentBinary builds carpkv-agent once per test process and returns its
// path.
func AgentBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "carpkv-agent-bin-")
		if err != nil {
			buildErr = err
			return
		}
		agentBin = filepath.Join(dir, "carpkv-agent")
		cmd := exec.Command("go", "build", "-race", "-o", agentBin, "github.com/carpkv/carpkv/agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building agent: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return agentBin
}

// Node is one agent process.
type Node struct {
	ID, Group          string
	RaftAddr, HTTPAddr string
	GossipAddr         string
	DataDir, LogPath   string
	Args               []string // extra flags, kept across restarts

	t   testing.TB
	bin string
	mu  sync.Mutex
	cmd *exec.Cmd
	out *os.File
}

// Cluster is one group of agents.
type Cluster struct {
	t     testing.TB
	Dir   string
	Group string
	Nodes []*Node
	// Args are extra flags given to every agent.
	Args []string
}

// FastRaft are Raft timings for tests on a loaded 2-core machine: quick
// failover without spurious elections.
var FastRaft = []string{
	"--raft-heartbeat-timeout=300ms", "--raft-election-timeout=300ms",
	"--raft-leader-lease-timeout=150ms", "--log-level=info", "--gossip-profile=local",
}

// Start launches a group of size agents (the first bootstraps, the others
// join through it) and waits until all are members and ready. The agents
// are killed at test cleanup.
func Start(t testing.TB, group string, size int, args ...string) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Dir: t.TempDir(), Group: group, Args: append(append([]string{}, FastRaft...), args...)}
	for i := 1; i <= size; i++ {
		n := c.AddNode(fmt.Sprintf("%s-n%d", group, i))
		if i == 1 {
			n.Args = append(n.Args, "--bootstrap")
		} else {
			n.Args = append(n.Args, "--join", c.Nodes[0].HTTPAddr, "--retry-join", c.Nodes[0].GossipAddr)
		}
		n.Start()
	}
	c.WaitMembers(size, 30*time.Second)
	return c
}

// AddNode prepares (but does not start) a node of the cluster.
func (c *Cluster) AddNode(id string) *Node {
	n := &Node{
		ID: id, Group: c.Group, t: c.t, bin: AgentBinary(c.t),
		RaftAddr: FreePort(c.t), HTTPAddr: FreePort(c.t), GossipAddr: FreePort(c.t),
		DataDir: filepath.Join(c.Dir, id), LogPath: filepath.Join(c.Dir, id+".log"),
		Args: append([]string{}, c.Args...),
	}
	c.Nodes = append(c.Nodes, n)
	c.t.Cleanup(n.Kill)
	return n
}

// Start starts the process (again, after Kill or Stop).
func (n *Node) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	out, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	args := append([]string{
		"--node-id", n.ID, "--group", n.Group, "--data-dir", n.DataDir,
		"--raft-addr", n.RaftAddr, "--http-addr", n.HTTPAddr, "--gossip-addr", n.GossipAddr,
	}, n.Args...)
	cmd := exec.Command(n.bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		n.t.Fatalf("start %s: %v", n.ID, err)
	}
	n.cmd, n.out = cmd, out
}

// Kill sends SIGKILL and waits for the process to exit.
func (n *Node) Kill() { n.signal(syscall.SIGKILL) }

// Stop sends SIGTERM (graceful: a leader hands over first) and waits.
func (n *Node) Stop() { n.signal(syscall.SIGTERM) }

func (n *Node) signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(sig)
	_ = n.cmd.Wait()
	n.out.Close()
	n.cmd, n.out = nil, nil
}

// Running reports whether the process was started and not stopped.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// Log returns the node's log so far, for failure messages.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.LogPath)
	return string(b)
}

var httpc = &http.Client{Timeout: 2 * time.Second}

// Self queries /v1/agent/self.
func (n *Node) Self() (wire.AgentInfo, error) {
	var info wire.AgentInfo
	err := getJSON("http://"+n.HTTPAddr+wire.PathAgentSelf, &info)
	return info, err
}

// Ready reports whether /v1/ready answers 200.
func (n *Node) Ready() bool {
	resp, err := httpc.Get("http://" + n.HTTPAddr + wire.PathReady)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func getJSON(url string, v any) error {
	resp, err := httpc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Eventually polls cond every 20ms until it returns nil or timeout passes,
// then fails the test with cond's last error.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		<-tick.C
	}
}

// Running returns the nodes whose process is up.
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// WaitMembers waits until the leader's configuration lists want servers
// and every running node is ready.
func (c *Cluster) WaitMembers(want int, timeout time.Duration) {
	c.t.Helper()
	Eventually(c.t, timeout, fmt.Sprintf("group %s with %d ready members", c.Group, want), func() error {
		l, err := c.leader()
		if err != nil {
			return err
		}
		var cfg wire.Configuration
		if err := getJSON("http://"+l.HTTPAddr+wire.PathRaftConfiguration, &cfg); err != nil {
			return err
		}
		if len(cfg.Servers) != want {
			return fmt.Errorf("configuration has %d servers: %+v", len(cfg.Servers), cfg.Servers)
		}
		for _, n := range c.Running() {
			if !n.Ready() {
				return fmt.Errorf("%s not ready", n.ID)
			}
		}
		return nil
	})
}

// Leader waits until the running nodes agree on one leader and returns it.
func (c *Cluster) Leader(timeout time.Duration) *Node {
	c.t.Helper()
	var l *Node
	Eventually(c.t, timeout, "a leader all running members agree on", func() error {
		var err error
		l, err = c.leader()
		return err
	})
	return l
}

// Follower returns a member other than leader (the last one listed).
func (c *Cluster) Follower(leader *Node) *Node {
	var f *Node
	for _, n := range c.Nodes {
		if n != leader {
			f = n
		}
	}
	return f
}

func (c *Cluster) leader() (*Node, error) {
	var leaderID string
	var leader *Node
	for _, n := range c.Running() {
		info, err := n.Self()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", n.ID, err)
		}
		if info.Leader == nil {
			return nil, fmt.Errorf("%s knows no leader", n.ID)
		}
		if leaderID != "" && info.Leader.ID != leaderID {
			return nil, fmt.Errorf("%s says %s leads, another says %s", n.ID, info.Leader.ID, leaderID)
		}
		leaderID = info.Leader.ID
		if info.State == "Leader" {
			leader = n
		}
	}
	if leader == nil || leader.ID != leaderID {
		return nil, fmt.Errorf("leader %q is not a running node claiming leadership", leaderID)
	}
	return leader, nil
}

// Addrs returns the HTTP addresses of all nodes.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.HTTPAddr
	}
	return out
}

// Node returns the node with id.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	c.t.Fatalf("no node %s", id)
	return nil
}

// DumpLogsOnFailure prints every node's log if the test failed.
func (c *Cluster) DumpLogsOnFailure() {
	c.t.Cleanup(func() {
		if !c.t.Failed() {
			return
		}
		for _, n := range c.Nodes {
			c.t.Logf("==== log of %s ====\n%s", n.ID, tail(n.Log(), 150))
		}
	})
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// Context returns a context with a timeout, cancelled at test cleanup.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// StaleGet reads key from n's local state (GET ?stale=true sent to n
// itself, never redirected): what this member holds right now. found is
// false on not_found; err reports anything else.
func (n *Node) StaleGet(key string) (value string, found bool, err error) {
	resp, err := httpc.Get("http://" + n.HTTPAddr + wire.KVPrefix + url.PathEscape(key) + "?stale=true")
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", false, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return string(body), true, nil
	case http.StatusNotFound:
		return "", false, nil
	}
	return "", false, fmt.Errorf("%s: HTTP %d: %s", n.ID, resp.StatusCode, body)
}
