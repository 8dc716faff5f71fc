package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/carpkv/carpkv/agent/store"
)

// Apply replicates cmd through Raft and returns the state machine's result
// (whose Err may be store.ErrNotFound, a *store.CASError, ...). The error
// return is about replication, and says whether the outcome is known:
//   - *NotLeaderError, ErrUnavailable: nothing was appended; safe to retry;
//   - ErrUnknownOutcome: the entry may or may not commit (invariant 5).
func (n *Node) Apply(ctx context.Context, cmd store.Command) (*store.Result, error) {
	// Counted before the hand-off check, so a hand-off that waits for
	// applying to drain cannot miss a write that passed the check.
	n.applying.Add(1)
	defer n.applying.Add(-1)
	if n.raft.State() != raft.Leader || n.handoff.Load() > 0 {
		return nil, n.notLeader()
	}
	if cmd.Op == store.OpPut || cmd.Op == store.OpDelete || cmd.Op == store.OpPutBatch {
		if err := n.RingReady(); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	enqueue := time.Until(deadline(ctx, time.Second))
	term := n.raft.CurrentTerm()
	data := cmd.Marshal()
	f := n.raft.Apply(data, enqueue)

	done := make(chan struct{})
	go func() { _ = f.Error(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: deadline passed before the entry committed", ErrUnknownOutcome)
	}
	switch err := f.Error(); {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Refused before it was appended.
		return nil, n.notLeader()
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return nil, ErrUnavailable
	case errors.Is(err, raft.ErrLeadershipLost):
		// Appended, then this node stopped leading: the group's log
		// tells whether the entry committed (outcome.go).
		res, rerr := n.resolveLost(ctx, f.Index(), term, data)
		switch {
		case errors.Is(rerr, errOverwritten):
			n.metrics.lostWrites.WithLabelValues("not_applied").Inc()
			return nil, n.notLeader()
		case rerr != nil:
			n.metrics.lostWrites.WithLabelValues("unknown").Inc()
			return nil, rerr
		}
		n.metrics.lostWrites.WithLabelValues("applied").Inc()
		return res, nil
	default:
		// ErrRaftShutdown, ErrAbortedByRestore: the entry may have been
		// appended and may still commit.
		n.log.Debug("write outcome unknown", "err", err)
		return nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
	}
	n.metrics.commitLatency.Observe(time.Since(start).Seconds())
	res, ok := f.Response().(*store.Result)
	if !ok {
		return nil, errors.New("state machine returned no result")
	}
	return res, nil
}

func deadline(ctx context.Context, fallback time.Duration) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(fallback)
}

// notLeader builds the not_leader error with the best hint this node has:
// the leader Raft names, resolved to an HTTP address by the replicated
// node registry.
func (n *Node) notLeader() error {
	_, id := n.raft.LeaderWithID()
	e := &NotLeaderError{LeaderID: string(id)}
	if id != "" {
		if info, ok := n.store.Node(string(id)); ok {
			e.LeaderHTTP = info.HTTPAddr
		}
	}
	return e
}
