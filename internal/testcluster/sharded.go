package testcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// Sharded is a cluster of several groups formed by gossip alone: every
// agent runs with --bootstrap-expect and --expect-groups and knows only the
// gossip address of the first agent.
type Sharded struct {
	t      testing.TB
	Dir    string
	Groups []*Cluster

	seed         string   // gossip address every agent joins through
	expectGroups int      // --expect-groups of every agent
	args         []string // extra flags of every agent
}

// StartSharded launches groups × replicas agents (groups g1..gN) and waits
// until every group has a leader and every agent has applied the first
// ring.
func StartSharded(t testing.TB, groups, replicas int, args ...string) *Sharded {
	t.Helper()
	s := &Sharded{t: t, Dir: t.TempDir(), expectGroups: groups, args: args}
	for range groups {
		s.newGroup(replicas)
	}
	for _, c := range s.Groups {
		for _, n := range c.Nodes {
			n.Start()
		}
	}
	s.DumpLogsOnFailure()
	s.WaitRing(1, 60*time.Second)
	return s
}

// newGroup prepares (but does not start) the next group, g<N+1>.
func (s *Sharded) newGroup(replicas int) *Cluster {
	g := len(s.Groups) + 1
	c := &Cluster{t: s.t, Dir: filepath.Join(s.Dir, fmt.Sprintf("g%d", g)), Group: fmt.Sprintf("g%d", g),
		Args: append(append([]string{}, FastRaft...), s.args...)}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		s.t.Fatal(err)
	}
	c.Args = append(c.Args, fmt.Sprintf("--bootstrap-expect=%d", replicas), fmt.Sprintf("--expect-groups=%d", s.expectGroups))
	for r := 1; r <= replicas; r++ {
		n := c.AddNode(fmt.Sprintf("g%d-n%d", g, r))
		if s.seed == "" {
			s.seed = n.GossipAddr
		} else {
			n.Args = append(n.Args, "--retry-join", s.seed)
		}
	}
	s.Groups = append(s.Groups, c)
	return c
}

// AddGroup starts a new group's agents (g<N+1>) as a deployment would: with
// the cluster's --expect-groups, so it forms and waits as a standby group,
// outside the ring, until a ring change adds it. It returns once the new
// group has a leader.
func (s *Sharded) AddGroup(replicas int) *Cluster {
	s.t.Helper()
	c := s.newGroup(replicas)
	for _, n := range c.Nodes {
		n.Start()
	}
	c.Leader(60 * time.Second)
	return c
}

// WaitRing waits until every running agent has applied a ring of at least
// epoch and every group has a leader.
func (s *Sharded) WaitRing(epoch uint64, timeout time.Duration) {
	s.t.Helper()
	Eventually(s.t, timeout, fmt.Sprintf("ring epoch %d on every agent", epoch), func() error {
		for _, c := range s.Groups {
			if _, err := c.leader(); err != nil {
				return fmt.Errorf("group %s: %v", c.Group, err)
			}
			for _, n := range c.Running() {
				info, err := n.Self()
				if err != nil {
					return err
				}
				if info.RingEpoch < epoch {
					return fmt.Errorf("%s at ring epoch %d", n.ID, info.RingEpoch)
				}
			}
		}
		return nil
	})
}

// Nodes lists every agent of every group.
func (s *Sharded) Nodes() []*Node {
	var out []*Node
	for _, c := range s.Groups {
		out = append(out, c.Nodes...)
	}
	return out
}

// Addrs are the HTTP addresses of every agent.
func (s *Sharded) Addrs() []string {
	var out []string
	for _, n := range s.Nodes() {
		out = append(out, n.HTTPAddr)
	}
	return out
}

// Ring fetches GET /v1/ring from n.
func (n *Node) Ring() (wire.Ring, error) {
	var r wire.Ring
	err := getJSON("http://"+n.HTTPAddr+wire.PathRing, &r)
	return r, err
}

// GossipMembers fetches GET /v1/gossip/members from n.
func (n *Node) GossipMembers() ([]wire.Member, error) {
	var m wire.Members
	err := getJSON("http://"+n.HTTPAddr+wire.PathGossipMembers, &m)
	return m.Members, err
}

// DumpLogsOnFailure prints every agent's log if the test failed.
// StartSharded registers it, so a cluster that never forms shows why.
func (s *Sharded) DumpLogsOnFailure() {
	for _, c := range s.Groups {
		c.DumpLogsOnFailure()
	}
}
