package fakeagent

import (
	"fmt"
	"net/http"
	"sort"
	"sync"

	"github.com/carpkv/carpkv/carp"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// Cluster is several fake groups under one CARP ring, with one gossip view
// of all their agents.
type Cluster struct {
	mu     sync.Mutex
	groups []*Group
}

// NewCluster starts groups g1..gN of n agents each (gX-n1 leads each) and
// has every group apply ring epoch 1: strong mode, weight 1 each.
func NewCluster(groups, n int) *Cluster {
	c := &Cluster{}
	spec := wire.RingSpec{Epoch: 1, Mode: "strong"}
	for i := range groups {
		g := c.AddGroup(fmt.Sprintf("g%d", i+1), n)
		spec.Groups = append(spec.Groups, wire.RingGroupSpec{ID: g.ID(), Weight: 1})
	}
	if err := c.SetRing(spec); err != nil {
		panic(err)
	}
	return c
}

// AddGroup starts a group of n agents (ID-n1 leads) that shares the
// cluster's gossip view. It is standalone (epoch 0) until it applies a
// ring (Group.SetRing or Cluster.SetRing).
func (c *Cluster) AddGroup(id string, n int) *Group {
	g := newGroup(id, id+"-n", c, n)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups = append(c.groups, g)
	return g
}

// Close stops every agent of every group.
func (c *Cluster) Close() {
	for _, g := range c.Groups() {
		g.Close()
	}
}

// Groups returns the groups in the order they were added.
func (c *Cluster) Groups() []*Group {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Group(nil), c.groups...)
}

// Group returns the group with id, nil if none.
func (c *Cluster) Group(id string) *Group {
	for _, g := range c.Groups() {
		if g.id == id {
			return g
		}
	}
	return nil
}

// Addrs returns every agent's HTTP address, group by group.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, g := range c.Groups() {
		out = append(out, g.Addrs()...)
	}
	return out
}

// SetRing has every group apply spec.
func (c *Cluster) SetRing(spec wire.RingSpec) error {
	for _, g := range c.Groups() {
		if err := g.SetRing(spec); err != nil {
			return err
		}
	}
	return nil
}

// Reshard has every group apply spec at once and moves every key to its
// owner under it, as a completed ring change would: a client sees either
// the old ring with the old placement or the new one with the new.
// Groups not in spec keep the keys they own under no ring (none).
func (c *Cluster) Reshard(spec wire.RingSpec) error {
	r, err := buildRing(spec)
	if err != nil {
		return err
	}
	groups := c.Groups()
	byID := map[string]*Group{}
	for _, g := range groups {
		g.mu.Lock() // always in cluster order; nothing else holds two
		defer g.mu.Unlock()
		if spec.Epoch < g.ring.spec.Epoch {
			return fmt.Errorf("fakeagent: group %s is at epoch %d, newer than %d", g.id, g.ring.spec.Epoch, spec.Epoch)
		}
		byID[g.id] = g
	}
	for _, g := range groups {
		g.ring = ringState{spec: spec, ring: r}
		for k, it := range g.data {
			if to := byID[r.Owner([]byte(k))]; to != nil && to != g {
				to.data[k] = it
				to.index = max(to.index, it.version)
				delete(g.data, k)
			}
		}
	}
	return nil
}

// Owner returns the owner group of key under ring spec.
func Owner(spec wire.RingSpec, key []byte) string {
	r, err := buildRing(spec)
	if err != nil {
		panic(err)
	}
	return r.Owner(key)
}

// ringState is the ring a group acts under: its spec and the CARP ring
// built from it (nil at epoch 0: standalone, every key is owned).
type ringState struct {
	spec wire.RingSpec
	ring *carp.Ring
}

func buildRing(spec wire.RingSpec) (*carp.Ring, error) {
	mode, err := carp.ParseMode(spec.Mode)
	if err != nil {
		return nil, err
	}
	ms := make([]carp.Member, len(spec.Groups))
	for i, g := range spec.Groups {
		ms[i] = carp.Member{ID: g.ID, Weight: g.Weight}
	}
	return carp.New(ms, carp.WithMode(mode), carp.WithEpoch(spec.Epoch))
}

// SetRing has the group apply spec, as if committed in its log. An older
// epoch than the group's is refused.
func (g *Group) SetRing(spec wire.RingSpec) error {
	r, err := buildRing(spec)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if spec.Epoch < g.ring.spec.Epoch {
		return fmt.Errorf("fakeagent: group %s is at epoch %d, newer than %d", g.id, g.ring.spec.Epoch, spec.Epoch)
	}
	g.ring = ringState{spec: spec, ring: r}
	g.next()
	return nil
}

// RingEpoch returns the epoch the group acts under.
func (g *Group) RingEpoch() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ring.spec.Epoch
}

// ownerCheck answers stale_ring or wrong_group and returns false unless
// the group owns key under its ring and the client's epoch is not newer
// (docs/api.md, "Ownership on every KV request"). Callers hold g.mu.
func (g *Group) ownerCheck(w http.ResponseWriter, r *http.Request, key string) bool {
	var client uint64
	if h := r.Header.Get(wire.HeaderRingEpoch); h != "" {
		v, err := wire.ParseUint(h)
		if err != nil {
			WriteError(w, &wire.Error{Code: wire.CodeInvalidArgument, Message: "bad ring epoch"})
			return false
		}
		client = v
	}
	epoch := g.ring.spec.Epoch
	if client > epoch {
		WriteError(w, &wire.Error{Code: wire.CodeStaleRing, Epoch: epoch,
			Message: fmt.Sprintf("group %s is at ring epoch %d, the client at %d", g.id, epoch, client)})
		return false
	}
	if g.ring.ring != nil {
		if owner := g.ring.ring.Owner([]byte(key)); owner != g.id {
			WriteError(w, &wire.Error{Code: wire.CodeWrongGroup, Epoch: epoch,
				Message: fmt.Sprintf("key belongs to group %s under ring epoch %d", owner, epoch)})
			return false
		}
	}
	return true
}

// gossip is what the gossip pool knows: every agent of the cluster (or of
// the group if standalone), alive unless stopped.
func (g *Group) gossip() []wire.Member {
	groups := []*Group{g}
	if g.cl != nil {
		groups = g.cl.Groups()
	}
	var out []wire.Member
	for _, x := range groups {
		out = append(out, x.gossipMembers()...)
	}
	return out
}

// gossipMembers is the group's agents as gossip shows them.
func (g *Group) gossipMembers() []wire.Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]wire.Member, 0, len(g.agents))
	for i, a := range g.agents {
		m := wire.Member{ID: a.id, Group: g.id, HTTPAddr: a.Addr(), RaftAddr: a.raftAddr, State: "alive", RingEpoch: g.ring.spec.Epoch}
		if a.stopped.Load() {
			m.State = "dead"
		} else {
			m.Leader = i == g.leader
		}
		out = append(out, m)
	}
	return out
}

// serveRing answers GET /v1/ring as the real agent does: the group's
// applied ring (or, at epoch 0, the group alone), decorated with the gossip
// view; its own group also lists configuration members gossip lacks.
func (a *Agent) serveRing(w http.ResponseWriter) {
	g := a.g
	g.mu.Lock()
	rs := g.ring
	conf := append([]wire.Server(nil), g.members...)
	g.mu.Unlock()

	out := wire.Ring{Epoch: rs.spec.Epoch, Mode: rs.spec.Mode, From: g.id}
	specs := rs.spec.Groups
	share := func(string) float64 { return 1 }
	if rs.ring == nil {
		out.Mode = "strong"
		specs = []wire.RingGroupSpec{{ID: g.id, Weight: 1}}
	} else {
		share = rs.ring.Share
	}
	byGroup := map[string][]wire.Member{}
	for _, m := range g.gossip() {
		byGroup[m.Group] = append(byGroup[m.Group], m)
	}
	known := map[string]bool{}
	for _, m := range byGroup[g.id] {
		known[m.ID] = true
	}
	for _, s := range conf {
		if !known[s.ID] && s.HTTPAddr != "" {
			byGroup[g.id] = append(byGroup[g.id], wire.Member{ID: s.ID, Group: g.id, HTTPAddr: s.HTTPAddr, RaftAddr: s.RaftAddr, State: "unknown"})
		}
	}
	for _, s := range specs {
		rg := wire.RingGroup{ID: s.ID, Weight: s.Weight, Share: share(s.ID), Members: byGroup[s.ID]}
		if rg.Members == nil {
			rg.Members = []wire.Member{}
		}
		sort.Slice(rg.Members, func(i, j int) bool { return rg.Members[i].ID < rg.Members[j].ID })
		for _, m := range rg.Members {
			if m.Leader {
				rg.Leader = &wire.Leader{ID: m.ID, HTTP: m.HTTPAddr}
			}
		}
		out.Groups = append(out.Groups, rg)
	}
	writeJSON(w, http.StatusOK, out)
}
