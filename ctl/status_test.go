package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/carpkv/carpkv/kvclient/fakeagent"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// multiCluster starts a fake cluster of groups×n agents under ring epoch 1
// and points CARPKV_ADDR at one agent of g2.
func multiCluster(t *testing.T, groups, n int) *fakeagent.Cluster {
	t.Helper()
	c := fakeagent.NewCluster(groups, n)
	t.Cleanup(c.Close)
	t.Setenv("CARPKV_ADDR", c.Group("g2").Agent(0).Addr())
	return c
}

// rowsOf returns the lines of out that start with prefix, split in fields.
func rowsOf(out, prefix string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			rows = append(rows, strings.Fields(l))
		}
	}
	return rows
}

func TestStatusShowsUnreachableMembers(t *testing.T) {
	g := cluster(t, 3)
	g.AddMember(wire.Server{ID: "n4", RaftAddr: "127.0.0.1:17004", HTTPAddr: deadAddr(t), Suffrage: "Voter"})
	r := runCLI(t, "", "status")
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "ring: none committed (standalone group g1 serves every key); 3/4 agents ready") {
		t.Fatalf("status printed:\n%s", r.stdout)
	}
	groups := rowsOf(r.stdout, "g1 ")
	if len(groups) != 5 || groups[0][1] != "n1" || groups[0][5] != "3/4" {
		t.Fatalf("status printed:\n%s", r.stdout)
	}
	for i, id := range []string{"n1", "n2", "n3", "n4"} {
		if groups[1+i][1] != id {
			t.Fatalf("row %d is not %s:\n%s", i, id, r.stdout)
		}
	}
	if groups[1][3] != "leader" || groups[1][4] != "ready" || groups[4][4] != "unreachable" {
		t.Fatalf("status printed:\n%s", r.stdout)
	}

	r = runCLI(t, "", "status", "-o", "json")
	mustSucceed(t, r)
	var st clusterStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Groups) != 1 || len(st.Groups[0].Members) != 4 {
		t.Fatalf("status -o json printed %q (%v)", r.stdout, err)
	}
	if m := st.Groups[0].Members[3]; m.ID != "n4" || m.Reachable || m.Error == "" || m.Suffrage != "Voter" {
		t.Fatalf("n4 = %+v, want unreachable with an error", m)
	}
	if st.Ring == nil || st.Ring.Epoch != 0 || st.Groups[0].Leader != "n1" {
		t.Fatalf("status -o json: %+v", st)
	}
}

func TestStatusWithoutALeaderShowsNotReady(t *testing.T) {
	g := cluster(t, 2)
	g.SetLeader(-1)
	r := runCLI(t, "", "--timeout", "500ms", "status")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "no leader known") || strings.Count(r.stdout, "not ready: no leader") != 2 {
		t.Fatalf("status printed:\n%s", r.stdout)
	}
}

func TestStatusOfManyGroupsShowsLeadersKeysSharesAndDeadMembers(t *testing.T) {
	c := multiCluster(t, 3, 3)
	for i := range 90 {
		mustSucceed(t, runCLI(t, "", "put", fmt.Sprintf("k%d", i), "v"))
	}
	dead := c.Group("g3").Agent(2)
	dead.Stop()
	c.Group("g1").SetLeader(1)

	r := runCLI(t, "", "status")
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "ring: epoch 1, mode strong, 3 groups; 8/9 agents ready") {
		t.Fatalf("status printed:\n%s", r.stdout)
	}
	total := 0
	for _, g := range c.Groups() {
		rows := rowsOf(r.stdout, g.ID()+" ")
		if len(rows) != 4 {
			t.Fatalf("group %s: %d rows:\n%s", g.ID(), len(rows), r.stdout)
		}
		keys := len(g.Keys())
		total += keys
		leader := g.ID() + "-n1"
		if g.ID() == "g1" {
			leader = "g1-n2"
		}
		// GROUP LEADER KEYS SHARE TARGET MEMBERS
		if rows[0][1] != leader || rows[0][2] != fmt.Sprint(keys) || rows[0][3] != percent(float64(keys)/90) || rows[0][4] != "33.3%" {
			t.Errorf("group %s row %q, want leader %s and %d keys", g.ID(), rows[0], leader, keys)
		}
	}
	if total != 90 {
		t.Fatalf("the groups hold %d keys", total)
	}
	deadRow := rowsOf(r.stdout, "g3  ")[3]
	if deadRow[1] != "g3-n3" || deadRow[4] != "unreachable" || deadRow[8] != "dead" {
		t.Fatalf("dead member row %q:\n%s", deadRow, r.stdout)
	}
	for _, row := range rowsOf(r.stdout, "g1  g1-n") {
		// GROUP ID ADDR ROLE HEALTH TERM APPLIED EPOCH GOSSIP KEYS STORAGE(2 fields)
		if row[7] != "1" || row[8] != "alive" {
			t.Errorf("member row %q: want ring epoch 1 and gossip alive", row)
		}
	}

	r = runCLI(t, "", "status", "-o", "json")
	mustSucceed(t, r)
	var st clusterStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ring.Epoch != 1 || len(st.Groups) != 3 || st.Groups[0].Group != "g1" || !st.Groups[0].InRing || st.Groups[0].TargetShare < 0.3 {
		t.Fatalf("status -o json: %+v", st)
	}
	m := st.Groups[2].Members[2]
	if m.ID != "g3-n3" || m.Reachable || m.Gossip != "dead" {
		t.Fatalf("dead member in JSON: %+v", m)
	}
}

func TestStatusListsGroupsOutsideTheRing(t *testing.T) {
	c := multiCluster(t, 2, 1)
	c.AddGroup("g3", 1) // gossip sees it; the ring does not list it yet
	r := runCLI(t, "", "status")
	mustSucceed(t, r)
	rows := rowsOf(r.stdout, "g3 ")
	if len(rows) != 2 || rows[0][4] != "standby" || !strings.Contains(strings.Join(rows[0], " "), "standby (not in the ring): 'carpkvctl ring add-group g3' adds it") {
		t.Fatalf("status printed:\n%s", r.stdout)
	}
	r = runCLI(t, "", "status", "-o", "json")
	mustSucceed(t, r)
	var st clusterStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Groups) != 3 {
		t.Fatalf("status -o json: %v\n%s", err, r.stdout)
	}
	for i, want := range []string{"in_ring", "in_ring", "standby"} {
		if g := st.Groups[i]; g.Standing != want || g.InRing != (want == "in_ring") {
			t.Errorf("group %s: standing %q, in_ring %v; want %s", g.Group, g.Standing, g.InRing, want)
		}
	}
}

func TestStatusShowsARemovedGroupAsStoppable(t *testing.T) {
	c := multiCluster(t, 3, 1)
	// g3 was removed: every group, g3 too, acts under epoch 2 without it.
	spec := wire.RingSpec{Epoch: 2, Mode: "strong", Groups: []wire.RingGroupSpec{{ID: "g1", Weight: 1}, {ID: "g2", Weight: 1}}}
	if err := c.SetRing(spec); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "status")
	mustSucceed(t, r)
	rows := rowsOf(r.stdout, "g3 ")
	if len(rows) != 2 || rows[0][4] != "removed" || !strings.Contains(strings.Join(rows[0], " "), "removed: serves no keys, can be stopped") {
		t.Fatalf("status printed:\n%s", r.stdout)
	}
	if !strings.HasPrefix(r.stdout, "ring: epoch 2, mode strong, 2 groups;") {
		t.Fatalf("status printed:\n%s", r.stdout)
	}
}

func TestStandingOfAGroup(t *testing.T) {
	removing := &wire.RingChangeStatus{Kind: wire.ChangeRemoveGroup, Group: "g3", Phase: wire.PhaseCleanup}
	adding := &wire.RingChangeStatus{Kind: wire.ChangeAddGroup, Group: "g4", Phase: wire.PhaseCopy}
	tests := []struct {
		name      string
		inRing    bool
		ring, own uint64
		active    *wire.RingChangeStatus
		group     string
		want      string
	}{
		{"in the ring", true, 2, 2, nil, "g1", "in_ring"},
		{"in the ring, being removed", true, 2, 2, removing, "g3", "leaving"},
		{"in the ring, another change", true, 2, 2, adding, "g1", "in_ring"},
		{"started, never added", false, 2, 0, nil, "g4", "standby"},
		{"being added", false, 2, 0, adding, "g4", "standby"},
		{"out of the ring, behind it: still handing off", false, 3, 2, nil, "g3", "leaving"},
		{"out of the ring, cleanup running", false, 3, 3, removing, "g3", "leaving"},
		{"removed, change done", false, 3, 3, nil, "g3", "removed"},
		{"removed, another change runs", false, 3, 3, adding, "g3", "removed"},
	}
	for _, tt := range tests {
		if got := standing(tt.inRing, tt.ring, tt.own, tt.active, tt.group); got != tt.want {
			t.Errorf("%s: standing = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRingShowAndOwner(t *testing.T) {
	c := multiCluster(t, 3, 2)
	r := runCLI(t, "", "ring", "show")
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "ring: epoch 1, mode strong, 3 groups (answered by group g2)") {
		t.Fatalf("ring show printed:\n%s", r.stdout)
	}
	for _, g := range []string{"g1", "g2", "g3"} {
		rows := rowsOf(r.stdout, g+" ")
		if len(rows) != 1 || rows[0][1] != "1" || rows[0][2] != "33.3%" || rows[0][3] != g+"-n1" || rows[0][4] != g+"-n1" {
			t.Errorf("group %s rows %q", g, rows)
		}
		if !strings.Contains(r.stdout, g+"-n2") {
			t.Errorf("member %s-n2 missing", g)
		}
	}
	r = runCLI(t, "", "ring", "show", "-o", "json")
	mustSucceed(t, r)
	var ring wire.Ring
	if err := json.Unmarshal([]byte(r.stdout), &ring); err != nil || ring.Epoch != 1 || len(ring.Groups) != 3 {
		t.Fatalf("ring show -o json: %v\n%s", err, r.stdout)
	}

	spec := wire.RingSpec{Epoch: 1, Mode: "strong", Groups: []wire.RingGroupSpec{{ID: "g1", Weight: 1}, {ID: "g2", Weight: 1}, {ID: "g3", Weight: 1}}}
	for _, key := range []string{"user/1", "user/2", "user/3", "a", "b"} {
		owner := fakeagent.Owner(spec, []byte(key))
		r := runCLI(t, "", "ring", "owner", key)
		mustSucceed(t, r)
		want := fmt.Sprintf("%s (leader %s-n1 at %s; ring epoch 1)\n", owner, owner, c.Group(owner).Agent(0).Addr())
		if r.stdout != want {
			t.Errorf("ring owner %s = %q, want %q", key, r.stdout, want)
		}
	}
	r = runCLI(t, "", "ring", "owner", "user/1", "-o", "json")
	mustSucceed(t, r)
	var o ownerResult
	if err := json.Unmarshal([]byte(r.stdout), &o); err != nil || o.Group != fakeagent.Owner(spec, []byte("user/1")) || o.Leader == nil || o.Epoch != 1 {
		t.Fatalf("ring owner -o json = %q (%v)", r.stdout, err)
	}
	if r := runCLI(t, "", "ring", "owner"); r.code != 3 {
		t.Fatalf("ring owner without a key = %+v", r)
	}
	if r := runCLI(t, "", "ring", "bogus"); r.code != 3 || !strings.Contains(r.stderr, "want show, owner, add-group") {
		t.Fatalf("ring bogus = %+v", r)
	}
}

func TestKVCommandsRouteAcrossGroups(t *testing.T) {
	c := multiCluster(t, 3, 1)
	for i := range 30 {
		mustSucceed(t, runCLI(t, "", "put", fmt.Sprintf("k%d", i), fmt.Sprint(i)))
	}
	for _, g := range c.Groups() {
		if len(g.Keys()) == 0 {
			t.Errorf("group %s got no key", g.ID())
		}
	}
	r := runCLI(t, "", "get", "k7")
	mustSucceed(t, r)
	if r.stdout != "7" {
		t.Fatalf("get k7 = %q", r.stdout)
	}
}
