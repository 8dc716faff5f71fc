package gossip

import (
	"slices"
	"testing"
	"time"
)

func TestViewTracksTransitions(t *testing.T) {
	v := newView()
	t0 := time.Unix(1000, 0)
	a, b := meta("g1", "a"), meta("g2", "b")

	if !v.alive("g2/b", b, false, "10.0.0.2:1", t0) || !v.alive("g1/a", a, false, "10.0.0.1:1", t0) {
		t.Fatal("first sight reported no change")
	}
	if v.alive("g1/a", a, false, "10.0.0.1:1", t0.Add(time.Second)) {
		t.Error("identical update reported a change")
	}
	a.Leader = "a"
	if !v.alive("g1/a", a, false, "10.0.0.1:1", t0.Add(time.Second)) {
		t.Error("meta update reported no change")
	}
	if got := v.members["g1/a"]; got.Meta.Leader != "a" || !got.Since.Equal(t0) {
		t.Errorf("after update: %+v (Since must not move without a state change)", got)
	}

	t1 := t0.Add(2 * time.Second)
	if !v.gone("g1/a", false, "10.0.0.1:1", t1) || v.gone("g1/a", false, "10.0.0.1:1", t1) {
		t.Error("failure: want one change")
	}
	if got := v.members["g1/a"]; got.State != StateDead || !got.Since.Equal(t1) || got.Meta.Leader != "a" {
		t.Errorf("after failure: %+v (want dead since t1, last meta kept)", got)
	}
	if v.numAlive() != 1 {
		t.Errorf("numAlive = %d, want 1", v.numAlive())
	}

	t2 := t1.Add(time.Second)
	if !v.alive("g1/a", a, false, "10.0.0.1:2", t2) {
		t.Error("return reported no change")
	}
	if got := v.members["g1/a"]; got.State != StateAlive || !got.Since.Equal(t2) || got.Addr != "10.0.0.1:2" {
		t.Errorf("after return: %+v", got)
	}
	if !v.gone("g2/b", true, "10.0.0.2:1", t2) || v.members["g2/b"].State != StateLeft {
		t.Errorf("leave: %+v", v.members["g2/b"])
	}
	if !v.gone("g3/c", false, "10.0.0.3:1", t2) {
		t.Error("failure of an unseen member reported no change")
	}

	// A member that announced its leave is reported left even though
	// memberlist says nothing (Node.State is unset in NotifyLeave).
	v.alive("g1/a", a, true, "10.0.0.1:2", t2)
	if !v.gone("g1/a", false, "10.0.0.1:2", t2) || v.members["g1/a"].State != StateLeft {
		t.Errorf("leave after intent: %+v", v.members["g1/a"])
	}
	// Back, without the intent: a later failure is a failure.
	v.alive("g1/a", a, false, "10.0.0.1:2", t2)
	if v.gone("g1/a", false, "10.0.0.1:2", t2); v.members["g1/a"].State != StateDead {
		t.Errorf("failure after return: %+v", v.members["g1/a"])
	}
}

func TestViewTakesALeaveWordBeforeOrAfterTheLeave(t *testing.T) {
	v := newView()
	t0, t1 := time.Unix(1000, 0), time.Unix(1001, 0)
	v.alive("g1/a", meta("g1", "a"), false, "10.0.0.1:1", t0)
	v.alive("g1/b", meta("g1", "b"), false, "10.0.0.2:1", t0)

	// Word first: nothing visible changes until memberlist reports it gone.
	if v.markLeaving("g1/a", t0) || v.members["g1/a"].State != StateAlive {
		t.Errorf("word before the leave: %+v", v.members["g1/a"])
	}
	if !v.gone("g1/a", false, "10.0.0.1:1", t1) || v.members["g1/a"].State != StateLeft {
		t.Errorf("leave after the word: %+v", v.members["g1/a"])
	}

	// Leave first (reported a failure), word after: left, since the word.
	v.gone("g1/b", false, "10.0.0.2:1", t0)
	if !v.markLeaving("g1/b", t1) {
		t.Error("word after the leave reported no change")
	}
	if got := v.members["g1/b"]; got.State != StateLeft || !got.Since.Equal(t1) {
		t.Errorf("word after the leave: %+v", got)
	}
	if v.markLeaving("g1/b", t1) || v.markLeaving("g9/z", t1) {
		t.Error("a repeated word, or one about an unknown member, reported a change")
	}
	if _, ok := v.members["g9/z"]; ok {
		t.Error("word about an unknown member added it")
	}
	// Back without the intent: the old word no longer counts.
	v.alive("g1/b", meta("g1", "b"), false, "10.0.0.2:1", t1)
	if v.gone("g1/b", false, "10.0.0.2:1", t1); v.members["g1/b"].State != StateDead {
		t.Errorf("failure after return: %+v", v.members["g1/b"])
	}
}

func TestViewSortsByGroupThenIDAndForgetsTheLongGone(t *testing.T) {
	v := newView()
	t0 := time.Unix(1000, 0)
	// "g-1/x" sorts before "g/x" by name, but group "g" before "g-1".
	v.alive("g-1/x", meta("g-1", "x"), false, "a:1", t0)
	v.alive("g/y", meta("g", "y"), false, "a:2", t0)
	v.alive("g/x", meta("g", "x"), false, "a:3", t0)
	v.alive("bad/z", Meta{}, false, "a:4", t0)
	var got []string
	for _, m := range v.list() {
		got = append(got, m.Name)
	}
	if want := []string{"bad/z", "g/x", "g/y", "g-1/x"}; !slices.Equal(got, want) {
		t.Fatalf("list order %v, want %v", got, want)
	}

	v.gone("g/y", false, "a:2", t0)
	v.gone("g/x", true, "a:3", t0.Add(time.Hour))
	v.alive("new/n", meta("new", "n"), false, "a:5", t0.Add(Retention+time.Minute))
	if _, ok := v.members["g/y"]; ok {
		t.Error("member dead for longer than Retention is still listed")
	}
	if _, ok := v.members["g/x"]; !ok {
		t.Error("member left less than Retention ago was forgotten")
	}
	if _, ok := v.members["g-1/x"]; !ok {
		t.Error("alive member was forgotten")
	}
}
