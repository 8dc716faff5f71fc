package localcluster

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
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
