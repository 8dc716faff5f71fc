package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/carpkv/carpkv/agent/store"
)

// Resolving writes whose leader lost leadership before they committed
// (docs/design.md, "Outcomes after a leadership loss").
//
// raft answers every entry in flight with ErrLeadershipLost when its leader
// steps down (a leadership transfer, a partition, a higher term). Such an
// entry already has its log index, and this node, now a follower, learns
// which entry the group committed at that index: ours (the write happened:
// answer with its result) or another one (ours was overwritten and can never
// commit: nothing was applied, the client may retry). Only when the
// request's deadline passes first is the outcome unknown.

// fsm is the state machine raft drives: the store, plus a record of the
// results of the entries applied lately, so a write resolved after a
// leadership loss can answer with the result the store gave it.
type fsm struct {
	*store.Store
	results *recentResults
}

var _ raft.BatchingFSM = fsm{}

func (f fsm) ApplyBatch(logs []*raft.Log) []any {
	res := f.Store.ApplyBatch(logs)
	f.results.record(logs, res)
	return res
}

func (f fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f fsm) Restore(rc io.ReadCloser) error {
	// Entries a snapshot covers are never applied one by one: whoever
	// waits for one of them cannot learn its result.
	defer f.results.forgetWaiters()
	return f.Store.Restore(rc)
}

// recentResults holds the results of the last entries the store applied, by
// log index, and hands them to the writes waiting for them.
type recentResults struct {
	mu      sync.Mutex
	slots   [256]appliedResult // by index modulo the length
	waiters map[uint64]chan *store.Result
}

type appliedResult struct {
	index uint64
	res   *store.Result
}

func newRecentResults() *recentResults {
	return &recentResults{waiters: map[uint64]chan *store.Result{}}
}

func (r *recentResults) record(logs []*raft.Log, res []any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, l := range logs {
		sr, _ := res[i].(*store.Result)
		r.slots[l.Index%uint64(len(r.slots))] = appliedResult{index: l.Index, res: sr}
		if ch, ok := r.waiters[l.Index]; ok {
			ch <- sr
			delete(r.waiters, l.Index)
		}
	}
}

// wait returns a channel that receives the result of the entry at index once
// the store has applied it (nil if it never will be known: a snapshot
// replaced it), and a function to call when no longer waiting.
func (r *recentResults) wait(index uint64) (<-chan *store.Result, func()) {
	ch := make(chan *store.Result, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.slots[index%uint64(len(r.slots))]; s.index == index {
		ch <- s.res
		return ch, func() {}
	}
	r.waiters[index] = ch
	return ch, func() {
		r.mu.Lock()
		if r.waiters[index] == ch {
			delete(r.waiters, index)
		}
		r.mu.Unlock()
	}
}

func (r *recentResults) forgetWaiters() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, ch := range r.waiters {
		ch <- nil
		delete(r.waiters, i)
	}
}

// errOverwritten: the entry lost its index to another one; it was not and
// will never be applied.
var errOverwritten = errors.New("entry overwritten by a new leader")

// resolveLost finds out what became of the entry data that this node, as
// leader in term, appended at index before losing leadership. It returns the
// entry's result if the group committed it, errOverwritten if another entry
// took its index, ErrUnknownOutcome if ctx ends first or the log no longer
// tells.
func (n *Node) resolveLost(ctx context.Context, index, term uint64, data []byte) (*store.Result, error) {
	if index == 0 {
		return nil, errOverwritten // never appended
	}
	n.resolving.Add(1)
	defer n.resolving.Add(-1)
	// Ask for the result first: the store may apply the entry any moment.
	ch, cancel := n.results.wait(index)
	defer cancel()
	// Wait until this node has applied the index: the entry there is then
	// the committed one. A poll: raft signals nothing when it applies a
	// no-op, and the new leader's first entry is one.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for n.raft.AppliedIndex() < index {
		select {
		case <-ctx.Done():
			return nil, ErrUnknownOutcome
		case <-tick.C:
		}
	}
	var l raft.Log
	if err := n.logs.GetLog(index, &l); err != nil {
		// Compacted into a snapshot already: the log no longer tells.
		n.log.Debug("write outcome unknown: entry no longer in the log", "index", index, "err", err)
		return nil, ErrUnknownOutcome
	}
	if l.Type != raft.LogCommand || !bytes.Equal(l.Data, data) {
		return nil, errOverwritten
	}
	if l.Term != term {
		// The same bytes in another term: most likely ours, appended after
		// this node lost and won leadership again between reading the term
		// and appending; it cannot be told apart from an identical write.
		return nil, ErrUnknownOutcome
	}
	select {
	case res := <-ch:
		if res == nil {
			return nil, ErrUnknownOutcome
		}
		return res, nil
	case <-ctx.Done():
		return nil, ErrUnknownOutcome
	}
}

// waitResolved waits, at most max, until no write in flight at a leadership
// loss is still waiting to learn its fate.
func (n *Node) waitResolved(ctx context.Context, max time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for n.resolving.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
