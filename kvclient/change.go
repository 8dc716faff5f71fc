package kvclient

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// Ring changes (docs/design.md, "Ring changes"): the coordinator, the
// leader of the group with the smallest ID in the committed ring, records
// a change in its group's Raft log and drives it to the end. These calls
// find it from the ring (GET /v1/ring) and gossip's leader hints.

// ValidateRingChange checks a request before it is sent: a known kind, a
// group, and a weight that is finite and not negative (positive for
// set-weight; 0 for add-group means the weight the group's leader was
// started with). The error matches ErrInvalidArgument.
func ValidateRingChange(req wire.RingChangeRequest) error {
	switch req.Kind {
	case wire.ChangeAddGroup, wire.ChangeRemoveGroup, wire.ChangeSetWeight:
	default:
		return invalidArgf("kvclient: ring change: unknown kind %q (want %s, %s or %s)",
			req.Kind, wire.ChangeAddGroup, wire.ChangeRemoveGroup, wire.ChangeSetWeight)
	}
	if req.Group == "" {
		return invalidArgf("kvclient: ring change %s: empty group", req.Kind)
	}
	w := req.Weight
	switch {
	case math.IsNaN(w) || math.IsInf(w, 0):
		return invalidArgf("kvclient: ring change %s %s: weight %v is not a finite number", req.Kind, req.Group, w)
	case w < 0:
		return invalidArgf("kvclient: ring change %s %s: weight %v is negative", req.Kind, req.Group, w)
	case req.Kind == wire.ChangeSetWeight && w == 0:
		return invalidArgf("kvclient: ring change %s %s: weight must be positive", req.Kind, req.Group)
	case req.Kind == wire.ChangeRemoveGroup && w != 0:
		return invalidArgf("kvclient: ring change %s %s: a removal takes no weight", req.Kind, req.Group)
	}
	return nil
}

// RingChange asks the coordinator to start a ring change and returns the
// change as recorded (phase prepare). The change then runs on its own in
// the cluster; RingChangeStatus follows it.
//
// It fetches the ring, picks the coordinator group (the smallest group ID
// of the committed ring) and posts to its leader as gossip knows it,
// following not_leader hints and retrying unavailable answers and refused
// connections with backoff within ctx (Config.CallTimeout when it has no
// deadline). A request that may have reached an agent and got no answer is
// never resent: the error matches ErrTimeout and the change may or may not
// have been recorded (RingChangeStatus tells).
//
// ErrRingChangeInProgress: another change runs (the message names it).
// ErrInvalidArgument: the agents refused the request (unknown group, a
// group already in the ring or without a leader, the last group, a bad
// weight); not retried.
func (c *Client) RingChange(ctx context.Context, req wire.RingChangeRequest) (*wire.RingChangeStatus, error) {
	if err := ValidateRingChange(req); err != nil {
		return nil, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, invalidArgf("kvclient: ring change: %v", err)
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	op := req.Kind + " " + req.Group
	g, err := c.coordinator(ctx, op)
	if err != nil {
		return nil, err
	}
	// Not idempotent: a second request while the first runs is refused
	// (ring_change_in_progress), and after it ended would start another
	// change. So it is resent only when nothing was recorded.
	cl := &call{op: "ring change " + op, method: http.MethodPost, path: wire.PathRingChange,
		body: body, json: true, route: routeLeader}
	rep, err := g.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	var st wire.RingChangeStatus
	if err := decodeJSON(cl, rep, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// RingChangeStatus returns the ring change in progress and the last one
// completed, as the coordinator group records them. It asks the group's
// leader (whose answer is Live, with the last error) and falls back to its
// other members (their answer is the recorded state, without live
// progress), retrying with backoff within ctx.
func (c *Client) RingChangeStatus(ctx context.Context) (*wire.RingChangeAnswer, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	g, err := c.coordinator(ctx, "ring change status")
	if err != nil {
		return nil, err
	}
	cl := &call{op: "ring change status", method: http.MethodGet, path: wire.PathRingChange,
		route: routeLeader, idempotent: true}
	rep, err := g.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	var a wire.RingChangeAnswer
	if err := decodeJSON(cl, rep, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// callContext gives ctx Config.CallTimeout when it has no deadline.
func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.CallTimeout)
}

// coordinator fetches the ring and returns a groupClient for the
// coordinator group, its leader (as gossip knows it) first.
func (c *Client) coordinator(ctx context.Context, op string) (*groupClient, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	r, err := c.Ring(ctx)
	if err != nil {
		return nil, err
	}
	rg, ok := CoordinatorGroup(r)
	if !ok {
		return nil, fmt.Errorf("kvclient: %s: %w: the ring (epoch %d) lists no group", op, ErrUnavailable, r.Epoch)
	}
	return c.groupClientFor(nil, rg, memberAddrs(rg)), nil
}

// CoordinatorGroup returns the group of r that coordinates ring changes:
// the smallest group ID (by byte order, as the agents choose it).
func CoordinatorGroup(r *wire.Ring) (wire.RingGroup, bool) {
	if r == nil || len(r.Groups) == 0 {
		return wire.RingGroup{}, false
	}
	return slices.MinFunc(r.Groups, func(a, b wire.RingGroup) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	}), true
}
