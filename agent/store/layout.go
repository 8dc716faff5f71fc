package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// layoutFormat is stored in meta; Open refuses any other value, so a future
// layout change cannot be misread by this code.
const layoutFormat = 1

// Bucket and meta key names: on disk, never rename them.
var (
	bucketKV      = []byte("kv")
	bucketMeta    = []byte("meta")
	bucketNodes   = []byte("nodes")
	bucketRemoved = []byte("removed")
	// bucketMoveTombs exists during a ring change only, in a group that
	// receives keys: key -> version of the deletion it imported (move.go).
	bucketMoveTombs = []byte("move_tombs")
	// bucketMoveLog exists during a ring change only, in a group that gives
	// keys away: leaving key -> version of its last write since the change
	// was prepared and whether that write deleted it (move.go).
	bucketMoveLog = []byte("move_log")

	metaFormat       = []byte("format")
	metaAppliedIndex = []byte("applied_index")
	metaAppliedTerm  = []byte("applied_term")
	metaClock        = []byte("clock")
	metaEpoch        = []byte("epoch")
	metaRing         = []byte("ring") // JSON RingSpec; absent before the first ring
	metaKeys         = []byte("keys")
	metaDataBytes    = []byte("data_bytes")
	metaMove         = []byte("move")        // JSON MoveSpec: this group's part in a ring change
	metaChange       = []byte("change")      // JSON wire.RingChangeStatus: the change this group coordinates
	metaChangeLast   = []byte("change_last") // JSON wire.RingChangeStatus: the last change it coordinated
)

func initLayout(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketKV, bucketMeta, bucketNodes, bucketRemoved} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if meta.Get(metaFormat) == nil {
		if k, _ := meta.Cursor().First(); k != nil {
			return errors.New("meta bucket has no format: not a carpkv store")
		}
		return meta.Put(metaFormat, u64(layoutFormat))
	}
	return checkLayout(tx)
}

func checkLayout(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketKV, bucketMeta, bucketNodes, bucketRemoved} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("missing bucket %q: not a carpkv store", name)
		}
	}
	f, err := getU64(tx.Bucket(bucketMeta), metaFormat)
	if err != nil {
		return err
	}
	if f != layoutFormat {
		return fmt.Errorf("layout format %d, this build reads %d", f, layoutFormat)
	}
	return nil
}

// metaState is the meta bucket in memory during a batch.
type metaState struct {
	applied, term, clock, epoch, keys, dataBytes uint64
}

func readMetaFrom(db *bolt.DB) (m metaState, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		m, err = readMeta(tx.Bucket(bucketMeta))
		return err
	})
	return m, err
}

func readRingFrom(db *bolt.DB) (r *ring, mv *move, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		if r, err = loadRing(tx.Bucket(bucketMeta).Get(metaRing)); err != nil {
			return err
		}
		mv, err = loadMove(tx.Bucket(bucketMeta).Get(metaMove))
		return err
	})
	return r, mv, err
}

func readMeta(b *bolt.Bucket) (metaState, error) {
	var m metaState
	for _, f := range []struct {
		key []byte
		dst *uint64
	}{
		{metaAppliedIndex, &m.applied},
		{metaAppliedTerm, &m.term},
		{metaClock, &m.clock},
		{metaEpoch, &m.epoch},
		{metaKeys, &m.keys},
		{metaDataBytes, &m.dataBytes},
	} {
		v, err := getU64(b, f.key)
		if err != nil {
			return metaState{}, err
		}
		*f.dst = v
	}
	return m, nil
}

func writeMeta(b *bolt.Bucket, m metaState) error {
	for _, f := range []struct {
		key []byte
		v   uint64
	}{
		{metaAppliedIndex, m.applied},
		{metaAppliedTerm, m.term},
		{metaClock, m.clock},
		{metaEpoch, m.epoch},
		{metaKeys, m.keys},
		{metaDataBytes, m.dataBytes},
	} {
		if err := b.Put(f.key, u64(f.v)); err != nil {
			return err
		}
	}
	return nil
}

// getU64 reads a meta counter; absent means 0 (a new store).
func getU64(b *bolt.Bucket, key []byte) (uint64, error) {
	v := b.Get(key)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("store: corrupt meta %q: %d bytes", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

// encodeRecord builds a kv record in a fresh slice: bbolt keeps a reference
// to a Put value until the transaction commits.
func encodeRecord(version uint64, value []byte) []byte {
	rec := make([]byte, 8+len(value))
	binary.BigEndian.PutUint64(rec, version)
	copy(rec[8:], value)
	return rec
}

func decodeRecord(rec []byte) (version uint64, value []byte, err error) {
	if len(rec) < 8 {
		return 0, nil, fmt.Errorf("store: corrupt record of %d bytes", len(rec))
	}
	return binary.BigEndian.Uint64(rec), rec[8:], nil
}
