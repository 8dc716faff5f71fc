package main_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpkv/carpkv/internal/testcluster"
	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// A MultiPut travels as one request and one Raft entry per batch of a
// group's keys, and every key lands at its owner with the version the
// call reported; a MultiGet reads them back the same way.
func TestMultiPutIsOneRaftEntryPerBatch(t *testing.T) {
	s := testcluster.StartSharded(t, 2, 3)
	s.DumpLogsOnFailure()
	ring, cr := ringOf(t, s)
	cl, err := kvclient.New(kvclient.Config{Addrs: s.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testcluster.Context(t, 2*time.Minute)
	if _, err := cl.Ring(ctx); err != nil {
		t.Fatal(err)
	}
	applied := func() map[string]uint64 {
		out := map[string]uint64{}
		for _, c := range s.Groups {
			info, err := c.Leader(10 * time.Second).Self()
			if err != nil {
				t.Fatal(err)
			}
			out[c.Group] = info.AppliedIndex
		}
		return out
	}
	before := applied()
	const n = 20000
	kvs := make([]kvclient.KV, n)
	for i := range kvs {
		kvs[i] = kvclient.KV{Key: fmt.Appendf(nil, "bulk/%06d", (i*7919)%n), Value: bytes.Repeat([]byte{byte(i)}, 200)}
	}
	res, err := cl.MultiPut(ctx, kvs)
	if err != nil {
		t.Fatalf("MultiPut: %v", err)
	}
	perGroup := map[string]int{}
	for i, r := range res {
		if r.Err != nil || r.Version == 0 || r.Group != cr.Owner(kvs[i].Key) {
			t.Fatalf("result %d: %+v (owner %s)", i, r, cr.Owner(kvs[i].Key))
		}
		perGroup[r.Group]++
	}
	after := applied()
	for _, g := range ring.Groups {
		// 200-byte values: about 2,300 pairs per 512 KiB batch. A put
		// per key would take one entry each.
		entries := after[g.ID] - before[g.ID]
		if limit := uint64(perGroup[g.ID]/wire.MaxBatchKeys + perGroup[g.ID]*230/wire.BatchBytes + 10); entries > limit {
			t.Errorf("group %s applied %d entries for %d keys, want at most %d", g.ID, entries, perGroup[g.ID], limit)
		}
		t.Logf("group %s: %d keys in %d entries", g.ID, perGroup[g.ID], entries)
	}

	keys := make([][]byte, n+1)
	for i := range kvs {
		keys[i] = kvs[i].Key
	}
	keys[n] = []byte("bulk/absent")
	got, err := cl.MultiGet(ctx, keys)
	if err != nil {
		t.Fatalf("MultiGet: %v", err)
	}
	for i := range kvs {
		if r := got[i]; r.Err != nil || !bytes.Equal(r.Value, kvs[i].Value) || r.Version != res[i].Version {
			t.Fatalf("%s: %d bytes at version %d (%v), want version %d", kvs[i].Key, len(r.Value), r.Version, r.Err, res[i].Version)
		}
	}
	if !errors.Is(got[n].Err, kvclient.ErrNotFound) {
		t.Fatalf("absent key: %+v", got[n])
	}
	// Stale reads in batches, from any member.
	stale, err := cl.MultiGet(ctx, keys[:1000], kvclient.Stale())
	if err != nil {
		t.Fatalf("stale MultiGet: %v", err)
	}
	for i, r := range stale {
		if r.Err != nil || r.Version > res[i].Version {
			t.Fatalf("stale %s: %+v", keys[i], r)
		}
	}
}

// Bad keys in a batch are answered on their own and the others written; a
// batch that cannot be decoded, or that names a key outside its value, is
// refused whole; keys another group owns get wrong_group each.
func TestBatchesCheckEveryKeyOnItsOwn(t *testing.T) {
	s := testcluster.StartSharded(t, 2, 1, "--max-key-bytes=64", "--max-value-bytes=1024")
	s.DumpLogsOnFailure()
	ring, cr := ringOf(t, s)
	g := s.Groups[0]
	leader := g.Leader(10 * time.Second)
	var mine, theirs []byte
	for i := 0; mine == nil || theirs == nil; i++ {
		k := fmt.Appendf(nil, "k%d", i)
		if cr.Owner(k) == g.Group {
			mine = k
		} else {
			theirs = k
		}
	}
	st := openStream(t, leader.HTTPAddr)
	pairs := []wire.Pair{
		{Key: mine, Value: []byte("v")},
		{Key: nil, Value: []byte("x")},
		{Key: bytes.Repeat([]byte("k"), 65), Value: []byte("x")},
		{Key: []byte(string(mine) + "-big"), Value: make([]byte, 1025)},
		{Key: theirs, Value: []byte("v")},
	}
	st.send(req(wire.StreamRequest{ID: 1, Op: wire.StreamMultiPut, RingEpoch: ring.Epoch, Value: wire.AppendPairs(nil, pairs)}))
	a := st.answers(1)[1]
	if a.Err != nil {
		t.Fatalf("multiput: %v", a.Err)
	}
	rs, err := wire.DecodePutResults(a.Value, len(pairs))
	if err != nil {
		t.Fatal(err)
	}
	want := []wire.Code{"", wire.CodeInvalidArgument, wire.CodeTooLarge, wire.CodeTooLarge, wire.CodeWrongGroup}
	for i, w := range want {
		switch {
		case w == "" && (rs[i].Err != nil || rs[i].Version == 0):
			t.Errorf("pair %d: %+v, want written", i, rs[i])
		case w != "" && (rs[i].Err == nil || rs[i].Err.Code != w):
			t.Errorf("pair %d: %+v, want %s", i, rs[i], w)
		}
	}
	st.send(
		req(wire.StreamRequest{ID: 2, Op: wire.StreamMultiPut, Value: []byte{5, 1}}),
		req(wire.StreamRequest{ID: 3, Op: wire.StreamMultiGet, Key: mine, Value: wire.AppendKeys(nil, [][]byte{mine})}),
		req(wire.StreamRequest{ID: 4, Op: wire.StreamMultiGet, RingEpoch: ring.Epoch, Value: wire.AppendKeys(nil, [][]byte{mine, theirs, []byte("absent"), nil})}),
	)
	got := st.answers(3)
	for _, id := range []uint64{2, 3} {
		if got[id].Err == nil || got[id].Err.Code != wire.CodeInvalidArgument {
			t.Errorf("request %d: %+v, want invalid_argument", id, got[id])
		}
	}
	gr, err := wire.DecodeGetResults(got[4].Value, 4)
	if err != nil || got[4].Err != nil {
		t.Fatalf("multiget: %v %v", got[4].Err, err)
	}
	if string(gr[0].Value) != "v" || gr[0].Version != rs[0].Version {
		t.Errorf("multiget of %s: %+v", mine, gr[0])
	}
	for i, w := range []wire.Code{wire.CodeWrongGroup, wire.CodeNotFound, wire.CodeInvalidArgument} {
		if r := gr[i+1]; r.Err == nil || r.Err.Code != w {
			t.Errorf("multiget key %d: %+v, want %s", i+1, r, w)
		}
	}

	// A MultiGet answer is bounded: values past its budget are answered
	// "ask again", and kvclient does, key by key.
	cl, err := kvclient.New(kvclient.Config{Addrs: s.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testcluster.Context(t, time.Minute)
	var big []kvclient.KV
	for i := 0; len(big) < wire.MaxBatchKeys; i++ {
		k := fmt.Appendf(nil, "big%d", i)
		if cr.Owner(k) == g.Group {
			big = append(big, kvclient.KV{Key: k, Value: bytes.Repeat([]byte{byte(i)}, 1024)})
		}
	}
	if _, err := cl.MultiPut(ctx, big); err != nil {
		t.Fatal(err)
	}
	keys := make([][]byte, len(big))
	for i := range big {
		keys[i] = big[i].Key
	}
	st.send(req(wire.StreamRequest{ID: 5, Op: wire.StreamMultiGet, Value: wire.AppendKeys(nil, keys)}))
	raw, err := wire.ReadResponse(st.br, 64<<20)
	if err != nil || raw.Err != nil {
		t.Fatalf("multiget of 4 MiB: %v %v", err, raw.Err)
	}
	if gr, err = wire.DecodeGetResults(raw.Value, len(keys)); err != nil {
		t.Fatal(err)
	}
	last := gr[len(gr)-1]
	if gr[0].Err != nil || last.Err == nil || last.Err.Code != wire.CodeUnavailable {
		t.Fatalf("%d values of 1 KiB in one answer: first %v, last %v; want the last ones left for later", len(gr), gr[0].Err, last.Err)
	}
	all, err := cl.MultiGet(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range all {
		if !bytes.Equal(r.Value, big[i].Value) {
			t.Fatalf("%s: %d bytes back", big[i].Key, len(r.Value))
		}
	}
}

// Batches survive their leader's kill -9 mid-load: every key a MultiPut
// acknowledged is read back with its value at its version or later; a key
// whose batch lost its answer is ErrTimeout (unknown), never a failure
// that was applied; and nothing fails as unavailable or not leader.
func TestMultiPutAcknowledgedKeysSurviveALeaderKill(t *testing.T) {
	c := testcluster.Start(t, "g1", 3)
	c.DumpLogsOnFailure()
	cl := client(t, c)
	ctx := testcluster.Context(t, 2*time.Minute)
	type ack struct {
		value   string
		version uint64
	}
	var (
		mu      sync.Mutex
		acked   = map[string]ack{}
		unknown = map[string]bool{}
		calls   atomic.Int64
		timeout atomic.Int64 // keys answered ErrTimeout, over every call
		failed  atomic.Value
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for round := 0; ; round++ {
				select {
				case <-stop:
					return
				default:
				}
				kvs := make([]kvclient.KV, 500)
				for i := range kvs {
					kvs[i] = kvclient.KV{Key: fmt.Appendf(nil, "w%d-%03d", w, i), Value: fmt.Appendf(nil, "w%d-%03d@%d", w, i, round)}
				}
				res, _ := cl.MultiPut(ctx, kvs)
				mu.Lock()
				for i, r := range res {
					k := string(kvs[i].Key)
					switch {
					case r.Err == nil:
						acked[k], unknown[k] = ack{string(kvs[i].Value), r.Version}, false
					case errors.Is(r.Err, kvclient.ErrTimeout):
						unknown[k] = true
						timeout.Add(1)
					default:
						failed.CompareAndSwap(nil, r.Err)
					}
				}
				mu.Unlock()
				calls.Add(1)
			}
		})
	}
	waitCalls := func(n int64) {
		from := calls.Load()
		testcluster.Eventually(t, 60*time.Second, "MultiPut calls", func() error {
			if got := calls.Load() - from; got < n {
				return fmt.Errorf("%d calls", got)
			}
			return nil
		})
	}
	waitCalls(10)
	old := c.Leader(10 * time.Second)
	old.Kill()
	if c.Leader(20*time.Second) == old {
		t.Fatal("killed leader still leads")
	}
	waitCalls(10)
	close(stop)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("a MultiPut key failed other than with an unknown outcome: %v", err)
	}
	n, lastUnknown := 0, 0
	for _, u := range unknown {
		if u {
			lastUnknown++
		}
	}
	for k, a := range acked {
		v, err := cl.Get(ctx, []byte(k))
		switch {
		case err != nil:
			t.Fatalf("acknowledged key %s: %v", k, err)
		case unknown[k]:
			// A later batch's outcome is unknown: its value or an
			// acknowledged one, never older than the acknowledgement.
			if v.Version < a.version {
				t.Fatalf("%s at version %d, below the acknowledged %d", k, v.Version, a.version)
			}
		case string(v.Data) != a.value || v.Version != a.version:
			t.Fatalf("%s = %q at %d, want %q at %d", k, v.Data, v.Version, a.value, a.version)
		}
		n++
	}
	t.Logf("%d MultiPut calls, %d keys checked, %d answers ErrTimeout, %d keys with an unknown last outcome", calls.Load(), n, timeout.Load(), lastUnknown)
}
