package gossip

import (
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestAgentsOfTwoGroupsFindEachOtherThroughTheOtherGroup(t *testing.T) {
	a := start(t, "g1", "a", "")
	c := start(t, "g2", "c", "", a.Addr())
	b := start(t, "g1", "b", "", c.Addr())
	d := start(t, "g2", "d", "", a.Addr())
	e := start(t, "g2", "e", "", b.Addr())
	all := []testMember{a, b, c, d, e}

	took := waitFor(t, 10*time.Second, "every agent sees every other alive", allSeeAll(all))
	t.Logf("5 agents converged in %v", took)
	for _, m := range all {
		if !m.Joined() {
			t.Errorf("%s: Joined() = false", m.name)
		}
	}
	var got []string
	for _, m := range d.Members() {
		got = append(got, m.Name)
		if m.Addr == "" || m.Since.IsZero() {
			t.Errorf("member %+v: no address or Since", m)
		}
	}
	if want := []string{"g1/a", "g1/b", "g2/c", "g2/d", "g2/e"}; !slices.Equal(got, want) {
		t.Errorf("Members() order %v, want %v", got, want)
	}
}

func TestMetaUpdatesReachThePool(t *testing.T) {
	a := start(t, "g1", "a", "")
	b := start(t, "g1", "b", "", a.Addr())
	c := start(t, "g2", "c", "", a.Addr())
	all := []testMember{a, b, c}
	waitFor(t, 10*time.Second, "convergence", allSeeAll(all))

	own, peer := a.Changes(), c.Changes()
	if err := a.UpdateMeta(func(m *Meta) { m.Leader, m.RingEpoch, m.HasState = "a", 3, true }); err != nil {
		t.Fatal(err)
	}
	if !closed(own) {
		t.Error("own Changes() not closed by UpdateMeta")
	}
	if s := a.Self(); s.Leader != "a" || s.RingEpoch != 3 || !s.HasState {
		t.Errorf("Self() = %+v after update", s)
	}
	took := waitFor(t, 5*time.Second, "the update to reach b and c", func() bool {
		for _, o := range all {
			if m, _ := member(o.Gossip, "g1/a"); m.Meta.Leader != "a" || m.Meta.RingEpoch != 3 || !m.Meta.HasState {
				return false
			}
		}
		return true
	})
	t.Logf("meta update propagated in %v", took)
	if !closed(peer) {
		t.Error("peer's Changes() not closed by the update")
	}

	// Quick successive updates coalesce; the last one wins everywhere.
	for epoch := uint64(4); epoch <= 20; epoch++ {
		if err := b.UpdateMeta(func(m *Meta) { m.RingEpoch = epoch }); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "b's last epoch everywhere", func() bool {
		for _, o := range all {
			if m, _ := member(o.Gossip, "g1/b"); m.Meta.RingEpoch != 20 {
				return false
			}
		}
		return true
	})
}

func TestUpdateMetaRefusesBadChangesAndSkipsNoOps(t *testing.T) {
	a := start(t, "g1", "a", "")
	before := a.Self()
	ch := a.Changes()
	if err := a.UpdateMeta(func(m *Meta) { m.Weight = before.Weight }); err != nil {
		t.Fatal(err)
	}
	if closed(ch) {
		t.Error("no-op UpdateMeta closed Changes()")
	}
	if err := a.UpdateMeta(func(m *Meta) { m.Leader = string(make([]byte, MaxMetaBytes)) }); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("oversized: %v, want ErrMetaTooLarge", err)
	}
	if err := a.UpdateMeta(func(m *Meta) { m.NodeID = "z" }); err == nil {
		t.Error("changing NodeID succeeded")
	}
	if got := a.Self(); got != before {
		t.Errorf("refused updates changed Self(): %+v", got)
	}
	if closed(ch) {
		t.Error("refused UpdateMeta closed Changes()")
	}
}

func TestCrashedAgentIsReportedDead(t *testing.T) {
	a := start(t, "g1", "a", "")
	b := start(t, "g2", "b", "", a.Addr())
	c := start(t, "g2", "c", "", a.Addr())
	waitFor(t, 10*time.Second, "convergence", allSeeAll([]testMember{a, b, c}))

	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 10*time.Second, "a and b to report c dead", hasState("g2/c", StateDead, a, b))
	t.Logf("crash detected (local profile, 3 agents) in %v", took)
	if a.NumAlive() != 2 {
		t.Errorf("NumAlive = %d, want 2; members %v", a.NumAlive(), names(a.Members()))
	}
}

func TestAgentThatLeavesIsReportedLeft(t *testing.T) {
	a := start(t, "g1", "a", "")
	b := start(t, "g1", "b", "", a.Addr())
	c := start(t, "g2", "c", "", a.Addr())
	waitFor(t, 10*time.Second, "convergence", allSeeAll([]testMember{a, b, c}))

	if err := c.Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 5*time.Second, "a and b to report c left", hasState("g2/c", StateLeft, a, b))
	t.Logf("leave seen in %v", took)
	if m, _ := member(c.Gossip, "g2/c"); m.State != StateLeft {
		t.Errorf("c sees itself %s, want left", m.State)
	}
	if err := c.UpdateMeta(func(m *Meta) { m.RingEpoch++ }); !errors.Is(err, ErrClosed) {
		t.Errorf("UpdateMeta after Leave = %v, want ErrClosed", err)
	}
	if err := c.Leave(time.Second); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := c.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Leave after Shutdown = %v, want ErrClosed", err)
	}
	if !hasState("g2/c", StateLeft, a, b)() {
		t.Errorf("after c's Shutdown: a sees %v", names(a.Members()))
	}
}

// Gossip keeps no order: a member may hear memberlist's leave of another
// before its broadcast intent, and memberlist drops the intent once it
// holds the member gone. The leaving member's word, sent straight over
// TCP, turns "dead" into "left" whichever comes first. Here the word comes
// last, after a and b have reported c dead, sent by b on c's behalf.
func TestLeaveWordTurnsAFailureIntoALeave(t *testing.T) {
	a := start(t, "g1", "a", "")
	b := start(t, "g1", "b", "", a.Addr())
	c := start(t, "g2", "c", "", a.Addr())
	waitFor(t, 10*time.Second, "convergence", allSeeAll([]testMember{a, b, c}))
	if err := c.Shutdown(); err != nil { // no Leave: a failure
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a to report c dead", hasState("g2/c", StateDead, a))

	var toA *memberlist.Node
	for _, n := range b.ml.Members() {
		if n.Name == "g1/a" {
			toA = n
		}
	}
	if toA == nil {
		t.Fatal("b does not list a")
	}
	for _, msg := range [][]byte{[]byte("carpkv-leaving:"), []byte("something else"), encodeLeaving("g9/unknown")} {
		if err := b.ml.SendReliable(toA, msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.ml.SendReliable(toA, encodeLeaving("g2/c")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a to report c left", hasState("g2/c", StateLeft, a))
	if _, ok := member(a.Gossip, "g9/unknown"); ok {
		t.Error("a word about an unknown member added it")
	}
	if !hasState("g1/b", StateAlive, a)() {
		t.Errorf("a sees %v", a.Members())
	}
}

func TestRetryJoinWaitsForAnAgentThatIsNotUpYet(t *testing.T) {
	later := freeAddr(t)
	a := start(t, "g1", "a", "", later)
	if a.Joined() {
		t.Fatal("Joined() before the seed is up")
	}
	waitFor(t, 5*time.Second, "a failed join attempt", func() bool { return a.logs.seen("gossip: join failed, will retry") })
	if a.Joined() {
		t.Fatal("Joined() while the seed is down")
	}

	b := start(t, "g2", "b", later)
	took := waitFor(t, 10*time.Second, "a to join b", func() bool {
		return a.Joined() && allSeeAll([]testMember{a, b})()
	})
	t.Logf("joined %v after the seed came up", took)
}

func TestNothingToJoinMeansJoined(t *testing.T) {
	a := start(t, "g1", "a", "")
	if !a.Joined() {
		t.Error("no RetryJoin: Joined() = false")
	}
	self := freeAddr(t)
	b := start(t, "g1", "b", self, self)
	if !b.Joined() {
		t.Error("RetryJoin naming only this agent: Joined() = false")
	}
	if b.Addr() != self {
		t.Errorf("Addr() = %s, want %s", b.Addr(), self)
	}
}

func TestAgentComesBackAfterACrash(t *testing.T) {
	for _, tt := range []struct {
		name     string
		samePort bool
	}{{"same address", true}, {"new port", false}} {
		t.Run(tt.name, func(t *testing.T) {
			a := start(t, "g1", "a", "")
			b := start(t, "g2", "b", "", a.Addr())
			waitFor(t, 10*time.Second, "convergence", allSeeAll([]testMember{a, b}))
			addr := b.Addr()
			if err := b.Shutdown(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "a to report b dead", hasState("g2/b", StateDead, a))
			died, _ := member(a.Gossip, "g2/b")

			bind := ""
			if tt.samePort {
				bind = addr
			}
			b2 := start(t, "g2", "b", bind, a.Addr())
			// At a new address, a accepts b only after DeadNodeReclaimTime
			// (1 s), at b's next push/pull (first after 5-10 s).
			took := waitFor(t, 20*time.Second, "a to report b alive again", func() bool {
				m, _ := member(a.Gossip, "g2/b")
				return m.State == StateAlive && m.Addr == b2.Addr() && m.Since.After(died.Since)
			})
			t.Logf("back after %v", took)
		})
	}
}

// A peer whose metadata is not ours (another version, a bug, a stranger)
// stays visible, with an empty Meta, and breaks nothing.
type garbageMeta struct{}

func (garbageMeta) NodeMeta(int) []byte               { return []byte("{not json") }
func (garbageMeta) NotifyMsg([]byte)                  {}
func (garbageMeta) GetBroadcasts(_, _ int) [][]byte   { return nil }
func (garbageMeta) LocalState(bool) []byte            { return nil }
func (garbageMeta) MergeRemoteState(_ []byte, _ bool) {}

func TestPeerWithUndecodableMetaIsKeptWithEmptyMeta(t *testing.T) {
	a := start(t, "g1", "a", "")
	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "odd/x", "127.0.0.1", 0
	mc.Delegate = garbageMeta{}
	mc.LogOutput = io.Discard
	odd, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = odd.Shutdown() })
	if _, err := odd.Join([]string{a.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a to see odd/x", hasState("odd/x", StateAlive, a))
	if m, _ := member(a.Gossip, "odd/x"); m.Meta != (Meta{}) {
		t.Errorf("odd/x meta %+v, want zero", m.Meta)
	}
	if got := names(a.Members()); !slices.Equal(got, []string{"odd/x:alive", "g1/a:alive"}) {
		t.Errorf("members %v", got)
	}
}
