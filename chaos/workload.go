package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/carpkv/carpkv/kvclient"
)

// KV is the part of kvclient.Client the workload uses.
type KV interface {
	Get(ctx context.Context, key []byte, opts ...kvclient.ReadOption) (kvclient.Value, error)
	Put(ctx context.Context, key, value []byte) (uint64, error)
	PutIfAbsent(ctx context.Context, key, value []byte) (uint64, error)
	CompareAndSwap(ctx context.Context, key, value []byte, expectVersion uint64) (uint64, error)
	Delete(ctx context.Context, key []byte) (uint64, error)
	CompareAndDelete(ctx context.Context, key []byte, expectVersion uint64) (uint64, error)
}

// Classify says what a call's error proves about its effect (docs/api.md,
// kvclient's error contract):
//   - nil: done; ErrNotFound and a *CASError: answered, nothing changed;
//   - for a write, ErrTimeout, and any error not listed below (internal,
//     protocol, closed): the outcome is unknown;
//   - ErrUnavailable, ErrNotLeader, ErrWrongGroup, ErrStaleRing,
//     ErrKeyMoving (a ring change hands the key over): the client
//     promises nothing was applied;
//   - a read without an answer proves nothing: failed.
//
// For a cas_failed it also returns the key's current version.
func Classify(kind OpKind, err error) (Outcome, uint64) {
	var ce *kvclient.CASError
	switch {
	case err == nil:
		return OutcomeOK, 0
	case errors.As(err, &ce):
		return OutcomeCASFailed, ce.Current
	case errors.Is(err, kvclient.ErrNotFound):
		return OutcomeNotFound, 0
	case kind == OpGet:
		return OutcomeFailed, 0
	case errors.Is(err, kvclient.ErrTimeout):
		return OutcomeUnknown, 0
	case errors.Is(err, kvclient.ErrUnavailable), errors.Is(err, kvclient.ErrNotLeader),
		errors.Is(err, kvclient.ErrWrongGroup), errors.Is(err, kvclient.ErrStaleRing),
		errors.Is(err, kvclient.ErrKeyMoving):
		return OutcomeFailed, 0
	}
	return OutcomeUnknown, 0
}

// Invoke runs one operation against kv and returns it classified, with
// its call and return times on h's clock. The caller fills in the
// identity fields (client, worker, group). The error is the call's.
func Invoke(ctx context.Context, kv KV, h *History, kind OpKind, key, value string, expect uint64, read ...kvclient.ReadOption) (Op, error) {
	o := Op{Key: key, Kind: kind, Expect: expect}
	if kind != OpGet {
		o.Value = value
	}
	k := []byte(key)
	var (
		ver uint64
		err error
	)
	if dl, ok := ctx.Deadline(); ok {
		o.Deadline = h.At(dl)
	}
	o.Call = h.Now()
	switch kind {
	case OpGet:
		var v kvclient.Value
		v, err = kv.Get(ctx, k, read...)
		o.Value, ver = string(v.Data), v.Version
	case OpPut:
		ver, err = kv.Put(ctx, k, []byte(value))
	case OpPutIfAbsent:
		ver, err = kv.PutIfAbsent(ctx, k, []byte(value))
	case OpCAS:
		ver, err = kv.CompareAndSwap(ctx, k, []byte(value), expect)
	case OpDelete:
		ver, err = kv.Delete(ctx, k)
	case OpCompareAndDelete:
		ver, err = kv.CompareAndDelete(ctx, k, expect)
	}
	o.Return = h.Now()
	var cur uint64
	o.Outcome, cur = Classify(kind, err)
	switch o.Outcome {
	case OutcomeOK:
		o.Version = ver
	case OutcomeCASFailed:
		o.Version = cur
	}
	if err != nil {
		o.Err = err.Error()
		if kind == OpGet {
			o.Value = ""
		}
	}
	return o, err
}

// WorkloadConfig shapes the client load.
type WorkloadConfig struct {
	Workers int
	// Keys are the keys the workers share; they pick them uniformly, so
	// every group gets its share and every key sees contention. Which
	// group owns a key changes with the ring: the run works it out from
	// the ring changes when it checks the history.
	Keys []string
	// OpTimeout bounds each call (kvclient retries inside it).
	OpTimeout time.Duration
	// Think is the longest pause between two calls of a worker (uniform).
	Think time.Duration
	Seed  uint64
	// StaleReads makes every get a stale read (kvclient.Stale()), which
	// is allowed to return old data: a self-test proving that the checker
	// catches non-linearizable reads. A run with it must fail.
	StaleReads bool
}

// mix is the operation mix, in percent.
var mix = []struct {
	kind OpKind
	pct  int
}{
	{OpGet, 35}, {OpPut, 15}, {OpPutIfAbsent, 5}, {OpCAS, 25}, {OpDelete, 8}, {OpCompareAndDelete, 12},
}

func pickKind(r *rand.Rand) OpKind {
	n := r.IntN(100)
	for _, m := range mix {
		if n < m.pct {
			return m.kind
		}
		n -= m.pct
	}
	return OpGet
}

// Workload is the concurrent clients.
type Workload struct {
	cfg  WorkloadConfig
	kv   KV
	h    *History
	keys []string

	// gate: every call holds it for reading; Pause takes it for
	// writing, so that the checks between ring changes see no call in
	// flight.
	gate sync.RWMutex

	mu         sync.Mutex
	unexpected map[string]int // error messages of unknown outcomes that were not timeouts
}

// Pause returns once no call is in flight; no worker starts one until
// Resume.
func (w *Workload) Pause() { w.gate.Lock() }

// Resume lets the workers go on after Pause.
func (w *Workload) Resume() { w.gate.Unlock() }

// NewWorkload prepares cfg.Workers clients sharing kv.
func NewWorkload(cfg WorkloadConfig, kv KV, h *History) *Workload {
	w := &Workload{cfg: cfg, kv: kv, h: h, unexpected: map[string]int{}}
	w.keys = append(w.keys, cfg.Keys...)
	sort.Strings(w.keys)
	return w
}

// Run runs the workers until stop is closed (each finishes its call in
// flight) or ctx ends (calls are cut short), and returns when all have
// stopped.
func (w *Workload) Run(ctx context.Context, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for i := 0; i < w.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.worker(ctx, stop, i)
		}()
	}
	wg.Wait()
}

func (w *Workload) worker(ctx context.Context, stop <-chan struct{}, i int) {
	r := rand.New(rand.NewPCG(w.cfg.Seed, uint64(i)+1))
	name := fmt.Sprintf("w%d", i)
	client := w.h.NewClient()
	known := map[string]uint64{} // the version this worker saw last, per key
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		key := w.keys[r.IntN(len(w.keys))]
		kind := pickKind(r)
		expect := known[key]
		if kind == OpCompareAndDelete && expect == 0 {
			kind = OpGet // nothing to compare with
		}
		value := fmt.Sprintf("%s-%d", name, seq)
		var read []kvclient.ReadOption
		if w.cfg.StaleReads {
			read = append(read, kvclient.Stale())
		}
		w.gate.RLock()
		octx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout)
		o, err := Invoke(octx, w.kv, w.h, kind, key, value, expect, read...)
		cancel()
		w.gate.RUnlock()
		o.Client, o.Worker = client, name
		w.h.Add(o)
		switch o.Outcome {
		case OutcomeOK:
			known[key] = o.Version
			if kind == OpDelete || kind == OpCompareAndDelete {
				known[key] = 0
			}
		case OutcomeNotFound:
			known[key] = 0
		case OutcomeCASFailed:
			known[key] = o.Version
		case OutcomeUnknown:
			// Porcupine's processes are sequential: the call still open
			// (it may take effect at any later time) belongs to the old
			// process; the worker goes on as a new one.
			client = w.h.NewClient()
			if ctx.Err() == nil && !errors.Is(err, kvclient.ErrTimeout) {
				w.mu.Lock()
				w.unexpected[o.Err]++
				w.mu.Unlock()
			}
		}
		if w.cfg.Think > 0 {
			t := time.NewTimer(time.Duration(r.Int64N(int64(w.cfg.Think))))
			select {
			case <-t.C:
			case <-stop:
			case <-ctx.Done():
			}
			t.Stop()
		}
	}
}

// Unexpected returns the errors that were recorded as unknown outcomes
// without being timeouts, with their counts.
func (w *Workload) Unexpected() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.unexpected))
	for k, v := range w.unexpected {
		out[k] = v
	}
	return out
}
