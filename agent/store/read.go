package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Get returns a copy of key's value and its version, or ErrNotFound. It
// reads the local committed state: linearizability is the caller's job.
func (s *Store) Get(key []byte) (value []byte, version uint64, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		rec := tx.Bucket(bucketKV).Get(key)
		if rec == nil {
			return ErrNotFound
		}
		v, val, err := decodeRecord(rec)
		if err != nil {
			return err
		}
		// bbolt's memory is only valid inside the transaction.
		value = append(make([]byte, 0, len(val)), val...)
		version = v
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return value, version, nil
}

// GetMany reads keys in one read transaction and calls fn for each, in
// order, with a copy of its value and its version or ErrNotFound, until fn
// returns false.
func (s *Store) GetMany(keys [][]byte, fn func(i int, value []byte, version uint64, err error) bool) error {
	return s.view(func(tx *bolt.Tx) error {
		kv := tx.Bucket(bucketKV)
		for i, key := range keys {
			rec := kv.Get(key)
			if rec == nil {
				if !fn(i, nil, 0, ErrNotFound) {
					return nil
				}
				continue
			}
			v, val, err := decodeRecord(rec)
			if err != nil {
				return err
			}
			if !fn(i, append(make([]byte, 0, len(val)), val...), v, nil) {
				return nil
			}
		}
		return nil
	})
}

// ForEach calls fn for every key in byte order, with a consistent view of
// one committed state, and stops at fn's first error, which it returns.
// key and value are reused between calls: copy them to keep them. The read
// transaction stays open for the whole walk, which can delay a bbolt remap
// (see Options.InitialMmapSize); for the same reason fn must not call the
// Store's methods: a second read transaction in the same goroutine can
// deadlock with a writer waiting to remap.
func (s *Store) ForEach(fn func(key, value []byte, version uint64) error) error {
	return s.view(func(tx *bolt.Tx) error {
		var kbuf, vbuf []byte
		return tx.Bucket(bucketKV).ForEach(func(k, rec []byte) error {
			v, val, err := decodeRecord(rec)
			if err != nil {
				return err
			}
			// Copies, so a caller keeping them past fn never touches
			// bbolt's memory after the transaction.
			kbuf = append(kbuf[:0], k...)
			vbuf = append(vbuf[:0], val...)
			return fn(kbuf, vbuf, v)
		})
	})
}

// Nodes returns the node registry, ordered by ID.
func (s *Store) Nodes() ([]NodeInfo, error) {
	var nodes []NodeInfo
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			var n NodeInfo
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("store: node %q: %w", k, err)
			}
			nodes = append(nodes, n)
			return nil
		})
	})
	return nodes, err
}

// Node returns the registry entry of id.
func (s *Store) Node(id string) (NodeInfo, bool) {
	var n NodeInfo
	found := false
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketNodes).Get([]byte(id))
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &n); err != nil {
			return fmt.Errorf("store: node %q: %w", id, err)
		}
		found = true
		return nil
	})
	if err != nil {
		s.log.Error("reading node registry", "id", id, "error", err)
		return NodeInfo{}, false
	}
	return n, found
}

// IsRemoved reports whether id was removed from the group. A read error is
// logged and reported as removed: refusing a join is the safe side.
func (s *Store) IsRemoved(id string) bool {
	removed := true
	err := s.view(func(tx *bolt.Tx) error {
		removed = tx.Bucket(bucketRemoved).Get([]byte(id)) != nil
		return nil
	})
	if err != nil {
		s.log.Error("reading removed nodes", "id", id, "error", err)
		return true
	}
	return removed
}

// Epoch returns the applied ring epoch (0 before the first ring).
func (s *Store) Epoch() uint64 { return s.ring.Load().spec.Epoch }

// Ring returns the applied ring (Epoch 0 and no groups before the first
// OpSetRing).
func (s *Store) Ring() RingSpec { return s.ring.Load().spec }

// CheckOwner applies the ownership rule of puts and deletes to a read: it
// returns a *RingError (ErrWrongGroup or ErrStaleRing) when this group must
// not serve key under its applied ring for a client at clientEpoch.
func (s *Store) CheckOwner(key []byte, clientEpoch uint64) error {
	// Both pointers are published after each commit; a read between the
	// two stores sees the newer ring with the older move or the reverse,
	// and admit is safe for both (a frozen move only refuses more).
	return admit(s.opts.Group, s.ring.Load(), s.move.Load(), key, clientEpoch)
}

// Stats returns a summary of the state in O(1). On a read error (logged)
// only AppliedIndex is filled in.
func (s *Store) Stats() Stats {
	var st Stats
	err := s.view(func(tx *bolt.Tx) error {
		m, err := readMeta(tx.Bucket(bucketMeta))
		if err != nil {
			return err
		}
		st = Stats{
			Keys:         int(m.keys),
			Bytes:        tx.Size(),
			DataBytes:    int64(m.dataBytes),
			AppliedIndex: m.applied,
			Clock:        m.clock,
			Epoch:        m.epoch,
		}
		return nil
	})
	if err != nil {
		s.log.Error("reading stats", "error", err)
		return Stats{AppliedIndex: s.AppliedIndex()}
	}
	return st
}
