package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// These tests run the store under a real hashicorp/raft node: they check
// the contract between the two (what ApplyBatch receives, replay after a
// restart with NoSnapshotRestoreOnStart, install of a snapshot).

const raftTimeout = 10 * time.Second

// raftNode is one raft member over the in-memory transport, keeping its log
// and snapshots across restarts like disks would.
type raftNode struct {
	id    raft.ServerID
	dir   string
	logs  *raft.InmemStore
	snaps raft.SnapshotStore
	addr  raft.ServerAddress
	trans *raft.InmemTransport
	store *Store
	raft  *raft.Raft
}

func newRaftNode(t *testing.T, id string) *raftNode {
	t.Helper()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(t.TempDir(), 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	n := &raftNode{id: raft.ServerID(id), dir: t.TempDir(), logs: raft.NewInmemStore(), snaps: snaps}
	n.addr, n.trans = raft.NewInmemTransport("")
	return n
}

func (n *raftNode) start(t *testing.T) {
	t.Helper()
	n.store = openStore(t, n.dir)
	c := raft.DefaultConfig()
	c.LocalID = n.id
	c.Logger = hclog.NewNullLogger()
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 1 << 30 // snapshots only when a test asks
	c.TrailingLogs = 5
	// The store keeps its applied index durably and skips what it holds.
	c.NoSnapshotRestoreOnStart = true
	r, err := raft.NewRaft(c, n.store, n.logs, n.logs, n.snaps, n.trans)
	if err != nil {
		t.Fatal(err)
	}
	n.raft = r
	t.Cleanup(func() { n.stop(t) })
}

// stop shuts raft down, then closes the store: raft must not apply to a
// closed store.
func (n *raftNode) stop(t *testing.T) {
	t.Helper()
	if n.raft == nil {
		return
	}
	if err := n.raft.Shutdown().Error(); err != nil {
		t.Errorf("raft shutdown: %v", err)
	}
	if err := n.store.Close(); err != nil {
		t.Errorf("store close: %v", err)
	}
	n.raft = nil
}

func waitLeader(t *testing.T, r *raft.Raft) {
	t.Helper()
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.RaftState)
		return ok
	})
	r.RegisterObserver(obs)
	defer r.DeregisterObserver(obs)
	deadline := time.After(raftTimeout)
	for r.State() != raft.Leader {
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("no leader elected")
		}
	}
}

func propose(t *testing.T, r *raft.Raft, c Command) *Result {
	t.Helper()
	f := r.Apply(c.Marshal(), raftTimeout)
	if err := f.Error(); err != nil {
		t.Fatalf("raft apply: %v", err)
	}
	res, ok := f.Response().(*Result)
	if !ok {
		t.Fatalf("response %T, want *Result", f.Response())
	}
	return res
}

func TestRaftRestartDoesNotReapplyEntries(t *testing.T) {
	n := newRaftNode(t, "n1")
	n.start(t)
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: n.id, Address: n.addr}}}).Error(); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, n.raft)

	for i := range 20 {
		if r := propose(t, n.raft, put(fmt.Sprintf("k%d", i%7), "v")); r.Err != nil || r.Version != uint64(i+1) {
			t.Fatalf("put %d: %+v", i, r)
		}
	}
	if r := propose(t, n.raft, putCAS("k0", "x", 1)); !errors.Is(r.Err, ErrCASFailed) {
		t.Fatalf("stale CAS through raft: %+v", r)
	}
	// Snapshot and compact, then write more: the restart replays only the
	// log after the snapshot, and all of that is already in the store.
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		propose(t, n.raft, put(fmt.Sprintf("after%d", i), "v"))
	}
	want := stateOf(t, n.store)
	if want.Stats.Clock != 30 {
		t.Fatalf("clock %d, want 30", want.Stats.Clock)
	}
	n.stop(t)

	n.start(t)
	waitLeader(t, n.raft)
	if err := n.raft.Barrier(raftTimeout).Error(); err != nil {
		t.Fatal(err)
	}
	got := stateOf(t, n.store)
	got.Applied, want.Applied = 0, 0 // the new term's entries add to it
	got.Stats.AppliedIndex, want.Stats.AppliedIndex = 0, 0
	sameState(t, got, want)
	if r := propose(t, n.raft, put("k0", "after restart")); r.Version != 31 {
		t.Fatalf("first write after restart has version %d, want 31: entries were applied twice", r.Version)
	}
}

func TestRaftFollowerCatchesUpBySnapshot(t *testing.T) {
	nodes := []*raftNode{newRaftNode(t, "n1"), newRaftNode(t, "n2"), newRaftNode(t, "n3")}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
	leader := nodes[0]
	leader.start(t)
	if err := leader.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: leader.id, Address: leader.addr}}}).Error(); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, leader.raft)
	nodes[1].start(t)
	if err := leader.raft.AddVoter(nodes[1].id, nodes[1].addr, 0, raftTimeout).Error(); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		propose(t, leader.raft, put(fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i)))
	}
	propose(t, leader.raft, del("k07"))
	propose(t, leader.raft, ringCmd(3))
	propose(t, leader.raft, Command{Op: OpRegisterNode, Node: NodeInfo{ID: "n3", RaftAddr: string(nodes[2].addr), HTTPAddr: "h3"}})
	// Compact the log, so the late node can only catch up by snapshot.
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		propose(t, leader.raft, put(fmt.Sprintf("late%d", i), "v"))
	}

	nodes[2].start(t)
	if err := leader.raft.AddVoter(nodes[2].id, nodes[2].addr, 0, raftTimeout).Error(); err != nil {
		t.Fatal(err)
	}
	last := propose(t, leader.raft, put("last", "v"))

	ctx, cancel := context.WithTimeout(context.Background(), raftTimeout)
	defer cancel()
	want := stateOf(t, leader.store, "n3")
	for _, n := range nodes[1:] {
		if err := n.store.WaitApplied(ctx, last.Index); err != nil {
			t.Fatalf("%s did not apply index %d: %v", n.id, last.Index, err)
		}
		got := stateOf(t, n.store, "n3")
		sameState(t, got, want)
	}
	if idx := nodes[2].raft.Stats()["last_snapshot_index"]; idx == "0" || idx == "" {
		t.Fatalf("n3 last_snapshot_index %q: it caught up without installing a snapshot", idx)
	}
}

// The snapshot as raft stores it round-trips through raft's own file
// snapshot store (with its CRC and metadata).
func TestRaftUserSnapshotRestoresIntoFreshStore(t *testing.T) {
	n := newRaftNode(t, "n1")
	n.start(t)
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: n.id, Address: n.addr}}}).Error(); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, n.raft)
	for i := range 30 {
		propose(t, n.raft, put(fmt.Sprintf("k%d", i), "v"))
	}
	f := n.raft.Snapshot()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	meta, rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if meta.Index < n.store.AppliedIndex() {
		t.Fatalf("snapshot at %d behind the store's %d", meta.Index, n.store.AppliedIndex())
	}
	fresh := openStore(t, t.TempDir())
	if err := fresh.Restore(io.NopCloser(rc)); err != nil {
		t.Fatal(err)
	}
	sameState(t, stateOf(t, fresh), stateOf(t, n.store))
}
