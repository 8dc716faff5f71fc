package kvclient

import (
	"testing"
	"time"
)

// An agent that left a request unanswered for a whole attempt (frozen, cut
// off one way) is not where the next calls start, even as the cached
// leader, until it answers again or the mark expires; if it is the only
// address, calls still go to it.
func TestCallsDoNotStartAtAnAgentThatLeftARequestUnanswered(t *testing.T) {
	c := cursorClient(t)
	addrs := []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}
	frozen := addrs[0]
	g := newGroupClient(c, "g1", addrs)
	g.setLeader(frozen)

	c.unanswered(frozen)
	for i := range 2 * len(addrs) {
		cu := g.cursor()
		for _, r := range []route{routeLeader, routeAny} {
			if a := cu.first(r); a == frozen {
				t.Fatalf("cursor %d, route %d: first is the silent agent", i, r)
			}
		}
		if a := cu.next(routeLeader, addrs[1]); a != addrs[2] {
			t.Fatalf("cursor %d: next after %s is %s, want %s (skipping the silent one)", i, addrs[1], a, addrs[2])
		}
	}

	only := newGroupClient(c, "g2", []string{frozen})
	if a := only.cursor().first(routeAny); a != frozen {
		t.Fatalf("a group with only the silent agent: first is %q, want it anyway", a)
	}

	c.answered(frozen)
	if a := g.cursor().first(routeLeader); a != frozen {
		t.Fatalf("after the agent answered: first is %s, want the cached leader %s", a, frozen)
	}
}

// When every other member is silent, a call goes to the one that went
// silent longest ago: a leader that froze and resumed as a follower is
// more likely back than the leader that froze since (finding of
// TestChaosLeaderFaultGaps: the newest silent one cost a whole dial).
func TestWhenEveryOtherMemberIsSilentTheOldestSilenceIsTriedFirst(t *testing.T) {
	c := cursorClient(t)
	addrs := []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}
	g := newGroupClient(c, "g1", addrs)
	c.gone(addrs[0], time.Now().Add(-time.Minute)) // froze first, resumed since (unknown to the client)
	c.unanswered(addrs[2])                         // went silent after it
	for i := range 2 * len(addrs) {
		if a := g.cursor().next(routeLeader, addrs[1]); a != addrs[0] {
			t.Fatalf("cursor %d: next after %s is %s, want %s (silent the longest)", i, addrs[1], a, addrs[0])
		}
	}
	// A leader hint naming an agent last heard from long ago is followed;
	// one naming an agent that went silent just now is not.
	if c.freshlySilent(addrs[0]) {
		t.Fatalf("%s was last heard from a minute ago, but its hints would be ignored", addrs[0])
	}
	c.gone(addrs[0], time.Now())
	if !c.freshlySilent(addrs[0]) {
		t.Fatalf("%s went silent just now, but its hints would be followed", addrs[0])
	}
}

// After a member fails, the next attempt does not go to an agent that went
// silent just now (a frozen leader: the dial would hang for DialTimeout),
// but back to the member that failed, which names the new leader once there
// is one.
func TestNextSkipsAnAgentThatJustWentSilent(t *testing.T) {
	c := cursorClient(t)
	addrs := []string{"127.0.0.1:7001", "127.0.0.1:7002"}
	g := newGroupClient(c, "g1", addrs)
	c.gone(addrs[1], time.Now())
	if a := g.cursor().next(routeLeader, addrs[0]); a != addrs[0] {
		t.Fatalf("next after %s is %s, want %s again (the other froze just now)", addrs[0], a, addrs[0])
	}
	if a := g.cursor().first(routeLeader); a != addrs[0] {
		t.Fatalf("first is %s, want %s", a, addrs[0])
	}
}

// cursorClient is a Client for the cursor tests: silence marks last an
// hour (3 × RequestTimeout), and it is never sent anything.
func cursorClient(t *testing.T) *Client {
	t.Helper()
	c, err := New(Config{Addrs: []string{"127.0.0.1:1"}, RequestTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
