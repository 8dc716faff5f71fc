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
