// Package store is the replicated state machine of one carpkv Raft group:
// the keys and values, the group's node registry and its ring epoch, kept
// in a bbolt database at <dir>/kv.db. It implements raft.BatchingFSM.
//
// # Layout
//
// Bucket kv maps a key to its record: the key's version (8 bytes, big
// endian) followed by the value. Bucket meta holds the applied index and
// term, the version clock, the ring epoch, the key count, the live data
// size and the layout's format. Bucket nodes maps a node ID to its JSON
// NodeInfo; bucket removed holds the IDs removed from the group (with the
// index of their removal), which may never register again.
//
// # Versions
//
// The group keeps one monotonic version clock. Every successful put or
// delete advances it by one, and a put's new version is the new clock
// value. A key's version therefore grows with every write and is never
// reused, even after delete and re-create, so a CAS can never succeed
// against a different incarnation of a key (no ABA). When keys later move
// between groups, the receiving group must first raise its clock to at
// least the sender's clock (a command to add then), so that versions stay
// monotonic per key across the move.
//
// # Applied index
//
// Every batch of Raft entries is applied in one bbolt transaction that also
// records the index and term of its last entry. A crash of the process
// therefore never loses an applied entry nor applies one twice: entries at
// or below the recorded index are skipped. (Commits are not fsynced one by
// one; after a crash of the whole machine the file is rebuilt from Raft:
// see durability.go.) This lets the agent run raft with
// NoSnapshotRestoreOnStart: on restart raft replays its log, and the store
// only applies what it does not hold yet.
//
// raft hands the FSM only LogCommand and LogConfiguration entries (not
// LogNoop nor LogBarrier), so the applied index can lag raft's own applied
// index by such entries. WaitApplied is for indexes of entries the FSM
// sees (a write's index); to wait for "everything committed", use raft's
// Barrier or its AppliedIndex.
//
// # Concurrency
//
// raft calls ApplyBatch, Apply, Snapshot and Restore from one goroutine;
// FSMSnapshot.Persist runs concurrently with them. The read methods may be
// called from any goroutine at any time. Readers see committed batches
// only.
package store

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Options configure a Store. The zero value is the production setting.
type Options struct {
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger

	// NoSync never fsyncs the database, not even when it closes. For
	// tests only. (By default commits are not fsynced one by one either,
	// but the file is synced at Close and distrusted after a machine
	// restart: see durability.go.)
	NoSync bool

	// SyncEveryCommit fsyncs every commit (bbolt's default), as if the
	// database were the only copy of the data. It is not: the Raft log
	// is (durability.go). Costs 20-30% of write throughput.
	SyncEveryCommit bool

	// InitialMmapSize is the size of bbolt's initial memory map, in bytes;
	// 0 means DefaultInitialMmapSize. bbolt must remap when the file grows
	// past the map, and a remap waits for every open read transaction. A
	// snapshot being persisted holds a read transaction for the whole
	// stream, so with a small map the writer (and with it Apply, and every
	// reader queued behind the writer) would stall until the snapshot is
	// written. Mapping generously up front makes that rare; the mapping is
	// virtual address space, not memory.
	InitialMmapSize int

	// Group is the shard group this store belongs to. Once a ring is
	// committed, puts and deletes of keys the ring gives to another group
	// are refused with ErrWrongGroup when applied.
	Group string
}

// DefaultInitialMmapSize is the InitialMmapSize used when it is 0.
const DefaultInitialMmapSize = 256 << 20

// Validate reports the first invalid field.
func (o Options) Validate() error {
	if o.InitialMmapSize < 0 {
		return fmt.Errorf("store: Options.InitialMmapSize must not be negative, got %d", o.InitialMmapSize)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.InitialMmapSize == 0 {
		o.InitialMmapSize = DefaultInitialMmapSize
	}
	return o
}

// Stats is a cheap summary of the state.
type Stats struct {
	Keys         int    // number of keys
	Bytes        int64  // size of the database in use (bbolt's high-water mark), in bytes
	DataBytes    int64  // sum of the lengths of all keys and values
	AppliedIndex uint64 // index of the last applied entry
	Clock        uint64 // the version clock: every version issued so far is at most this
	Epoch        uint64 // the ring epoch
}

// Store is the state machine. Create it with Open.
type Store struct {
	dir  string
	path string
	opts Options
	log  *slog.Logger
	lock *os.File // the directory lock (durability.go), held until Close

	// mu guards db and closed. Readers hold it (shared) only while they
	// begin a bbolt transaction: an open transaction pins its database, so
	// Restore can swap the database without waiting for readers or
	// snapshots still streaming the old one.
	mu     sync.RWMutex
	db     *bolt.DB
	closed bool

	// retired counts databases replaced by Restore whose Close waits for
	// their last transactions in the background.
	retired sync.WaitGroup

	// applied mirrors the durable applied index; it is updated after each
	// commit, so it never runs ahead of what is on disk.
	applied atomic.Uint64

	// ring is the applied ring (never nil; epoch 0 and no carp ring before
	// the first OpSetRing), published after each commit like applied.
	ring atomic.Pointer[ring]

	// move is this group's part in the ring change in progress (nil:
	// none), published after each commit like ring.
	move atomic.Pointer[move]

	// waitMu guards waitCh, which is closed and replaced every time applied
	// changes and when the store closes, waking every WaitApplied call.
	waitMu sync.Mutex
	waitCh chan struct{}

	// applyHook, when set by tests, runs before each command is applied in
	// the batch transaction; an error from it is treated as a storage
	// failure.
	applyHook func(index uint64) error
}

const (
	dbFile        = "kv.db"
	restorePrefix = dbFile + ".restore-"

	// lockTimeout bounds the wait for bbolt's file lock: a second process
	// on the same directory makes Open fail instead of hang.
	lockTimeout = time.Second
)

// Open opens or creates the store in dir. Only one Store (in any process)
// may have dir open at a time.
func Open(dir string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{
		dir:    dir,
		path:   filepath.Join(dir, dbFile),
		opts:   opts,
		log:    opts.Logger,
		waitCh: make(chan struct{}),
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	discarded, err := s.prepareDir()
	if err != nil {
		s.lock.Close()
		return nil, err
	}
	db, err := s.openDB(s.path, true)
	if err != nil {
		s.lock.Close()
		return nil, err
	}
	// Leftovers of a Restore interrupted by a crash: the rename is the
	// commit point of a restore, so an unrenamed temp file is garbage.
	// Removed after the lock is held, so a running store's restore is not
	// disturbed.
	s.removeRestoreLeftovers()
	m, err := readMetaFrom(db)
	if err != nil {
		_ = db.Close()
		s.lock.Close()
		return nil, err
	}
	rg, mv, err := readRingFrom(db)
	if err != nil {
		_ = db.Close()
		s.lock.Close()
		return nil, err
	}
	s.db = db
	s.ring.Store(rg)
	s.move.Store(mv)
	s.applied.Store(m.applied)
	s.log.Info("store opened", "path", s.path, "applied_index", m.applied, "clock", m.clock, "keys", m.keys, "discarded_torn_file", discarded)
	return s, nil
}

// openDB opens a bbolt file and checks its layout; create makes the buckets
// of a new, empty file (a restored file must already have them).
func (s *Store) openDB(path string, create bool) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         lockTimeout,
		NoSync:          !s.opts.SyncEveryCommit,
		InitialMmapSize: s.opts.InitialMmapSize,
		// The hashmap freelist stays fast on large, fragmented files, and
		// is not written on every commit (that costs more disk writes
		// than the data itself); bbolt rebuilds it by a scan at open.
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if create {
		err = db.Update(initLayout)
	} else {
		err = db.View(checkLayout)
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	return db, nil
}

func (s *Store) removeRestoreLeftovers() {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.log.Warn("listing store dir", "dir", s.dir, "error", err)
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), restorePrefix) {
			p := filepath.Join(s.dir, e.Name())
			if err := os.Remove(p); err != nil {
				s.log.Warn("removing interrupted restore", "path", p, "error", err)
			}
		}
	}
}

// Close closes the store. It waits for open snapshots to be released and
// ForEach calls to return, so shut raft down first. Later calls return nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	db := s.db
	s.db = nil
	s.mu.Unlock()

	defer s.lock.Close() // last: after the clean marker
	s.wake()
	var err error
	if !s.opts.NoSync {
		err = db.Sync()
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	s.retired.Wait()
	if err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	if !s.opts.NoSync {
		// Only now is the file complete on disk.
		if err := s.markClean(); err != nil {
			return fmt.Errorf("store: close: %w", err)
		}
	}
	return nil
}

// begin starts a read transaction on the current database. The caller
// must roll it back.
func (s *Store) begin() (*bolt.Tx, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, ErrClosed
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return tx, nil
}

func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	tx, err := s.begin()
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// wake wakes every WaitApplied call.
func (s *Store) wake() {
	s.waitMu.Lock()
	close(s.waitCh)
	s.waitCh = make(chan struct{})
	s.waitMu.Unlock()
}
