package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// Ports every agent listens on, each container having its own address.
const (
	raftPort   = "7000"
	httpPort   = "8000"
	gossipPort = "7946"
)

// agentState is what the harness did to an agent's container last.
type agentState int

const (
	stateRunning agentState = iota
	stateDown               // killed or stopped; docker start brings it back
	stateSigStopped
	stateFrozen  // docker pause
	stateEvicted // removed from its group, its container still running
	stateRemoved // container removed
)

// Agent is one carpkv-agent in its own container.
type Agent struct {
	ID, Group string
	Name      string // container name
	IP        string
	DataDir   string // on the host, mounted at /data

	mu    sync.Mutex
	state agentState
}

// HTTP is the agent's API address.
func (a *Agent) HTTP() string { return net.JoinHostPort(a.IP, httpPort) }

// Gossip is the agent's gossip address.
func (a *Agent) Gossip() string { return net.JoinHostPort(a.IP, gossipPort) }

func (a *Agent) getState() agentState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

func (a *Agent) setState(s agentState) {
	a.mu.Lock()
	a.state = s
	a.mu.Unlock()
}

// ClusterConfig shapes the cluster under test.
type ClusterConfig struct {
	// Groups form the first ring; Standby more groups are started once
	// it is committed, with the same --expect-groups, so they form and
	// wait outside the ring for a ring change to add them (g<Groups+1>...).
	Groups, Standby, Replicas int
	// AgentArgs are extra flags for every agent.
	AgentArgs []string
	// Dir receives the agents' data dirs and the logs of removed agents.
	Dir string
	Log *slog.Logger
}

// Cluster is Groups × Replicas agents, each in its own container on a
// bridge network of the run's own, found by gossip alone
// (--bootstrap-expect, --expect-groups, --retry-join).
type Cluster struct {
	cfg     ClusterConfig
	log     *slog.Logger
	name    string // prefix of every container; also the network's name
	image   string
	subnet  string // first three octets
	network string
	fw      *Firewall
	api     agentAPI

	mu     sync.Mutex
	agents []*Agent // every agent ever started, removed ones included
	nextIP int
	nextN  map[string]int
	ring   wire.RingSpec // the committed ring as the harness last learnt it
	groups []string      // the groups of running agents: g1.., recycled ones renamed
}

// StartCluster creates the network, the firewall chain and the containers
// and waits until every group has a leader and every agent has applied
// the first ring. name must be unique to the run (Prefix + PID + ...).
// On error, what was created is removed.
func StartCluster(ctx context.Context, cfg ClusterConfig, name, image string) (c *Cluster, err error) {
	c = &Cluster{
		cfg: cfg, log: cfg.Log, name: name, image: image, nextIP: 10, nextN: map[string]int{},
		api: agentAPI{http: &http.Client{Timeout: 2 * time.Second}},
	}
	for g := 1; g <= cfg.Groups+cfg.Standby; g++ {
		c.groups = append(c.groups, fmt.Sprintf("g%d", g))
	}
	defer func() {
		if err != nil {
			c.Close(context.WithoutCancel(ctx), false)
			c = nil
		}
	}()
	if c.subnet, err = createNetwork(ctx, name); err != nil {
		return c, err
	}
	c.network = name
	if c.fw, err = NewFirewall(ctx, name, c.subnet+".1"); err != nil {
		return c, err
	}
	var all []*Agent
	for g := 1; g <= cfg.Groups; g++ {
		for r := 1; r <= cfg.Replicas; r++ {
			all = append(all, c.newAgent(fmt.Sprintf("g%d", g)))
		}
	}
	if err := c.startFresh(ctx, all, all); err != nil {
		return c, err
	}
	if err := c.WaitHealthy(ctx, 120*time.Second); err != nil {
		return c, fmt.Errorf("cluster did not form: %w", err)
	}
	ring, err := c.Ring(ctx)
	if err != nil {
		return c, err
	}
	c.SetRing(specOf(ring))
	// The standby groups start once the first ring is committed: the
	// first ring takes the first groups with a leader that gossip shows,
	// so a standby group started with the others could take the place
	// of a slower one.
	if cfg.Standby > 0 {
		var standby []*Agent
		for g := cfg.Groups + 1; g <= cfg.Groups+cfg.Standby; g++ {
			for r := 1; r <= cfg.Replicas; r++ {
				standby = append(standby, c.newAgent(fmt.Sprintf("g%d", g)))
			}
		}
		if err := c.startFresh(ctx, standby, c.Agents(false)); err != nil {
			return c, err
		}
		if err := c.WaitHealthy(ctx, 180*time.Second); err != nil {
			return c, fmt.Errorf("the standby groups did not form: %w", err)
		}
	}
	return c, nil
}

// startFresh starts agents with empty data dirs, bootstrapping their
// groups by gossip (--bootstrap-expect), joining the pool through peers.
// The containers start in parallel: docker run takes seconds on a busy
// machine.
func (c *Cluster) startFresh(ctx context.Context, agents, peers []*Agent) error {
	return parallel(agents, func(a *Agent) error {
		args := []string{fmt.Sprintf("--bootstrap-expect=%d", c.cfg.Replicas)}
		for _, o := range peers {
			if o != a {
				args = append(args, "--retry-join", o.Gossip())
			}
		}
		return c.run(ctx, a, args)
	})
}

// RecycleGroup does what an operator does to reuse the machines of a
// group removed from the ring (whose agents act under the ring that
// removed them, so it cannot be added again): it stops its agents
// (SIGTERM: they leave the gossip pool), removes them with their data,
// and starts them again as fresh agents (new containers, addresses,
// node IDs, empty data dirs) of a new group, with an ID above every
// other, which forms a standby group. It returns the new group's ID.
//
// Not under the old ID: a fresh group whose ID is the smallest of those
// gossip shows commits a first ring of its own (the bug
// TestChaosRemovedSmallestGroupComesBackAsStandby shows), so g1 could
// never come back.
func (c *Cluster) RecycleGroup(ctx context.Context, group string) (string, error) {
	old := c.Members(group)
	if err := parallel(old, func(a *Agent) error {
		if err := c.Stop(ctx, a); err != nil {
			return err
		}
		return c.Destroy(ctx, a)
	}); err != nil {
		return "", err
	}
	for _, a := range old {
		_ = os.RemoveAll(a.DataDir)
	}
	c.mu.Lock()
	next := 0
	for _, g := range c.groups {
		var n int
		if _, err := fmt.Sscanf(g, "g%d", &n); err == nil {
			next = max(next, n+1)
		}
	}
	renamed := fmt.Sprintf("g%d", next)
	c.groups = append(slices.DeleteFunc(c.groups, func(g string) bool { return g == group }), renamed)
	c.mu.Unlock()
	return renamed, c.StartGroup(ctx, renamed, len(old))
}

// StartGroup starts a fresh group of n agents as a deployment would (the
// cluster's --expect-groups, --bootstrap-expect, --retry-join): it forms
// and waits outside the ring. It returns once the group has a leader.
func (c *Cluster) StartGroup(ctx context.Context, group string, n int) error {
	c.mu.Lock()
	if !slices.Contains(c.groups, group) {
		c.groups = append(c.groups, group)
	}
	c.mu.Unlock()
	var fresh []*Agent
	for range n {
		fresh = append(fresh, c.newAgent(group))
	}
	if err := c.startFresh(ctx, fresh, c.Agents(false)); err != nil {
		return err
	}
	_, err := c.WaitLeader(ctx, group, 60*time.Second)
	return err
}

// SetRing records the committed ring.
func (c *Cluster) SetRing(spec wire.RingSpec) {
	c.mu.Lock()
	c.ring = spec
	c.mu.Unlock()
}

// CurrentRing is the committed ring as the harness last learnt it.
func (c *Cluster) CurrentRing() wire.RingSpec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ring
}

// RingGroups lists the groups of the committed ring, sorted.
func (c *Cluster) RingGroups() []string {
	r := c.CurrentRing()
	if r.Epoch == 0 {
		out := c.Groups()
		return out[:c.cfg.Groups]
	}
	return ringGroups(r)
}

// inRing reports whether group is in the committed ring, and the epoch
// its members must have applied (at least 1 before the ring is known).
func (c *Cluster) inRing(group string) (bool, uint64) {
	r := c.CurrentRing()
	if r.Epoch == 0 {
		return slices.Contains(c.RingGroups(), group), 1
	}
	return slices.Contains(ringGroups(r), group), r.Epoch
}

// newAgent allocates the next address and node ID of group.
func (c *Cluster) newAgent(group string) *Agent {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextN[group]++
	id := fmt.Sprintf("%s-n%d", group, c.nextN[group])
	a := &Agent{
		ID: id, Group: group, Name: c.name + "-" + id,
		IP:      fmt.Sprintf("%s.%d", c.subnet, c.nextIP),
		DataDir: filepath.Join(c.cfg.Dir, "data", id),
		state:   stateDown,
	}
	c.nextIP++
	c.agents = append(c.agents, a)
	return a
}

// run creates and starts a's container with the common flags plus extra.
func (c *Cluster) run(ctx context.Context, a *Agent, extra []string) error {
	if err := os.MkdirAll(a.DataDir, 0o755); err != nil {
		return err
	}
	args := []string{
		"run", "--detach", "--name", a.Name, "--hostname", a.ID,
		"--label", OwnerLabel + "=" + strconv.Itoa(os.Getpid()),
		"--network", c.network, "--ip", a.IP,
		"--tmpfs", "/tmp", "--volume", a.DataDir + ":/data",
		c.image,
		"--node-id", a.ID, "--group", a.Group, "--data-dir", "/data",
		"--raft-addr", net.JoinHostPort(a.IP, raftPort),
		"--http-addr", a.HTTP(), "--gossip-addr", a.Gossip(),
		"--gossip-profile", "local",
		fmt.Sprintf("--expect-groups=%d", c.cfg.Groups),
	}
	args = append(append(args, c.cfg.AgentArgs...), extra...)
	if _, err := docker(ctx, args...); err != nil {
		return err
	}
	a.setState(stateRunning)
	return nil
}

// Close removes the containers, the firewall chain and the network, and
// with saveLogs first writes every agent's log into Dir/logs. It keeps
// going after errors.
func (c *Cluster) Close(ctx context.Context, saveLogs bool) error {
	var errs []error
	if c.fw != nil {
		errs = append(errs, c.fw.Close(ctx))
	}
	for _, a := range c.Agents(true) {
		if a.getState() == stateRemoved {
			continue
		}
		if saveLogs {
			errs = append(errs, c.saveLog(ctx, a))
		}
		if a.getState() == stateFrozen {
			_, _ = docker(ctx, "unpause", a.Name)
		}
		if _, err := docker(ctx, "rm", "--force", "--volumes", a.Name); err != nil {
			errs = append(errs, err)
		}
		a.setState(stateRemoved)
	}
	if c.network != "" {
		if _, err := docker(ctx, "network", "rm", c.network); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// saveLog writes a's container log (stdout and stderr, every restart) to
// Dir/logs/<id>.log.
func (c *Cluster) saveLog(ctx context.Context, a *Agent) error {
	dir := filepath.Join(c.cfg.Dir, "logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, a.ID+".log"))
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := dockerCmd(ctx, "logs", "--timestamps", a.Name)
	cmd.Stdout, cmd.Stderr = f, f
	return cmd.Run()
}

// Agents returns the agents, sorted by group then ID; those removed from
// their group (evicted or gone) only if withRemoved.
func (c *Cluster) Agents(withRemoved bool) []*Agent {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Agent
	for _, a := range c.agents {
		if st := a.getState(); withRemoved || st != stateRemoved && st != stateEvicted {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Group != out[j].Group {
			return out[i].Group < out[j].Group
		}
		return idLess(out[i].ID, out[j].ID)
	})
	return out
}

// idLess orders g1-n2 before g1-n10.
func idLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// Groups returns the group IDs, standby groups included, sorted.
func (c *Cluster) Groups() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.groups)
	slices.SortFunc(out, func(a, b string) int {
		if idLess(a, b) {
			return -1
		}
		if idLess(b, a) {
			return 1
		}
		return 0
	})
	return out
}

// Members returns the current (not removed) members of group.
func (c *Cluster) Members(group string) []*Agent {
	var out []*Agent
	for _, a := range c.Agents(false) {
		if a.Group == group {
			out = append(out, a)
		}
	}
	return out
}

// Addrs are the HTTP addresses of every current agent.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, a := range c.Agents(false) {
		out = append(out, a.HTTP())
	}
	return out
}

// IPs are the addresses of agents.
func IPs(agents []*Agent) []string {
	out := make([]string, len(agents))
	for i, a := range agents {
		out[i] = a.IP
	}
	return out
}
