package kvclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// Management calls, used by carpkvctl and operators' tools. Calls that take
// an addr ask that one agent once, without retries, so that a status view
// can show each member as it is; the others are routed and retried like
// KV calls.

// Self returns what the agent at addr says about itself.
func (c *Client) Self(ctx context.Context, addr string) (*wire.AgentInfo, error) {
	var info wire.AgentInfo
	if err := c.once(ctx, addr, "self", wire.PathAgentSelf, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Health returns nil if the agent at addr serves HTTP.
func (c *Client) Health(ctx context.Context, addr string) error {
	return c.once(ctx, addr, "health", wire.PathHealth, nil)
}

// Ready returns nil if the agent at addr is ready: its group has a leader
// and it has applied what the leader had committed. Otherwise the error is
// an *Error (ErrUnavailable) whose message is the reason, or a transport
// error (ErrUnavailable) if the agent is unreachable.
func (c *Client) Ready(ctx context.Context, addr string) error {
	return c.once(ctx, addr, "ready", wire.PathReady, nil)
}

// RingAt returns the ring as the agent at addr answers it (GET /v1/ring),
// once, without installing it for routing.
func (c *Client) RingAt(ctx context.Context, addr string) (*wire.Ring, error) {
	var r wire.Ring
	if err := c.once(ctx, addr, "ring", wire.PathRing, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// GossipMembers returns every agent the gossip pool of the agent at addr
// has seen, alive or not (advisory).
func (c *Client) GossipMembers(ctx context.Context, addr string) ([]wire.Member, error) {
	var m wire.Members
	if err := c.once(ctx, addr, "gossip members", wire.PathGossipMembers, &m); err != nil {
		return nil, err
	}
	return m.Members, nil
}

// ConfigurationAt returns the Raft configuration of the group of the agent
// at addr, as that agent knows it.
func (c *Client) ConfigurationAt(ctx context.Context, addr string) (*wire.Configuration, error) {
	var conf wire.Configuration
	if err := c.once(ctx, addr, "configuration", wire.PathRaftConfiguration, &conf); err != nil {
		return nil, err
	}
	return &conf, nil
}

// once is one GET to one agent, decoded into out if out is not nil.
func (c *Client) once(ctx context.Context, addr, op, path string, out any) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := validateAddr(addr); err != nil {
		return invalidArgf("kvclient: %s: %v", op, err)
	}
	addr = normalizeAddr(addr)
	cl := &call{op: op, method: http.MethodGet, path: path, route: routeAny, idempotent: true}
	rep, err := c.attempt(ctx, addr, cl)
	if err != nil {
		return err
	}
	return decodeJSON(cl, rep, out)
}

// Configuration returns the Raft configuration of the seeds' group
// (Config.Addrs), asked of its leader when known (any member answers,
// possibly behind). Join, Remove and TransferLeadership go to that group
// too.
func (c *Client) Configuration(ctx context.Context) (*wire.Configuration, error) {
	cl := &call{op: "configuration", method: http.MethodGet, path: wire.PathRaftConfiguration, idempotent: true}
	rep, err := c.group.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	var conf wire.Configuration
	if err := decodeJSON(cl, rep, &conf); err != nil {
		return nil, err
	}
	return &conf, nil
}

// Join adds a node to the group as a voter (or non-voter) and returns the
// configuration index. Joining again with the same ID and addresses is a
// no-op, so Join is retried like a read.
func (c *Client) Join(ctx context.Context, req wire.JoinRequest) (uint64, error) {
	switch {
	case req.ID == "":
		return 0, invalidArgf("kvclient: join: empty node ID")
	case req.RaftAddr == "":
		return 0, invalidArgf("kvclient: join %s: empty Raft address", req.ID)
	case req.HTTPAddr == "":
		return 0, invalidArgf("kvclient: join %s: empty HTTP address", req.ID)
	}
	return c.membership(ctx, fmt.Sprintf("join %s", req.ID), wire.PathRaftJoin, req, true)
}

// Remove removes node id from the group and returns the configuration
// index. ErrNotFound: id is not a member. ErrTimeout: the outcome is
// unknown.
func (c *Client) Remove(ctx context.Context, id string) (uint64, error) {
	if id == "" {
		return 0, invalidArgf("kvclient: remove: empty node ID")
	}
	return c.membership(ctx, "remove "+id, wire.PathRaftRemove, wire.NodeRequest{ID: id}, false)
}

// TransferLeadership asks the leader to hand leadership to node id, or to
// any up-to-date follower if id is "". ErrTimeout: the outcome is unknown.
func (c *Client) TransferLeadership(ctx context.Context, id string) error {
	op := "transfer-leadership"
	if id != "" {
		op += " to " + id
	}
	_, err := c.membership(ctx, op, wire.PathTransferLeadership, wire.NodeRequest{ID: id}, false)
	return err
}

// membership posts body to a leader-only path and returns the index the
// answer carries (0 if none: a transfer answers with what it likes).
func (c *Client) membership(ctx context.Context, op, path string, body any, idempotent bool) (uint64, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, invalidArgf("kvclient: %s: %v", op, err)
	}
	cl := &call{op: op, method: http.MethodPost, path: path, body: b, json: true, route: routeLeader, idempotent: idempotent}
	rep, err := c.group.do(ctx, cl)
	if err != nil {
		return 0, err
	}
	var res wire.IndexResult
	_ = json.Unmarshal(rep.body, &res)
	return res.Index, nil
}

func decodeJSON(cl *call, rep *reply, out any) error {
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rep.body, out); err != nil {
		return protocolError(cl, rep.addr, "%v", err)
	}
	return nil
}
