package gossip

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks for a Gossip. memberlist calls
// the event and conflict methods with its node lock held, one at a time
// (never concurrently): they must be quick, must not block, and must not
// call back into memberlist. They copy what they need from the Node, which
// memberlist may change once they return.
type delegate struct{ g *Gossip }

var (
	_ memberlist.Delegate         = delegate{}
	_ memberlist.EventDelegate    = delegate{}
	_ memberlist.ConflictDelegate = delegate{}
)

// NodeMeta returns this agent's encoded metadata. UpdateMeta and Start
// keep it within MaxMetaBytes (memberlist panics beyond its limit).
func (d delegate) NodeMeta(limit int) []byte {
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	if len(d.g.selfEnc) > limit {
		return nil
	}
	return d.g.selfEnc
}

// The pool carries metadata, no state of its own, and one user message:
// a member's word that it is leaving (see Gossip.Leave).

// leavingMsg prefixes the leaving member's name in its leaving message.
const leavingMsg = "carpkv-leaving:"

func encodeLeaving(name string) []byte { return []byte(leavingMsg + name) }

// NotifyMsg takes a member's word that it is leaving; any other message is
// ignored (memberlist reuses b, so the name is copied out).
func (d delegate) NotifyMsg(b []byte) {
	name, ok := strings.CutPrefix(string(b), leavingMsg)
	if !ok || name == "" {
		return
	}
	g := d.g
	g.mu.Lock()
	changed := g.view.markLeaving(name, time.Now())
	if changed {
		g.notifyLocked()
	}
	g.mu.Unlock()
	if changed {
		g.log.Info("gossip: member left (its leave overtook its intent)", "name", name)
	}
}

func (delegate) GetBroadcasts(_, _ int) [][]byte   { return nil }
func (delegate) LocalState(bool) []byte            { return nil }
func (delegate) MergeRemoteState(_ []byte, _ bool) {}

// NotifyJoin: a member is new, or back (same name) after failing or
// leaving.
func (d delegate) NotifyJoin(n *memberlist.Node) { d.g.nodeAlive(n, true) }

// NotifyUpdate: a member's metadata (or address) changed.
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.g.nodeAlive(n, false) }

// NotifyLeave: a member failed or left on purpose. memberlist v0.7.0 leaves
// n.State unset here (hashicorp/memberlist#293), so the view relies on the
// leave intent in the member's last metadata; n.State is honoured too for
// the day memberlist sets it.
func (d delegate) NotifyLeave(n *memberlist.Node) {
	g := d.g
	left := n.State == memberlist.StateLeft
	addr := n.Address()
	g.mu.Lock()
	changed := g.view.gone(n.Name, left, addr, time.Now())
	if changed {
		g.notifyLocked()
	}
	g.mu.Unlock()
	if changed && n.Name != g.name {
		if left {
			g.log.Info("gossip: member left", "name", n.Name, "addr", addr)
		} else {
			g.log.Warn("gossip: member failed", "name", n.Name, "addr", addr)
		}
	}
}

// NotifyConflict: an agent claims a name memberlist knows at another
// address; memberlist ignores the newcomer. Names are Group/NodeID, so
// either an agent restarted at a new address (accepted once the old entry
// has been dead for DeadNodeReclaimTime, or at once if it left), or two
// agents share a node ID: a misconfiguration, logged as a warning.
func (d delegate) NotifyConflict(existing, other *memberlist.Node) {
	g := d.g
	g.mu.Lock()
	e, ok := g.view.members[existing.Name]
	restarted := ok && e.State != StateAlive
	g.mu.Unlock()
	level := slog.LevelWarn
	msg := "gossip: two agents claim one name; ignoring the newcomer"
	if restarted {
		level = slog.LevelDebug
		msg = "gossip: failed member is back at a new address; accepting it shortly"
	}
	g.log.Log(context.Background(), level, msg,
		"name", existing.Name, "existing_addr", existing.Address(), "other_addr", other.Address())
}

// nodeAlive records a member memberlist reports alive. Metadata a peer
// sent that does not decode is dropped (the member stays, with a zero
// Meta): a bad peer must not break anyone's view.
func (g *Gossip) nodeAlive(n *memberlist.Node, join bool) {
	meta, leaving, err := decodeMeta(n.Meta)
	if err != nil {
		g.log.Debug("gossip: undecodable metadata", "name", n.Name, "bytes", len(n.Meta), "err", err)
	}
	addr := n.Address()
	g.mu.Lock()
	changed := g.view.alive(n.Name, meta, leaving, addr, time.Now())
	if changed {
		g.notifyLocked()
	}
	g.mu.Unlock()
	if join && changed && n.Name != g.name {
		g.log.Info("gossip: member joined", "name", n.Name, "addr", addr)
	}
}
