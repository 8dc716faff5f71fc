package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/carpkv/carpkv/carp"
	"github.com/carpkv/carpkv/internal/testcluster"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// These tests run 3 groups × 3 real agent processes that find each other
// by gossip alone (--retry-join of one agent, --bootstrap-expect,
// --expect-groups): no manual step forms the groups or the ring.

func ringOf(t *testing.T, s *testcluster.Sharded) (wire.Ring, *carp.Ring) {
	t.Helper()
	r, err := s.Groups[0].Nodes[0].Ring()
	if err != nil {
		t.Fatal(err)
	}
	members := make([]carp.Member, len(r.Groups))
	for i, g := range r.Groups {
		members[i] = carp.Member{ID: g.ID, Weight: g.Weight}
	}
	mode, err := carp.ParseMode(r.Mode)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := carp.New(members, carp.WithMode(mode), carp.WithEpoch(r.Epoch))
	if err != nil {
		t.Fatal(err)
	}
	return r, cr
}

func putAt(t *testing.T, addr, key, value string, epoch uint64) answer {
	t.Helper()
	req, _ := http.NewRequest("PUT", "http://"+addr+wire.KVPrefix+key, strings.NewReader(value))
	if epoch > 0 {
		req.Header.Set(wire.HeaderRingEpoch, fmt.Sprint(epoch))
	}
	return doReq(t, req)
}

func doReq(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	a.body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var eb wire.ErrorBody
		if json.Unmarshal(a.body, &eb) == nil {
			a.err = eb.Error
		}
	}
	return a
}

func TestShardedClusterFormsAndEnforcesOwnership(t *testing.T) {
	start := time.Now()
	s := testcluster.StartSharded(t, 3, 3)
	t.Logf("3x3 cluster: every agent applied ring epoch 1 %.1fs after start", time.Since(start).Seconds())

	ring, cr := ringOf(t, s)
	if ring.Epoch != 1 || len(ring.Groups) != 3 {
		t.Fatalf("ring %+v", ring)
	}
	for _, g := range ring.Groups {
		if g.Leader == nil || len(g.Members) != 3 {
			t.Fatalf("group %s in the ring: leader %v, %d members", g.ID, g.Leader, len(g.Members))
		}
		if math.Abs(g.Share-1.0/3) > 1e-9 {
			t.Fatalf("group %s share %v", g.ID, g.Share)
		}
	}

	// Every key is accepted only by its owner; the others say wrong_group
	// with their epoch.
	const keys = 600
	groups := map[string]*testcluster.Cluster{}
	leaders := map[string]*testcluster.Node{}
	for _, c := range s.Groups {
		groups[c.Group] = c
		leaders[c.Group] = c.Leader(10 * time.Second)
	}
	for i := 0; i < keys; i++ {
		key := fmt.Sprintf("user:%d", i)
		owner := cr.Owner([]byte(key))
		// The owner accepts it. A leader change on a loaded machine only
		// costs a retry at the new leader (the value is the same, so a
		// repeated write of unknown outcome changes nothing we check).
		testcluster.Eventually(t, 20*time.Second, "owner "+owner+" accepts "+key, func() error {
			a := putAt(t, leaders[owner].HTTPAddr, key, "v", 1)
			switch {
			case a.status == 200:
				return nil
			case a.err != nil && (a.err.Code == wire.CodeNotLeader || a.err.Code == wire.CodeUnavailable || a.err.Code == wire.CodeTimeout):
				leaders[owner] = groups[owner].Leader(10 * time.Second)
				return fmt.Errorf("%d %s", a.status, a.body)
			}
			t.Fatalf("owner %s refused %s: %d %s", owner, key, a.status, a.body)
			return nil
		})
		if i%50 == 0 {
			for g := range leaders {
				if g == owner {
					continue
				}
				testcluster.Eventually(t, 20*time.Second, "non-owner "+g+" refuses "+key, func() error {
					a := putAt(t, leaders[g].HTTPAddr, key, "v", 1)
					if a.err != nil && a.err.Code == wire.CodeNotLeader {
						leaders[g] = groups[g].Leader(10 * time.Second)
						return fmt.Errorf("%s", a.body)
					}
					if a.err == nil || a.err.Code != wire.CodeWrongGroup || a.err.Epoch != 1 {
						t.Fatalf("non-owner %s for %s: %d %s", g, key, a.status, a.body)
					}
					return nil
				})
			}
			// A client ahead of the group is told the group is behind.
			testcluster.Eventually(t, 20*time.Second, "stale_ring from "+owner, func() error {
				a := putAt(t, leaders[owner].HTTPAddr, key, "v", 7)
				if a.err != nil && a.err.Code == wire.CodeNotLeader {
					leaders[owner] = groups[owner].Leader(10 * time.Second)
					return fmt.Errorf("%s", a.body)
				}
				if a.err == nil || a.err.Code != wire.CodeStaleRing || a.err.Epoch != 1 {
					t.Fatalf("client at epoch 7: %d %s", a.status, a.body)
				}
				return nil
			})
		}
	}

	// Every member of every group holds exactly its group's keys (stale
	// reads of the local state), and the split matches the CARP targets.
	counts := map[string]int{}
	for i := 0; i < keys; i++ {
		counts[cr.Owner([]byte(fmt.Sprintf("user:%d", i)))]++
	}
	for _, c := range s.Groups {
		want := counts[c.Group]
		p := 1.0 / 3
		if sigma := math.Sqrt(p * (1 - p) / keys); math.Abs(float64(want)/keys-p) > 4*sigma {
			t.Errorf("group %s owns %d of %d keys, far from its target share %.3f", c.Group, want, keys, p)
		}
		for _, n := range c.Nodes {
			testcluster.Eventually(t, 10*time.Second, n.ID+" holds its group's keys", func() error {
				info, err := n.Self()
				if err != nil {
					return err
				}
				if info.Keys != want {
					return fmt.Errorf("%d keys, want %d", info.Keys, want)
				}
				return nil
			})
		}
	}
}

func TestDeadAgentShowsInGossipWithinBoundedTime(t *testing.T) {
	s := testcluster.StartSharded(t, 2, 3)
	victim := s.Groups[1].Nodes[2]
	observer := s.Groups[0].Nodes[0]
	killed := time.Now()
	victim.Kill()
	testcluster.Eventually(t, 20*time.Second, "the killed agent reported dead", func() error {
		ms, err := observer.GossipMembers()
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.ID == victim.ID {
				if m.State != "dead" {
					return fmt.Errorf("state %s", m.State)
				}
				return nil
			}
		}
		return fmt.Errorf("%s not listed", victim.ID)
	})
	t.Logf("kill -9 of %s seen as dead by %s after %.1fs", victim.ID, observer.ID, time.Since(killed).Seconds())

	// A graceful stop leaves the pool: "left", not "dead".
	leaver := s.Groups[0].Nodes[2]
	leaver.Stop()
	testcluster.Eventually(t, 20*time.Second, "the stopped agent reported left", func() error {
		ms, err := observer.GossipMembers()
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.ID == leaver.ID && m.State == "left" {
				return nil
			}
		}
		return fmt.Errorf("%s not left yet", leaver.ID)
	})
}

func TestAgentWithOnlyAnotherGroupsAddressJoinsItsOwnGroup(t *testing.T) {
	s := testcluster.StartSharded(t, 2, 3)
	g2 := s.Groups[1]
	n4 := g2.AddNode("g2-n4")
	// Only a gossip address of an agent of g1: no --join, no g2 address.
	n4.Args = append(n4.Args, "--retry-join", s.Groups[0].Nodes[1].GossipAddr)
	n4.Start()
	g2.WaitMembers(4, 30*time.Second)
	s.WaitRing(1, 30*time.Second)
	info, err := n4.Self()
	if err != nil {
		t.Fatal(err)
	}
	if info.Group != "g2" || info.Leader == nil {
		t.Fatalf("new agent: %+v", info)
	}
}
