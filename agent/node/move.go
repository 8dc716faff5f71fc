package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/carpkv/carpkv/agent/store"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// This file is one group's side of a ring change (store/move.go holds the
// rules): its state for the coordinator, the steps it commits at the
// coordinator's request, and the imports it receives. Every step is a Raft
// command whose outcome the state machine decides, so a repeated or late
// step is harmless; what each returns says whether it may have been applied
// (as in write.go): *NotLeaderError and ErrUnavailable mean not applied,
// ErrUnknownOutcome means unknown; any state-machine refusal means nothing
// changed.

// LeaderCheck returns nil on the leader, else the not_leader error with the
// best hint this node has.
func (n *Node) LeaderCheck() error {
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	return nil
}

// MoveState is this group's part in a ring change as applied here. Only
// the leader answers: the coordinator acts on the group's latest state.
func (n *Node) MoveState() (wire.MoveState, error) {
	if err := n.LeaderCheck(); err != nil {
		return wire.MoveState{}, err
	}
	return n.moveState(), nil
}

func (n *Node) moveState() wire.MoveState {
	st := n.store.Stats()
	out := wire.MoveState{
		Group: n.cfg.Group, RingEpoch: st.Epoch, Keys: st.Keys, Clock: st.Clock,
		Leader: &wire.Leader{ID: n.cfg.NodeID, HTTP: n.cfg.HTTPAdvertise},
	}
	if mv, ok := n.store.Move(); ok {
		out.Target = mv.To.Epoch
		out.Frozen = mv.Frozen
		out.Sealed = mv.Sealed
		out.Coordinator = mv.Coordinator
	}
	return out
}

// MoveStep commits one step of a ring change in this group.
func (n *Node) MoveStep(ctx context.Context, req wire.MoveStepRequest) (wire.MoveStepResult, error) {
	from, to := store.RingSpecFromWire(req.From), store.RingSpecFromWire(req.To)
	var cmd store.Command
	switch req.Step {
	case wire.StepActivate:
		cmd = store.Command{Op: store.OpSetRing, Ring: to}
	case wire.StepHandover:
		if req.Record == nil || req.Record.Phase != wire.PhaseDone {
			return wire.MoveStepResult{}, fmt.Errorf("%w: a handover carries a completed change record", ErrInvalid)
		}
		if err := n.ChangeLog(ctx, *req.Record); err != nil {
			return wire.MoveStepResult{}, err
		}
		return wire.MoveStepResult{State: n.moveState()}, nil
	case wire.StepCleanup:
		return n.cleanup(ctx, req, from, to)
	case wire.StepPrepare, wire.StepFreeze, wire.StepFinish:
		op := map[string]store.Op{
			wire.StepPrepare: store.OpMovePrepare, wire.StepFreeze: store.OpMoveFreeze, wire.StepFinish: store.OpMoveFinish,
		}[req.Step]
		args := store.MoveArgs{From: from, To: to, Coordinator: req.Coordinator}
		body, err := json.Marshal(args)
		if err != nil {
			return wire.MoveStepResult{}, err
		}
		cmd = store.Command{Op: op, Body: body}
	default:
		return wire.MoveStepResult{}, fmt.Errorf("%w: unknown ring change step %q", ErrInvalid, req.Step)
	}
	if err := cmd.Validate(); err != nil {
		return wire.MoveStepResult{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if req.Step == wire.StepActivate && n.store.Epoch() >= to.Epoch {
		return wire.MoveStepResult{State: n.moveState()}, n.LeaderCheck()
	}
	res, err := n.Apply(ctx, cmd)
	if err != nil {
		return wire.MoveStepResult{}, err
	}
	var ee *store.EpochError
	if res.Err != nil && !(errors.As(res.Err, &ee) && ee.Current >= to.Epoch) {
		return wire.MoveStepResult{}, res.Err
	}
	out := wire.MoveStepResult{State: n.moveState()}
	if req.Step == wire.StepActivate {
		n.log.Info("ring adopted through a ring change", "epoch", to.Epoch, "groups", len(to.Groups))
	}
	return out, nil
}

// cleanupPipeline is how many cleanup entries one step commits side by
// side. Four were no faster than two at 1,000,000 keys (the sources are
// CPU-bound) and raised their p99 during the cleanup (docs/benchmarks.md).
const cleanupPipeline = 2

// cleanup drops what this group handed off, in up to cleanupPipeline
// entries of about req.Limit keys each, planned from this leader's state
// (store.CleanupRanges) and committed side by side: one after the other,
// each waited for, the cleanup of a quarter of 1,000,000 keys took
// seconds of Raft round trips (docs/benchmarks.md, "Ring changes").
func (n *Node) cleanup(ctx context.Context, req wire.MoveStepRequest, from, to store.RingSpec) (wire.MoveStepResult, error) {
	if err := n.LeaderCheck(); err != nil {
		return wire.MoveStepResult{}, err
	}
	var cursor []byte
	if req.Cursor != "" {
		c, err := base64.StdEncoding.DecodeString(req.Cursor)
		if err != nil || len(c) == 0 {
			return wire.MoveStepResult{}, fmt.Errorf("%w: cleanup cursor %q", ErrInvalid, req.Cursor)
		}
		cursor = c
	}
	if req.Limit < 0 || req.Limit > store.MaxCleanupLimit {
		return wire.MoveStepResult{}, fmt.Errorf("%w: cleanup limit %d is not within 0-%d", ErrInvalid, req.Limit, store.MaxCleanupLimit)
	}
	ranges, done, err := n.store.CleanupRanges(to.Epoch, cursor, req.Limit, cleanupPipeline)
	if err != nil {
		return wire.MoveStepResult{}, err
	}
	var (
		wg      sync.WaitGroup
		dropped atomic.Uint64
		errs    = make([]error, len(ranges))
	)
	for i, r := range ranges {
		if r.Keys == 0 {
			continue // nothing to drop: the cursor just moves past it
		}
		body, err := json.Marshal(store.MoveArgs{From: from, To: to, Cursor: r.After, End: r.End, Limit: r.Keys})
		if err != nil {
			return wire.MoveStepResult{}, err
		}
		cmd := store.Command{Op: store.OpMoveCleanup, Body: body}
		if err := cmd.Validate(); err != nil {
			return wire.MoveStepResult{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		wg.Go(func() {
			res, err := n.Apply(ctx, cmd)
			if err == nil && res.Err != nil {
				err = res.Err
			}
			if err != nil {
				errs[i] = err
				return
			}
			dropped.Add(res.Count)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return wire.MoveStepResult{}, err
	}
	out := wire.MoveStepResult{State: n.moveState(), Dropped: dropped.Load(), Done: done}
	if !done { // then CleanupRanges planned cleanupPipeline ranges
		out.Cursor = base64.StdEncoding.EncodeToString(ranges[len(ranges)-1].End)
	}
	return out, nil
}

// Import commits keys handed over by a source group (an encoded
// store.Import). An import for a change this group has adopted already is
// answered as done: the change no longer needs it (store.ErrMoveDone).
func (n *Node) Import(ctx context.Context, body []byte) (imported uint64, done bool, err error) {
	cmd := store.Command{Op: store.OpMoveImport, Body: body}
	if err := cmd.Validate(); err != nil {
		return 0, false, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	res, err := n.Apply(ctx, cmd)
	if err != nil {
		return 0, false, err
	}
	if errors.Is(res.Err, store.ErrMoveDone) {
		return 0, true, nil
	}
	return res.Count, false, res.Err
}

// ChangeLog records the coordinator's view of a ring change in this
// group's log (store.OpChangeLog).
func (n *Node) ChangeLog(ctx context.Context, st wire.RingChangeStatus) error {
	body, err := json.Marshal(st)
	if err != nil {
		return err
	}
	cmd := store.Command{Op: store.OpChangeLog, Body: body}
	if err := cmd.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	res, err := n.Apply(ctx, cmd)
	if err != nil {
		return err
	}
	return res.Err
}
