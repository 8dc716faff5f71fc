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
	c, err := New(Config{Addrs: []string{"127.0.0.1:1"}, RequestTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
