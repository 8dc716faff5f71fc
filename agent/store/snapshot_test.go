package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// state is everything a replica's state machine holds.
type state struct {
	Contents map[string]entry
	Stats    Stats
	Nodes    []NodeInfo
	Removed  map[string]bool
	Applied  uint64
}

func stateOf(t *testing.T, s *Store, ids ...string) state {
	t.Helper()
	st := s.Stats()
	st.Bytes = 0 // the file size depends on the file's history
	removed := map[string]bool{}
	for _, id := range ids {
		removed[id] = s.IsRemoved(id)
	}
	return state{contents(t, s), st, must(s.Nodes()), removed, s.AppliedIndex()}
}

func sameState(t *testing.T, got, want state) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("state differs:\n got %+v\nwant %+v", got, want)
	}
}

func populate(t *testing.T, s *Store) {
	t.Helper()
	fill(t, s, "key", 500)
	applyNext(t, s,
		del("key0007"), put("key0008", "rewritten"), put("\x00\xff", "\xff\x00"),
		ringCmd(4),
		Command{Op: OpRegisterNode, Node: NodeInfo{ID: "n1", RaftAddr: "r1", HTTPAddr: "h1"}},
		Command{Op: OpRegisterNode, Node: NodeInfo{ID: "n2", RaftAddr: "r2", HTTPAddr: "h2"}},
		Command{Op: OpRemoveNode, Node: NodeInfo{ID: "n2"}},
	)
}

func TestSnapshotRestoreIntoFreshStore(t *testing.T) {
	src := openStore(t, t.TempDir())
	populate(t, src)
	want := stateOf(t, src, "n1", "n2")

	dst := openStore(t, t.TempDir())
	restore(t, dst, persist(t, src))
	sameState(t, stateOf(t, dst, "n1", "n2"), want)

	// Both replicas go on identically from there.
	next := logs(want.Applied+1, put("after", "x"), del("key0001"))
	for _, s := range []*Store{src, dst} {
		rs := results(t, s.ApplyBatch(next))
		if rs[0].Version != want.Stats.Clock+1 || rs[1].Err != nil {
			t.Fatalf("after restore: %+v %+v", rs[0], rs[1])
		}
	}
	sameState(t, stateOf(t, dst, "n1", "n2"), stateOf(t, src, "n1", "n2"))

	// And the restored state is what a restart finds.
	dir := dst.dir
	_ = dst.Close()
	sameState(t, stateOf(t, openStore(t, dir), "n1", "n2"), stateOf(t, src, "n1", "n2"))
}

func TestRestoreReplacesAllState(t *testing.T) {
	src := openStore(t, t.TempDir())
	applyNext(t, src, put("shared", "from-src"), ringCmd(2))
	want := stateOf(t, src, "n9")

	dst := openStore(t, t.TempDir())
	fill(t, dst, "only-target", 50)
	applyNext(t, dst, put("shared", "from-dst"), ringCmd(10),
		Command{Op: OpRegisterNode, Node: NodeInfo{ID: "n9"}}, Command{Op: OpRemoveNode, Node: NodeInfo{ID: "n8"}})
	restore(t, dst, persist(t, src))

	got := stateOf(t, dst, "n9")
	sameState(t, got, want)
	if dst.Epoch() != 2 || dst.IsRemoved("n8") || dst.AppliedIndex() != 2 {
		t.Fatalf("epoch %d removed(n8) %v applied %d: target state survived the restore",
			dst.Epoch(), dst.IsRemoved("n8"), dst.AppliedIndex())
	}
}

func TestRestoreWakesWaiters(t *testing.T) {
	src := openStore(t, t.TempDir())
	fill(t, src, "k", 10)
	dst := openStore(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- dst.WaitApplied(ctx, 10) }()
	restore(t, dst, persist(t, src))
	if err := <-res; err != nil {
		t.Fatalf("WaitApplied across Restore: %v", err)
	}
}

func TestRestoreRejectsBadStreams(t *testing.T) {
	good := persist(t, func() *Store { s := openStore(t, t.TempDir()); fill(t, s, "k", 20); return s }())
	foreign := func() []byte {
		path := filepath.Join(t.TempDir(), "other.db")
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
		_ = db.Close()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return frame(b)
	}()
	tests := []struct {
		name   string
		stream []byte
	}{
		{"empty", nil},
		{"short header", []byte("carp")},
		{"wrong magic", append([]byte("carpkvS9"), good[len(snapshotMagic):]...)},
		{"magic only", []byte(snapshotMagic)},
		{"empty file", frame(nil)},
		{"garbage", frame(bytes.Repeat([]byte{0xab}, 10000))},
		{"truncated in the meta pages", good[:16+4096+100]},
		{"truncated in half", good[:len(good)/2]},
		{"checksum missing", good[:len(good)-4]},
		{"last byte missing", good[:len(good)-1]},
		{"trailing byte", append(append([]byte{}, good...), 0)},
		{"flipped bit", flip(good, len(good)/2)},
		{"bad checksum", flip(good, len(good)-1)},
		{"size too big", flip(good, 8)},
		{"foreign bbolt file", foreign},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			populate(t, s)
			want := stateOf(t, s, "n2")
			err := s.Restore(nopCloser{bytes.NewReader(tc.stream)})
			if err == nil {
				t.Fatal("Restore accepted a bad stream")
			}
			sameState(t, stateOf(t, s, "n2"), want)
			entries, _ := os.ReadDir(s.dir)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), restorePrefix) {
					t.Fatalf("failed restore left %s behind", e.Name())
				}
			}
		})
	}
}

// frame wraps a file in a snapshot stream with a correct size and checksum.
func frame(file []byte) []byte {
	b := binary.BigEndian.AppendUint64([]byte(snapshotMagic), uint64(len(file)))
	b = append(b, file...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(file, crcTable))
}

func flip(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 0x40
	return c
}

func TestPersistCancelsSinkOnWriteError(t *testing.T) {
	s := openStore(t, t.TempDir())
	fill(t, s, "k", 100)
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &memSink{failAfter: 100}
	if err := snap.Persist(sink); err == nil {
		t.Fatal("Persist succeeded on a failing sink")
	}
	if !sink.canceled || sink.closed {
		t.Fatalf("sink canceled=%v closed=%v, want canceled only", sink.canceled, sink.closed)
	}
}

// raft persists a snapshot while it keeps applying: the snapshot holds the
// state at Snapshot time, and neither side blocks the other.
func TestPersistRunsConcurrentlyWithApply(t *testing.T) {
	s := openStore(t, t.TempDir())
	populate(t, s)
	want := stateOf(t, s, "n1", "n2")
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	persisted := make(chan error, 1)
	go func() { persisted <- snap.Persist(&sink) }()
	for i := range 50 {
		applyNext(t, s, put(fmt.Sprintf("during%d", i), "v"), del(fmt.Sprintf("key%04d", 100+i)))
	}
	if err := <-persisted; err != nil {
		t.Fatal(err)
	}
	snap.Release()
	snap.Release() // raft calls it once; more must be harmless

	dst := openStore(t, t.TempDir())
	restore(t, dst, sink.Bytes())
	sameState(t, stateOf(t, dst, "n1", "n2"), want)
}

// A follower can be asked to install a snapshot while it still persists one
// of its own: raft's main loop waits for Restore, and the persisting
// goroutine can be waiting for raft's main loop. Restore must therefore
// not wait for open snapshots.
func TestRestoreDoesNotWaitForOpenSnapshots(t *testing.T) {
	a := openStore(t, t.TempDir())
	populate(t, a)
	wantOld := stateOf(t, a, "n1", "n2")
	open, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	b := openStore(t, t.TempDir())
	fill(t, b, "other", 30)
	stream := persist(t, b)

	done := make(chan error, 1)
	go func() { done <- a.Restore(nopCloser{bytes.NewReader(stream)}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Restore blocked on an unreleased snapshot")
	}
	sameState(t, stateOf(t, a, "n1", "n2"), stateOf(t, b, "n1", "n2"))

	// The old snapshot still streams the state it was taken at.
	var sink memSink
	if err := open.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	open.Release()
	c := openStore(t, t.TempDir())
	restore(t, c, sink.Bytes())
	sameState(t, stateOf(t, c, "n1", "n2"), wantOld)
}

// Reads during a restore see either the whole old state or the whole new
// one, and never fail.
func TestConcurrentGetsDuringRestore(t *testing.T) {
	const keys = 50
	mk := func(val string) []byte {
		s := openStore(t, t.TempDir())
		cmds := make([]Command, keys)
		for i := range cmds {
			cmds[i] = put(fmt.Sprintf("k%d", i), val)
		}
		applyNext(t, s, cmds...)
		return persist(t, s)
	}
	streams := [][]byte{mk("old"), mk("new")}
	s := openStore(t, t.TempDir())
	restore(t, s, streams[0])

	var stop atomic.Bool
	started := make(chan struct{}, 4)
	reader := func() {
		first := true
		for !stop.Load() {
			for k := range keys {
				v, _, err := s.Get(fmt.Appendf(nil, "k%d", k))
				if err != nil || (string(v) != "old" && string(v) != "new") {
					t.Errorf("Get during restore = %q, %v", v, err)
					return
				}
			}
			if st := s.Stats(); st.Keys != keys {
				t.Errorf("Stats during restore = %+v", st)
				return
			}
			if _, err := s.Nodes(); err != nil {
				t.Errorf("Nodes during restore: %v", err)
				return
			}
			if first {
				started <- struct{}{}
				first = false
			}
		}
	}
	forEacher := func() {
		for !stop.Load() {
			n := 0
			if err := s.ForEach(func(k, v []byte, _ uint64) error { n++; return nil }); err != nil || n != keys {
				t.Errorf("ForEach during restore: %d keys, %v", n, err)
				return
			}
		}
	}
	wait := runAll(reader, reader, reader, reader, forEacher)
	for range 4 {
		<-started
	}
	for i := range 10 {
		restore(t, s, streams[(i+1)%2])
	}
	stop.Store(true)
	wait()
	if v, _, err := s.Get([]byte("k0")); err != nil || string(v) != "old" {
		t.Fatalf("after the last restore: %q, %v; want old", v, err)
	}
}

func TestRestoreAfterCloseFails(t *testing.T) {
	src := openStore(t, t.TempDir())
	fill(t, src, "k", 3)
	s := openStore(t, t.TempDir())
	_ = s.Close()
	if err := s.Restore(nopCloser{bytes.NewReader(persist(t, src))}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Restore after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Snapshot after Close: %v, want ErrClosed", err)
	}
}
