package localcluster

import (
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options shape a new local cluster.
type Options struct {
	Dir      string // the cluster's directory
	AgentBin string // absolute path of carpkv-agent
	Groups   int    // shard groups, g1..gN
	Replicas int    // agents per group, gX-n1..gX-nR
	// ExtraArgs are appended to every agent's arguments.
	ExtraArgs []string
}

// MaxNodes bounds Groups×Replicas: every agent is a process with three
// ports on this host.
const MaxNodes = 64

// Plan lays out a new cluster: node IDs, free loopback ports (each agent
// needs a Raft, an HTTP and a gossip port), directories and the agents'
// arguments. Nothing is started.
func Plan(o Options) (*State, error) {
	switch {
	case o.Groups < 1:
		return nil, fmt.Errorf("--groups must be at least 1, got %d", o.Groups)
	case o.Replicas < 1 || o.Replicas > 9:
		return nil, fmt.Errorf("--replicas must be within 1..9, got %d", o.Replicas)
	case o.Groups*o.Replicas > MaxNodes:
		return nil, fmt.Errorf("%d×%d is %d agents; at most %d on one host", o.Groups, o.Replicas, o.Groups*o.Replicas, MaxNodes)
	}
	ports, err := FreePorts(3 * o.Groups * o.Replicas)
	if err != nil {
		return nil, err
	}
	s := &State{Dir: o.Dir, AgentBin: o.AgentBin, Groups: o.Groups, Replicas: o.Replicas, Created: time.Now().UTC()}
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	for g := 1; g <= o.Groups; g++ {
		for r := 1; r <= o.Replicas; r++ {
			i := len(s.Nodes)
			id := fmt.Sprintf("g%d-n%d", g, r)
			s.Nodes = append(s.Nodes, Node{
				ID:         id,
				Group:      fmt.Sprintf("g%d", g),
				RaftAddr:   addr(ports[3*i]),
				HTTPAddr:   addr(ports[3*i+1]),
				GossipAddr: addr(ports[3*i+2]),
				DataDir:    filepath.Join(o.Dir, "data", id),
				Log:        filepath.Join(o.Dir, "logs", id+".log"),
			})
		}
	}
	// Every agent joins the gossip pool through the first agent of the
	// first three groups: one is enough, several survive one being down
	// when a node restarts.
	var seeds []string
	for g := 0; g < min(o.Groups, 3); g++ {
		seeds = append(seeds, s.Nodes[g*o.Replicas].GossipAddr)
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		n.Args = []string{
			"--node-id", n.ID,
			"--group", n.Group,
			"--data-dir", n.DataDir,
			"--raft-addr", n.RaftAddr,
			"--http-addr", n.HTTPAddr,
			"--gossip-addr", n.GossipAddr,
			"--gossip-profile", "local",
		}
		for _, sd := range seeds {
			n.Args = append(n.Args, "--retry-join", sd)
		}
		n.Args = append(n.Args,
			"--bootstrap-expect", strconv.Itoa(o.Replicas),
			"--expect-groups", strconv.Itoa(o.Groups),
			"--group-weight", "1",
			// Loopback timings: failover in about a second (docs/design.md).
			"--raft-heartbeat-timeout", "300ms",
			"--raft-election-timeout", "300ms",
			"--raft-leader-lease-timeout", "150ms",
		)
		n.Args = append(n.Args, o.ExtraArgs...)
	}
	return s, nil
}

// FreePorts returns n distinct loopback ports that were free a moment ago,
// for TCP and UDP both (gossip uses the same port for each). Every
// listener is held until all are found, so no port is handed out twice.
func FreePorts(n int) ([]int, error) {
	var (
		ports   []int
		closers []func() error
	)
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 10*n+100 {
			return nil, fmt.Errorf("could not find %d free loopback ports", n)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("picking a free port: %w", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			_ = l.Close()
			continue // the UDP side is taken: try another
		}
		closers = append(closers, l.Close, u.Close)
		ports = append(ports, p)
	}
	return ports, nil
}

// PlanGroup lays out the agents of a new group for the cluster: the next
// group ID never used in it (a removed group's ID is not reused: its data
// directories remain), free ports, and the arguments of an existing agent
// with this node's own values, so the new agents run exactly as the
// others do (same --expect-groups, timings and extra flags). Their gossip
// seeds are the first running agents of up to three other groups. The
// nodes are returned, not added to s; nothing is started.
func (s *State) PlanGroup(replicas int, weight float64) ([]Node, error) {
	switch {
	case replicas < 1 || replicas > 9:
		return nil, fmt.Errorf("--replicas must be within 1..9, got %d", replicas)
	case len(s.Active())+replicas > MaxNodes:
		return nil, fmt.Errorf("%d more agents make %d; at most %d on one host", replicas, len(s.Active())+replicas, MaxNodes)
	}
	var template *Node
	next := 1
	for i := range s.Nodes {
		n := &s.Nodes[i]
		var g int
		if _, err := fmt.Sscanf(n.Group, "g%d", &g); err == nil && g >= next {
			next = g + 1
		}
		if template == nil && !n.Removed {
			template = n
		}
	}
	if template == nil {
		return nil, fmt.Errorf("the cluster in %s has no agent to copy the arguments of", s.Dir)
	}
	var seeds []string
	for _, g := range s.ActiveGroups() {
		for _, n := range s.GroupNodes(g) {
			if n.Alive() {
				seeds = append(seeds, n.GossipAddr)
				break
			}
		}
		if len(seeds) == 3 {
			break
		}
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("no agent of the cluster in %s is running: the new group would have no one to join", s.Dir)
	}
	ports, err := FreePorts(3 * replicas)
	if err != nil {
		return nil, err
	}
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	group := fmt.Sprintf("g%d", next)
	nodes := make([]Node, replicas)
	for r := range replicas {
		id := fmt.Sprintf("%s-n%d", group, r+1)
		n := Node{
			ID:         id,
			Group:      group,
			RaftAddr:   addr(ports[3*r]),
			HTTPAddr:   addr(ports[3*r+1]),
			GossipAddr: addr(ports[3*r+2]),
			DataDir:    filepath.Join(s.Dir, "data", id),
			Log:        filepath.Join(s.Dir, "logs", id+".log"),
		}
		n.Args = withArgs(template.Args, map[string]string{
			"--node-id":          n.ID,
			"--group":            n.Group,
			"--data-dir":         n.DataDir,
			"--raft-addr":        n.RaftAddr,
			"--http-addr":        n.HTTPAddr,
			"--gossip-addr":      n.GossipAddr,
			"--bootstrap-expect": strconv.Itoa(replicas),
			"--group-weight":     strconv.FormatFloat(weight, 'g', -1, 64),
		}, "--retry-join", seeds)
		nodes[r] = n
	}
	return nodes, nil
}

// withArgs returns args with the value of each flag in set replaced (or
// the flag appended if absent), and every occurrence of the repeatable
// flag multi replaced by one per value of values. Flags are "--name
// value" pairs, as Plan writes them; "--name=value" is understood too.
func withArgs(args []string, set map[string]string, multi string, values []string) []string {
	out := make([]string, 0, len(args)+2*len(values))
	done := map[string]bool{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, _, inline := strings.Cut(a, "=")
		_, isSet := set[name]
		if !isSet && name != multi {
			out = append(out, a)
			continue
		}
		if !inline && i+1 < len(args) {
			i++ // skip the old value
		}
		if name == multi {
			continue
		}
		if !done[name] {
			out = append(out, name, set[name])
			done[name] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(set)) {
		if !done[name] {
			out = append(out, name, set[name])
		}
	}
	for _, v := range values {
		out = append(out, multi, v)
	}
	return out
}
