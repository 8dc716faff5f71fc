package node

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/carpkv/carpkv/agent/store"
)

func applied(r *recentResults, index, term uint64, data string, version uint64) {
	r.record([]*raft.Log{{Index: index, Term: term, Type: raft.LogCommand, Data: []byte(data)}},
		[]any{&store.Result{Index: index, Version: version}})
}

func received(t *testing.T, ch <-chan appliedEntry) appliedEntry {
	t.Helper()
	select {
	case e := <-ch:
		return e
	default:
		t.Fatal("nothing received")
		return appliedEntry{}
	}
}

func TestRecentResultsHandsTheEntryToWhoeverWaits(t *testing.T) {
	r := newRecentResults()
	// Asked before the store applies the index.
	ch, cancel := r.wait(7)
	defer cancel()
	select {
	case e := <-ch:
		t.Fatalf("received %+v before index 7 was applied", e)
	default:
	}
	applied(r, 7, 3, "put a", 42)
	if e := received(t, ch); e.gone || e.term != 3 || e.res.Version != 42 || e.sum != r.sumOf([]byte("put a")) {
		t.Fatalf("got %+v", e)
	}
	// Asked after.
	ch2, cancel2 := r.wait(7)
	defer cancel2()
	if e := received(t, ch2); e.gone || e.res.Version != 42 {
		t.Fatalf("got %+v", e)
	}
}

func TestRecentResultsSaysGoneWhenTheRecordWasOverwritten(t *testing.T) {
	r := newRecentResults()
	applied(r, 5, 1, "x", 1)
	applied(r, 5+resultSlots, 1, "y", 2) // takes index 5's slot
	ch, cancel := r.wait(5)
	defer cancel()
	if e := received(t, ch); !e.gone {
		t.Fatalf("index 5's record was overwritten, got %+v", e)
	}
	// A restore ends every wait with gone.
	ch, cancel = r.wait(9)
	defer cancel()
	r.forgetWaiters()
	if e := received(t, ch); !e.gone || e.index != 9 {
		t.Fatalf("got %+v after a restore", e)
	}
}

func TestJudgeTellsAppliedOverwrittenAndUnknown(t *testing.T) {
	n := &Node{results: newRecentResults()}
	ours := []byte("put k v")
	res := &store.Result{Index: 10, Version: 10}
	entry := func(term uint64, data []byte) appliedEntry {
		return appliedEntry{index: 10, term: term, sum: n.results.sumOf(data), res: res}
	}
	if got, err := n.judge(entry(4, ours), 4, ours); err != nil || got != res {
		t.Errorf("our entry: got %v, %v; want its result", got, err)
	}
	if _, err := n.judge(entry(5, []byte("put k other")), 4, ours); !errors.Is(err, errOverwritten) {
		t.Errorf("another command at our index: got %v, want errOverwritten", err)
	}
	if _, err := n.judge(entry(5, ours), 4, ours); !errors.Is(err, ErrUnknownOutcome) {
		t.Errorf("our bytes in another term: got %v, want ErrUnknownOutcome", err)
	}
	if _, err := n.judge(appliedEntry{index: 10, gone: true}, 4, ours); !errors.Is(err, ErrUnknownOutcome) {
		t.Errorf("record gone: got %v, want ErrUnknownOutcome", err)
	}
}

// A put-batch's per-key results are kept compactly: consecutive versions
// are rebuilt exactly, and a batch with refused keys is an unknown outcome
// rather than a guess.
func TestJudgeRebuildsABatchsResultsOrSaysUnknown(t *testing.T) {
	n := &Node{results: newRecentResults()}
	ours := []byte("put-batch")
	keys := []store.KeyResult{{Version: 20}, {Version: 21}, {Version: 22}}
	n.results.record([]*raft.Log{{Index: 3, Term: 2, Type: raft.LogCommand, Data: ours}},
		[]any{&store.Result{Index: 3, Keys: keys}})
	ch, cancel := n.results.wait(3)
	defer cancel()
	got, err := n.judge(received(t, ch), 2, ours)
	if err != nil || len(got.Keys) != 3 || got.Keys[0].Version != 20 || got.Keys[2].Version != 22 || got.Keys[1].Err != nil {
		t.Fatalf("batch written whole: %+v, %v", got, err)
	}
	refused := []store.KeyResult{{Version: 30}, {Err: store.ErrStaleRing}, {Version: 31}}
	n.results.record([]*raft.Log{{Index: 4, Term: 2, Type: raft.LogCommand, Data: ours}},
		[]any{&store.Result{Index: 4, Keys: refused}})
	ch, cancel = n.results.wait(4)
	defer cancel()
	if _, err := n.judge(received(t, ch), 2, ours); !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("batch with a refused key: %v, want ErrUnknownOutcome", err)
	}
}
