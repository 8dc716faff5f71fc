package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// # Durability
//
// The Raft log (fsync on every append) and Raft's snapshots are the durable
// record of the group; this database is derived from them. So its commits
// are not fsynced one by one (Options.SyncEveryCommit restores that):
// bbolt writes every commit to the page cache, the database file is synced
// when the store closes, and two small files in the directory say whether
// the file on disk can be trusted at the next Open:
//
//   - kv.clean exists only between a clean Close (after the sync) and the
//     next Open: everything is on disk.
//   - kv.boot holds the kernel's boot ID of the last Open. If the process
//     died (kill -9, a crash, OOM) but the machine did not restart, every
//     commit is still in the page cache or already on disk: the file is
//     complete, as after a clean close.
//
// Otherwise (the machine lost power or the kernel crashed while the store
// was open) an unsynced file may be torn, so Open discards it and the
// store starts empty; Raft then restores its latest snapshot and replays
// the log after it, exactly as for a new member. A discarded file costs a
// replay, never an acknowledged write: a write is acknowledged only once
// it is in the fsynced logs of a quorum.
//
// Measured on the 2-core test machine (docs/benchmarks.md): one fsynced
// bbolt commit per applied batch cost 20-30% of write throughput and 0.3
// ms of a single client's write latency.
const (
	cleanFile = "kv.clean"
	bootFile  = "kv.boot"
	lockFile  = "kv.lock"
)

// BootIDPath is where the kernel publishes the ID of the current boot.
// Tests point it elsewhere to simulate a machine restart; the agent lets
// CARPKV_BOOT_ID_FILE do the same for its process tests.
var BootIDPath = "/proc/sys/kernel/random/boot_id"

// bootID returns the current boot ID, or "" if it cannot be read (then a
// file left open is never trusted).
func bootID() string {
	b, err := os.ReadFile(BootIDPath)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// prepareDir decides whether the database file left in the directory can
// be trusted, removes it if not, and records that the store is open in
// this boot. It returns whether it discarded a file.
func (s *Store) prepareDir() (discarded bool, err error) {
	clean, err := exists(filepath.Join(s.dir, cleanFile))
	if err != nil {
		return false, err
	}
	have, err := exists(s.path)
	if err != nil {
		return false, err
	}
	boot := bootID()
	recorded, err := os.ReadFile(filepath.Join(s.dir, bootFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("store: %w", err)
	}
	// No boot file: the file was written by a carpkv that fsynced every
	// commit (or is not ours at all, which the layout check refuses).
	legacy := errors.Is(err, fs.ErrNotExist)
	sameBoot := boot != "" && strings.TrimSpace(string(recorded)) == boot
	if have && !clean && !legacy && !sameBoot {
		s.log.Warn("store: the machine restarted while the store was open, so its file may be torn; "+
			"discarding it: Raft restores the latest snapshot and replays its log", "path", s.path)
		if err := os.Remove(s.path); err != nil {
			return false, fmt.Errorf("store: discarding %s: %w", s.path, err)
		}
		discarded = true
	}
	// Record this boot before the clean marker goes, so that at every
	// moment one of the two vouches for the file (or no file exists).
	if err := writeFileSync(filepath.Join(s.dir, bootFile), []byte(boot+"\n")); err != nil {
		return discarded, err
	}
	if err := os.Remove(filepath.Join(s.dir, cleanFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return discarded, fmt.Errorf("store: %w", err)
	}
	return discarded, syncDir(s.dir)
}

// markClean records that the database file is complete on disk; call it
// after the last commit has been synced and the file closed.
func (s *Store) markClean() error {
	if err := writeFileSync(filepath.Join(s.dir, cleanFile), nil); err != nil {
		return err
	}
	return syncDir(s.dir)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("store: %w", err)
}

// writeFileSync replaces path with data, durably: a temporary file,
// fsynced, renamed over path (the caller syncs the directory).
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// lockDir takes an exclusive lock on the store directory for the life of
// the Store (released by Close, or by the kernel when the process dies),
// so that a second store never touches the markers or the file of a live
// one. It waits up to lockTimeout.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	deadline := time.Now().Add(lockTimeout)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("store: %s is in use by another process: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
