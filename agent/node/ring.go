package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/carpkv/carpkv/agent/store"
)

// Peer is a server of a new group's first configuration.
type Peer struct{ ID, RaftAddr string }

// HasState reports whether this node belongs to a group: it bootstrapped,
// joined, or restarted with Raft state.
func (n *Node) HasState() bool {
	if n.raft.LastIndex() > 0 {
		return true
	}
	f := n.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// BootstrapGroup forms a new group with peers as its voters (bootstrap-
// expect). Raft refuses if this node already has state, which makes a
// repeated call harmless.
func (n *Node) BootstrapGroup(peers []Peer) error {
	cfg := raft.Configuration{}
	for _, p := range peers {
		cfg.Servers = append(cfg.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
	}
	n.log.Info("bootstrapping a new group", "servers", len(peers))
	if err := n.raft.BootstrapCluster(cfg).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return err
	}
	return nil
}

// Registered reports whether this node's addresses are in the group's
// replicated registry (as applied here).
func (n *Node) Registered() bool {
	info, ok := n.store.Node(n.cfg.NodeID)
	return ok && info.RaftAddr == n.cfg.RaftAdvertise && info.HTTPAddr == n.cfg.HTTPAdvertise
}

// SetRing commits spec in this group (leader only) unless the group already
// acts under that epoch or a newer one. It returns the group's epoch after
// the call. An older epoch is refused with ErrInvalid.
func (n *Node) SetRing(ctx context.Context, spec store.RingSpec) (uint64, error) {
	cmd := store.Command{Op: store.OpSetRing, Ring: spec}
	if err := cmd.Validate(); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if cur := n.store.Epoch(); cur == spec.Epoch {
		return cur, nil
	}
	res, err := n.Apply(ctx, cmd)
	if err != nil {
		return 0, err
	}
	var ee *store.EpochError
	switch {
	case res.Err == nil:
		n.log.Info("ring committed", "epoch", spec.Epoch, "groups", len(spec.Groups))
		return spec.Epoch, nil
	case errors.As(res.Err, &ee) && ee.Current == spec.Epoch:
		return ee.Current, nil
	case errors.As(res.Err, &ee):
		return ee.Current, fmt.Errorf("%w: group is at ring epoch %d, newer than %d", ErrInvalid, ee.Current, spec.Epoch)
	}
	return 0, res.Err
}

// RingReady returns nil when this node may serve keys: a standalone group
// always, a sharded one (ExpectGroups > 0) once a ring is committed.
func (n *Node) RingReady() error {
	if n.cfg.ExpectGroups > 0 && n.store.Epoch() == 0 {
		return fmt.Errorf("%w: the cluster's first ring is not committed yet", ErrUnavailable)
	}
	return nil
}
