package node

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"go.etcd.io/bbolt"

	"github.com/carpkv/carpkv/agent/config"
)

// raftStore is Raft's log and stable store: one of the two kinds
// --raft-log-store chooses (docs/design.md, "The Raft log store").
type raftStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// Where each kind keeps its files, under the data directory's raft/.
const (
	boltFile = "raft.db"
	walDir   = "wal"
)

// openRaftStore opens the log store of the kind asked for in raftDir; with
// kind "" the kind the directory holds, or wal in a new one. A directory
// that holds the other kind's log is refused: starting with an empty log
// over an existing one would make this member forget what it acknowledged
// (invariant 2).
func openRaftStore(raftDir, kind string, hlog hclog.Logger, log *slog.Logger) (raftStore, error) {
	boltPath, walPath := filepath.Join(raftDir, boltFile), filepath.Join(raftDir, walDir)
	hasBolt, err := exists(boltPath)
	if err != nil {
		return nil, err
	}
	hasWAL, err := exists(walPath)
	if err != nil {
		return nil, err
	}
	if kind == "" {
		kind = config.LogStoreWAL
		if hasBolt {
			kind = config.LogStoreBolt
		}
	}
	log.Info("raft log store", "kind", kind, "dir", raftDir)
	switch kind {
	case config.LogStoreBolt:
		if hasWAL {
			return nil, fmt.Errorf("%w: %s holds a wal Raft log; start with --raft-log-store %s, or move the data directory away to start this member empty",
				ErrLogStoreMismatch, walPath, config.LogStoreWAL)
		}
		// fsync on every append (NoSync false), so an acknowledged write
		// is on a quorum's disks (invariant 2). Without NoFreelistSync
		// bolt rewrites its whole freelist on every commit: measured ~70
		// KiB written per 256-byte put on a fresh log, growing past 200
		// KiB as the file fragments. The freelist is rebuilt by a scan
		// at open instead (as etcd does).
		s, err := raftboltdb.New(raftboltdb.Options{
			Path: boltPath,
			BoltOptions: &bbolt.Options{
				Timeout:        time.Second, // a second agent on this dir fails, not hangs
				NoFreelistSync: true,
				FreelistType:   bbolt.FreelistMapType,
			},
		})
		if err != nil {
			return nil, fmt.Errorf("open raft log %s: %w", boltPath, err)
		}
		return s, nil
	case config.LogStoreWAL:
		if hasBolt {
			return nil, fmt.Errorf("%w: %s holds a bolt Raft log; start with --raft-log-store %s, or move the data directory away to start this member empty",
				ErrLogStoreMismatch, boltPath, config.LogStoreBolt)
		}
		if err := os.MkdirAll(walPath, 0o700); err != nil {
			return nil, err
		}
		// One fsync per append; segment files, truncated by deleting
		// whole segments. (Its meta store is a bolt file opened without
		// a lock timeout: a second agent on this directory never gets
		// here, the state machine's lock stops it first.)
		s, err := raftwal.Open(walPath, raftwal.WithLogger(hlog.Named("wal")))
		if err != nil {
			return nil, fmt.Errorf("%w: open raft log %s: %v", ErrLogDamaged, walPath, err)
		}
		if err := checkEnds(s); err != nil {
			s.Close()
			return nil, fmt.Errorf("%w: raft log %s: %v; this member cannot start with it: the rest of its group has every committed entry, so take the member out of the group, move this data directory away and let the member join again empty",
				ErrLogDamaged, walPath, err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("unknown Raft log store %q", kind)
}

// checkEnds reads the log's first and last entries, as raft does when it
// starts (where a read error is a panic). raft-wal recovers a torn tail
// (a crash mid-append leaves zeros or a batch whose checksum fails), but
// bytes garbled otherwise can pass for frames; reading them fails.
func checkEnds(s raftStore) error {
	first, err := s.FirstIndex()
	if err != nil {
		return err
	}
	last, err := s.LastIndex()
	if err != nil {
		return err
	}
	for _, i := range []uint64{first, last} {
		if i == 0 {
			continue
		}
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			return fmt.Errorf("reading entry %d: %w", i, err)
		}
	}
	return nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}
