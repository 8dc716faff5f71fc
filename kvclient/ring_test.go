package kvclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/fakeagent"
	"github.com/carpkv/carpkv/kvclient/wire"
)

func newCluster(t *testing.T, groups, n int) *fakeagent.Cluster {
	t.Helper()
	c := fakeagent.NewCluster(groups, n)
	t.Cleanup(c.Close)
	return c
}

func spec(epoch uint64, groups ...string) wire.RingSpec {
	s := wire.RingSpec{Epoch: epoch, Mode: "strong"}
	for _, g := range groups {
		s.Groups = append(s.Groups, wire.RingGroupSpec{ID: g, Weight: 1})
	}
	return s
}

// keyOwnedBy returns a key owned by group want under s (and, if moved is
// not empty, by group moved under from).
func keyOwnedBy(t *testing.T, s wire.RingSpec, want string, from *wire.RingSpec, moved string) []byte {
	t.Helper()
	for i := range 100000 {
		k := []byte(fmt.Sprintf("key-%d", i))
		if fakeagent.Owner(s, k) == want && (from == nil || fakeagent.Owner(*from, k) == moved) {
			return k
		}
	}
	t.Fatalf("no key owned by %s", want)
	return nil
}

func ringRequests(c *fakeagent.Cluster) int64 {
	var n int64
	for _, g := range c.Groups() {
		for _, a := range g.Agents() {
			n += a.RingRequests()
		}
	}
	return n
}

// recordCodes makes every agent of the cluster record the error codes it
// answers and the ring epoch header of KV requests.
type recorder struct {
	mu     sync.Mutex
	codes  map[wire.Code]int
	epochs map[string]int
}

func recordCodes(c *fakeagent.Cluster) *recorder {
	rec := &recorder{codes: map[wire.Code]int{}, epochs: map[string]int{}}
	for _, g := range c.Groups() {
		for _, a := range g.Agents() {
			a.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
				cw := &codeWriter{ResponseWriter: w}
				a.Serve(cw, r)
				rec.mu.Lock()
				defer rec.mu.Unlock()
				rec.epochs[r.Header.Get(wire.HeaderRingEpoch)]++
				if cw.status >= 300 {
					rec.codes[wire.Code(cw.code())]++
				}
				return true
			})
		}
	}
	return rec
}

type codeWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *codeWriter) WriteHeader(s int) { w.status = s; w.ResponseWriter.WriteHeader(s) }
func (w *codeWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *codeWriter) code() string {
	var eb wire.ErrorBody
	if err := json.Unmarshal(w.body.Bytes(), &eb); err != nil || eb.Error == nil {
		return "?"
	}
	return string(eb.Error.Code)
}

func TestKeysAreRoutedToTheirOwnerGroup(t *testing.T) {
	cl := newCluster(t, 3, 3)
	rec := recordCodes(cl)
	// One seed, of one group, is enough: the ring names the others.
	c := newClient(t, fastConfig(cl.Group("g2").Agent(1).Addr()))
	ctx := ctxFor(t, 10*time.Second)
	for i := range 300 {
		k := []byte(fmt.Sprintf("user/%d", i))
		if _, err := c.Put(ctx, k, k); err != nil {
			t.Fatalf("Put %s: %v", k, err)
		}
		if got, err := c.Get(ctx, k); err != nil || !bytes.Equal(got.Data, k) {
			t.Fatalf("Get %s = %q, %v", k, got.Data, err)
		}
	}
	s := spec(1, "g1", "g2", "g3")
	for _, g := range cl.Groups() {
		keys := g.Keys()
		if len(keys) < 50 {
			t.Errorf("group %s holds %d of 300 keys", g.ID(), len(keys))
		}
		for _, k := range keys {
			if o := fakeagent.Owner(s, []byte(k)); o != g.ID() {
				t.Fatalf("group %s holds %q, owned by %s", g.ID(), k, o)
			}
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.codes) != 0 {
		t.Errorf("agents answered errors %v; every request should reach its owner", rec.codes)
	}
	if rec.epochs["1"] != 600 || len(rec.epochs) != 1 {
		t.Errorf("ring epoch headers %v, want 600 requests at epoch 1", rec.epochs)
	}
	if n := ringRequests(cl); n != 1 {
		t.Errorf("%d ring fetches, want 1", n)
	}
	if c.RingEpoch() != 1 {
		t.Errorf("RingEpoch = %d", c.RingEpoch())
	}
	k := []byte("user/7")
	group, leader := c.Owner(k)
	if want := fakeagent.Owner(s, k); group != want || leader == nil || leader.ID != want+"-n1" || leader.HTTP != cl.Group(want).Agent(0).Addr() {
		t.Errorf("Owner = %s, %+v; want %s and its leader", group, leader, want)
	}
}

func TestStandaloneGroupSendsNoRingEpoch(t *testing.T) {
	g := newGroup(t, 2)
	var withEpoch atomic.Int64
	for _, a := range g.Agents() {
		a.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Header.Get(wire.HeaderRingEpoch) != "" {
				withEpoch.Add(1)
			}
			return false
		})
	}
	c := newClient(t, fastConfig(g.Addrs()...))
	ctx := ctxFor(t, 5*time.Second)
	for i := range 20 {
		if _, err := c.Put(ctx, []byte(fmt.Sprint(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := withEpoch.Load(); n != 0 {
		t.Fatalf("%d requests carried a ring epoch to a standalone group", n)
	}
	if group, _ := c.Owner([]byte("x")); group != "g1" || c.RingEpoch() != 0 {
		t.Fatalf("Owner = %q at epoch %d, want g1 at 0", group, c.RingEpoch())
	}
}

func TestConcurrentFirstCallsShareOneRingFetch(t *testing.T) {
	cl := newCluster(t, 2, 1)
	release := make(chan struct{})
	entered := make(chan struct{}, 100)
	seed := cl.Group("g1").Agent(0)
	seed.SetRingHook(func(w http.ResponseWriter, r *http.Request) bool {
		entered <- struct{}{}
		<-release
		return false
	})
	c := newClient(t, fastConfig(seed.Addr()))
	ctx := ctxFor(t, 10*time.Second)
	const callers = 32
	var started, wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		started.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			if _, err := c.Put(ctx, []byte(fmt.Sprint(i)), nil); err != nil {
				errs <- err
			}
		}()
	}
	started.Wait()
	<-entered // the first fetch is in flight; the others wait for it
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := ringRequests(cl); n != 1 {
		t.Fatalf("%d ring fetches for %d concurrent first calls, want 1", n, callers)
	}
}

func TestWrongGroupRefreshesTheRingAndRetriesAtTheNewOwner(t *testing.T) {
	cl := newCluster(t, 2, 2)
	cl.AddGroup("g3", 2)
	c := newClient(t, fastConfig(cl.Group("g1").Agent(0).Addr()))
	ctx := ctxFor(t, 10*time.Second)
	if _, err := c.Put(ctx, []byte("warm"), nil); err != nil { // the client now holds epoch 1
		t.Fatal(err)
	}
	old, next := spec(1, "g1", "g2"), spec(2, "g1", "g2", "g3")
	key := keyOwnedBy(t, next, "g3", &old, "g2")
	if err := cl.Reshard(next); err != nil {
		t.Fatal(err)
	}
	refuser := cl.Group("g2")
	rec := recordCodes(cl)
	ringBefore, refuserRing := ringRequests(cl), refuser.Agent(0).RingRequests()+refuser.Agent(1).RingRequests()

	ver, err := c.Put(ctx, key, []byte("v"))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if v, got := cl.Group("g3").Value(key); string(v) != "v" || got != ver {
		t.Fatalf("g3 holds %q v%d, want v v%d", v, got, ver)
	}
	if c.RingEpoch() != 2 {
		t.Fatalf("RingEpoch = %d after the refresh, want 2", c.RingEpoch())
	}
	rec.mu.Lock()
	if rec.codes[wire.CodeWrongGroup] != 1 || len(rec.codes) != 1 {
		t.Errorf("agents answered %v, want exactly one wrong_group", rec.codes)
	}
	rec.mu.Unlock()
	if n := ringRequests(cl) - ringBefore; n != 1 {
		t.Errorf("%d ring fetches for one wrong_group, want 1", n)
	}
	if n := refuser.Agent(0).RingRequests() + refuser.Agent(1).RingRequests() - refuserRing; n != 0 {
		t.Errorf("the refusing group was asked for the ring %d times; agents of other groups come first", n)
	}
	// The next call for the key goes straight to its owner.
	if got, err := c.Get(ctx, key); err != nil || string(got.Data) != "v" {
		t.Fatalf("Get = %q, %v", got.Data, err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.codes[wire.CodeWrongGroup] != 1 {
		t.Errorf("a second wrong_group: %v", rec.codes)
	}
}

func TestStaleRingIsRetriedUntilTheGroupCatchesUp(t *testing.T) {
	cl := newCluster(t, 2, 1)
	next := spec(2, "g1", "g2")
	// g2 applies epoch 2 first; the client learns it from there while g1
	// lags behind.
	if err := cl.Group("g2").SetRing(next); err != nil {
		t.Fatal(err)
	}
	key := keyOwnedBy(t, next, "g1", nil, "")
	lagging := cl.Group("g1")
	var seen atomic.Int64
	lagging.Agent(0).SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if seen.Add(1) == 4 { // three stale_ring answers, then it catches up
			if err := lagging.SetRing(next); err != nil {
				t.Error(err)
			}
		}
		return false
	})
	c := newClient(t, fastConfig(cl.Group("g2").Agent(0).Addr()))
	if _, err := c.Put(ctxFor(t, 10*time.Second), key, []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if n := seen.Load(); n != 4 {
		t.Fatalf("lagging group saw %d requests, want 4 (3 stale_ring, then success)", n)
	}
	if v, _ := lagging.Value(key); string(v) != "v" {
		t.Fatalf("g1 holds %q", v)
	}
}

func TestRingErrorsEndWithinTheDeadline(t *testing.T) {
	cl := newCluster(t, 2, 1)
	c := newClient(t, fastConfig(cl.Group("g2").Agent(0).Addr()))
	key := keyOwnedBy(t, spec(1, "g1", "g2"), "g1", nil, "")
	// Warmed on g1 itself, so that the timed calls below find a connection
	// to it open rather than dialling one within their deadline.
	if _, err := c.Put(ctxFor(t, 5*time.Second), key, nil); err != nil {
		t.Fatal(err)
	}
	// Long enough that a loaded machine still gets at least one answer in;
	// the bound below is what counts.
	const deadline = time.Second
	for _, code := range []wire.Code{wire.CodeWrongGroup, wire.CodeStaleRing} {
		cl.Group("g1").Agent(0).SetHook(answer(code))
		// A read ends with the last answer and the deadline.
		start := time.Now()
		_, err := c.Get(ctxFor(t, deadline), key)
		var e *kvclient.Error
		if !errors.As(err, &e) || e.Code != code || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kvclient.ErrTimeout) {
			t.Errorf("%s forever: Get = %v, want the %s answer and the deadline", code, err, code)
		}
		if d := time.Since(start); d > 3*deadline {
			t.Errorf("%s forever: Get returned after %v, its deadline was %v", code, d, deadline)
		}
		// So does a write, unless the deadline cut its last exchange short:
		// then its outcome is unknown as far as the client can tell.
		start = time.Now()
		_, err = c.Put(ctxFor(t, deadline), key, []byte("v"))
		if !errors.Is(err, kvclient.ErrTimeout) && !(errors.As(err, &e) && e.Code == code) {
			t.Errorf("%s forever: Put = %v, want the %s answer or a cut exchange", code, err, code)
		}
		if d := time.Since(start); d > 3*deadline {
			t.Errorf("%s forever: Put returned after %v, its deadline was %v", code, d, deadline)
		}
	}
}

// MaxAttempts counts attempts across reroutes. (Its own cluster: a request
// cut short by a deadline in another test could still land and be counted.)
func TestMaxAttemptsCountsReroutes(t *testing.T) {
	cl := newCluster(t, 2, 1)
	key := keyOwnedBy(t, spec(1, "g1", "g2"), "g1", nil, "")
	cl.Group("g1").Agent(0).SetHook(answer(wire.CodeWrongGroup))
	cfg := fastConfig(cl.Group("g2").Agent(0).Addr())
	cfg.MaxAttempts = 3
	c2 := newClient(t, cfg)
	before := cl.Group("g1").Agent(0).Requests()
	if _, err := c2.Put(ctxFor(t, 5*time.Second), key, nil); !errors.Is(err, kvclient.ErrWrongGroup) {
		t.Fatalf("Put with MaxAttempts 3: %v, want ErrWrongGroup", err)
	}
	if n := cl.Group("g1").Agent(0).Requests() - before; n != 3 {
		t.Fatalf("%d attempts, want MaxAttempts (3) over reroutes", n)
	}
}

func TestDeadMemberOfAGroupIsFailedOver(t *testing.T) {
	cl := newCluster(t, 2, 3)
	cfg := fastConfig(cl.Group("g2").Agent(0).Addr())
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	c := newClient(t, cfg)
	ctx := ctxFor(t, 10*time.Second)
	key := keyOwnedBy(t, spec(1, "g1", "g2"), "g1", nil, "")
	if _, err := c.Put(ctx, key, []byte("1")); err != nil {
		t.Fatal(err)
	}
	g1 := cl.Group("g1")
	g1.Agent(0).Stop()
	g1.SetLeader(2)
	if _, err := c.Put(ctx, key, []byte("2")); err != nil {
		t.Fatalf("Put after g1's leader died: %v", err)
	}
	if _, leader := c.Owner(key); leader == nil || leader.HTTP != g1.Agent(2).Addr() {
		t.Fatalf("Owner's leader = %+v, want g1-n3", leader)
	}
}

func TestUnreachableGroupIsLookedUpAgainInTheRing(t *testing.T) {
	cl := newCluster(t, 2, 2)
	cfg := fastConfig(cl.Group("g2").Agent(0).Addr())
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	c := newClient(t, cfg)
	ctx := ctxFor(t, 10*time.Second)
	key := keyOwnedBy(t, spec(1, "g1", "g2"), "g1", nil, "")
	if _, err := c.Put(ctx, key, []byte("1")); err != nil {
		t.Fatal(err)
	}
	// g1 moves to a new member the client's ring does not list; every
	// member it knows is gone.
	g1 := cl.Group("g1")
	fresh := g1.AddAgent()
	g1.SetLeader(2)
	g1.Agent(0).Stop()
	g1.Agent(1).Stop()
	if _, err := c.Put(ctx, key, []byte("2")); err != nil {
		t.Fatalf("Put after g1's known members died: %v", err)
	}
	if _, leader := c.Owner(key); leader == nil || leader.HTTP != fresh.Addr() {
		t.Fatalf("Owner's leader = %+v, want the new member %s", leader, fresh.Addr())
	}
}

func TestRingAnswersTheCommittedRingWithMembers(t *testing.T) {
	cl := newCluster(t, 3, 2)
	c := newClient(t, fastConfig(deadAddr(t), cl.Group("g3").Agent(1).Addr()))
	r, err := c.Ring(ctxFor(t, 5*time.Second))
	if err != nil {
		t.Fatalf("Ring: %v", err)
	}
	if r.Epoch != 1 || r.Mode != "strong" || len(r.Groups) != 3 || r.From != "g3" {
		t.Fatalf("Ring = %+v", r)
	}
	for _, g := range r.Groups {
		if len(g.Members) != 2 || g.Leader == nil || g.Leader.ID != g.ID+"-n1" || g.Share < 0.2 {
			t.Errorf("group %+v", g)
		}
	}
	if c.RingEpoch() != 1 {
		t.Fatalf("Ring did not install the ring: epoch %d", c.RingEpoch())
	}
}

func TestMultiPutAndMultiGetSplitKeysByGroup(t *testing.T) {
	cl := newCluster(t, 3, 2)
	c := newClient(t, fastConfig(cl.Group("g1").Agent(0).Addr()))
	ctx := ctxFor(t, 20*time.Second)
	if _, err := c.Ring(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 600
	kvs := make([]kvclient.KV, n)
	for i := range kvs {
		kvs[i] = kvclient.KV{Key: []byte(fmt.Sprintf("k%04d", i)), Value: []byte(fmt.Sprintf("v%d", i))}
	}
	res, err := c.MultiPut(ctx, kvs)
	if err != nil {
		t.Fatalf("MultiPut: %v", err)
	}
	s := spec(1, "g1", "g2", "g3")
	for i, r := range res {
		if r.Err != nil || r.Version == 0 || !bytes.Equal(r.Key, kvs[i].Key) || r.Group != fakeagent.Owner(s, r.Key) {
			t.Fatalf("result %d = %+v", i, r)
		}
	}
	total := 0
	for _, g := range cl.Groups() {
		var reqs int64
		for _, a := range g.Agents() {
			reqs += a.Requests()
		}
		keys := g.Keys()
		total += len(keys)
		if int64(len(keys)) != reqs {
			t.Errorf("group %s got %d requests for %d keys: each group should see only its keys, once", g.ID(), reqs, len(keys))
		}
		for _, k := range keys {
			if fakeagent.Owner(s, []byte(k)) != g.ID() {
				t.Fatalf("group %s holds %q", g.ID(), k)
			}
		}
	}
	if total != n {
		t.Fatalf("the groups hold %d keys, want %d", total, n)
	}

	keys := [][]byte{[]byte("k0001"), []byte("absent"), []byte("k0599")}
	for i := range 100 {
		keys = append(keys, kvs[i*6].Key)
	}
	got, err := c.MultiGet(ctx, keys)
	if err != nil {
		t.Fatalf("MultiGet: %v (absent keys are not a batch failure)", err)
	}
	if string(got[0].Value) != "v1" || got[0].Version != res[1].Version || string(got[2].Value) != "v599" {
		t.Fatalf("MultiGet = %+v, %+v", got[0], got[2])
	}
	if !errors.Is(got[1].Err, kvclient.ErrNotFound) {
		t.Fatalf("absent key: %+v", got[1])
	}
	for i := range 100 {
		if r := got[3+i]; r.Err != nil || string(r.Value) != fmt.Sprintf("v%d", i*6) {
			t.Fatalf("MultiGet result %d = %+v", 3+i, r)
		}
	}

	res, err = c.MultiPut(ctx, []kvclient.KV{{Key: []byte("ok"), Value: nil}, {Key: nil, Value: []byte("x")}})
	var be *kvclient.BatchError
	if !errors.As(err, &be) || be.Failed != 1 || be.Total != 2 || !errors.Is(err, kvclient.ErrInvalidArgument) {
		t.Fatalf("MultiPut with an empty key: %v", err)
	}
	if res[0].Err != nil || !errors.Is(res[1].Err, kvclient.ErrInvalidArgument) {
		t.Fatalf("results %+v", res)
	}
	if res, err := c.MultiGet(ctx, nil); err != nil || len(res) != 0 {
		t.Fatalf("empty MultiGet = %v, %v", res, err)
	}
}

func TestMultiPutReportsEachKeysOutcome(t *testing.T) {
	cl := newCluster(t, 2, 1)
	lost := cl.Group("g2").Agent(0)
	lost.SetHook(onlyMethod(http.MethodPut, applyThenDrop(lost)))
	c := newClient(t, fastConfig(cl.Group("g1").Agent(0).Addr()))
	kvs := make([]kvclient.KV, 50)
	for i := range kvs {
		kvs[i] = kvclient.KV{Key: []byte(fmt.Sprint(i)), Value: []byte("v")}
	}
	res, err := c.MultiPut(ctxFor(t, 10*time.Second), kvs)
	var be *kvclient.BatchError
	if !errors.As(err, &be) || !errors.Is(err, kvclient.ErrTimeout) {
		t.Fatalf("MultiPut: %v, want a *BatchError wrapping ErrTimeout", err)
	}
	failed := 0
	for _, r := range res {
		switch r.Group {
		case "g1":
			if r.Err != nil {
				t.Errorf("g1 key %s: %v", r.Key, r.Err)
			}
		case "g2":
			failed++
			if !errors.Is(r.Err, kvclient.ErrTimeout) {
				t.Errorf("g2 key %s: %v, want ErrTimeout (applied, answer lost)", r.Key, r.Err)
			}
		default:
			t.Errorf("key %s routed to %q", r.Key, r.Group)
		}
	}
	if failed == 0 || be.Failed != failed || be.Total != 50 {
		t.Fatalf("BatchError %+v, %d keys of g2", be, failed)
	}
}

func TestConcurrentCallersFollowARingChange(t *testing.T) {
	cl := newCluster(t, 3, 2)
	cl.AddGroup("g4", 2)
	// Half way through, from inside the agents, the cluster adds g4 and
	// moves its keys there (epoch 2) while 32 callers write and read.
	var seen atomic.Int64
	var once sync.Once
	for _, g := range cl.Groups() {
		for _, a := range g.Agents() {
			a.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
				if seen.Add(1) >= 1500 {
					once.Do(func() {
						if err := cl.Reshard(spec(2, "g1", "g2", "g3", "g4")); err != nil {
							t.Error(err)
						}
					})
				}
				return false
			})
		}
	}
	c := newClient(t, fastConfig(cl.Group("g1").Agent(0).Addr(), cl.Group("g3").Agent(1).Addr()))
	ctx := ctxFor(t, 30*time.Second)
	const callers, ops = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ops {
				key := []byte(fmt.Sprintf("c%d/%d", i, j%10))
				val := []byte(fmt.Sprint(j))
				ver, err := c.Put(ctx, key, val)
				if err != nil {
					errs <- fmt.Errorf("caller %d op %d: Put: %w", i, j, err)
					return
				}
				got, err := c.Get(ctx, key)
				if err != nil || !bytes.Equal(got.Data, val) || got.Version != ver {
					errs <- fmt.Errorf("caller %d op %d: Get = %q v%d, %v; want %q v%d", i, j, got.Data, got.Version, err, val, ver)
					return
				}
				if j%5 == 0 {
					if _, err := c.MultiGet(ctx, [][]byte{key, []byte("x")}); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c.RingEpoch() != 2 {
		t.Fatalf("RingEpoch = %d; the change happened at request 1500 of about 3500", c.RingEpoch())
	}
	if n := len(cl.Group("g4").Keys()); n == 0 {
		t.Fatalf("g4 holds no key")
	}
}
