package store

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{NoSync: true, Group: testGroup})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// logs turns commands into consecutive LogCommand entries from index first.
func logs(first uint64, cmds ...Command) []*raft.Log {
	out := make([]*raft.Log, len(cmds))
	for i, c := range cmds {
		out[i] = &raft.Log{Index: first + uint64(i), Term: 1, Type: raft.LogCommand, Data: c.Marshal()}
	}
	return out
}

// applyNext applies cmds as one batch right after the store's applied index.
func applyNext(t testing.TB, s *Store, cmds ...Command) []*Result {
	t.Helper()
	return results(t, s.ApplyBatch(logs(s.AppliedIndex()+1, cmds...)))
}

func results(t testing.TB, out []any) []*Result {
	t.Helper()
	rs := make([]*Result, len(out))
	for i, r := range out {
		res, ok := r.(*Result)
		if !ok {
			t.Fatalf("result %d is %T, want *Result", i, r)
		}
		rs[i] = res
	}
	return rs
}

func put(k, v string) Command { return Command{Op: OpPut, Key: []byte(k), Value: []byte(v)} }
func putCAS(k, v string, expect uint64) Command {
	return Command{Op: OpPut, Key: []byte(k), Value: []byte(v), HasCAS: true, Expect: expect}
}
func del(k string) Command { return Command{Op: OpDelete, Key: []byte(k)} }
func delCAS(k string, expect uint64) Command {
	return Command{Op: OpDelete, Key: []byte(k), HasCAS: true, Expect: expect}
}

type entry struct {
	value   string
	version uint64
}

// contents returns everything ForEach yields.
func contents(t testing.TB, s *Store) map[string]entry {
	t.Helper()
	m := map[string]entry{}
	if err := s.ForEach(func(k, v []byte, ver uint64) error {
		m[string(k)] = entry{string(v), ver}
		return nil
	}); err != nil {
		t.Fatalf("ForEach: %v", err)
	}
	return m
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	failAfter int // fail writes once this many bytes were written; 0 never
	closed    bool
	canceled  bool
}

func (m *memSink) Write(p []byte) (int, error) {
	if m.failAfter > 0 && m.Len()+len(p) > m.failAfter {
		return 0, errors.New("disk full")
	}
	return m.Buffer.Write(p)
}
func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Close() error  { m.closed = true; return nil }
func (m *memSink) Cancel() error { m.canceled = true; return nil }

// persist takes a snapshot of s and returns its stream.
func persist(t testing.TB, s *Store) []byte {
	t.Helper()
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed {
		t.Fatal("Persist did not close the sink")
	}
	return sink.Bytes()
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func restore(t testing.TB, s *Store, stream []byte) {
	t.Helper()
	if err := s.Restore(nopCloser{bytes.NewReader(stream)}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
}

// fill applies n puts of distinct keys with the given prefix.
func fill(t testing.TB, s *Store, prefix string, n int) {
	t.Helper()
	cmds := make([]Command, n)
	for i := range cmds {
		cmds[i] = put(fmt.Sprintf("%s%04d", prefix, i), fmt.Sprintf("value-%d", i))
	}
	for _, r := range applyNext(t, s, cmds...) {
		if r.Err != nil {
			t.Fatalf("fill: %v", r.Err)
		}
	}
}

// runAll starts fns concurrently and returns a func that waits for them.
func runAll(fns ...func()) (wait func()) {
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	return wg.Wait
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// testGroup is the group of test stores; ringCmd's rings give it every key.
const testGroup = "g1"

// ringCmd commits a one-group ring at epoch e that owns every key.
func ringCmd(e uint64) Command {
	return Command{Op: OpSetRing, Ring: RingSpec{Epoch: e, Mode: "strong", Groups: []RingGroup{{ID: testGroup, Weight: 1}}}}
}
