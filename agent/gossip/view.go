package gossip

import (
	"cmp"
	"slices"
	"time"
)

// Member states as reported in Member.State.
const (
	StateAlive = "alive"
	StateDead  = "dead" // failed: stopped answering probes
	StateLeft  = "left" // left on purpose (Leave)
)

// Member is one agent as this agent's gossip sees it.
type Member struct {
	// Name is the memberlist node name, Group + "/" + NodeID.
	Name string
	// Meta is the member's last known metadata; the zero Meta if what it
	// sent could not be decoded.
	Meta Meta
	// Addr is the member's gossip address (IP:port), not its Raft or HTTP
	// address.
	Addr string
	// State is StateAlive, StateDead or StateLeft. A member memberlist
	// merely suspects is still alive here: memberlist raises no event for
	// suspicion, and the node states it exposes cannot be read without a
	// data race against its own writers.
	State string
	// Since is when State last changed (in this agent's clock).
	Since time.Time
}

// Retention is how long a dead or left member stays in Members before it
// is forgotten, so the view of a long-lived pool with churn stays bounded
// (DESIGN.md invariant 6). A member that comes back is re-added.
const Retention = 24 * time.Hour

// view is the membership as learnt from memberlist's events: plain data,
// no locking, no clock of its own. Every method that changes it reports
// whether anything a reader could see changed.
type view struct {
	members map[string]*entry
}

type entry struct {
	Member
	leaving bool // it announced it is leaving on purpose (metadata or word)
}

func newView() *view { return &view{members: make(map[string]*entry)} }

// alive records a join (first sight or return) or an update of a member.
func (v *view) alive(name string, meta Meta, leaving bool, addr string, now time.Time) bool {
	e, ok := v.members[name]
	if !ok {
		v.prune(now) // growth happens here only, so pruning here bounds it
		v.members[name] = &entry{
			Member:  Member{Name: name, Meta: meta, Addr: addr, State: StateAlive, Since: now},
			leaving: leaving,
		}
		return true
	}
	changed := e.Meta != meta || e.Addr != addr || e.State != StateAlive
	if e.State != StateAlive {
		e.State, e.Since = StateAlive, now
	}
	e.Meta, e.Addr, e.leaving = meta, addr, leaving
	return changed
}

// gone records that a member is no longer alive: StateLeft if it said so
// (left, or a leave intent in its last metadata), else StateDead. An
// unknown member is added, so nothing memberlist reports is lost.
func (v *view) gone(name string, left bool, addr string, now time.Time) bool {
	e, ok := v.members[name]
	state := StateDead
	if left || (ok && e.leaving) {
		state = StateLeft
	}
	if !ok {
		v.prune(now)
		v.members[name] = &entry{Member: Member{Name: name, Addr: addr, State: state, Since: now}}
		return true
	}
	if e.State == state {
		return false
	}
	e.State, e.Since = state, now
	return true
}

// markLeaving records a member's direct word that it is leaving on purpose
// (Gossip.Leave sends it). It may arrive before or after memberlist
// reports the member gone, as gossip keeps no order: before, it sets the
// intent gone honours; after, a member reported dead becomes left. An
// unknown member is ignored (there is nothing to correct).
func (v *view) markLeaving(name string, now time.Time) bool {
	e, ok := v.members[name]
	if !ok {
		return false
	}
	e.leaving = true
	if e.State != StateDead {
		return false
	}
	e.State, e.Since = StateLeft, now
	return true
}

// prune forgets members dead or left for longer than Retention.
func (v *view) prune(now time.Time) {
	for name, e := range v.members {
		if e.State != StateAlive && now.Sub(e.Since) > Retention {
			delete(v.members, name)
		}
	}
}

// list returns a copy of every member sorted by (group, node ID), members
// without metadata first, by name.
func (v *view) list() []Member {
	out := make([]Member, 0, len(v.members))
	for _, e := range v.members {
		out = append(out, e.Member)
	}
	slices.SortFunc(out, func(a, b Member) int {
		return cmp.Or(
			cmp.Compare(a.Meta.Group, b.Meta.Group),
			cmp.Compare(a.Meta.NodeID, b.Meta.NodeID),
			cmp.Compare(a.Name, b.Name),
		)
	})
	return out
}

// numAlive counts the members in StateAlive.
func (v *view) numAlive() int {
	n := 0
	for _, e := range v.members {
		if e.State == StateAlive {
			n++
		}
	}
	return n
}
