package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

var _ raft.BatchingFSM = (*Store)(nil)

// Apply applies one entry; see ApplyBatch. It returns a *Result.
func (s *Store) Apply(l *raft.Log) any {
	return s.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies a batch of committed entries in one bbolt read-write
// transaction that also records the index and term of the batch's last
// entry. It returns one *Result per entry.
//
// raft passes LogCommand and LogConfiguration entries. Configuration
// entries change nothing here, but their index is recorded like any other,
// so the stored applied index is exact for every entry the FSM sees.
//
// A storage failure panics: see the comment at the panic.
func (s *Store) ApplyBatch(logs []*raft.Log) []any {
	results := make([]any, len(logs))
	if len(logs) == 0 {
		return results
	}
	// Replay after a restart (NoSnapshotRestoreOnStart) hands us entries
	// the durable state already holds; skip the transaction entirely.
	applied := s.applied.Load()
	if logs[len(logs)-1].Index <= applied {
		for i, l := range logs {
			results[i] = &Result{Index: l.Index, Err: ErrAlreadyApplied}
		}
		return results
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		// raft must be shut down before the store is closed. Nothing is
		// recorded, so after a restart these entries are replayed and
		// applied: reporting ErrClosed loses nothing.
		s.log.Warn("entries applied to a closed store", "first_index", logs[0].Index, "count", len(logs))
		for i, l := range logs {
			results[i] = &Result{Index: l.Index, Err: ErrClosed}
		}
		return results
	}

	var m metaState
	var rg *ring
	var mv *move
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := batch{
			tx:      tx,
			kv:      tx.Bucket(bucketKV),
			nodes:   tx.Bucket(bucketNodes),
			removed: tx.Bucket(bucketRemoved),
			meta:    tx.Bucket(bucketMeta),
			group:   s.opts.Group,
			ring:    s.ring.Load(),
			move:    s.move.Load(),
		}
		meta := tx.Bucket(bucketMeta)
		var err error
		if b.m, err = readMeta(meta); err != nil {
			return err
		}
		for i, l := range logs {
			// The index check is what makes a replayed entry a no-op; it
			// reads the applied index written in the same transaction
			// as the effects of every earlier entry.
			if l.Index <= b.m.applied {
				results[i] = &Result{Index: l.Index, Err: ErrAlreadyApplied}
				continue
			}
			res := &Result{Index: l.Index}
			if l.Type == raft.LogCommand {
				if s.applyHook != nil {
					if err := s.applyHook(l.Index); err != nil {
						return err
					}
				}
				if err := b.apply(l.Index, l.Data, res); err != nil {
					return err
				}
			}
			results[i] = res
			b.m.applied, b.m.term = l.Index, l.Term
		}
		m, rg, mv = b.m, b.ring, b.move
		// The applied index commits with the effects: a crash either
		// keeps both or neither, so no entry is lost or applied twice.
		return writeMeta(meta, m)
	})
	if err != nil {
		// bbolt rolled the transaction back, but raft has already counted
		// these entries as applied and would hand us the next batch. Going
		// on would skip them on this replica only: it would diverge from
		// the group and later snapshot the divergence to others. Returning
		// errors in the results would not stop that. So stop the process:
		// on restart raft replays the log from the durable applied index
		// and nothing is lost.
		s.log.Error("storage failure applying raft entries; stopping to avoid divergence",
			"first_index", logs[0].Index, "last_index", logs[len(logs)-1].Index, "error", err)
		panic(fmt.Sprintf("store: applying raft entries %d..%d to %s failed, replica cannot continue: %v",
			logs[0].Index, logs[len(logs)-1].Index, s.path, err))
	}
	s.ring.Store(rg)
	s.move.Store(mv)
	s.publishApplied(m.applied)
	return results
}

// publishApplied makes index visible to AppliedIndex and wakes waiters. It
// runs only after the commit, so a waiter never reads ahead of the disk.
func (s *Store) publishApplied(index uint64) {
	s.applied.Store(index)
	s.wake()
}

// AppliedIndex returns the index of the last entry applied and durable.
func (s *Store) AppliedIndex() uint64 { return s.applied.Load() }

// WaitApplied returns nil once the applied index is at least index, the
// context's error if it ends first, or ErrClosed. Any number of callers may
// wait at once; each batch wakes them all with one channel close.
func (s *Store) WaitApplied(ctx context.Context, index uint64) error {
	for {
		// Take the channel before checking: a batch published after the
		// check closes this very channel, so no wake-up is missed.
		s.waitMu.Lock()
		ch := s.waitCh
		s.waitMu.Unlock()
		if s.applied.Load() >= index {
			return nil
		}
		if s.isClosed() {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// batch is the state of one ApplyBatch transaction.
type batch struct {
	tx                       *bolt.Tx
	kv, nodes, removed, meta *bolt.Bucket
	m                        metaState
	group                    string
	ring                     *ring // the ring in force at the current entry
	move                     *move // the ring change in progress here, nil if none
}

// apply applies one command into res. Outcomes of the command (not found,
// CAS failure, invalid) go into res.Err; a returned error is a storage
// failure that aborts the whole batch. Everything that bbolt could refuse
// is checked by Validate first, so bbolt errors here are real failures.
func (b *batch) apply(index uint64, data []byte, res *Result) error {
	c, err := UnmarshalCommand(data)
	if err == nil && !c.Op.isMove() && c.Op != OpPutBatch {
		// A move command's or a batch's body is checked once, where
		// applyMove or putBatch decodes it (the same checks as
		// Validate's).
		err = c.Validate()
	}
	if err != nil {
		res.Err = err
		return nil
	}
	switch c.Op {
	case OpPut:
		return b.put(c, res)
	case OpPutBatch:
		return b.putBatch(c, res)
	case OpDelete:
		return b.delete(c, res)
	case OpRegisterNode:
		return b.registerNode(c, res)
	case OpRemoveNode:
		if err := b.nodes.Delete([]byte(c.Node.ID)); err != nil {
			return err
		}
		return b.removed.Put([]byte(c.Node.ID), u64(index))
	case OpSetRing:
		return b.setRing(c, res)
	case OpMovePrepare, OpMoveFreeze, OpMoveImport, OpMoveCleanup, OpMoveFinish, OpChangeLog:
		return b.applyMove(c, res)
	}
	return nil
}

func (b *batch) setRing(c Command, res *Result) error {
	// The epoch only moves forward: a delayed or retried command must not
	// take the group back to a ring it already left.
	if c.Ring.Epoch <= b.m.epoch {
		res.Err = &EpochError{Current: b.m.epoch}
		return nil
	}
	// One owner (invariant 3): after the first ring, a group adopts a new
	// ring only through a ring change it is ready for (move.go), so it
	// never takes keys their previous owner still serves.
	if b.m.epoch > 0 || b.move != nil {
		switch {
		case b.move == nil || !sameRing(b.move.spec.To, c.Ring):
			res.Err = fmt.Errorf("%w: group %s has no prepared change to epoch %d", ErrMoveNotReady, b.group, c.Ring.Epoch)
			return nil
		case b.move.ready(b.group) != nil:
			res.Err = b.move.ready(b.group)
			return nil
		}
	}
	cr, err := c.Ring.Build()
	if err != nil { // Validate ran Build already; deterministic
		res.Err = fmt.Errorf("%w: %v", ErrInvalidCommand, err)
		return nil
	}
	enc, err := json.Marshal(c.Ring)
	if err != nil {
		return err
	}
	if err := b.meta.Put(metaRing, enc); err != nil {
		return err
	}
	b.m.epoch = c.Ring.Epoch
	b.ring = &ring{spec: c.Ring, carp: cr}
	return nil
}

func (b *batch) put(c Command, res *Result) error {
	if err := admit(b.group, b.ring, b.move, c.Key, c.RingEpoch); err != nil {
		res.Err = err
		return nil
	}
	var cur uint64
	old := b.kv.Get(c.Key)
	if old != nil {
		v, _, err := decodeRecord(old)
		if err != nil {
			return err
		}
		cur = v
	}
	// Versions start at 1, so cur == 0 exactly when the key is absent and
	// Expect 0 means put-if-absent.
	if c.HasCAS && c.Expect != cur {
		res.Err = &CASError{Current: cur}
		return nil
	}
	oldLen := len(old) // old points into bbolt pages that Put may reuse
	b.m.clock++
	if err := b.kv.Put(c.Key, encodeRecord(b.m.clock, c.Value)); err != nil {
		return err
	}
	if old != nil {
		b.m.dataBytes -= uint64(len(c.Key) + oldLen - 8)
	} else {
		b.m.keys++
	}
	b.m.dataBytes += uint64(len(c.Key) + len(c.Value))
	res.Version = b.m.clock
	// A write to a key that leaves this group in a ring change is logged,
	// so copy rounds after the first read only what changed.
	return b.logLeaving(c.Key, b.m.clock, false)
}

func (b *batch) delete(c Command, res *Result) error {
	if err := admit(b.group, b.ring, b.move, c.Key, c.RingEpoch); err != nil {
		res.Err = err
		return nil
	}
	old := b.kv.Get(c.Key)
	if old == nil {
		// Nothing to delete, whatever the precondition said.
		res.Err = ErrNotFound
		return nil
	}
	cur, val, err := decodeRecord(old)
	if err != nil {
		return err
	}
	if c.HasCAS && c.Expect != cur {
		res.Err = &CASError{Current: cur}
		return nil
	}
	size := uint64(len(c.Key) + len(val))
	if err := b.kv.Delete(c.Key); err != nil {
		return err
	}
	// A delete advances the clock too, so every write has its own point
	// on the clock.
	b.m.clock++
	b.m.keys--
	b.m.dataBytes -= size
	res.Version = cur
	// The delete moves with the key: the new owner must not keep an older
	// copy of it (nothing resurrected).
	return b.logLeaving(c.Key, b.m.clock, true)
}

func (b *batch) registerNode(c Command, res *Result) error {
	id := []byte(c.Node.ID)
	// The registry itself refuses removed IDs, so a join racing a remove
	// cannot resurrect the node whatever order they commit in.
	if b.removed.Get(id) != nil {
		res.Err = ErrNodeRemoved
		return nil
	}
	enc, err := json.Marshal(c.Node)
	if err != nil {
		return err
	}
	if bytes.Equal(b.nodes.Get(id), enc) {
		return nil
	}
	return b.nodes.Put(id, enc)
}
