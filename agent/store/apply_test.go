package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

func TestPutDeleteCASMatrix(t *testing.T) {
	type step struct {
		cmd     Command
		version uint64 // Result.Version
		err     error  // nil, ErrNotFound or ErrCASFailed
		current uint64 // CASError.Current with ErrCASFailed
	}
	tests := []struct {
		name  string
		steps []step
		want  map[string]entry // final contents
	}{
		{"put absent", []step{{cmd: put("a", "1"), version: 1}},
			map[string]entry{"a": {"1", 1}}},
		{"put overwrites", []step{{cmd: put("a", "1"), version: 1}, {cmd: put("a", "2"), version: 2}},
			map[string]entry{"a": {"2", 2}}},
		{"put-if-absent on absent", []step{{cmd: putCAS("a", "1", 0), version: 1}},
			map[string]entry{"a": {"1", 1}}},
		{"put-if-absent on present", []step{{cmd: put("a", "1"), version: 1}, {cmd: putCAS("a", "2", 0), err: ErrCASFailed, current: 1}},
			map[string]entry{"a": {"1", 1}}},
		{"put cas matching", []step{{cmd: put("a", "1"), version: 1}, {cmd: putCAS("a", "2", 1), version: 2}},
			map[string]entry{"a": {"2", 2}}},
		{"put cas stale", []step{{cmd: put("a", "1"), version: 1}, {cmd: put("a", "2"), version: 2}, {cmd: putCAS("a", "3", 1), err: ErrCASFailed, current: 2}},
			map[string]entry{"a": {"2", 2}}},
		{"put cas on absent key", []step{{cmd: putCAS("a", "1", 5), err: ErrCASFailed, current: 0}},
			map[string]entry{}},
		{"put cas against the deleted incarnation", []step{{cmd: put("a", "1"), version: 1}, {cmd: del("a"), version: 1}, {cmd: putCAS("a", "2", 1), err: ErrCASFailed, current: 0}},
			map[string]entry{}},
		{"delete absent", []step{{cmd: del("a"), err: ErrNotFound}},
			map[string]entry{}},
		{"delete present", []step{{cmd: put("a", "1"), version: 1}, {cmd: put("b", "1"), version: 2}, {cmd: del("a"), version: 1}},
			map[string]entry{"b": {"1", 2}}},
		{"delete cas matching", []step{{cmd: put("a", "1"), version: 1}, {cmd: delCAS("a", 1), version: 1}},
			map[string]entry{}},
		{"delete cas stale", []step{{cmd: put("a", "1"), version: 1}, {cmd: put("a", "2"), version: 2}, {cmd: delCAS("a", 1), err: ErrCASFailed, current: 2}},
			map[string]entry{"a": {"2", 2}}},
		{"delete cas 0 on present", []step{{cmd: put("a", "1"), version: 1}, {cmd: delCAS("a", 0), err: ErrCASFailed, current: 1}},
			map[string]entry{"a": {"1", 1}}},
		{"delete cas on absent", []step{{cmd: delCAS("a", 3), err: ErrNotFound}},
			map[string]entry{}},
		{"failed writes do not advance the clock", []step{{cmd: put("a", "1"), version: 1}, {cmd: putCAS("a", "x", 9), err: ErrCASFailed, current: 1}, {cmd: del("b"), err: ErrNotFound}, {cmd: put("b", "1"), version: 2}},
			map[string]entry{"a": {"1", 1}, "b": {"1", 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			for i, st := range tc.steps {
				before := s.AppliedIndex()
				r := applyNext(t, s, st.cmd)[0]
				if r.Index != before+1 || s.AppliedIndex() != before+1 {
					t.Fatalf("step %d: result index %d, applied %d, want %d", i, r.Index, s.AppliedIndex(), before+1)
				}
				if st.err == nil {
					if r.Err != nil || r.Version != st.version {
						t.Fatalf("step %d (%v %s): got version %d err %v, want version %d", i, st.cmd.Op, st.cmd.Key, r.Version, r.Err, st.version)
					}
					continue
				}
				if !errors.Is(r.Err, st.err) {
					t.Fatalf("step %d (%v %s): err %v, want %v", i, st.cmd.Op, st.cmd.Key, r.Err, st.err)
				}
				var ce *CASError
				if errors.As(r.Err, &ce) && ce.Current != st.current {
					t.Fatalf("step %d: CAS current %d, want %d", i, ce.Current, st.current)
				}
			}
			got := contents(t, s)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("contents %v, want %v", got, tc.want)
			}
			for k, e := range tc.want {
				v, ver, err := s.Get([]byte(k))
				if err != nil || string(v) != e.value || ver != e.version {
					t.Fatalf("Get(%q) = %q, %d, %v; want %q, %d", k, v, ver, err, e.value, e.version)
				}
			}
			if _, _, err := s.Get([]byte("absent")); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(absent): %v, want ErrNotFound", err)
			}
			if st := s.Stats(); st.Keys != len(tc.want) {
				t.Fatalf("Stats = %+v, want %d keys", st, len(tc.want))
			}
		})
	}
}

func TestVersionsGrowAcrossDeleteAndRecreate(t *testing.T) {
	s := openStore(t, t.TempDir())
	var last uint64
	for round := range 5 {
		r := applyNext(t, s, put("k", "v"), put("k", "w"), del("k"))
		for i, res := range r[:2] {
			if res.Err != nil || res.Version <= last {
				t.Fatalf("round %d write %d: version %d (err %v), last %d: versions must grow", round, i, res.Version, res.Err, last)
			}
			last = res.Version
		}
		if r[2].Err != nil || r[2].Version != last {
			t.Fatalf("round %d delete: version %d err %v, want the deleted version %d", round, r[2].Version, r[2].Err, last)
		}
	}
	if st := s.Stats(); st.Clock != 15 {
		t.Fatalf("clock %d after 15 writes, want 15", st.Clock)
	}
}

func TestBinarySafeKeysAndValues(t *testing.T) {
	s := openStore(t, t.TempDir())
	pairs := [][2][]byte{
		{{0}, {}},
		{{0, 0}, {0}},
		{{0xff}, {0xff, 0xff}},
		{{0xff, 0, 0xff}, bytes.Repeat([]byte{0, 0xff}, 1000)},
		{[]byte("a/b%2F\n"), []byte("\x00\x01\x02")},
	}
	cmds := make([]Command, len(pairs))
	for i, p := range pairs {
		cmds[i] = Command{Op: OpPut, Key: p[0], Value: p[1]}
	}
	for _, r := range applyNext(t, s, cmds...) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	for _, p := range pairs {
		v, _, err := s.Get(p[0])
		if err != nil || !bytes.Equal(v, p[1]) || v == nil {
			t.Fatalf("Get(%x) = %x, %v; want %x", p[0], v, err, p[1])
		}
	}
	if _, _, err := s.Get([]byte{0, 0, 0}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a key sharing a prefix: %v, want ErrNotFound", err)
	}
	if got := len(contents(t, s)); got != len(pairs) {
		t.Fatalf("%d keys, want %d", got, len(pairs))
	}
}

// txID is bbolt's id of the last committed read-write transaction.
func txID(t *testing.T, s *Store) int {
	t.Helper()
	tx, err := s.begin()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	return tx.ID()
}

func TestApplyBatchCommitsOnceWithLastIndex(t *testing.T) {
	s := openStore(t, t.TempDir())
	cmds := make([]Command, 64)
	for i := range cmds {
		cmds[i] = put(fmt.Sprintf("k%02d", i), "v")
	}
	entries := logs(10, cmds...)
	entries = append(entries, &raft.Log{Index: 74, Term: 3, Type: raft.LogConfiguration, Data: []byte("not ours to decode")})
	before := txID(t, s)
	rs := results(t, s.ApplyBatch(entries))
	if got := txID(t, s) - before; got != 1 {
		t.Fatalf("batch took %d transactions, want 1", got)
	}
	for i, r := range rs {
		if r.Err != nil || r.Index != entries[i].Index {
			t.Fatalf("result %d = %+v", i, r)
		}
	}
	if s.AppliedIndex() != 74 {
		t.Fatalf("applied index %d, want 74 (the configuration entry counts)", s.AppliedIndex())
	}
	var term uint64
	if err := s.view(func(tx *bolt.Tx) error {
		m, err := readMeta(tx.Bucket(bucketMeta))
		term = m.term
		return err
	}); err != nil || term != 3 {
		t.Fatalf("applied term %d (%v), want 3", term, err)
	}
}

func TestApplyBatchSkipsAlreadyAppliedEntries(t *testing.T) {
	s := openStore(t, t.TempDir())
	first := logs(1, put("a", "1"), put("b", "1"), del("a"))
	results(t, s.ApplyBatch(first))
	want := contents(t, s)
	wantStats := s.Stats()
	tx := txID(t, s)

	// The same batch again, as raft replays it after a restart.
	for i, r := range results(t, s.ApplyBatch(first)) {
		if !errors.Is(r.Err, ErrAlreadyApplied) || r.Index != first[i].Index {
			t.Fatalf("replayed result %d = %+v, want ErrAlreadyApplied", i, r)
		}
	}
	if txID(t, s) != tx {
		t.Fatal("a fully replayed batch wrote a transaction")
	}
	if got, st := contents(t, s), s.Stats(); fmt.Sprint(got) != fmt.Sprint(want) || st != wantStats {
		t.Fatalf("replay changed state: %v %+v, want %v %+v", got, st, want, wantStats)
	}

	// A batch overlapping the applied index: only the new part applies.
	overlap := logs(3, del("a"), put("c", "1"))
	rs := results(t, s.ApplyBatch(overlap))
	if !errors.Is(rs[0].Err, ErrAlreadyApplied) {
		t.Fatalf("entry 3: %+v, want ErrAlreadyApplied", rs[0])
	}
	if rs[1].Err != nil || rs[1].Version != 4 || s.AppliedIndex() != 4 {
		t.Fatalf("entry 4: %+v applied %d, want version 4 at index 4", rs[1], s.AppliedIndex())
	}
}

func TestInvalidEntryIsConsumedWithoutStateChange(t *testing.T) {
	s := openStore(t, t.TempDir())
	entries := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte{0xde, 0xad}},
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: put("", "v").Marshal()},
		{Index: 3, Term: 1, Type: raft.LogCommand, Data: put("k", "v").Marshal()},
	}
	rs := results(t, s.ApplyBatch(entries))
	for _, r := range rs[:2] {
		if !errors.Is(r.Err, ErrInvalidCommand) {
			t.Fatalf("result %+v, want ErrInvalidCommand", r)
		}
	}
	if rs[2].Err != nil || rs[2].Version != 1 {
		t.Fatalf("valid entry after invalid ones: %+v, want version 1", rs[2])
	}
	if s.AppliedIndex() != 3 {
		t.Fatalf("applied %d, want 3", s.AppliedIndex())
	}
}

func TestStorageFailureAbortsTheWholeBatchAndPanics(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	applyNext(t, s, put("before", "1"))
	s.applyHook = func(index uint64) error {
		if index == 4 {
			return errors.New("injected I/O error")
		}
		return nil
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("ApplyBatch did not panic on a storage failure")
			}
		}()
		s.ApplyBatch(logs(2, put("x", "1"), put("y", "1"), put("z", "1")))
	}()
	check := func(s *Store) {
		t.Helper()
		if s.AppliedIndex() != 1 {
			t.Fatalf("applied %d, want 1: the failed batch must leave no trace", s.AppliedIndex())
		}
		if got := contents(t, s); len(got) != 1 {
			t.Fatalf("contents %v, want only the key written before", got)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, dir)
	check(s2)
	// The restarted replica applies the batch raft replays.
	for _, r := range results(t, s2.ApplyBatch(logs(2, put("x", "1"), put("y", "1"), put("z", "1")))) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
}

func TestApplyAfterCloseReportsClosed(t *testing.T) {
	s := openStore(t, t.TempDir())
	_ = s.Close()
	r := results(t, s.ApplyBatch(logs(1, put("k", "v"))))[0]
	if !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("result %+v, want ErrClosed", r)
	}
}

func TestEpochOnlyRises(t *testing.T) {
	s := openStore(t, t.TempDir())
	epoch := ringCmd
	tests := []struct {
		epoch   uint64
		current uint64 // 0: accepted
		want    uint64 // Epoch() after
	}{
		{3, 0, 3},
		{3, 3, 3},
		{2, 3, 3},
	}
	for _, tc := range tests {
		r := applyNext(t, s, epoch(tc.epoch))[0]
		var ee *EpochError
		switch {
		case tc.current == 0 && r.Err != nil:
			t.Fatalf("set epoch %d: %v", tc.epoch, r.Err)
		case tc.current != 0 && (!errors.As(r.Err, &ee) || ee.Current != tc.current || !errors.Is(r.Err, ErrStaleEpoch)):
			t.Fatalf("set epoch %d: %v, want EpochError{%d}", tc.epoch, r.Err, tc.current)
		}
		if got := s.Epoch(); got != tc.want {
			t.Fatalf("Epoch() = %d, want %d", got, tc.want)
		}
	}
	// After the first ring, a higher epoch comes only through a ring
	// change this group prepared and is ready for (move_test.go).
	if r := applyNext(t, s, epoch(4))[0]; !errors.Is(r.Err, ErrMoveNotReady) || s.Epoch() != 3 {
		t.Fatalf("epoch 4 without a change: %v, epoch %d; want ErrMoveNotReady at 3", r.Err, s.Epoch())
	}
}

func TestNodeRegistry(t *testing.T) {
	s := openStore(t, t.TempDir())
	reg := func(id, raftAddr, httpAddr string) Command {
		return Command{Op: OpRegisterNode, Node: NodeInfo{ID: id, RaftAddr: raftAddr, HTTPAddr: httpAddr}}
	}
	rm := func(id string) Command { return Command{Op: OpRemoveNode, Node: NodeInfo{ID: id}} }

	for _, r := range applyNext(t, s, reg("n2", "r2", "h2"), reg("n1", "r1", "h1"), reg("n1", "r1", "h1"), reg("n3", "r3", "h3"), reg("n3", "r3b", "h3b")) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	nodes, err := s.Nodes()
	want := []NodeInfo{{"n1", "r1", "h1"}, {"n2", "r2", "h2"}, {"n3", "r3b", "h3b"}}
	if err != nil || fmt.Sprint(nodes) != fmt.Sprint(want) {
		t.Fatalf("Nodes = %v, %v; want %v", nodes, err, want)
	}

	rs := applyNext(t, s, rm("n2"), reg("n2", "r2", "h2"), rm("never-joined"))
	if rs[0].Err != nil || !errors.Is(rs[1].Err, ErrNodeRemoved) || rs[2].Err != nil {
		t.Fatalf("remove, re-register, remove unknown: %v %v %v", rs[0].Err, rs[1].Err, rs[2].Err)
	}
	if _, ok := s.Node("n2"); ok {
		t.Fatal("removed node still registered")
	}
	if n, ok := s.Node("n1"); !ok || n != want[0] {
		t.Fatalf("Node(n1) = %v, %v", n, ok)
	}
	for id, removed := range map[string]bool{"n1": false, "n2": true, "never-joined": true, "n9": false} {
		if got := s.IsRemoved(id); got != removed {
			t.Errorf("IsRemoved(%s) = %v, want %v", id, got, removed)
		}
	}
	if st := s.Stats(); st.Keys != 0 || st.Clock != 0 {
		t.Fatalf("registry commands touched the keyspace: %+v", st)
	}
}
