package kvclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/fakeagent"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// The KV stream's client side: the same error semantics as HTTP (attempt.go)
// over connections shared by many requests. The agent's side is tested
// against real agents in agent/stream_test.go.

func streamConfig(addrs ...string) kvclient.Config {
	cfg := fastConfig(addrs...)
	cfg.Transport = kvclient.TransportStream
	return cfg
}

func ok(c *fakeagent.StreamConn, req wire.StreamRequest, value []byte) {
	c.Send(&wire.StreamResponse{ID: req.ID, Version: 1, Index: 1, Value: value})
}

func TestAgentWithoutTheStreamIsServedOverHTTP(t *testing.T) {
	g := newGroup(t, 1)
	c := newClient(t, streamConfig(g.Addrs()...))
	ctx := ctxFor(t, 5*time.Second)
	if _, err := c.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	v, err := c.Get(ctx, []byte("k"))
	if err != nil || string(v.Data) != "v" {
		t.Fatalf("Get: %q, %v", v.Data, err)
	}
	if n := g.Agent(0).Requests(); n != 2 {
		t.Fatalf("agent saw %d HTTP KV requests, want 2", n)
	}
}

func TestStreamCarriesOperationsAndTheirAnswers(t *testing.T) {
	g := newGroup(t, 1)
	var got []wire.StreamRequest
	var mu sync.Mutex
	g.Agent(0).SetStreamHandler(func(c *fakeagent.StreamConn, req wire.StreamRequest) {
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		switch req.Op {
		case wire.StreamGet:
			c.Send(&wire.StreamResponse{ID: req.ID, Version: 7, Index: 9, Value: []byte("value")})
		default:
			c.Send(&wire.StreamResponse{ID: req.ID, Version: 8, Index: 10})
		}
	})
	c := newClient(t, streamConfig(g.Addrs()...))
	ctx := ctxFor(t, 5*time.Second)
	v, err := c.Get(ctx, []byte("a"))
	if err != nil || string(v.Data) != "value" || v.Version != 7 {
		t.Fatalf("Get: %+v, %v", v, err)
	}
	if _, err := c.Get(ctx, []byte("a"), kvclient.Stale()); err != nil {
		t.Fatal(err)
	}
	if ver, err := c.CompareAndSwap(ctx, []byte("b"), []byte("v"), 3); err != nil || ver != 8 {
		t.Fatalf("CompareAndSwap: %d, %v", ver, err)
	}
	if ver, err := c.PutIfAbsent(ctx, []byte("c"), nil); err != nil || ver != 8 {
		t.Fatalf("PutIfAbsent: %d, %v", ver, err)
	}
	if ver, err := c.Delete(ctx, []byte("d")); err != nil || ver != 8 {
		t.Fatalf("Delete: %d, %v", ver, err)
	}
	want := []wire.StreamRequest{
		{Op: wire.StreamGet, Key: []byte("a")},
		{Op: wire.StreamGet, Flags: wire.FlagStale, Key: []byte("a")},
		{Op: wire.StreamPut, Flags: wire.FlagCAS, Expect: 3, Key: []byte("b"), Value: []byte("v")},
		{Op: wire.StreamPut, Flags: wire.FlagCAS, Expect: 0, Key: []byte("c")},
		{Op: wire.StreamDelete, Key: []byte("d")},
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("agent got %d requests, want %d", len(got), len(want))
	}
	for i, r := range got {
		w := want[i]
		if r.Op != w.Op || r.Flags != w.Flags || r.Expect != w.Expect || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) {
			t.Errorf("request %d: %+v, want %+v", i, r, w)
		}
		if r.TimeoutUS == 0 {
			t.Errorf("request %d carries no timeout: the agent would not answer before the client gives up", i)
		}
	}
	if n := g.Agent(0).Requests(); n != 0 {
		t.Fatalf("%d KV requests went over HTTP", n)
	}
}

func TestStreamWriteWhoseConnectionDropsIsUnknownOutcome(t *testing.T) {
	g := newGroup(t, 3)
	var puts atomic.Int32
	for _, a := range g.Agents() {
		a.SetStreamHandler(func(c *fakeagent.StreamConn, req wire.StreamRequest) {
			puts.Add(1)
			c.Close() // read, maybe applied, never answered
		})
	}
	c := newClient(t, streamConfig(g.Addrs()...))
	_, err := c.Put(ctxFor(t, 5*time.Second), []byte("k"), []byte("v"))
	if !errors.Is(err, kvclient.ErrTimeout) || errors.Is(err, kvclient.ErrUnavailable) {
		t.Fatalf("Put: %v, want ErrTimeout (outcome unknown) only", err)
	}
	if n := puts.Load(); n != 1 {
		t.Fatalf("agents read the put %d times, want 1: an unknown-outcome write must not be resent", n)
	}
}

func TestStreamReadWhoseConnectionDropsIsRetried(t *testing.T) {
	g := newGroup(t, 1)
	a := g.Agent(0)
	a.SetStreamHandler(func(c *fakeagent.StreamConn, req wire.StreamRequest) {
		if c.N == 1 {
			c.Close()
			return
		}
		ok(c, req, []byte("v"))
	})
	c := newClient(t, streamConfig(g.Addrs()...))
	v, err := c.Get(ctxFor(t, 5*time.Second), []byte("k"))
	if err != nil || string(v.Data) != "v" {
		t.Fatalf("Get: %q, %v", v.Data, err)
	}
	if n := a.StreamConns(); n != 2 {
		t.Fatalf("%d stream connections, want 2 (the dropped one, then a new one)", n)
	}
}

// A request unanswered within RequestTimeout says the agent may be frozen
// or cut off: later requests must not queue behind it on that connection.
func TestStreamUnansweredRequestRetiresItsConnection(t *testing.T) {
	g := newGroup(t, 1)
	a := g.Agent(0)
	var onFirst atomic.Int32
	a.SetStreamHandler(func(c *fakeagent.StreamConn, req wire.StreamRequest) {
		if c.N == 1 {
			onFirst.Add(1) // never answered
			return
		}
		ok(c, req, []byte("v"))
	})
	cfg := streamConfig(g.Addrs()...)
	cfg.RequestTimeout = 200 * time.Millisecond
	c := newClient(t, cfg)
	for i := range 4 {
		if _, err := c.Get(ctxFor(t, 5*time.Second), []byte("k")); err != nil {
			t.Fatalf("Get %d: %v", i, err)
		}
	}
	if n := onFirst.Load(); n != 1 {
		t.Fatalf("the connection that left a request unanswered got %d requests, want 1", n)
	}
}

func TestStreamAnswersAreMatchedByID(t *testing.T) {
	g := newGroup(t, 1)
	const n = 50
	type held struct {
		c   *fakeagent.StreamConn
		req wire.StreamRequest
	}
	var mu sync.Mutex
	var waiting []held
	g.Agent(0).SetStreamHandler(func(c *fakeagent.StreamConn, req wire.StreamRequest) {
		mu.Lock()
		defer mu.Unlock()
		waiting = append(waiting, held{c, req})
		if len(waiting) < n {
			return
		}
		// Every request is in flight: answer them last first.
		for _, h := range slices.Backward(waiting) {
			ok(h.c, h.req, append([]byte("value of "), h.req.Key...))
		}
	})
	c := newClient(t, streamConfig(g.Addrs()...))
	ctx := ctxFor(t, 10*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			key := fmt.Sprintf("key-%d", i)
			v, err := c.Get(ctx, []byte(key))
			if err == nil && string(v.Data) != "value of "+key {
				err = fmt.Errorf("Get(%s) = %q", key, v.Data)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestStreamAnswerOverMaxResponseBytesIsRefused(t *testing.T) {
	g := newGroup(t, 1)
	g.Agent(0).SetStreamHandler(func(c *fakeagent.StreamConn, req wire.StreamRequest) {
		v := []byte("small")
		if string(req.Key) == "big" {
			v = make([]byte, 4096)
		}
		ok(c, req, v)
	})
	cfg := streamConfig(g.Addrs()...)
	cfg.MaxResponseBytes = 1024
	c := newClient(t, cfg)
	ctx := ctxFor(t, 5*time.Second)
	if _, err := c.Get(ctx, []byte("big")); !errors.Is(err, kvclient.ErrTooLarge) {
		t.Fatalf("Get(big): %v, want ErrTooLarge", err)
	}
	// The oversized answer was skipped, not left to garble the stream.
	for range 3 {
		if v, err := c.Get(ctx, []byte("k")); err != nil || string(v.Data) != "small" {
			t.Fatalf("Get after: %q, %v", v.Data, err)
		}
	}
}

func TestStreamNotLeaderHintIsFollowed(t *testing.T) {
	g := newGroup(t, 2)
	leader := g.Agent(1)
	var served atomic.Int32
	g.Agent(0).SetStreamHandler(func(c *fakeagent.StreamConn, req wire.StreamRequest) {
		c.Send(&wire.StreamResponse{ID: req.ID, Err: &wire.Error{Code: wire.CodeNotLeader, Message: "not the leader",
			Leader: &wire.Leader{ID: leader.ID(), HTTP: leader.Addr()}}})
	})
	leader.SetStreamHandler(func(c *fakeagent.StreamConn, req wire.StreamRequest) {
		served.Add(1)
		c.Send(&wire.StreamResponse{ID: req.ID, Version: 5, Index: 6})
	})
	cfg := streamConfig(g.Agent(0).Addr())
	c := newClient(t, cfg)
	if v, err := c.Put(ctxFor(t, 5*time.Second), []byte("k"), []byte("v")); err != nil || v != 5 {
		t.Fatalf("Put: %d, %v", v, err)
	}
	if served.Load() != 1 || c.Leader() != leader.Addr() {
		t.Fatalf("leader served %d, client's leader %q; want 1 and %s", served.Load(), c.Leader(), leader.Addr())
	}
}

// Callers that need a connection to the same agent share one dial: an agent
// that accepts connections but never answers costs them one DialTimeout
// together, not one each in turn.
func TestStreamCallersShareADial(t *testing.T) {
	g := newGroup(t, 1)
	a := g.Agent(0)
	a.SetStreamHandler(func(c *fakeagent.StreamConn, req wire.StreamRequest) { ok(c, req, []byte("v")) })
	a.HoldUpgrades(true)
	cfg := streamConfig(g.Addrs()...)
	cfg.DialTimeout = 300 * time.Millisecond
	cfg.MaxAttempts = 1
	c := newClient(t, cfg)
	if _, err := c.Ring(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	const callers = 10
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			_, err := c.Get(ctxFor(t, 5*time.Second), []byte("k"))
			if !errors.Is(err, kvclient.ErrUnavailable) {
				t.Errorf("Get: %v, want ErrUnavailable (nothing sent)", err)
			}
		})
	}
	wg.Wait()
	if n := a.StreamUpgrades(); n > 2 {
		t.Fatalf("%d callers made %d upgrade attempts, want at most one per connection slot (2)", callers, n)
	}
}

// Liveness (issue 15): a frozen agent's kernel still takes the bytes, so
// only a ping answered by the agent itself tells frozen from slow.

// A write sent to a frozen leader ends as unknown once a liveness ping goes
// unanswered, not after RequestTimeout; a read is retried at the other
// member and served.
func TestStreamFrozenAgentIsGivenUpAfterAnUnansweredPing(t *testing.T) {
	g := newGroup(t, 2)
	for _, a := range g.Agents() {
		a.SetStreamHandler(func(c *fakeagent.StreamConn, req wire.StreamRequest) { ok(c, req, []byte("v")) })
	}
	frozen := g.Agent(0)
	cfg := streamConfig(frozen.Addr(), g.Agent(1).Addr())
	cfg.RequestTimeout = time.Minute // far beyond the call deadlines below
	cfg.LivenessTimeout = 300 * time.Millisecond
	c := newClient(t, cfg)
	// Make the frozen one the client's leader.
	if _, err := c.Put(ctxFor(t, 5*time.Second), []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if c.Leader() != frozen.Addr() {
		t.Skipf("the client's first leader is %s, not the first address", c.Leader())
	}
	frozen.FreezeStreams(true)
	_, err := c.Put(ctxFor(t, 20*time.Second), []byte("k"), []byte("v2"))
	if !errors.Is(err, kvclient.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "liveness ping") {
		t.Fatalf("Put to a frozen leader: %v, want ErrTimeout from an unanswered liveness ping, before the deadline", err)
	}
	v, err := c.Get(ctxFor(t, 20*time.Second), []byte("k"))
	if err != nil || string(v.Data) != "v" {
		t.Fatalf("Get after the freeze: %q, %v; want the other member's answer", v.Data, err)
	}
}

// An agent that is slow to answer but answers its pings keeps its
// requests: the ping tells a busy agent from a frozen one.
func TestStreamSlowAgentThatAnswersPingsKeepsItsRequests(t *testing.T) {
	g := newGroup(t, 1)
	a := g.Agent(0)
	a.SetStreamHandler(func(c *fakeagent.StreamConn, req wire.StreamRequest) {
		go func() {
			// Answer only after the client pinged several times (or
			// after 10 s: then the assertion below fails).
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = a.WaitPings(ctx, 3)
			ok(c, req, nil)
		}()
	})
	cfg := streamConfig(g.Addrs()...)
	cfg.LivenessTimeout = 150 * time.Millisecond
	c := newClient(t, cfg)
	if _, err := c.Put(ctxFor(t, 20*time.Second), []byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put to a slow agent: %v", err)
	}
	if n := a.StreamPings(); n < 3 {
		t.Fatalf("%d pings answered, want at least 3", n)
	}
}

// The members of a group whose leader froze name it as their leader until
// they notice; the client, which noticed first, asks around instead of
// dialling the frozen agent again.
func TestStreamHintNamingAFreshlyFrozenLeaderIsNotFollowed(t *testing.T) {
	g := newGroup(t, 3)
	old, next := g.Agent(0), g.Agent(1)
	old.SetStreamHandler(func(c *fakeagent.StreamConn, req wire.StreamRequest) { ok(c, req, []byte("v")) })
	var elected atomic.Bool
	var stale atomic.Int32
	follower := func(self *fakeagent.Agent) fakeagent.StreamHandler {
		return func(c *fakeagent.StreamConn, req wire.StreamRequest) {
			if self == next && elected.Load() {
				ok(c, req, []byte("v"))
				return
			}
			if stale.Add(1) >= 4 {
				elected.Store(true) // the others noticed and elected next
			}
			c.Send(&wire.StreamResponse{ID: req.ID, Err: &wire.Error{Code: wire.CodeNotLeader, Message: "not the leader",
				Leader: &wire.Leader{ID: old.ID(), HTTP: old.Addr()}}})
		}
	}
	next.SetStreamHandler(follower(next))
	g.Agent(2).SetStreamHandler(follower(g.Agent(2)))
	cfg := streamConfig(old.Addr(), next.Addr(), g.Agent(2).Addr())
	cfg.RequestTimeout = time.Minute
	cfg.LivenessTimeout = 300 * time.Millisecond
	c := newClient(t, cfg)
	for range 2 { // one per connection slot: no dial after the freeze but to the new leader
		if _, err := c.Put(ctxFor(t, 5*time.Second), []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if c.Leader() != old.Addr() {
		t.Skipf("the client's first leader is %s, not the first address", c.Leader())
	}
	old.FreezeStreams(true)
	upgrades := old.StreamUpgrades()
	v, err := c.Get(ctxFor(t, 20*time.Second), []byte("k"))
	if err != nil || string(v.Data) != "v" {
		t.Fatalf("Get: %q, %v", v.Data, err)
	}
	if n := old.StreamUpgrades() - upgrades; n != 0 {
		t.Fatalf("the client dialled the frozen leader %d times after it missed a ping, following stale hints", n)
	}
	if c.Leader() != next.Addr() {
		t.Fatalf("client's leader %s, want the new one %s", c.Leader(), next.Addr())
	}
}
