// Package node is one member of a carpkv shard group: the hashicorp/raft
// instance, its log and snapshot stores on disk, and the replicated state
// machine (agent/store). It offers linearizable reads and writes, stale
// reads, and membership changes; the HTTP layer (agent/server) sits on top.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/carpkv/carpkv/agent/config"
	"github.com/carpkv/carpkv/agent/store"
)

// Node is a running group member. Its methods are safe for concurrent use.
type Node struct {
	cfg    config.Config
	log    *slog.Logger
	raft   *raft.Raft
	store  *store.Store
	logs   raft.LogStore // the log cache, for the read-index scan
	stable raftStore     // the log store under the cache (logstore.go)
	trans  *raft.NetworkTransport
	snaps  raft.SnapshotStore

	// barrierTerm is the latest term in which this node, as leader, has
	// seen an entry of its own term applied: only then is its commit index
	// current and safe to serve reads from (Raft thesis §6.4).
	barrierTerm atomic.Uint64
	barrierMu   sync.Mutex

	metrics *Metrics

	// results serves writes in flight when leadership is lost
	// (outcome.go): what the store applied at its recent indexes.
	results *recentResults
	// applying counts Apply calls under way; handoff counts leadership
	// hand-offs this node is making (a transfer asked for, a graceful
	// stop): while one runs, Apply appends nothing (write.go).
	applying atomic.Int32
	handoff  atomic.Int32

	closeOnce sync.Once
	stop      chan struct{}
	wg        sync.WaitGroup
}

// Open starts the node: opens (or creates) the data dir, starts Raft, and
// bootstraps a new group if cfg.Bootstrap and there is no Raft state yet.
// cfg must have passed Validate and EnsureNodeID.
func Open(cfg config.Config, log *slog.Logger) (*Node, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: log, stop: make(chan struct{}), metrics: newMetrics(), results: newRecentResults()}
	if err := n.open(); err != nil {
		n.closeStores()
		return nil, err
	}
	n.wg.Add(1)
	go n.watchLeadership()
	return n, nil
}

func (n *Node) open() error {
	raftDir := filepath.Join(n.cfg.DataDir, "raft")
	kvDir := filepath.Join(n.cfg.DataDir, "kv")
	for _, d := range []string{raftDir, kvDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
	}
	var err error
	if n.store, err = store.Open(kvDir, store.Options{Logger: n.log.With("component", "store"), Group: n.cfg.Group, SyncEveryCommit: n.cfg.StoreSyncEveryCommit}); err != nil {
		return fmt.Errorf("open state machine: %w", err)
	}
	hlog := hclog.New(&hclog.LoggerOptions{
		Name:       "raft",
		Level:      hclog.LevelFromString(raftLogLevel(n.cfg.LogLevel)),
		Output:     os.Stderr,
		JSONFormat: n.cfg.LogFormat == "json",
	})
	if n.stable, err = openRaftStore(raftDir, n.cfg.RaftLogStore, hlog, n.log); err != nil {
		return err
	}
	if n.logs, err = raft.NewLogCache(4096, n.stable); err != nil {
		return err
	}
	if n.snaps, err = raft.NewFileSnapshotStoreWithLogger(raftDir, n.cfg.Raft.SnapshotRetain, hlog); err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}
	adv, err := net.ResolveTCPAddr("tcp", n.cfg.RaftAdvertise)
	if err != nil {
		return fmt.Errorf("raft advertise address: %w", err)
	}
	// Raft's TCP transport, on a stream layer that does not reuse pooled
	// connections the peer has closed (stream.go).
	st, err := newStream(n.cfg.RaftBind, adv)
	if err != nil {
		return fmt.Errorf("raft transport on %s: %w", n.cfg.RaftBind, err)
	}
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: st, MaxPool: 8, Timeout: 10 * time.Second, Logger: hlog,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = n.cfg.Raft.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.Raft.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.Raft.LeaderLeaseTimeout
	rc.CommitTimeout = n.cfg.Raft.CommitTimeout
	rc.MaxAppendEntries = n.cfg.Raft.MaxAppendEntries
	rc.SnapshotThreshold = n.cfg.Raft.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.Raft.SnapshotInterval
	rc.TrailingLogs = n.cfg.Raft.TrailingLogs
	rc.BatchApplyCh = true
	// The state machine is persistent and records its applied index with
	// every batch, so after a restart it already holds everything up to
	// that index: restoring the latest snapshot would only go back in time
	// and replay. Restore only when the state machine is behind the
	// snapshot (for example its directory was lost).
	snapIndex, err := latestSnapshotIndex(n.snaps)
	if err != nil {
		return err
	}
	rc.NoSnapshotRestoreOnStart = n.store.AppliedIndex() >= snapIndex
	if err := raft.ValidateConfig(rc); err != nil {
		return fmt.Errorf("raft config: %w", err)
	}

	hasState, err := raft.HasExistingState(n.logs, n.stable, n.snaps)
	if err != nil {
		return err
	}
	if n.raft, err = raft.NewRaft(rc, fsm{Store: n.store, results: n.results}, n.logs, n.stable, n.snaps, n.trans); err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	if n.cfg.Bootstrap && !hasState {
		n.log.Info("bootstrapping a new group", "group", n.cfg.Group, "node", n.cfg.NodeID)
		f := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: rc.LocalID, Address: n.trans.LocalAddr(),
		}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	return nil
}

func latestSnapshotIndex(s raft.SnapshotStore) (uint64, error) {
	list, err := s.List()
	if err != nil {
		return 0, fmt.Errorf("list snapshots: %w", err)
	}
	if len(list) == 0 {
		return 0, nil
	}
	return list[0].Index, nil
}

func raftLogLevel(l string) string {
	if l == "debug" {
		return "debug"
	}
	// Raft's info level narrates every heartbeat failure; keep it one
	// level quieter than ours unless debugging.
	if l == "info" {
		return "warn"
	}
	return l
}

// Config returns the node's configuration.
func (n *Node) Config() config.Config { return n.cfg }

// Store exposes the state machine for local (stale) reads and statistics.
func (n *Node) Store() *store.Store { return n.store }

// Raft exposes the raft instance to tests and metrics.
func (n *Node) Raft() *raft.Raft { return n.raft }

// Metrics returns the node's Prometheus collectors.
func (n *Node) Metrics() *Metrics { return n.metrics }

// Shutdown stops the node gracefully: a leader first hands leadership to an
// up-to-date follower (so the group does not wait an election timeout),
// then Raft stops, and the stores close. Safe to call more than once.
func (n *Node) Shutdown(ctx context.Context) error {
	var err error
	n.closeOnce.Do(func() {
		close(n.stop)
		// From here on no write is appended (a stopped Raft would leave
		// its outcome unknown); clients go to the next leader.
		n.handoff.Add(1)
		if n.raft.State() == raft.Leader && n.voters() > 1 {
			n.log.Info("transferring leadership before shutdown")
			if terr := waitFuture(ctx, n.raft.LeadershipTransfer()); terr != nil {
				n.log.Warn("leadership transfer failed; stopping anyway", "err", terr)
			}
		}
		// Writes in flight commit, or learn their fate from the new
		// leader's log (outcome.go); give them a moment before Raft stops.
		n.waitApplies(ctx, 2*time.Second)
		if serr := n.raft.Shutdown().Error(); serr != nil {
			err = serr
		}
		n.wg.Wait()
		n.closeStores()
	})
	return err
}

func (n *Node) closeStores() {
	if n.trans != nil {
		n.trans.Close()
	}
	if n.stable != nil {
		n.stable.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
}

func (n *Node) voters() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			c++
		}
	}
	return c
}

// waitFuture waits for f or ctx, whichever ends first.
func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// watchLeadership makes every new leader register its own HTTP address in
// the replicated registry (so followers can name it in not_leader hints)
// and pass its read barrier early, so the first read of a term is fast.
func (n *Node) watchLeadership() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case isLeader := <-n.raft.LeaderCh():
			n.metrics.leaderChanges.Inc()
			if !isLeader {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*n.cfg.Raft.HeartbeatTimeout)
			if err := n.ensureBarrier(ctx); err != nil {
				n.log.Warn("leader barrier failed", "err", err)
			}
			if err := n.registerSelf(ctx); err != nil {
				n.log.Warn("could not register own address", "err", err)
			}
			cancel()
		}
	}
}
