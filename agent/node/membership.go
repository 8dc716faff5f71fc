package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/carpkv/carpkv/agent/store"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// Join adds a node to the group (leader only). It first records the node's
// addresses in the replicated registry (so every member can name it as a
// leader later), then changes the Raft configuration. Joining again with
// the same ID and address changes nothing; an ID that was removed is
// refused, because its old log could contradict the group's.
func (n *Node) Join(ctx context.Context, req wire.JoinRequest) (uint64, error) {
	if req.ID == "" || req.RaftAddr == "" || req.HTTPAddr == "" {
		return 0, fmt.Errorf("%w: id, raft_addr and http_addr are required", ErrInvalid)
	}
	if n.raft.State() != raft.Leader {
		return 0, n.notLeader()
	}
	if n.store.IsRemoved(req.ID) {
		return 0, fmt.Errorf("%w: node %q was removed from group %q; start it with an empty data dir and a new node ID", ErrInvalid, req.ID, n.cfg.Group)
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return 0, ErrUnavailable
	}
	suffrage := raft.Voter
	if req.Nonvoter {
		suffrage = raft.Nonvoter
	}
	member := false
	for _, s := range cf.Configuration().Servers {
		switch {
		case string(s.ID) == req.ID && string(s.Address) == req.RaftAddr && s.Suffrage == suffrage:
			member = true
		case string(s.ID) != req.ID && string(s.Address) == req.RaftAddr:
			return 0, fmt.Errorf("%w: raft address %s already belongs to node %q; remove it first", ErrInvalid, req.RaftAddr, s.ID)
		}
	}
	if info, ok := n.store.Node(req.ID); !ok || info.RaftAddr != req.RaftAddr || info.HTTPAddr != req.HTTPAddr {
		res, err := n.Apply(ctx, store.Command{Op: store.OpRegisterNode, Node: store.NodeInfo{ID: req.ID, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr}})
		if err != nil {
			return 0, err
		}
		if res.Err != nil {
			if errors.Is(res.Err, store.ErrNodeRemoved) {
				return 0, fmt.Errorf("%w: node %q was removed from group %q", ErrInvalid, req.ID, n.cfg.Group)
			}
			return 0, res.Err
		}
	}
	if member {
		return n.configIndex(), nil
	}
	n.log.Info("adding node", "node", req.ID, "raft", req.RaftAddr, "voter", !req.Nonvoter)
	var f raft.IndexFuture
	if req.Nonvoter {
		f = n.raft.AddNonvoter(raft.ServerID(req.ID), raft.ServerAddress(req.RaftAddr), 0, 0)
	} else {
		f = n.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.RaftAddr), 0, 0)
	}
	if err := n.configChangeError(ctx, f); err != nil {
		return 0, err
	}
	return f.Index(), nil
}

// Remove takes a node out of the group (leader only) and marks its ID as
// removed so it cannot rejoin with its old state.
func (n *Node) Remove(ctx context.Context, id string) (uint64, error) {
	if id == "" {
		return 0, fmt.Errorf("%w: id is required", ErrInvalid)
	}
	if n.raft.State() != raft.Leader {
		return 0, n.notLeader()
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return 0, ErrUnavailable
	}
	found := false
	for _, s := range cf.Configuration().Servers {
		found = found || string(s.ID) == id
	}
	if !found {
		return 0, fmt.Errorf("%w: %q", ErrNoSuchNode, id)
	}
	res, err := n.Apply(ctx, store.Command{Op: store.OpRemoveNode, Node: store.NodeInfo{ID: id}})
	if err != nil {
		return 0, err
	}
	if res.Err != nil {
		return 0, res.Err
	}
	n.log.Info("removing node", "node", id)
	f := n.raft.RemoveServer(raft.ServerID(id), 0, 0)
	if err := n.configChangeError(ctx, f); err != nil {
		return 0, err
	}
	return f.Index(), nil
}

func (n *Node) configChangeError(ctx context.Context, f raft.IndexFuture) error {
	switch err := waitFuture(ctx, f); {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ErrUnknownOutcome
	case errors.Is(err, raft.ErrNotLeader):
		return n.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrUnknownOutcome
	default:
		// Raft refuses a change while another one is in flight.
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
}

// configIndex is the log index of the latest configuration. (Raft's
// GetConfiguration future leaves its Index at 0; Stats carries it.)
func (n *Node) configIndex() uint64 {
	i, _ := strconv.ParseUint(n.raft.Stats()["latest_configuration_index"], 10, 64)
	return i
}

// TransferLeadership hands leadership to id, or to the most up-to-date
// follower when id is empty (leader only).
func (n *Node) TransferLeadership(ctx context.Context, id string) error {
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	var f raft.Future
	if id == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		addr, ok := n.raftAddr(id)
		if !ok {
			return fmt.Errorf("%w: %q", ErrNoSuchNode, id)
		}
		f = n.raft.LeadershipTransferToServer(raft.ServerID(id), addr)
	}
	// No write is appended while the hand-off runs (raft refuses them
	// too, but only until its own transfer timer fires).
	n.handoff.Add(1)
	err := waitFuture(ctx, f)
	if err != nil && n.raft.State() == raft.Leader {
		// The target may still win the election the transfer started:
		// append nothing until it has had its chance, so that its log is
		// as long as ours and the entries in flight are not overwritten.
		time.AfterFunc(n.cfg.Raft.ElectionTimeout, func() { n.handoff.Add(-1) })
	} else {
		n.handoff.Add(-1)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ErrUnknownOutcome
		}
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

func (n *Node) raftAddr(id string) (raft.ServerAddress, bool) {
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return "", false
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == id {
			return s.Address, true
		}
	}
	return "", false
}

// Configuration is the group's Raft configuration with HTTP addresses from
// the registry.
func (n *Node) Configuration() (wire.Configuration, error) {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return wire.Configuration{}, ErrUnavailable
	}
	_, leader := n.raft.LeaderWithID()
	out := wire.Configuration{Index: n.configIndex(), Servers: []wire.Server{}}
	for _, s := range cf.Configuration().Servers {
		ws := wire.Server{ID: string(s.ID), RaftAddr: string(s.Address), Suffrage: s.Suffrage.String(), Leader: s.ID == leader}
		if info, ok := n.store.Node(string(s.ID)); ok {
			ws.HTTPAddr = info.HTTPAddr
		}
		out.Servers = append(out.Servers, ws)
	}
	return out, nil
}

// Self describes this node.
func (n *Node) Self() wire.AgentInfo {
	st := n.store.Stats()
	info := wire.AgentInfo{
		ID:           n.cfg.NodeID,
		Group:        n.cfg.Group,
		RaftAddr:     n.cfg.RaftAdvertise,
		HTTPAddr:     n.cfg.HTTPAdvertise,
		State:        n.raft.State().String(),
		Term:         n.raft.CurrentTerm(),
		LastIndex:    n.raft.LastIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: st.AppliedIndex,
		Keys:         st.Keys,
		StorageBytes: st.Bytes,
		RingEpoch:    st.Epoch,
	}
	if _, id := n.raft.LeaderWithID(); id != "" {
		info.Leader = &wire.Leader{ID: string(id)}
		if ni, ok := n.store.Node(string(id)); ok {
			info.Leader.HTTP = ni.HTTPAddr
		}
	}
	return info
}

// Ready reports nil when the group has a leader and this member has caught
// up: a follower heard from the leader recently and applied what it knew
// to be committed.
func (n *Node) Ready() error {
	if addr, _ := n.raft.LeaderWithID(); addr == "" {
		return fmt.Errorf("%w: no leader", ErrUnavailable)
	}
	if n.raft.State() == raft.Follower {
		if since := time.Since(n.raft.LastContact()); since > 4*n.cfg.Raft.HeartbeatTimeout {
			return fmt.Errorf("%w: no contact with the leader for %v", ErrUnavailable, since.Round(time.Millisecond))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	if err := n.waitApplied(ctx, n.raft.CommitIndex()); err != nil {
		return fmt.Errorf("%w: applied index %d behind commit index %d", ErrUnavailable, n.store.AppliedIndex(), n.raft.CommitIndex())
	}
	return nil
}

// registerSelf records this (leader) node's addresses in the registry if
// they are missing or changed.
func (n *Node) registerSelf(ctx context.Context) error {
	if info, ok := n.store.Node(n.cfg.NodeID); ok && info.RaftAddr == n.cfg.RaftAdvertise && info.HTTPAddr == n.cfg.HTTPAdvertise {
		return nil
	}
	res, err := n.Apply(ctx, store.Command{Op: store.OpRegisterNode, Node: store.NodeInfo{
		ID: n.cfg.NodeID, RaftAddr: n.cfg.RaftAdvertise, HTTPAddr: n.cfg.HTTPAdvertise,
	}})
	if err != nil {
		return err
	}
	return res.Err
}
