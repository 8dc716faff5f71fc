// Package fakeagent is a stand-in for carpkv groups in tests of code built
// on kvclient (kvclient's own tests, carpkvctl's). Each agent is an
// httptest server speaking the wire protocol of docs/api.md; a group's
// state is one map behind a mutex and "leadership" is a field the test
// sets. It has no Raft: it checks what a client does with the protocol
// (hints, retries, error codes, escaping, ring routing), not replication.
//
// NewGroup starts a standalone group (ring epoch 0: it serves every key);
// NewCluster starts several groups under one CARP ring (cluster.go), whose
// agents refuse keys they do not own with wrong_group or stale_ring exactly
// as the API says, and answer GET /v1/ring and /v1/gossip/members from a
// gossip view shared by the cluster (a stopped agent shows as dead).
//
// Faults are injected per agent with hooks that see each request before
// the normal handler and may answer it themselves. Hooks (SetHook) see the
// KV and management API; the ring and gossip endpoints have their own
// (SetRingHook) and their own request counter, so that tests of retries
// are not disturbed by the client's ring fetches.
package fakeagent

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// Hook sees a request before the agent's normal handler. It returns true if
// it answered the request (or dropped the connection), false to let the
// normal handler answer.
type Hook func(w http.ResponseWriter, r *http.Request) bool

// Group is a fake group of agents sharing one store.
type Group struct {
	id     string
	prefix string   // of agent IDs: "n" (n1, n2...) or "g1-n"
	cl     *Cluster // nil: standalone

	mu      sync.Mutex
	ring    ringState // the ring this group has applied
	agents  []*Agent
	members []wire.Server // the Raft configuration, agents first
	removed map[string]bool
	leader  int  // index into agents; -1: no leader
	noHints bool // not_leader answers carry no leader
	data    map[string]item
	index   uint64 // last "Raft index"; also the source of versions
	confIdx uint64

	done chan struct{}
	once sync.Once
}

type item struct {
	value   []byte
	version uint64
}

// Agent is one fake agent.
type Agent struct {
	g        *Group
	n        int
	id       string
	raftAddr string
	srv      *httptest.Server
	hook     atomic.Pointer[Hook]
	ringHook atomic.Pointer[Hook]
	requests atomic.Int64
	ringReqs atomic.Int64
	stopped  atomic.Bool
	stream   streamState
}

// NewGroup starts a standalone group g1 (ring epoch 0) of n agents
// (n1..nn); n1 is the leader.
func NewGroup(n int) *Group { return newGroup("g1", "n", nil, n) }

func newGroup(id, prefix string, cl *Cluster, n int) *Group {
	g := &Group{id: id, prefix: prefix, cl: cl, data: map[string]item{}, removed: map[string]bool{}, done: make(chan struct{})}
	for range n {
		g.AddAgent()
	}
	g.index, g.confIdx = 0, 1
	return g
}

// AddAgent starts one more agent in the group, a voter of its
// configuration, and returns it.
func (g *Group) AddAgent() *Agent {
	g.mu.Lock()
	i := len(g.agents)
	a := &Agent{g: g, n: i, id: fmt.Sprintf("%s%d", g.prefix, i+1), raftAddr: fmt.Sprintf("127.0.0.1:%d", 17001+i)}
	g.mu.Unlock()
	a.srv = httptest.NewServer(a)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.agents = append(g.agents, a)
	g.members = append(g.members, wire.Server{
		ID:       a.id,
		RaftAddr: a.raftAddr,
		HTTPAddr: a.Addr(),
		Suffrage: "Voter",
	})
	g.confIdx = g.next()
	return a
}

// ID returns the group's ID.
func (g *Group) ID() string { return g.id }

// Close stops every agent. Hooks blocked on Done return.
func (g *Group) Close() {
	g.once.Do(func() { close(g.done) })
	for _, a := range g.Agents() {
		a.Stop()
	}
}

// Done is closed when the group closes: a hook that hangs must also
// return on it.
func (g *Group) Done() <-chan struct{} { return g.done }

// Agents returns the agents in order.
func (g *Group) Agents() []*Agent {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*Agent(nil), g.agents...)
}

// Agent returns agent i (0-based).
func (g *Group) Agent(i int) *Agent {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.agents[i]
}

// Addrs returns the agents' HTTP addresses (host:port).
func (g *Group) Addrs() []string {
	agents := g.Agents()
	out := make([]string, len(agents))
	for i, a := range agents {
		out[i] = a.Addr()
	}
	return out
}

// Keys returns the keys the group stores, in no order.
func (g *Group) Keys() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.data))
	for k := range g.data {
		out = append(out, k)
	}
	return out
}

// SetLeader makes agent i the leader; -1: no leader (writes and
// linearizable reads answer unavailable everywhere).
func (g *Group) SetLeader(i int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.leader = i
}

// Leader returns the leader's index, -1 if none.
func (g *Group) Leader() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.leader
}

// SetHints chooses whether not_leader answers name the leader.
func (g *Group) SetHints(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.noHints = !on
}

// Value returns the stored value and version of key (version 0: absent).
func (g *Group) Value(key []byte) ([]byte, uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	it, ok := g.data[string(key)]
	if !ok {
		return nil, 0
	}
	return append([]byte(nil), it.value...), it.version
}

// AddMember adds a member to the configuration that is not backed by a
// fake agent (e.g. an unreachable address).
func (g *Group) AddMember(s wire.Server) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.members = append(g.members, s)
	g.confIdx = g.next()
}

func (g *Group) next() uint64 {
	g.index++
	return g.index
}

// Addr returns the agent's HTTP address (host:port).
func (a *Agent) Addr() string { return strings.TrimPrefix(a.srv.URL, "http://") }

// ID returns the agent's node ID.
func (a *Agent) ID() string { return a.id }

// SetHook installs h (nil removes the hook).
func (a *Agent) SetHook(h Hook) {
	if h == nil {
		a.hook.Store(nil)
		return
	}
	a.hook.Store(&h)
}

// SetRingHook installs h for the ring and gossip endpoints (nil removes it).
func (a *Agent) SetRingHook(h Hook) {
	if h == nil {
		a.ringHook.Store(nil)
		return
	}
	a.ringHook.Store(&h)
}

// Requests returns how many KV and management requests the agent
// received, hooks included (not ring or gossip requests: RingRequests).
func (a *Agent) Requests() int64 { return a.requests.Load() }

// RingRequests returns how many GET /v1/ring and /v1/gossip/members
// requests the agent received, hooks included.
func (a *Agent) RingRequests() int64 { return a.ringReqs.Load() }

// Group returns the agent's group.
func (a *Agent) Group() *Group { return a.g }

// Stopped reports whether Stop was called.
func (a *Agent) Stopped() bool { return a.stopped.Load() }

// Stop closes the agent's server: its address then refuses connections.
func (a *Agent) Stop() {
	if a.stopped.Swap(true) {
		return
	}
	a.srv.CloseClientConnections()
	a.closeStreams()
	a.srv.Close()
}

// ServeHTTP counts the request, runs the hook, then the normal handler.
func (a *Agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == wire.PathKVStream {
		if a.serveStream(w, r) {
			return
		}
		// Without a stream handler, a fake of the HTTP API only: the
		// client falls back to HTTP, as it does with an agent that
		// predates the KV stream. Not counted, so request counts are
		// those of the HTTP API.
		WriteError(w, &wire.Error{Code: wire.CodeNotFound, Message: "this fake agent speaks HTTP only"})
		return
	}
	if p := r.URL.Path; p == wire.PathRing || p == wire.PathGossipMembers {
		a.ringReqs.Add(1)
		if h := a.ringHook.Load(); h != nil && (*h)(w, r) {
			return
		}
		a.Serve(w, r)
		return
	}
	a.requests.Add(1)
	if h := a.hook.Load(); h != nil && (*h)(w, r) {
		return
	}
	a.Serve(w, r)
}

// Serve is the agent's normal handler, for hooks that wrap it.
func (a *Agent) Serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(p, wire.KVPrefix):
		key, err := url.PathUnescape(strings.TrimPrefix(p, wire.KVPrefix))
		if err != nil || key == "" {
			WriteError(w, &wire.Error{Code: wire.CodeInvalidArgument, Message: "bad key encoding"})
			return
		}
		a.serveKV(w, r, key)
	case p == wire.PathAgentSelf && r.Method == http.MethodGet:
		a.serveSelf(w)
	case p == wire.PathRing && r.Method == http.MethodGet:
		a.serveRing(w)
	case p == wire.PathGossipMembers && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, wire.Members{Members: a.g.gossip()})
	case p == wire.PathRaftConfiguration && r.Method == http.MethodGet:
		a.serveConfiguration(w)
	case p == wire.PathHealth:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case p == wire.PathReady:
		if a.g.Leader() < 0 {
			WriteError(w, &wire.Error{Code: wire.CodeUnavailable, Message: "no leader"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	case r.Method == http.MethodPost && (p == wire.PathRaftJoin || p == wire.PathRaftRemove || p == wire.PathTransferLeadership):
		a.serveMembership(w, r, p)
	default:
		WriteError(w, &wire.Error{Code: wire.CodeNotFound, Message: "no route " + r.Method + " " + p})
	}
}

// WriteError answers with e in the wire shape and its status.
func WriteError(w http.ResponseWriter, e *wire.Error) {
	writeJSON(w, e.Code.HTTPStatus(), wire.ErrorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// leaderCheck answers not_leader or unavailable and returns false unless
// the agent leads. Callers hold g.mu.
func (a *Agent) leaderCheck(w http.ResponseWriter) bool {
	g := a.g
	switch {
	case g.leader == a.n:
		return true
	case g.leader < 0:
		WriteError(w, &wire.Error{Code: wire.CodeUnavailable, Message: "no leader"})
	case g.noHints:
		WriteError(w, &wire.Error{Code: wire.CodeNotLeader, Message: "this node is a follower"})
	default:
		l := g.agents[g.leader]
		WriteError(w, &wire.Error{Code: wire.CodeNotLeader, Message: "this node is a follower",
			Leader: &wire.Leader{ID: l.id, HTTP: l.Addr()}})
	}
	return false
}

func (a *Agent) serveKV(w http.ResponseWriter, r *http.Request, key string) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client is gone
	}
	g := a.g
	g.mu.Lock()
	defer g.mu.Unlock()
	stale := r.URL.Query().Get(wire.QueryStale) == "true"
	if !(stale && r.Method == http.MethodGet) && !a.leaderCheck(w) {
		return
	}
	if !g.ownerCheck(w, r, key) {
		return
	}
	var cas *uint64
	if s := r.URL.Query().Get(wire.QueryCAS); s != "" {
		v, err := wire.ParseUint(s)
		if err != nil {
			WriteError(w, &wire.Error{Code: wire.CodeInvalidArgument, Message: "bad cas"})
			return
		}
		cas = &v
	}
	cur, exists := g.data[key]
	switch r.Method {
	case http.MethodGet:
		if !exists {
			WriteError(w, &wire.Error{Code: wire.CodeNotFound, Message: "no such key"})
			return
		}
		w.Header().Set(wire.HeaderVersion, wire.FormatUint(cur.version))
		w.Header().Set(wire.HeaderIndex, wire.FormatUint(g.index))
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(cur.value)
	case http.MethodPut:
		if cas != nil && *cas != cur.version {
			WriteError(w, &wire.Error{Code: wire.CodeCASFailed, Message: "version mismatch", Version: cur.version})
			return
		}
		idx := g.next()
		g.data[key] = item{value: body, version: idx}
		w.Header().Set(wire.HeaderVersion, wire.FormatUint(idx))
		writeJSON(w, http.StatusOK, wire.WriteResult{Version: idx, Index: idx})
	case http.MethodDelete:
		if !exists {
			WriteError(w, &wire.Error{Code: wire.CodeNotFound, Message: "nothing to delete"})
			return
		}
		if cas != nil && *cas != cur.version {
			WriteError(w, &wire.Error{Code: wire.CodeCASFailed, Message: "version mismatch", Version: cur.version})
			return
		}
		delete(g.data, key)
		writeJSON(w, http.StatusOK, wire.WriteResult{Version: cur.version, Index: g.next()})
	default:
		WriteError(w, &wire.Error{Code: wire.CodeInvalidArgument, Message: "method " + r.Method})
	}
}

func (a *Agent) serveSelf(w http.ResponseWriter) {
	g := a.g
	g.mu.Lock()
	info := wire.AgentInfo{
		ID: a.id, Group: g.id, RaftAddr: a.raftAddr, HTTPAddr: a.Addr(),
		State: "Follower", Term: 1, LastIndex: g.index, CommitIndex: g.index, AppliedIndex: g.index,
		Keys: len(g.data), StorageBytes: int64(4096 * (1 + len(g.data))), RingEpoch: g.ring.spec.Epoch, Version: "fake",
	}
	if g.leader == a.n {
		info.State = "Leader"
	}
	if g.leader >= 0 {
		l := g.agents[g.leader]
		info.Leader = &wire.Leader{ID: l.id, HTTP: l.Addr()}
	}
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, info)
}

func (a *Agent) serveConfiguration(w http.ResponseWriter) {
	g := a.g
	g.mu.Lock()
	conf := wire.Configuration{Index: g.confIdx}
	for _, s := range g.members {
		s.Leader = g.leader >= 0 && s.ID == g.agents[g.leader].id
		conf.Servers = append(conf.Servers, s)
	}
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, conf)
}

func (a *Agent) serveMembership(w http.ResponseWriter, r *http.Request, path string) {
	g := a.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if !a.leaderCheck(w) {
		return
	}
	switch path {
	case wire.PathRaftJoin:
		var req wire.JoinRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ID == "" {
			WriteError(w, &wire.Error{Code: wire.CodeInvalidArgument, Message: "bad join request"})
			return
		}
		if g.removed[req.ID] {
			WriteError(w, &wire.Error{Code: wire.CodeInvalidArgument, Message: "node " + req.ID + " was removed"})
			return
		}
		for _, s := range g.members {
			if s.ID == req.ID {
				writeJSON(w, http.StatusOK, wire.IndexResult{Index: g.confIdx})
				return
			}
		}
		suffrage := "Voter"
		if req.Nonvoter {
			suffrage = "Nonvoter"
		}
		g.members = append(g.members, wire.Server{ID: req.ID, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr, Suffrage: suffrage})
		g.confIdx = g.next()
		writeJSON(w, http.StatusOK, wire.IndexResult{Index: g.confIdx})
	case wire.PathRaftRemove:
		var req wire.NodeRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		for i, s := range g.members {
			if s.ID == req.ID {
				g.members = append(g.members[:i:i], g.members[i+1:]...)
				g.removed[req.ID] = true
				g.confIdx = g.next()
				writeJSON(w, http.StatusOK, wire.IndexResult{Index: g.confIdx})
				return
			}
		}
		WriteError(w, &wire.Error{Code: wire.CodeNotFound, Message: "no member " + req.ID})
	case wire.PathTransferLeadership:
		var req wire.NodeRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		to := (g.leader + 1) % len(g.agents)
		if req.ID != "" {
			to = -1
			for i, b := range g.agents {
				if b.id == req.ID {
					to = i
				}
			}
			if to < 0 {
				WriteError(w, &wire.Error{Code: wire.CodeInvalidArgument, Message: "unknown node " + req.ID})
				return
			}
		}
		g.leader = to
		writeJSON(w, http.StatusOK, struct{}{})
	}
}
