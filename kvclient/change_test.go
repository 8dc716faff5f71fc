package kvclient_test

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/fakeagent"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// changeFake is a fake of the ring change endpoints on a cluster of fake
// agents: each agent's answer to POST and GET /v1/ring/change is a hook;
// the other calls (the ring, gossip) are the fake agents' own.
type changeFake struct {
	c     *fakeagent.Cluster
	posts map[string]*atomic.Int64 // by agent ID
	gets  map[string]*atomic.Int64
	got   atomic.Pointer[wire.RingChangeRequest]
}

func newChangeFake(t *testing.T, groups, n int) *changeFake {
	t.Helper()
	c := fakeagent.NewCluster(groups, n)
	t.Cleanup(c.Close)
	f := &changeFake{c: c, posts: map[string]*atomic.Int64{}, gets: map[string]*atomic.Int64{}}
	for _, g := range c.Groups() {
		for _, a := range g.Agents() {
			f.posts[a.ID()], f.gets[a.ID()] = new(atomic.Int64), new(atomic.Int64)
			f.on(a, func(w http.ResponseWriter, r *http.Request) {
				fakeagent.WriteError(w, &wire.Error{Code: wire.CodeInvalidArgument, Message: "not the coordinator group"})
			})
		}
	}
	return f
}

// on makes agent a answer the ring change endpoints with h.
func (f *changeFake) on(a *fakeagent.Agent, h func(w http.ResponseWriter, r *http.Request)) {
	a.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != wire.PathRingChange {
			return false
		}
		if r.Method == http.MethodPost {
			f.posts[a.ID()].Add(1)
			var req wire.RingChangeRequest
			if json.NewDecoder(r.Body).Decode(&req) == nil {
				f.got.Store(&req)
			}
		} else {
			f.gets[a.ID()].Add(1)
		}
		h(w, r)
		return true
	})
}

func (f *changeFake) totalPosts() int64 {
	var n int64
	for _, c := range f.posts {
		n += c.Load()
	}
	return n
}

func recorded(req wire.RingChangeRequest) *wire.RingChangeStatus {
	return &wire.RingChangeStatus{Kind: req.Kind, Group: req.Group, Phase: wire.PhasePrepare, Coordinator: "g1",
		From: wire.RingSpec{Epoch: 1}, To: wire.RingSpec{Epoch: 2}}
}

func answerCode(code wire.Code, hint *wire.Leader) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		fakeagent.WriteError(w, &wire.Error{Code: code, Message: "injected", Leader: hint})
	}
}

func TestRingChangeFollowsTheLeaderHintInTheCoordinatorGroup(t *testing.T) {
	f := newChangeFake(t, 3, 3)
	g1 := f.c.Group("g1")
	g1.SetLeader(1) // the ring's hint: g1-n2
	hinted, real := g1.Agent(1), g1.Agent(2)
	f.on(hinted, answerCode(wire.CodeNotLeader, &wire.Leader{ID: real.ID(), HTTP: real.Addr()}))
	f.on(real, func(w http.ResponseWriter, r *http.Request) { writeJSONBody(w, recorded(*f.got.Load())) })
	// The seed is an agent of another group: the client finds g1 from the ring.
	c := newClient(t, fastConfig(f.c.Group("g3").Agent(0).Addr()))

	st, err := c.RingChange(ctxFor(t, 5*time.Second), wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g4", Weight: 2})
	if err != nil {
		t.Fatalf("RingChange: %v", err)
	}
	if st.Phase != wire.PhasePrepare || st.Group != "g4" || st.To.Epoch != 2 {
		t.Fatalf("RingChange = %+v", st)
	}
	if got := *f.got.Load(); got != (wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g4", Weight: 2}) {
		t.Fatalf("the coordinator got %+v", got)
	}
	if hinted.ID() != "g1-n2" || f.posts["g1-n2"].Load() != 1 || f.posts["g1-n3"].Load() != 1 || f.totalPosts() != 2 {
		t.Fatalf("posts: %d at the hinted leader, %d at the real one, %d in all; want 1, 1, 2",
			f.posts["g1-n2"].Load(), f.posts["g1-n3"].Load(), f.totalPosts())
	}
}

func TestRingChangeErrorsAreTypedAndOnlySafeOnesRetried(t *testing.T) {
	tests := []struct {
		name      string
		answers   []func(http.ResponseWriter, *http.Request) // the leader's, in turn; the last repeats
		want      error
		wantPosts int64
	}{
		{"in progress", []func(http.ResponseWriter, *http.Request){answerCode(wire.CodeRingChangeInProgress, nil)}, kvclient.ErrRingChangeInProgress, 1},
		{"invalid argument", []func(http.ResponseWriter, *http.Request){answerCode(wire.CodeInvalidArgument, nil)}, kvclient.ErrInvalidArgument, 1},
		{"server timeout: outcome unknown", []func(http.ResponseWriter, *http.Request){answerCode(wire.CodeTimeout, nil)}, kvclient.ErrTimeout, 1},
		{"no answer: outcome unknown", []func(http.ResponseWriter, *http.Request){func(w http.ResponseWriter, r *http.Request) { dropConn(w) }}, kvclient.ErrTimeout, 1},
		{"unavailable, then recorded", []func(http.ResponseWriter, *http.Request){
			answerCode(wire.CodeUnavailable, nil), answerCode(wire.CodeUnavailable, nil),
			func(w http.ResponseWriter, r *http.Request) {
				writeJSONBody(w, recorded(wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: "g2"}))
			},
		}, nil, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newChangeFake(t, 2, 1)
			var n atomic.Int64
			f.on(f.c.Group("g1").Agent(0), func(w http.ResponseWriter, r *http.Request) {
				i := min(int(n.Add(1))-1, len(tt.answers)-1)
				tt.answers[i](w, r)
			})
			c := newClient(t, fastConfig(f.c.Group("g2").Agent(0).Addr()))
			_, err := c.RingChange(ctxFor(t, 5*time.Second), wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: "g2"})
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("RingChange: %v, want %v", err, tt.want)
			}
			if got := f.totalPosts(); got != tt.wantPosts {
				t.Fatalf("%d requests sent, want %d", got, tt.wantPosts)
			}
		})
	}
}

func TestRingChangeRefusesBadRequestsWithoutSending(t *testing.T) {
	f := newChangeFake(t, 2, 1)
	c := newClient(t, fastConfig(f.c.Addrs()...))
	for _, req := range []wire.RingChangeRequest{
		{Kind: "split-group", Group: "g1"},
		{Kind: wire.ChangeAddGroup},
		{Kind: wire.ChangeAddGroup, Group: "g3", Weight: -1},
		{Kind: wire.ChangeAddGroup, Group: "g3", Weight: math.NaN()},
		{Kind: wire.ChangeSetWeight, Group: "g1", Weight: math.Inf(1)},
		{Kind: wire.ChangeSetWeight, Group: "g1"},
		{Kind: wire.ChangeRemoveGroup, Group: "g1", Weight: 2},
	} {
		if _, err := c.RingChange(ctxFor(t, time.Second), req); !errors.Is(err, kvclient.ErrInvalidArgument) {
			t.Errorf("RingChange(%+v): %v, want ErrInvalidArgument", req, err)
		}
	}
	if n := f.totalPosts(); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

func TestRingChangeStatusFallsBackToAFollower(t *testing.T) {
	f := newChangeFake(t, 2, 3)
	g1 := f.c.Group("g1")
	g1.Agent(0).Stop() // the leader gossip names is gone
	want := wire.RingChangeAnswer{Active: &wire.RingChangeStatus{Kind: wire.ChangeAddGroup, Group: "g3", Phase: wire.PhaseCopy}}
	for _, a := range g1.Agents()[1:] {
		f.on(a, func(w http.ResponseWriter, r *http.Request) { writeJSONBody(w, want) })
	}
	c := newClient(t, fastConfig(f.c.Group("g2").Agent(0).Addr()))
	got, err := c.RingChangeStatus(ctxFor(t, 5*time.Second))
	if err != nil {
		t.Fatalf("RingChangeStatus: %v", err)
	}
	if got.Active == nil || got.Active.Phase != wire.PhaseCopy || got.Last != nil {
		t.Fatalf("RingChangeStatus = %+v", got)
	}
	if n := f.gets["g1-n2"].Load() + f.gets["g1-n3"].Load(); n != 1 {
		t.Fatalf("%d GETs at the followers, want 1", n)
	}
}

func TestKeyMovingIsRetriedAtTheSameLeader(t *testing.T) {
	g := newGroup(t, 3)
	g.Agent(0).SetHook(firstN(2, answer(wire.CodeKeyMoving)))
	c := newClient(t, fastConfig(g.Addrs()...))
	if _, err := c.Put(ctxFor(t, 5*time.Second), []byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put during a hand-off: %v", err)
	}
	if n := g.Agent(0).Requests(); n != 3 {
		t.Fatalf("the leader got %d requests, want 3 (two key_moving, then the write)", n)
	}
	// A read cut by the deadline reports what the agent said (a write cut
	// in flight would rightly say its outcome is unknown).
	g.Agent(0).SetHook(answer(wire.CodeKeyMoving))
	_, err := c.Get(ctxFor(t, 200*time.Millisecond), []byte("k"))
	var e *kvclient.Error
	if !errors.Is(err, kvclient.ErrKeyMoving) || !errors.As(err, &e) {
		t.Fatalf("Get while the key keeps moving: %v, want ErrKeyMoving", err)
	}
}
