package node

import (
	"context"
	"fmt"

	"github.com/hashicorp/raft"
)

// Get reads key. A linearizable read (stale false) is served only by the
// leader, after the read-index protocol (Raft thesis §6.4): the leader
// (1) has applied an entry of its current term (the barrier), (2) notes its
// commit index, (3) confirms with a quorum that it is still the leader, and
// (4) waits until its state machine has applied the noted index. A stale
// read returns the local state of any member at once.
//
// Ownership is checked after the wait, under the ring applied at the read
// index, exactly as a write at that index would be (invariant 3).
func (n *Node) Get(ctx context.Context, key []byte, stale bool, ringEpoch uint64) (value []byte, version, index uint64, err error) {
	if err := n.RingReady(); err != nil {
		return nil, 0, 0, err
	}
	if !stale {
		if index, err = n.ReadIndex(ctx); err != nil {
			return nil, 0, 0, err
		}
	} else {
		index = n.store.AppliedIndex()
	}
	if err := n.store.CheckOwner(key, ringEpoch); err != nil {
		return nil, 0, index, err
	}
	value, version, err = n.store.Get(key)
	return value, version, index, err
}

// KeyRead is one key's answer in GetMany: its value and version, or its
// error (store.ErrNotFound, a *store.RingError, ErrBatchFull).
type KeyRead struct {
	Value   []byte
	Version uint64
	Err     error
}

// ErrBatchFull is the answer for the keys of a GetMany after the values
// read reached its byte budget: not read, ask again.
var ErrBatchFull = fmt.Errorf("%w: not read, the batch's answer reached its size limit; ask again", ErrUnavailable)

// GetMany reads keys as Get reads each, after one read-index round for all
// of them: every key is read at the returned index or later and checked
// against the ring on its own. Once the values read reach budget bytes the
// remaining keys get ErrBatchFull.
func (n *Node) GetMany(ctx context.Context, keys [][]byte, stale bool, ringEpoch uint64, budget int) ([]KeyRead, uint64, error) {
	if err := n.RingReady(); err != nil {
		return nil, 0, err
	}
	var index uint64
	if !stale {
		var err error
		if index, err = n.ReadIndex(ctx); err != nil {
			return nil, 0, err
		}
	} else {
		index = n.store.AppliedIndex()
	}
	out := make([]KeyRead, len(keys))
	owned := make([][]byte, 0, len(keys))
	at := make([]int, 0, len(keys))
	for i, key := range keys {
		if err := n.store.CheckOwner(key, ringEpoch); err != nil {
			out[i].Err = err
			continue
		}
		owned, at = append(owned, key), append(at, i)
	}
	used, full := 0, len(owned)
	err := n.store.GetMany(owned, func(j int, value []byte, version uint64, err error) bool {
		out[at[j]] = KeyRead{Value: value, Version: version, Err: err}
		used += len(value) + len(owned[j])
		if used >= budget {
			full = j + 1
			return false
		}
		return true
	})
	if err != nil {
		return nil, 0, err
	}
	for _, i := range at[full:] {
		out[i].Err = ErrBatchFull
	}
	return out, index, nil
}

// ReadIndex runs steps 1-4 above and returns the index the read is served
// at. Invariant 1 depends on every step: without (1) a new leader's commit
// index may be behind entries committed by its predecessor; without (3) a
// deposed leader that does not know it yet would serve old data.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if n.raft.State() != raft.Leader {
		return 0, n.notLeader()
	}
	if err := n.ensureBarrier(ctx); err != nil {
		return 0, err
	}
	term := n.raft.CurrentTerm()
	readIndex := n.raft.CommitIndex()
	if err := waitFuture(ctx, n.raft.VerifyLeader()); err != nil {
		if ctx.Err() != nil {
			return 0, ErrUnknownOutcome
		}
		return 0, n.notLeader()
	}
	if n.raft.CurrentTerm() != term || n.barrierTerm.Load() != term {
		// Leadership changed hands in between; the noted index may not be
		// this term's. Let the client retry.
		return 0, ErrUnavailable
	}
	if err := n.waitApplied(ctx, readIndex); err != nil {
		return 0, err
	}
	return readIndex, nil
}

// ensureBarrier makes sure an entry of the current term has been applied
// (once per term; concurrent callers share the barrier).
func (n *Node) ensureBarrier(ctx context.Context) error {
	term := n.raft.CurrentTerm()
	if n.barrierTerm.Load() == term {
		return nil
	}
	n.barrierMu.Lock()
	defer n.barrierMu.Unlock()
	if n.barrierTerm.Load() == term {
		return nil
	}
	if err := waitFuture(ctx, n.raft.Barrier(0)); err != nil {
		if ctx.Err() != nil {
			return ErrUnavailable
		}
		return n.notLeader()
	}
	// Only if the term did not move while we waited is the barrier ours.
	if n.raft.CurrentTerm() == term && n.raft.State() == raft.Leader {
		n.barrierTerm.Store(term)
		return nil
	}
	return ErrUnavailable
}

// waitApplied returns once the state machine reflects every entry up to
// index. The store only sees commands and configuration entries (Raft keeps
// no-ops and barriers to itself), so its applied index may stop short of
// index for good; entries above it that the store never sees need no wait.
// The scan is short: under load the top entry is a command, at rest the gap
// holds at most a no-op and a barrier.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	for {
		applied := n.store.AppliedIndex()
		if applied >= index {
			return nil
		}
		target := uint64(0)
		for i := index; i > applied; i-- {
			var l raft.Log
			if err := n.logs.GetLog(i, &l); err != nil {
				// Compacted into a snapshot: the state machine had
				// processed it when the snapshot was taken.
				break
			}
			if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
				target = i
				break
			}
		}
		if target <= applied {
			return nil
		}
		if err := n.store.WaitApplied(ctx, target); err != nil {
			return fmt.Errorf("%w: waiting for the state machine to apply index %d", ErrUnknownOutcome, target)
		}
	}
}
