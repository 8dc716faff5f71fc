package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpkv/carpkv/internal/testcluster"
	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// Ring changes with real agents: groups join and leave a serving cluster
// while clients write, delete and read; nothing acknowledged is lost,
// nothing deleted comes back, every key ends up only in its owner group.

func postChange(t *testing.T, addr string, req wire.RingChangeRequest) (int, []byte) {
	t.Helper()
	body, _ := json.Marshal(req)
	resp, err := http.Post("http://"+addr+wire.PathRingChange, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

// waitChangeDone waits until the coordinator group (any member) records
// the change to epoch as done, and returns its record.
func waitChangeDone(t *testing.T, coord *testcluster.Cluster, epoch uint64) wire.RingChangeStatus {
	t.Helper()
	var last wire.RingChangeStatus
	testcluster.Eventually(t, 90*time.Second, fmt.Sprintf("ring change to epoch %d done", epoch), func() error {
		l := coord.Leader(10 * time.Second)
		var ans wire.RingChangeAnswer
		resp, err := http.Get("http://" + l.HTTPAddr + wire.PathRingChange)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
			return err
		}
		if ans.Last == nil || ans.Last.To.Epoch != epoch {
			if ans.Active != nil {
				return fmt.Errorf("phase %s, last error %q", ans.Active.Phase, ans.Active.LastError)
			}
			return errors.New("no change recorded")
		}
		last = *ans.Last
		return nil
	})
	return last
}

// keyState is what one writer knows of one of its keys.
type keyState struct {
	value   string // "" when deleted or never written
	unknown bool   // the last write's outcome is unknown
}

type workload struct {
	cl       *kvclient.Client
	keys     int
	mu       sync.Mutex
	state    map[string]keyState
	ops      atomic.Int64
	failures atomic.Int64
	unknown  atomic.Int64
	firstErr atomic.Value
}

// run has each of writers own keys w<i>-<n> and write, delete and read
// them back until stop: reads must see the writer's own last acknowledged
// write (linearizable reads from a single writer per key).
func (w *workload) run(ctx context.Context, writers int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-%03d", i, rng.IntN(w.keys))
				w.mu.Lock()
				before := w.state[key]
				w.mu.Unlock()
				var err error
				next := before
				switch r := rng.IntN(10); {
				case r < 6:
					v := fmt.Sprintf("%s@%d", key, seq)
					_, err = w.cl.Put(ctx, []byte(key), []byte(v))
					next = keyState{value: v}
				case r < 8:
					_, err = w.cl.Delete(ctx, []byte(key))
					if errors.Is(err, kvclient.ErrNotFound) && before.value == "" {
						err = nil
					}
					next = keyState{}
				default:
					got, gerr := w.cl.Get(ctx, []byte(key))
					switch {
					case errors.Is(gerr, kvclient.ErrNotFound):
						if before.value != "" && !before.unknown {
							err = fmt.Errorf("read %s: not found, want %q", key, before.value)
						}
					case gerr != nil:
						err = gerr
					case !before.unknown && string(got.Data) != before.value:
						err = fmt.Errorf("read %s = %q, want %q", key, got.Data, before.value)
					}
				}
				w.ops.Add(1)
				if errors.Is(err, kvclient.ErrTimeout) {
					w.unknown.Add(1)
					next.unknown = true
				} else if err != nil {
					w.failures.Add(1)
					w.firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				w.mu.Lock()
				w.state[key] = next
				w.mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.batches(ctx, stop)
	}()
	return &wg
}

// batches writes keys b-<n> with MultiPut and reads them back with
// MultiGet until stop: batches whose keys move mid-call, or are in
// hand-off, must still land every acknowledged key and read it back.
func (w *workload) batches(ctx context.Context, stop <-chan struct{}) {
	const n = 300
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "b-%03d", i)
	}
	fail := func(err error) {
		w.failures.Add(1)
		w.firstErr.CompareAndSwap(nil, err.Error())
	}
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		kvs := make([]kvclient.KV, n)
		for i, k := range keys {
			kvs[i] = kvclient.KV{Key: k, Value: fmt.Appendf(nil, "%s@%d", k, seq)}
		}
		res, _ := w.cl.MultiPut(ctx, kvs)
		w.mu.Lock()
		for i, r := range res {
			switch {
			case errors.Is(r.Err, kvclient.ErrTimeout):
				w.unknown.Add(1)
				w.state[string(keys[i])] = keyState{value: string(kvs[i].Value), unknown: true}
			case r.Err != nil:
				fail(fmt.Errorf("multiput %s: %w", keys[i], r.Err))
			default:
				w.state[string(keys[i])] = keyState{value: string(kvs[i].Value)}
			}
		}
		want := make([]keyState, n)
		for i, k := range keys {
			want[i] = w.state[string(k)]
		}
		w.mu.Unlock()
		w.ops.Add(n)
		got, _ := w.cl.MultiGet(ctx, keys)
		for i, r := range got {
			switch {
			case want[i].unknown:
			case r.Err != nil:
				fail(fmt.Errorf("multiget %s: %w", keys[i], r.Err))
			case string(r.Value) != want[i].value:
				fail(fmt.Errorf("multiget %s = %q, want %q", keys[i], r.Value, want[i].value))
			}
		}
		w.ops.Add(n)
	}
}

// verify reads every key through the client and checks each group holds
// only the keys it owns.
func (w *workload) verify(t *testing.T, ctx context.Context, s *testcluster.Sharded, inRing map[string]bool) {
	t.Helper()
	live := 0
	for key, st := range w.state {
		got, err := w.cl.Get(ctx, []byte(key))
		switch {
		case st.unknown:
			continue
		case st.value == "" && !errors.Is(err, kvclient.ErrNotFound):
			t.Fatalf("deleted key %s: got %q, %v", key, got.Data, err)
		case st.value != "" && (err != nil || string(got.Data) != st.value):
			t.Fatalf("key %s: got %q, %v; want %q", key, got.Data, err, st.value)
		}
		if st.value != "" {
			live++
		}
	}
	_, cr := ringOf(t, s)
	want := map[string]int{}
	for key, st := range w.state {
		if st.value != "" || st.unknown {
			want[cr.Owner([]byte(key))]++
		}
	}
	// Every member of every group converges on the keys its group owns
	// (the sources dropped what they handed off).
	for _, c := range s.Groups {
		for _, n := range c.Running() {
			testcluster.Eventually(t, 30*time.Second, n.ID+" holds only its group's keys", func() error {
				info, err := n.Self()
				if err != nil {
					return err
				}
				if !inRing[c.Group] && info.Keys != 0 {
					return fmt.Errorf("removed group member holds %d keys", info.Keys)
				}
				if inRing[c.Group] && info.Keys != want[c.Group] {
					// Unknown outcomes may or may not be stored.
					unknown := 0
					for key, st := range w.state {
						if st.unknown && cr.Owner([]byte(key)) == c.Group {
							unknown++
						}
					}
					if info.Keys > want[c.Group] || info.Keys < want[c.Group]-unknown {
						return fmt.Errorf("holds %d keys, its group owns %d (%d unknown)", info.Keys, want[c.Group], unknown)
					}
				}
				return nil
			})
		}
	}
	t.Logf("verified %d keys (%d live) after the change", len(w.state), live)
}

func TestRingChangesUnderLoadLoseNothing(t *testing.T) {
	s := testcluster.StartSharded(t, 2, 3)
	g3 := s.AddGroup(3)
	cl, err := kvclient.New(kvclient.Config{Addrs: s.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testcluster.Context(t, 5*time.Minute)
	w := &workload{cl: cl, keys: 60, state: map[string]keyState{}}

	// Standby: g3 formed but serves nothing and is not in the ring.
	if r, _ := ringOf(t, s); len(r.Groups) != 2 || r.Epoch != 1 {
		t.Fatalf("ring before the change: epoch %d, %d groups", r.Epoch, len(r.Groups))
	}

	change := func(coord *testcluster.Cluster, req wire.RingChangeRequest, epoch uint64) wire.RingChangeStatus {
		stop := make(chan struct{})
		wg := w.run(ctx, 6, stop)
		testcluster.Eventually(t, 30*time.Second, "some load before the change", func() error {
			if w.ops.Load() < 300 {
				return fmt.Errorf("%d ops", w.ops.Load())
			}
			return nil
		})
		leader := coord.Leader(10 * time.Second)
		if code, body := postChange(t, leader.HTTPAddr, req); code != http.StatusOK {
			t.Fatalf("starting %s %s: HTTP %d %s", req.Kind, req.Group, code, body)
		}
		// A second change is refused while this one runs.
		if code, body := postChange(t, leader.HTTPAddr, wire.RingChangeRequest{Kind: wire.ChangeSetWeight, Group: "g2", Weight: 3}); code != http.StatusConflict || !bytes.Contains(body, []byte(wire.CodeRingChangeInProgress)) {
			t.Errorf("second change during %s: HTTP %d %s, want 409 ring_change_in_progress", req.Kind, code, body)
		}
		done := waitChangeDone(t, coord, epoch)
		before := w.ops.Load()
		testcluster.Eventually(t, 30*time.Second, "load after the change", func() error {
			if w.ops.Load() < before+300 {
				return fmt.Errorf("%d ops since", w.ops.Load()-before)
			}
			return nil
		})
		close(stop)
		wg.Wait()
		if f := w.failures.Load(); f != 0 {
			t.Fatalf("%d failed operations during %s %s; first: %v", f, req.Kind, req.Group, w.firstErr.Load())
		}
		t.Logf("%s %s: %d ops, %d unknown outcomes, pairs %+v, took %v", req.Kind, req.Group, w.ops.Load(), w.unknown.Load(),
			done.Pairs, time.Duration(done.FinishedAt-done.StartedAt)*time.Millisecond)
		return done
	}

	done := change(s.Groups[0], wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: g3.Group}, 2)
	for _, p := range done.Pairs {
		if p.Dest != "g3" {
			t.Fatalf("adding g3 moved keys from %s to %s", p.Source, p.Dest)
		}
	}
	s.WaitRing(2, 30*time.Second)
	w.verify(t, ctx, s, map[string]bool{"g1": true, "g2": true, "g3": true})

	// Remove the coordinator's own group: it hands its keys to the others
	// and its agents end up holding nothing; g2 coordinates what follows.
	done = change(s.Groups[0], wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: "g1"}, 3)
	for _, p := range done.Pairs {
		if p.Source != "g1" {
			t.Fatalf("removing g1 moved keys from %s to %s", p.Source, p.Dest)
		}
	}
	w.verify(t, ctx, s, map[string]bool{"g2": true, "g3": true})
	if r, _ := ringOf(t, s); r.Epoch != 3 || len(r.Groups) != 2 {
		t.Fatalf("ring after removing g1: epoch %d, %+v", r.Epoch, r.Groups)
	}
}

// Every refusal names its culprit, and nothing starts.
func TestRingChangeRefusals(t *testing.T) {
	s := testcluster.StartSharded(t, 2, 1)
	leader := s.Groups[0].Leader(10 * time.Second)
	other := s.Groups[1].Leader(10 * time.Second)
	cases := []struct {
		name string
		addr string
		req  wire.RingChangeRequest
		code wire.Code
		says string
	}{
		{"group in the ring", leader.HTTPAddr, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g2"}, wire.CodeInvalidArgument, "g2 is in the ring"},
		{"group without a leader", leader.HTTPAddr, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g9"}, wire.CodeInvalidArgument, "g9 has no leader"},
		{"remove unknown", leader.HTTPAddr, wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: "g9"}, wire.CodeInvalidArgument, "g9 is not in the ring"},
		{"zero weight", leader.HTTPAddr, wire.RingChangeRequest{Kind: wire.ChangeSetWeight, Group: "g2"}, wire.CodeInvalidArgument, "above 0"},
		{"negative weight", leader.HTTPAddr, wire.RingChangeRequest{Kind: wire.ChangeSetWeight, Group: "g2", Weight: -1}, wire.CodeInvalidArgument, "above 0"},
		{"unknown kind", leader.HTTPAddr, wire.RingChangeRequest{Kind: "split", Group: "g2"}, wire.CodeInvalidArgument, "unknown kind"},
		{"not the coordinator", other.HTTPAddr, wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: "g2"}, wire.CodeInvalidArgument, "coordinated by group g1"},
	}
	for _, tc := range cases {
		code, body := postChange(t, tc.addr, tc.req)
		var eb wire.ErrorBody
		if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil || eb.Error.Code != tc.code || !bytes.Contains(body, []byte(tc.says)) || code != tc.code.HTTPStatus() {
			t.Errorf("%s: HTTP %d %s; want %s saying %q", tc.name, code, body, tc.code, tc.says)
		}
	}
	// A malformed body is refused too (NaN cannot travel in JSON).
	resp, err := http.Post("http://"+leader.HTTPAddr+wire.PathRingChange, "application/json", bytes.NewReader([]byte(`{"kind":"set-weight","group":"g2","weight":NaN}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("NaN weight: HTTP %d", resp.StatusCode)
	}
	// Nothing started.
	var ans wire.RingChangeAnswer
	if err := getJSONTo("http://"+leader.HTTPAddr+wire.PathRingChange, &ans); err != nil || ans.Active != nil || ans.Last != nil {
		t.Fatalf("after refusals: %+v, %v", ans, err)
	}
	if r, _ := ringOf(t, s); r.Epoch != 1 {
		t.Fatalf("ring epoch %d after refusals", r.Epoch)
	}
}

func getJSONTo(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// The change lives in the coordinator group's log: killing that group's
// leader (kill -9) right after the change starts, and a source group's
// leader while it runs, delays it but does not stop it, and loses nothing.
func TestRingChangeSurvivesLeaderKills(t *testing.T) {
	s := testcluster.StartSharded(t, 2, 3)
	g3 := s.AddGroup(3)
	cl, err := kvclient.New(kvclient.Config{Addrs: s.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testcluster.Context(t, 5*time.Minute)
	const n = 5000
	kvs := make([]kvclient.KV, n)
	for i := range kvs {
		kvs[i] = kvclient.KV{Key: []byte(fmt.Sprintf("k%05d", i)), Value: []byte(fmt.Sprintf("v%05d", i))}
	}
	// Load; a put whose outcome is unknown (a busy machine) is sent again:
	// the same value, so either way the key ends up with it.
	todo := kvs
	for round := 0; len(todo) > 0; round++ {
		if round == 5 {
			t.Fatalf("%d keys still not loaded after 5 tries", len(todo))
		}
		res, _ := cl.MultiPut(ctx, todo)
		var again []kvclient.KV
		for i, r := range res {
			if r.Err != nil {
				again = append(again, todo[i])
			}
		}
		todo = again
	}
	coord := s.Groups[0]
	leader := coord.Leader(10 * time.Second)
	if code, body := postChange(t, leader.HTTPAddr, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: g3.Group}); code != http.StatusOK {
		t.Fatalf("starting the change: HTTP %d %s", code, body)
	}
	leader.Kill()
	src := s.Groups[1].Leader(10 * time.Second)
	src.Kill()
	leader.Start()
	src.Start()
	done := waitChangeDone(t, coord, 2)
	t.Logf("change done after two leader kills: pairs %+v, took %v", done.Pairs,
		time.Duration(done.FinishedAt-done.StartedAt)*time.Millisecond)
	s.WaitRing(2, 30*time.Second)
	got, err := cl.MultiGet(ctx, func() [][]byte {
		keys := make([][]byte, n)
		for i := range keys {
			keys[i] = kvs[i].Key
		}
		return keys
	}())
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if r.Err != nil || string(r.Value) != string(kvs[i].Value) {
			t.Fatalf("%s after the change: %q, %v", kvs[i].Key, r.Value, r.Err)
		}
	}
	var moved uint64
	for _, p := range done.Pairs {
		moved += p.Keys
	}
	if moved < n/4 {
		t.Fatalf("%d records moved for %d keys, want about a third (the new group's share)", moved, n)
	}
}
