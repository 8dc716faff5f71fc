// Package cluster forms groups and the ring from what gossip shows: when an
// agent bootstraps its group (bootstrap-expect), whom it asks to join, which
// group coordinates the ring, when the first ring is proposed and which
// groups still have to commit it.
//
// plan.go holds the decisions as plain functions over plain data (no I/O,
// no clocks), so they are tested exhaustively; runner.go wires them to
// gossip, the Raft node and HTTP. Gossip is advisory (DESIGN.md): a stale
// view can delay a decision or cost a retry, and every decision that must
// be unique is either deterministic over the view or committed through Raft.
package cluster

import (
	"sort"

	"github.com/carpkv/carpkv/agent/store"
)

// Agent is one agent as the view shows it.
type Agent struct {
	ID, Group  string
	HTTP, Raft string
	Weight     float64
	Alive      bool
	HasState   bool   // has Raft state: it bootstrapped or joined a group
	Leader     string // node ID it believes leads its group
	RingEpoch  uint64 // ring epoch it has applied
}

// groupOf returns the alive agents of group, sorted by ID.
func groupOf(view []Agent, group string) []Agent {
	var out []Agent
	for _, a := range view {
		if a.Alive && a.Group == group {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// BootstrapPlan decides bootstrap-expect for self, which has no Raft state:
// once expect alive agents of its group are visible and none of them has
// Raft state, the one with the smallest ID bootstraps the group with the
// expect smallest IDs; everyone else waits and then joins. Because the
// choice depends only on the set of agents, every agent that sees the same
// set makes the same choice. It returns the servers and true only for the
// agent that must bootstrap.
func BootstrapPlan(self Agent, view []Agent, expect int) ([]Agent, bool) {
	if expect < 1 || self.HasState {
		return nil, false
	}
	peers := groupOf(view, self.Group)
	if len(peers) < expect {
		return nil, false
	}
	for _, p := range peers {
		if p.HasState {
			return nil, false // the group exists: join it
		}
	}
	chosen := peers[:expect]
	if chosen[0].ID != self.ID {
		return nil, false
	}
	return chosen, true
}

// JoinTargets returns the HTTP addresses to ask for membership: alive
// members of self's group that have Raft state, the one they name as
// leader first. Empty while the group has not formed.
func JoinTargets(self Agent, view []Agent) []string {
	var leader string
	var out []string
	for _, a := range groupOf(view, self.Group) {
		if a.ID == self.ID || !a.HasState || a.HTTP == "" {
			continue
		}
		if a.Leader == a.ID {
			leader = a.HTTP
			continue
		}
		out = append(out, a.HTTP)
	}
	if leader != "" {
		out = append([]string{leader}, out...)
	}
	return out
}

// Coordinator is the group that proposes and distributes rings: the
// smallest group ID of the committed ring, or, before the first ring, of the
// groups visible with a leader. Only that group's leader acts, so each epoch
// has one proposer.
func Coordinator(ring store.RingSpec, view []Agent) string {
	if ring.Epoch > 0 {
		ids := make([]string, len(ring.Groups))
		for i, g := range ring.Groups {
			ids[i] = g.ID
		}
		sort.Strings(ids)
		return ids[0]
	}
	groups := LeadGroups(view)
	if len(groups) == 0 {
		return ""
	}
	return groups[0].ID
}

// GroupLead is a group that has a visible leader, with its address and
// weight (the weight its leader was configured with).
type GroupLead struct {
	ID        string
	Leader    Agent
	RingEpoch uint64
}

// LeadGroups lists the groups whose leader is visible and alive, sorted by
// group ID: an agent that says it leads (Leader == its own ID).
func LeadGroups(view []Agent) []GroupLead {
	byGroup := map[string]GroupLead{}
	for _, a := range view {
		if !a.Alive || a.Leader != a.ID {
			continue
		}
		// Two self-declared leaders of one group (a stale view): keep the
		// one with the newer ring; a wrong pick only costs a retry.
		if cur, ok := byGroup[a.Group]; !ok || a.RingEpoch > cur.RingEpoch {
			byGroup[a.Group] = GroupLead{ID: a.Group, Leader: a, RingEpoch: a.RingEpoch}
		}
	}
	out := make([]GroupLead, 0, len(byGroup))
	for _, g := range byGroup {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// FirstRing proposes the first ring (epoch 1) once expectGroups groups are
// visible with leaders: all of them, with their leaders' weights. It
// returns false while fewer groups are visible. More groups than expected
// means the deployment disagrees with itself; the ring then holds the
// expectGroups smallest IDs and the rest wait for a ring change.
//
// Nobody proposes a first ring once any agent gossips a ring epoch: the
// cluster has one, and a group outside it is a standby group that waits for
// a ring change (a standby group with the smallest ID would otherwise
// believe itself the coordinator and commit a ring of its own).
func FirstRing(view []Agent, expectGroups int, mode string) (store.RingSpec, bool) {
	for _, a := range view {
		if a.RingEpoch > 0 {
			return store.RingSpec{}, false
		}
	}
	groups := LeadGroups(view)
	if expectGroups < 1 || len(groups) < expectGroups {
		return store.RingSpec{}, false
	}
	spec := store.RingSpec{Epoch: 1, Mode: mode}
	for _, g := range groups[:expectGroups] {
		w := g.Leader.Weight
		if w <= 0 {
			w = 1
		}
		spec.Groups = append(spec.Groups, store.RingGroup{ID: g.ID, Weight: w})
	}
	return spec, true
}

// Behind lists the groups of ring whose visible leader reports an older
// ring epoch, with that leader's HTTP address: where the coordinator must
// push the ring. Groups without a visible leader are retried later.
func Behind(ring store.RingSpec, view []Agent) []GroupLead {
	inRing := map[string]bool{}
	for _, g := range ring.Groups {
		inRing[g.ID] = true
	}
	var out []GroupLead
	for _, g := range LeadGroups(view) {
		if inRing[g.ID] && g.RingEpoch < ring.Epoch {
			out = append(out, g)
		}
	}
	return out
}
