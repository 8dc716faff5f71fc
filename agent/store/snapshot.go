package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"sync"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// A snapshot stream is
//
//	magic "carpkvS1" | size uint64 (big endian) | bbolt file (size bytes) | CRC-32C of the file (4 bytes, big endian)
//
// Restore refuses any other magic, and checks the size and checksum before
// bbolt opens the file: bbolt maps the file into memory and trusts its page
// references, so a truncated or damaged file would crash the process
// (SIGBUS or panic) instead of failing the restore.
const snapshotMagic = "carpkvS1"

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Snapshot captures the current state by opening a bbolt read transaction:
// a consistent view of the last committed batch, at no cost. raft calls it
// between batches, so the view is the state at the index raft records for
// the snapshot (which may be past the view's own applied index only by
// entries the FSM never sees, such as no-ops). The view carries its applied
// index, which Restore reinstates.
func (s *Store) Snapshot() (raft.FSMSnapshot, error) {
	tx, err := s.begin()
	if err != nil {
		return nil, err
	}
	return &snapshot{tx: tx, log: s.log}, nil
}

type snapshot struct {
	tx      *bolt.Tx
	log     *slog.Logger
	release sync.Once
}

// Persist streams the snapshot to sink without loading it in memory. It
// takes no store lock: it runs concurrently with ApplyBatch (bbolt serves
// the read transaction alongside the writer) and with Restore (the
// transaction pins the database it was opened on).
func (sn *snapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, 1<<20)
	size := sn.tx.Size()
	hdr := binary.BigEndian.AppendUint64([]byte(snapshotMagic), uint64(size))
	_, err := w.Write(hdr)
	crc := crc32.New(crcTable)
	var n int64
	if err == nil {
		n, err = sn.tx.WriteTo(io.MultiWriter(w, crc))
	}
	if err == nil && n != size {
		err = fmt.Errorf("wrote %d bytes of a %d-byte database", n, size)
	}
	if err == nil {
		_, err = w.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32()))
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		sn.log.Error("persisting snapshot", "error", err)
		_ = sink.Cancel()
		return fmt.Errorf("store: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release ends the read transaction. raft always calls it; extra calls are
// harmless.
func (sn *snapshot) Release() {
	sn.release.Do(func() { _ = sn.tx.Rollback() })
}

// Restore replaces the whole state with a snapshot stream made by Persist.
// The stream goes to a temporary file in the store's directory, which is
// synced, opened and checked; then, under the store lock, it is renamed
// over kv.db and becomes the live database. A crash at any point leaves
// either the old or the new database, both complete.
func (s *Store) Restore(rc io.ReadCloser) error {
	defer func() { _ = rc.Close() }()
	tmp, db, err := s.receiveSnapshot(rc)
	if err != nil {
		return err
	}
	m, err := readMetaFrom(db)
	if err != nil {
		_ = db.Close()
		_ = os.Remove(tmp)
		return err
	}
	rg, mv, err := readRingFrom(db)
	if err != nil {
		_ = db.Close()
		_ = os.Remove(tmp)
		return err
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = db.Close()
		_ = os.Remove(tmp)
		return ErrClosed
	}
	// The rename is the commit point. The new database stays open on the
	// renamed file; bbolt uses its path only in log messages.
	if err := os.Rename(tmp, s.path); err != nil {
		s.mu.Unlock()
		_ = db.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("store: restore: %w", err)
	}
	old := s.db
	s.db = db
	// Close the old database in the background: its Close waits for its
	// open transactions, and one of them can be a snapshot whose Persist
	// is itself waiting for raft's main loop, which is waiting for this
	// Restore. Closing inline would deadlock the node.
	s.retired.Add(1)
	go func() {
		defer s.retired.Done()
		if err := old.Close(); err != nil {
			s.log.Error("closing the database replaced by a restore", "error", err)
		}
	}()
	// Make the rename durable. If this fails, the live state is already
	// the restored one and a crash may bring back the old file, which is
	// also a complete state at its own applied index; the agent's start-up
	// check (applied index against raft's latest snapshot) covers it.
	dirErr := syncDir(s.dir)
	s.mu.Unlock()

	s.ring.Store(rg)
	s.move.Store(mv)
	s.publishApplied(m.applied)
	s.log.Info("store restored from snapshot", "applied_index", m.applied, "clock", m.clock, "keys", m.keys)
	if dirErr != nil {
		return fmt.Errorf("store: restore: sync dir: %w", dirErr)
	}
	return nil
}

// receiveSnapshot writes the stream to a synced temporary file and opens it
// as a checked bbolt database. On error nothing is left behind.
func (s *Store) receiveSnapshot(r io.Reader) (path string, db *bolt.DB, err error) {
	f, err := os.CreateTemp(s.dir, restorePrefix+"*")
	if err != nil {
		return "", nil, fmt.Errorf("store: restore: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	hdr := make([]byte, len(snapshotMagic)+8)
	if _, err = io.ReadFull(r, hdr); err != nil {
		return "", nil, fmt.Errorf("store: restore: reading header: %w", err)
	}
	if magic := hdr[:len(snapshotMagic)]; string(magic) != snapshotMagic {
		return "", nil, fmt.Errorf("store: restore: not a carpkv snapshot (magic %q)", magic)
	}
	size := binary.BigEndian.Uint64(hdr[len(snapshotMagic):])
	crc := crc32.New(crcTable)
	n, err := io.Copy(io.MultiWriter(f, crc), io.LimitReader(r, int64(min(size, math.MaxInt64))))
	if err != nil {
		return "", nil, fmt.Errorf("store: restore: %w", err)
	}
	if uint64(n) != size {
		return "", nil, fmt.Errorf("store: restore: snapshot truncated: %d of %d bytes", n, size)
	}
	trailer := make([]byte, 5)
	switch k, rerr := io.ReadFull(r, trailer); {
	case k < 4:
		return "", nil, fmt.Errorf("store: restore: snapshot truncated: no checksum (%v)", rerr)
	case k > 4:
		return "", nil, errors.New("store: restore: bytes after the snapshot checksum")
	case binary.BigEndian.Uint32(trailer) != crc.Sum32():
		return "", nil, errors.New("store: restore: snapshot checksum mismatch")
	}
	// The data must be on disk before the rename can make it the store.
	if err = f.Sync(); err != nil {
		return "", nil, fmt.Errorf("store: restore: %w", err)
	}
	if err = f.Close(); err != nil {
		return "", nil, fmt.Errorf("store: restore: %w", err)
	}
	if db, err = s.openDB(tmp, false); err != nil {
		return "", nil, err // names the restore file
	}
	return tmp, db, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
