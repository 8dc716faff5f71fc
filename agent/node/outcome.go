package node

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
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
// entries applied lately (term, checksum of the command, result), so a
// write resolved after a leadership loss can tell whether the entry applied
// at its index was its own, and answer with the result the store gave it.
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

// resultSlots is how many applied entries recentResults remembers: several
// seconds of writes at full speed, longer than any request's deadline.
const resultSlots = 8192

// recentResults holds what the store applied at its last log indexes, and
// hands it to the writes waiting for it. A checksum stands for the command
// (the log itself may be compacted by the time a write asks).
type recentResults struct {
	mu      sync.Mutex
	seed    maphash.Seed
	slots   [resultSlots]appliedEntry // by index modulo the length
	waiters map[uint64]chan appliedEntry
}

// appliedEntry is what the store applied at index. gone: the entry's
// record is no longer kept (overwritten by a later one, or a snapshot was
// restored over it), so what was applied there cannot be told.
type appliedEntry struct {
	index, term uint64
	sum         uint64 // sumOf the entry's data
	res         *store.Result
	gone        bool
	// A put-batch's result per key is not kept as such (up to 4,096 per
	// entry, in every slot): when every pair was written their versions
	// are consecutive, and batchFirst and batchN say them all; when some
	// were refused, batchUnknown says the per-key results are not kept.
	batchFirst   uint64
	batchN       int
	batchUnknown bool
}

// keep fills e's result from res, the per-key results of a put-batch in
// the compact form above.
func (e *appliedEntry) keep(res *store.Result) {
	if res == nil || res.Keys == nil {
		e.res = res
		return
	}
	short := *res
	short.Keys = nil
	e.res = &short
	for i, k := range res.Keys {
		if k.Err != nil || k.Version != res.Keys[0].Version+uint64(i) {
			e.batchUnknown = true
			return
		}
	}
	e.batchFirst, e.batchN = res.Keys[0].Version, len(res.Keys)
}

func newRecentResults() *recentResults {
	return &recentResults{seed: maphash.MakeSeed(), waiters: map[uint64]chan appliedEntry{}}
}

func (r *recentResults) sumOf(data []byte) uint64 { return maphash.Bytes(r.seed, data) }

func (r *recentResults) record(logs []*raft.Log, res []any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, l := range logs {
		sr, _ := res[i].(*store.Result)
		e := appliedEntry{index: l.Index, term: l.Term, sum: r.sumOf(l.Data)}
		e.keep(sr)
		r.slots[l.Index%resultSlots] = e
		if ch, ok := r.waiters[l.Index]; ok {
			ch <- e
			delete(r.waiters, l.Index)
		}
	}
}

// wait returns a channel that receives what the store applied at index,
// once it has, and a function to call when no longer waiting. Entries
// that are not commands (a new leader's no-op) never reach the store:
// nothing is sent for them.
func (r *recentResults) wait(index uint64) (<-chan appliedEntry, func()) {
	ch := make(chan appliedEntry, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch s := r.slots[index%resultSlots]; {
	case s.index == index:
		ch <- s
		return ch, func() {}
	case s.index > index:
		ch <- appliedEntry{index: index, gone: true}
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
		ch <- appliedEntry{index: i, gone: true}
		delete(r.waiters, i)
	}
}

// errOverwritten: the entry lost its index to another one; it was not and
// will never be applied.
var errOverwritten = errors.New("entry overwritten by a new leader")

// resolveLost finds out what became of the entry data that this node, as
// leader in term, appended at index before losing leadership. It returns the
// entry's result if the group committed it, errOverwritten if another entry
// took its index, an ErrUnknownOutcome (saying why) if ctx ends first or
// what was applied there can no longer be told.
func (n *Node) resolveLost(ctx context.Context, index, term uint64, data []byte) (*store.Result, error) {
	if index == 0 {
		return nil, errOverwritten // never appended
	}
	// Ask first: the store may apply the entry any moment.
	ch, cancel := n.results.wait(index)
	defer cancel()
	// A command committed at index reaches the store, and ch. Anything
	// else (the new leader's no-op) does not: once raft has applied the
	// index, the log says what it holds. A poll: raft signals nothing
	// when it applies a no-op.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case e := <-ch:
			return n.judge(e, term, data)
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: leadership lost; deadline passed before index %d was applied here (applied %d)", ErrUnknownOutcome, index, n.raft.AppliedIndex())
		case <-tick.C:
			if n.raft.AppliedIndex() < index {
				continue
			}
			var l raft.Log
			if err := n.logs.GetLog(index, &l); err == nil && l.Type != raft.LogCommand {
				return nil, errOverwritten
			}
			// A command (or compacted: then the store has applied it
			// long ago): its record is on its way to ch; the log has
			// nothing more to say.
			tick.Stop()
		}
	}
}

// judge compares what the store applied at a lost write's index with the
// write.
func (n *Node) judge(e appliedEntry, term uint64, data []byte) (*store.Result, error) {
	switch {
	case e.gone:
		return nil, fmt.Errorf("%w: leadership lost; what was applied at index %d is no longer known", ErrUnknownOutcome, e.index)
	case e.sum != n.results.sumOf(data):
		return nil, errOverwritten
	case e.term != term:
		// The same bytes in another term: most likely ours, appended after
		// this node lost and won leadership again between reading the term
		// and appending; it cannot be told apart from an identical write.
		return nil, fmt.Errorf("%w: leadership lost; index %d holds the same command from term %d, not %d", ErrUnknownOutcome, e.index, e.term, term)
	case e.res == nil:
		return nil, fmt.Errorf("%w: leadership lost; entry %d applied without a result", ErrUnknownOutcome, e.index)
	case e.batchUnknown:
		return nil, fmt.Errorf("%w: leadership lost; batch %d committed, but some of its keys were refused and which is no longer known", ErrUnknownOutcome, e.index)
	case e.batchN > 0:
		res := *e.res
		res.Keys = make([]store.KeyResult, e.batchN)
		for i := range res.Keys {
			res.Keys[i].Version = e.batchFirst + uint64(i)
		}
		return &res, nil
	}
	return e.res, nil
}

// waitApplies waits, at most max, until no Apply call is under way.
func (n *Node) waitApplies(ctx context.Context, max time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for n.applying.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
