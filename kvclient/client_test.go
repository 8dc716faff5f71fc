package kvclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

func TestPutGetDeleteRoundTrip(t *testing.T) {
	g := newGroup(t, 3)
	c := newClient(t, fastConfig(g.Addrs()...))
	ctx := ctxFor(t, 5*time.Second)
	key := []byte("user/42")

	v1, err := c.Put(ctx, key, []byte("ada"))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, err := c.Get(ctx, key)
	if err != nil || string(got.Data) != "ada" || got.Version != v1 {
		t.Fatalf("Get = %q v%d, %v; want ada v%d", got.Data, got.Version, err, v1)
	}
	v2, err := c.Put(ctx, key, nil)
	if err != nil || v2 <= v1 {
		t.Fatalf("second Put = v%d, %v; want a version above %d", v2, err, v1)
	}
	if got, err := c.Get(ctx, key); err != nil || len(got.Data) != 0 {
		t.Fatalf("Get of empty value = %q, %v", got.Data, err)
	}
	del, err := c.Delete(ctx, key)
	if err != nil || del != v2 {
		t.Fatalf("Delete = v%d, %v; want v%d", del, err, v2)
	}
	if _, err := c.Get(ctx, key); !errors.Is(err, kvclient.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if _, err := c.Delete(ctx, key); !errors.Is(err, kvclient.ErrNotFound) {
		t.Fatalf("Delete of absent key: %v, want ErrNotFound", err)
	}
}

func TestBinaryKeysAreEscapedInThePathAndRoundTrip(t *testing.T) {
	g := newGroup(t, 1)
	var mu sync.Mutex
	var paths []string
	g.Agent(0).SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		paths = append(paths, strings.SplitN(r.RequestURI, "?", 2)[0])
		mu.Unlock()
		return false
	})
	c := newClient(t, fastConfig(g.Addrs()...))
	ctx := ctxFor(t, 5*time.Second)

	keys := [][]byte{
		[]byte("a/b"), []byte("/"), []byte("100%"), []byte("%2F"), []byte("with space"),
		{0x00}, {0xff, 0xfe}, []byte("?x=1&y#z"), []byte(".."), []byte("ключ"), {'a', 0x00, '/', 0xff},
	}
	for i, k := range keys {
		val := []byte(fmt.Sprintf("value-%d\x00\xff", i))
		if _, err := c.Put(ctx, k, val); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
		got, err := c.Get(ctx, k)
		if err != nil || !bytes.Equal(got.Data, val) {
			t.Fatalf("Get(%q) = %q, %v; want %q", k, got.Data, err, val)
		}
		if stored, _ := g.Value(k); !bytes.Equal(stored, val) {
			t.Fatalf("agent stored %q under %q, want %q", stored, k, val)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, k := range keys {
		want := wire.KVPrefix + url.PathEscape(string(k))
		for _, p := range paths[2*i : 2*i+2] {
			if p != want {
				t.Errorf("key %q travelled as %q, want %q", k, p, want)
			}
		}
	}
}

func TestFollowsNotLeaderHintToALeaderOutsideAddrs(t *testing.T) {
	g := newGroup(t, 3)
	g.SetLeader(2)
	// Only a follower is configured, and its ring lists only itself (as
	// before gossip has seen the others): the leader is learnt from its
	// not_leader hint.
	g.Agent(0).SetRingHook(func(w http.ResponseWriter, r *http.Request) bool {
		writeJSONBody(w, wire.Ring{Mode: "strong", From: "g1", Groups: []wire.RingGroup{{ID: "g1", Weight: 1, Share: 1,
			Members: []wire.Member{{ID: "n1", Group: "g1", HTTPAddr: g.Agent(0).Addr(), State: "alive"}}}}})
		return true
	})
	c := newClient(t, fastConfig(g.Agent(0).Addr()))
	ctx := ctxFor(t, 5*time.Second)

	if _, err := c.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got, want := c.Leader(), g.Agent(2).Addr(); got != want {
		t.Fatalf("cached leader = %q, want %q", got, want)
	}
	if n := g.Agent(0).Requests(); n != 1 {
		t.Fatalf("follower saw %d requests, want 1 (one hint, then the leader)", n)
	}
	// The next call goes straight to the cached leader.
	before := g.Agent(2).Requests()
	if _, err := c.Put(ctx, []byte("k"), []byte("v2")); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	if g.Agent(0).Requests() != 1 || g.Agent(1).Requests() != 0 || g.Agent(2).Requests() != before+1 {
		t.Fatalf("second Put did not go straight to the leader: requests %d/%d/%d",
			g.Agent(0).Requests(), g.Agent(1).Requests(), g.Agent(2).Requests())
	}
}

func TestLeaderChangeIsFollowedByHint(t *testing.T) {
	g := newGroup(t, 3)
	c := newClient(t, fastConfig(g.Addrs()...))
	ctx := ctxFor(t, 5*time.Second)
	if _, err := c.Put(ctx, []byte("k"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	g.SetLeader(1)
	if _, err := c.Put(ctx, []byte("k"), []byte("2")); err != nil {
		t.Fatalf("Put after leader change: %v", err)
	}
	if c.Leader() != g.Agent(1).Addr() {
		t.Fatalf("cached leader %q, want %q", c.Leader(), g.Agent(1).Addr())
	}
}

func TestNotLeaderWithoutHintTriesTheOtherAgents(t *testing.T) {
	g := newGroup(t, 3)
	g.SetLeader(2)
	g.SetHints(false)
	c := newClient(t, fastConfig(g.Addrs()...))
	ctx := ctxFor(t, 5*time.Second)
	for i := range 5 {
		if _, err := c.Put(ctx, []byte("k"), []byte{byte(i)}); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	if c.Leader() != g.Agent(2).Addr() {
		t.Fatalf("cached leader %q, want %q", c.Leader(), g.Agent(2).Addr())
	}
}

func TestUnavailableIsRetriedWithBackoff(t *testing.T) {
	g := newGroup(t, 1)
	g.Agent(0).SetHook(firstN(3, answer(wire.CodeUnavailable)))
	c := newClient(t, fastConfig(g.Addrs()...))
	if _, err := c.Put(ctxFor(t, 5*time.Second), []byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if n := g.Agent(0).Requests(); n != 4 {
		t.Fatalf("agent saw %d requests, want 4 (3 unavailable, then success)", n)
	}
}

func TestWriteWhoseConnectionDropsAfterSendingIsNotRetried(t *testing.T) {
	g := newGroup(t, 3)
	leader := g.Agent(0)
	leader.SetHook(onlyMethod(http.MethodPut, applyThenDrop(leader)))
	c := newClient(t, fastConfig(g.Addrs()...))

	_, err := c.Put(ctxFor(t, 5*time.Second), []byte("k"), []byte("v"))
	if !errors.Is(err, kvclient.ErrTimeout) {
		t.Fatalf("Put: %v, want ErrTimeout (outcome unknown)", err)
	}
	if errors.Is(err, kvclient.ErrUnavailable) {
		t.Fatalf("Put: %v also claims ErrUnavailable (nothing applied), but it was applied", err)
	}
	if !strings.Contains(err.Error(), "outcome unknown") {
		t.Errorf("error %q does not say the outcome is unknown", err)
	}
	if n := leader.Requests(); n != 1 {
		t.Fatalf("leader saw %d requests, want 1: an unknown-outcome write must not be resent", n)
	}
	if _, ver := g.Value([]byte("k")); ver == 0 {
		t.Fatalf("the fake did not apply the write; the test proves nothing")
	}
}

func TestDeletesAndCASWritesAreNotRetriedAfterADrop(t *testing.T) {
	g := newGroup(t, 1)
	c := newClient(t, fastConfig(g.Addrs()...))
	ctx := ctxFor(t, 5*time.Second)
	v, err := c.Put(ctx, []byte("k"), []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	a := g.Agent(0)
	a.SetHook(drop)
	calls := map[string]func() error{
		"CompareAndSwap":   func() error { _, err := c.CompareAndSwap(ctx, []byte("k"), []byte("w"), v); return err },
		"PutIfAbsent":      func() error { _, err := c.PutIfAbsent(ctx, []byte("k2"), []byte("w")); return err },
		"Delete":           func() error { _, err := c.Delete(ctx, []byte("k")); return err },
		"CompareAndDelete": func() error { _, err := c.CompareAndDelete(ctx, []byte("k"), v); return err },
		"Remove":           func() error { _, err := c.Remove(ctx, "n9"); return err },
		"Transfer":         func() error { return c.TransferLeadership(ctx, "") },
	}
	for name, call := range calls {
		before := a.Requests()
		if err := call(); !errors.Is(err, kvclient.ErrTimeout) {
			t.Errorf("%s: %v, want ErrTimeout", name, err)
		}
		if n := a.Requests() - before; n != 1 {
			t.Errorf("%s was sent %d times, want 1", name, n)
		}
	}
}

func TestServerTimeoutOnWriteIsUnknownOutcome(t *testing.T) {
	g := newGroup(t, 1)
	g.Agent(0).SetHook(answer(wire.CodeTimeout))
	c := newClient(t, fastConfig(g.Addrs()...))
	_, err := c.Put(ctxFor(t, 5*time.Second), []byte("k"), []byte("v"))
	var e *kvclient.Error
	if !errors.Is(err, kvclient.ErrTimeout) || !errors.As(err, &e) || e.Code != wire.CodeTimeout {
		t.Fatalf("Put: %v, want an *Error with code timeout matching ErrTimeout", err)
	}
	if n := g.Agent(0).Requests(); n != 1 {
		t.Fatalf("agent saw %d requests, want 1", n)
	}
}

func TestReadsAreRetriedAfterTransportErrorsAndServerTimeouts(t *testing.T) {
	g := newGroup(t, 1)
	c := newClient(t, fastConfig(g.Addrs()...))
	ctx := ctxFor(t, 5*time.Second)
	if _, err := c.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	a := g.Agent(0)
	for name, h := range map[string]func(w http.ResponseWriter, r *http.Request) bool{
		"dropped connection": drop,
		"server timeout":     answer(wire.CodeTimeout),
	} {
		a.SetHook(firstN(2, h))
		before := a.Requests()
		got, err := c.Get(ctx, []byte("k"))
		if err != nil || string(got.Data) != "v" {
			t.Fatalf("%s: Get = %q, %v", name, got.Data, err)
		}
		if n := a.Requests() - before; n != 3 {
			t.Fatalf("%s: Get took %d requests, want 3", name, n)
		}
	}
}

func TestDialErrorMovesToTheNextAddressForWrites(t *testing.T) {
	g := newGroup(t, 1)
	c := newClient(t, fastConfig(deadAddr(t), g.Agent(0).Addr()))
	ctx := ctxFor(t, 5*time.Second)
	for i := range 4 { // the cursor starts at a different address each call
		if _, err := c.Put(ctx, []byte("k"), []byte{byte(i)}); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
}

func TestStoppedLeaderIsForgottenAndWritesFindTheNewOne(t *testing.T) {
	g := newGroup(t, 3)
	// Without keep-alives every attempt dials, so the stopped leader
	// refuses the connection and the write is known not to be sent. (On a
	// pooled connection the leader closed, a write could not tell whether
	// it arrived: see TestWriteWhoseConnectionDropsAfterSendingIsNotRetried.)
	cfg := fastConfig(g.Addrs()...)
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	c := newClient(t, cfg)
	ctx := ctxFor(t, 5*time.Second)
	if _, err := c.Put(ctx, []byte("k"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	g.Agent(0).Stop()
	g.SetLeader(1)
	if _, err := c.Put(ctx, []byte("k"), []byte("2")); err != nil {
		t.Fatalf("Put after the leader stopped: %v", err)
	}
	if c.Leader() != g.Agent(1).Addr() {
		t.Fatalf("cached leader %q, want %q", c.Leader(), g.Agent(1).Addr())
	}
}

func TestNoAgentReachableIsUnavailable(t *testing.T) {
	c := newClient(t, fastConfig(deadAddr(t), deadAddr(t)))
	_, err := c.Put(ctxFor(t, 5*time.Second), []byte("k"), []byte("v"))
	if !errors.Is(err, kvclient.ErrUnavailable) || errors.Is(err, kvclient.ErrTimeout) {
		t.Fatalf("Put: %v, want ErrUnavailable (nothing sent) and not ErrTimeout", err)
	}
}

func TestContextDeadlineBoundsAHangingWrite(t *testing.T) {
	g := newGroup(t, 1)
	g.Agent(0).SetHook(hang(g))
	c := newClient(t, fastConfig(g.Addrs()...))
	start := time.Now()
	_, err := c.Put(ctxFor(t, 200*time.Millisecond), []byte("k"), []byte("v"))
	if !errors.Is(err, kvclient.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put: %v, want ErrTimeout and context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Put returned after %v, its deadline was 200ms", d)
	}
	if n := g.Agent(0).Requests(); n != 1 {
		t.Fatalf("agent saw %d requests, want 1", n)
	}
}

func TestRequestTimeoutEndsAWriteWithUnknownOutcome(t *testing.T) {
	g := newGroup(t, 1)
	g.Agent(0).SetHook(hang(g))
	cfg := fastConfig(g.Addrs()...)
	cfg.RequestTimeout = 100 * time.Millisecond
	c := newClient(t, cfg)
	start := time.Now()
	_, err := c.Put(ctxFor(t, 10*time.Second), []byte("k"), []byte("v"))
	if !errors.Is(err, kvclient.ErrTimeout) {
		t.Fatalf("Put: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Put returned after %v; the attempt timeout was 100ms", d)
	}
	if n := g.Agent(0).Requests(); n != 1 {
		t.Fatalf("agent saw %d requests, want 1", n)
	}
}

func TestHangingReadIsRetriedUntilTheDeadline(t *testing.T) {
	g := newGroup(t, 1)
	g.Agent(0).SetHook(hang(g))
	cfg := fastConfig(g.Addrs()...)
	cfg.RequestTimeout = 50 * time.Millisecond
	cfg.MaxAttempts = 1000
	c := newClient(t, cfg)
	start := time.Now()
	_, err := c.Get(ctxFor(t, 400*time.Millisecond), []byte("k"))
	if !errors.Is(err, kvclient.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("Get returned after %v, its deadline was 400ms", d)
	}
	if n := g.Agent(0).Requests(); n < 2 {
		t.Fatalf("agent saw %d requests, want retries", n)
	}
}

func TestGivesUpWithinTheDeadlineWhenNoLeader(t *testing.T) {
	g := newGroup(t, 3)
	g.SetLeader(-1)
	cfg := fastConfig(g.Addrs()...)
	cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, time.Second
	cfg.MaxAttempts = 1000
	c := newClient(t, cfg)
	start := time.Now()
	_, err := c.Put(ctxFor(t, 300*time.Millisecond), []byte("k"), []byte("v"))
	if !errors.Is(err, kvclient.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put: %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if errors.Is(err, kvclient.ErrTimeout) {
		t.Fatalf("Put: %v claims an unknown outcome, but every answer said nothing was applied", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Put returned after %v, its deadline was 300ms", d)
	}
}

func TestMaxAttemptsBoundsRetries(t *testing.T) {
	g := newGroup(t, 3)
	g.SetLeader(-1)
	cfg := fastConfig(g.Addrs()...)
	cfg.MaxAttempts = 3
	c := newClient(t, cfg)
	_, err := c.Put(ctxFor(t, 5*time.Second), []byte("k"), []byte("v"))
	if !errors.Is(err, kvclient.ErrUnavailable) {
		t.Fatalf("Put: %v, want ErrUnavailable", err)
	}
	if n := totalRequests(g); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}

func TestAnswerOutsideTheProtocolIsNotRetried(t *testing.T) {
	g := newGroup(t, 1)
	g.Agent(0).SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return true
	})
	c := newClient(t, fastConfig(g.Addrs()...))
	_, err := c.Get(ctxFor(t, 5*time.Second), []byte("k"))
	if !errors.Is(err, kvclient.ErrInternal) {
		t.Fatalf("Get: %v, want ErrInternal", err)
	}
	if n := g.Agent(0).Requests(); n != 1 {
		t.Fatalf("agent saw %d requests, want 1", n)
	}
}

func TestCASFailuresCarryTheCurrentVersion(t *testing.T) {
	g := newGroup(t, 1)
	c := newClient(t, fastConfig(g.Addrs()...))
	ctx := ctxFor(t, 5*time.Second)
	k := []byte("k")

	v1, err := c.PutIfAbsent(ctx, k, []byte("a"))
	if err != nil {
		t.Fatalf("PutIfAbsent: %v", err)
	}
	var ce *kvclient.CASError
	_, err = c.PutIfAbsent(ctx, k, []byte("b"))
	if !errors.Is(err, kvclient.ErrCASFailed) || !errors.As(err, &ce) || ce.Current != v1 || ce.Expected != 0 {
		t.Fatalf("second PutIfAbsent: %v (%+v), want *CASError with Current %d", err, ce, v1)
	}
	_, err = c.CompareAndSwap(ctx, k, []byte("b"), v1+100)
	if !errors.As(err, &ce) || ce.Current != v1 || ce.Expected != v1+100 {
		t.Fatalf("CompareAndSwap at a wrong version: %v", err)
	}
	v2, err := c.CompareAndSwap(ctx, k, []byte("b"), v1)
	if err != nil || v2 <= v1 {
		t.Fatalf("CompareAndSwap = v%d, %v", v2, err)
	}
	_, err = c.CompareAndDelete(ctx, k, v1)
	if !errors.As(err, &ce) || ce.Current != v2 {
		t.Fatalf("CompareAndDelete at a wrong version: %v", err)
	}
	if d, err := c.CompareAndDelete(ctx, k, v2); err != nil || d != v2 {
		t.Fatalf("CompareAndDelete = v%d, %v", d, err)
	}
	if _, err := c.CompareAndDelete(ctx, k, v2); !errors.Is(err, kvclient.ErrNotFound) {
		t.Fatalf("CompareAndDelete of an absent key: %v, want ErrNotFound", err)
	}
	if _, err := c.CompareAndSwap(ctx, k, []byte("c"), 0); err != nil {
		t.Fatalf("CompareAndSwap at 0 (absent): %v", err)
	}
}

func TestBadInputIsRefusedBeforeSending(t *testing.T) {
	g := newGroup(t, 1)
	c := newClient(t, fastConfig(g.Addrs()...))
	ctx := ctxFor(t, 5*time.Second)
	calls := map[string]func() error{
		"Get empty key":          func() error { _, err := c.Get(ctx, nil); return err },
		"Put empty key":          func() error { _, err := c.Put(ctx, []byte{}, []byte("v")); return err },
		"Delete empty key":       func() error { _, err := c.Delete(ctx, nil); return err },
		"CompareAndDelete at 0":  func() error { _, err := c.CompareAndDelete(ctx, []byte("k"), 0); return err },
		"Join without ID":        func() error { _, err := c.Join(ctx, wire.JoinRequest{RaftAddr: "a:1", HTTPAddr: "a:2"}); return err },
		"Remove without ID":      func() error { _, err := c.Remove(ctx, ""); return err },
		"Self of a bad address":  func() error { _, err := c.Self(ctx, "no-port"); return err },
		"CompareAndSwap no key":  func() error { _, err := c.CompareAndSwap(ctx, nil, nil, 1); return err },
		"PutIfAbsent empty key":  func() error { _, err := c.PutIfAbsent(ctx, nil, nil); return err },
		"Join without HTTP addr": func() error { _, err := c.Join(ctx, wire.JoinRequest{ID: "n4", RaftAddr: "a:1"}); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, kvclient.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	if n := g.Agent(0).Requests(); n != 0 {
		t.Fatalf("%d requests were sent", n)
	}
}

func TestStaleReadsAreServedByEveryMemberWithoutALeader(t *testing.T) {
	g := newGroup(t, 3)
	c := newClient(t, fastConfig(g.Addrs()...))
	ctx := ctxFor(t, 5*time.Second)
	if _, err := c.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	g.SetLeader(-1)
	before := make([]int64, 3)
	for i, a := range g.Agents() {
		before[i] = a.Requests()
	}
	for range 30 {
		got, err := c.Get(ctx, []byte("k"), kvclient.Stale())
		if err != nil || string(got.Data) != "v" {
			t.Fatalf("stale Get = %q, %v", got.Data, err)
		}
	}
	for i, a := range g.Agents() {
		if a.Requests() == before[i] {
			t.Errorf("agent %d served no stale read", i)
		}
	}
	if _, err := c.Get(ctxFor(t, 200*time.Millisecond), []byte("k")); !errors.Is(err, kvclient.ErrUnavailable) {
		t.Fatalf("linearizable Get without a leader: %v, want ErrUnavailable", err)
	}
}

func TestConcurrentCallersShareTheClient(t *testing.T) {
	g := newGroup(t, 3)
	// Move leadership every 300 requests (8 times), from inside the
	// agents, while 64 callers write and read: callers follow hints
	// concurrently and share the leader cache.
	var seen atomic.Int64
	for _, a := range g.Agents() {
		a.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
			if n := seen.Add(1); n%300 == 0 && n <= 8*300 {
				g.SetLeader(int(n/300) % 3)
			}
			return false
		})
	}
	cfg := fastConfig(g.Addrs()...)
	c := newClient(t, cfg)
	ctx := ctxFor(t, 30*time.Second)

	const callers, ops = 64, 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []byte(fmt.Sprintf("caller/%d", i))
			var ver uint64
			for j := range ops {
				val := []byte(fmt.Sprintf("%d", j))
				var err error
				if j%2 == 0 {
					ver, err = c.Put(ctx, key, val)
				} else {
					ver, err = c.CompareAndSwap(ctx, key, val, ver)
				}
				if err != nil {
					errs <- fmt.Errorf("caller %d op %d: %w", i, j, err)
					return
				}
				got, err := c.Get(ctx, key, func() []kvclient.ReadOption {
					if j%3 == 0 {
						return []kvclient.ReadOption{kvclient.Stale()}
					}
					return nil
				}()...)
				if err != nil || !bytes.Equal(got.Data, val) || got.Version != ver {
					errs <- fmt.Errorf("caller %d op %d: Get = %q v%d, %v; want %q v%d", i, j, got.Data, got.Version, err, val, ver)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClosedClientRefusesCalls(t *testing.T) {
	g := newGroup(t, 1)
	c := newClient(t, fastConfig(g.Addrs()...))
	c.Close()
	if _, err := c.Get(ctxFor(t, time.Second), []byte("k")); !errors.Is(err, kvclient.ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// plainRoundTripper hides the *http.Transport: the client can no longer
// see whether a request was written.
type plainRoundTripper struct{ rt http.RoundTripper }

func (p plainRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	return p.rt.RoundTrip(r)
}

func TestOpaqueTransportTreatsNoAnswerAsUnknownOutcome(t *testing.T) {
	g := newGroup(t, 1)
	g.Agent(0).SetHook(onlyMethod(http.MethodPut, drop))
	cfg := fastConfig(g.Addrs()...)
	cfg.HTTPClient = &http.Client{Transport: plainRoundTripper{http.DefaultTransport}}
	c := newClient(t, cfg)
	if _, err := c.Put(ctxFor(t, 5*time.Second), []byte("k"), []byte("v")); !errors.Is(err, kvclient.ErrTimeout) {
		t.Fatalf("Put: %v, want ErrTimeout", err)
	}
	if n := g.Agent(0).Requests(); n != 1 {
		t.Fatalf("agent saw %d requests, want 1", n)
	}
	// A dial error is still recognised as "not sent".
	c2 := newClient(t, kvclient.Config{Addrs: []string{deadAddr(t), g.Agent(0).Addr()}, HTTPClient: cfg.HTTPClient,
		BackoffMin: time.Millisecond, BackoffMax: time.Millisecond})
	g.Agent(0).SetHook(nil)
	for range 2 {
		if _, err := c2.Put(ctxFor(t, 5*time.Second), []byte("k"), []byte("v")); err != nil {
			t.Fatalf("Put past a dead address: %v", err)
		}
	}
}
