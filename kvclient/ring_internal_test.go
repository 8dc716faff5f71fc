package kvclient

import (
	"slices"
	"testing"

	"github.com/carpkv/carpkv/kvclient/wire"
)

func testClient(t *testing.T, seeds ...string) *Client {
	t.Helper()
	c, err := New(Config{Addrs: seeds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func member(id, group, addr, state string) wire.Member {
	return wire.Member{ID: id, Group: group, HTTPAddr: addr, State: state}
}

func TestRefreshKeepsTheLeaderCacheOfUnchangedGroups(t *testing.T) {
	c := testClient(t, "s:1")
	w1 := &wire.Ring{Epoch: 1, Mode: "strong", Groups: []wire.RingGroup{
		{ID: "g1", Weight: 1, Members: []wire.Member{member("a", "g1", "a:1", "alive"), member("b", "g1", "b:1", "alive")}},
		{ID: "g2", Weight: 1, Members: []wire.Member{member("c", "g2", "c:1", "alive"), member("d", "g2", "d:1", "alive")}},
	}}
	r1, err := c.install(w1)
	if err != nil {
		t.Fatal(err)
	}
	r1.groups["g1"].setLeader("b:1")
	r1.groups["g2"].setLeader("d:1")

	// Epoch 2: g1 unchanged, g2 gains a member, g3 joins; gossip says
	// a leads g1 (an older hint than what the client learnt).
	w2 := &wire.Ring{Epoch: 2, Mode: "strong", Groups: []wire.RingGroup{
		{ID: "g1", Weight: 1, Leader: &wire.Leader{ID: "a", HTTP: "a:1"}, Members: []wire.Member{member("b", "g1", "b:1", "alive"), member("a", "g1", "a:1", "alive")}},
		{ID: "g2", Weight: 1, Members: []wire.Member{member("c", "g2", "c:1", "alive"), member("d", "g2", "d:1", "alive"), member("e", "g2", "e:1", "alive")}},
		{ID: "g3", Weight: 2, Leader: &wire.Leader{ID: "f", HTTP: "f:1"}, Members: []wire.Member{member("f", "g3", "f:1", "alive"), member("x", "g3", "x:1", "dead")}},
	}}
	r2, err := c.install(w2)
	if err != nil {
		t.Fatal(err)
	}
	if r2.groups["g1"] != r1.groups["g1"] || r2.groups["g1"].cachedLeader() != "b:1" {
		t.Errorf("g1's client was not reused with its leader cache: %p %p, leader %q", r2.groups["g1"], r1.groups["g1"], r2.groups["g1"].cachedLeader())
	}
	if r2.groups["g2"] == r1.groups["g2"] || r2.groups["g2"].cachedLeader() != "d:1" {
		t.Errorf("g2 changed addresses: want a new client starting from the old leader, got leader %q", r2.groups["g2"].cachedLeader())
	}
	if g3 := r2.groups["g3"]; g3.cachedLeader() != "f:1" || !slices.Equal(g3.addrs, []string{"f:1"}) {
		t.Errorf("g3: leader %q, addrs %v; want the hint and only live members", g3.cachedLeader(), g3.addrs)
	}
	if r2.gen != r1.gen+1 || c.RingEpoch() != 2 {
		t.Errorf("gen %d→%d, epoch %d", r1.gen, r2.gen, c.RingEpoch())
	}
	// An older ring is never installed.
	if r, err := c.install(w1); err != nil || r != r2 {
		t.Errorf("installing epoch 1 over 2 returned %v, %v", r, err)
	}
}

func TestStandaloneRingRoutesEverythingToTheGroupAndItsSeeds(t *testing.T) {
	c := testClient(t, "s:1", "a:1")
	r, err := c.install(&wire.Ring{Epoch: 0, From: "g7", Groups: []wire.RingGroup{
		{ID: "g7", Weight: 1, Members: []wire.Member{member("a", "g7", "a:1", "alive"), member("b", "g7", "b:1", "unknown")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	g := r.groupFor([]byte("anything"))
	if g == nil || g.id != "g7" || !slices.Equal(g.addrs, []string{"a:1", "b:1", "s:1"}) {
		t.Fatalf("standalone group %+v", g)
	}
}

func TestRefreshAsksOtherGroupsFirst(t *testing.T) {
	c := testClient(t, "s1:1", "a:1")
	r, err := c.install(&wire.Ring{Epoch: 1, Mode: "strong", Groups: []wire.RingGroup{
		{ID: "g1", Weight: 1, Members: []wire.Member{member("a", "g1", "a:1", "alive"), member("b", "g1", "b:1", "alive")}},
		{ID: "g2", Weight: 1, Members: []wire.Member{member("c", "g2", "c:1", "alive"), member("d", "g2", "d:1", "dead")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := c.candidates(r, "g1")
	// g2's live member, then the seed outside g1, then g1's members (the
	// seed a:1 among them); never the dead d:1.
	want := []string{"c:1", "s1:1", "a:1", "b:1"}
	if !slices.Equal(got, want) {
		t.Fatalf("candidates = %v, want %v", got, want)
	}
}
