package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

var (
	errNotFound  = errors.New("fake: not found")
	errCASFailed = errors.New("fake: cas failed")
	errDown      = errors.New("fake: unavailable")
)

func classifyFake(err error) Class {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, errNotFound):
		return NotFound
	case errors.Is(err, errCASFailed):
		return CASFailed
	case errors.Is(err, errDown):
		return Unavailable
	}
	return DefaultClassify(err)
}

// memKV is an in-memory store with versions, counting calls. A CAS
// succeeds when the key is at the version this KV last handed out for it,
// as a real adapter that remembers versions would.
type memKV struct {
	mu      sync.Mutex
	data    map[string]uint64 // key -> version
	seen    map[string]uint64 // the version last reported for key
	clock   uint64
	calls   [numOps]int
	log     []string // "op key", in call order, when logging
	logging bool

	// service is how long each call takes (a timer, honouring ctx).
	service time.Duration
	// hook runs at the start of every call with the call's number (1-based).
	hook func(n int) error
}

func newMemKV() *memKV { return &memKV{data: map[string]uint64{}, seen: map[string]uint64{}} }

func (m *memKV) begin(ctx context.Context, op Op, key []byte) error {
	m.mu.Lock()
	m.calls[op]++
	n := 0
	for _, c := range m.calls {
		n += c
	}
	if m.logging {
		m.log = append(m.log, op.String()+" "+string(key))
	}
	hook := m.hook
	m.mu.Unlock()
	if hook != nil {
		if err := hook(n); err != nil {
			return err
		}
	}
	if m.service > 0 {
		t := time.NewTimer(m.service)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (m *memKV) Put(ctx context.Context, key, value []byte) error {
	if err := m.begin(ctx, OpPut, key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clock++
	m.data[string(key)], m.seen[string(key)] = m.clock, m.clock
	return nil
}

func (m *memKV) Get(ctx context.Context, key []byte) error {
	if err := m.begin(ctx, OpGet, key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.data[string(key)]
	m.seen[string(key)] = v
	if !ok {
		return errNotFound
	}
	return nil
}

func (m *memKV) CAS(ctx context.Context, key, value []byte) error {
	if err := m.begin(ctx, OpCAS, key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.data[string(key)]
	if m.seen[string(key)] != cur {
		m.seen[string(key)] = cur
		return errCASFailed
	}
	m.clock++
	m.data[string(key)], m.seen[string(key)] = m.clock, m.clock
	return nil
}

func (m *memKV) Delete(ctx context.Context, key []byte) error {
	if err := m.begin(ctx, OpDelete, key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.data[string(key)]
	delete(m.data, string(key))
	m.seen[string(key)] = 0
	if !ok {
		return errNotFound
	}
	return nil
}

func (m *memKV) totalCalls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.calls {
		n += c
	}
	return n
}

func testConfig(mix string) Config {
	m, err := ParseMix(mix)
	if err != nil {
		panic(err)
	}
	return Config{Mix: m, Keys: 100, Concurrency: 8, Seed: 1, Classify: classifyFake}
}

func run(t *testing.T, cfg Config, kv KV) *Result {
	t.Helper()
	r, err := NewRunner(cfg, kv)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRunnerStopsAfterExactlyOps(t *testing.T) {
	for _, rate := range []float64{0, 50000} {
		t.Run(fmt.Sprintf("rate=%v", rate), func(t *testing.T) {
			kv := newMemKV()
			cfg := testConfig("put=50,get=50")
			cfg.Ops, cfg.Rate = 1000, rate
			res := run(t, cfg, kv)
			if kv.totalCalls() != 1000 || res.Count() != 1000 || res.Latency.Count() != 1000 {
				t.Fatalf("store saw %d calls, result counts %d ops (%d latencies); want exactly 1000",
					kv.totalCalls(), res.Count(), res.Latency.Count())
			}
			if res.Interrupted || res.Elapsed <= 0 || res.Throughput() <= 0 {
				t.Fatalf("result %+v", res.Report())
			}
			if rate > 0 && (res.OpenLoop == nil || res.OpenLoop.Due != 1000 || res.OpenLoop.Started != 1000 || res.OpenLoop.Missed != 0) {
				t.Fatalf("open loop = %+v, want 1000 due and started", res.OpenLoop)
			}
		})
	}
}

func TestRunnerFollowsTheMix(t *testing.T) {
	kv := newMemKV()
	cfg := testConfig("put=40,get=30,cas=20,delete=10")
	cfg.Ops = 20000
	res := run(t, cfg, kv)
	for _, op := range Ops() {
		got := 100 * float64(res.Ops[op].Count()) / float64(res.Count())
		if math.Abs(got-float64(cfg.Mix[op])) > 1.5 {
			t.Errorf("%s: %.1f%% of the ops, want %d%% ± 1.5", op, got, cfg.Mix[op])
		}
		if res.Ops[op].Count() != int64(kv.calls[op]) || res.Ops[op].Latency.Count() != uint64(kv.calls[op]) {
			t.Errorf("%s: recorded %d ops, the store saw %d", op, res.Ops[op].Count(), kv.calls[op])
		}
	}
	// Absent keys are a normal outcome of get and delete, not errors.
	if res.Ops[OpGet].Outcomes[NotFound] == 0 || res.Ops[OpDelete].Outcomes[NotFound] == 0 {
		t.Errorf("outcomes %+v: want some not_found gets and deletes", res.Ops)
	}
	if errs := res.Errors(); errs != [numClasses]int64{} {
		t.Errorf("errors = %v, want none", errs)
	}
	rep := res.Report()
	if rep.Ops != 20000 || rep.Errors != 0 || len(rep.ByOp) != 4 || len(rep.ByOp["cas"].Outcomes) != int(numClasses) {
		t.Errorf("report = %+v", rep)
	}
}

func TestNormalOutcomesAreNotErrors(t *testing.T) {
	tests := []struct {
		op   Op
		c    Class
		want bool
	}{
		{OpGet, NotFound, false}, {OpDelete, NotFound, false}, {OpCAS, CASFailed, false},
		{OpPut, NotFound, true}, {OpPut, CASFailed, true}, {OpGet, CASFailed, true}, {OpCAS, NotFound, true},
		{OpGet, OK, false}, {OpGet, Unavailable, true}, {OpCAS, Timeout, true}, {OpDelete, Other, true},
	}
	for _, tt := range tests {
		if got := IsError(tt.op, tt.c); got != tt.want {
			t.Errorf("IsError(%s, %s) = %v, want %v", tt.op, tt.c, got, tt.want)
		}
	}
}

func TestRunnerCountsErrorsByClass(t *testing.T) {
	kv := newMemKV()
	kv.hook = func(n int) error {
		switch n % 10 {
		case 3:
			return errDown
		case 7:
			return fmt.Errorf("wrapped: %w", context.DeadlineExceeded)
		case 9:
			return errors.New("something else")
		}
		return nil
	}
	cfg := testConfig("put=100")
	cfg.Ops = 1000
	res := run(t, cfg, kv)
	want := [numClasses]int64{Unavailable: 100, Timeout: 100, Other: 100}
	if got := res.Errors(); got != want {
		t.Fatalf("errors by class = %v, want %v", got, want)
	}
	if res.Ops[OpPut].Outcomes[OK] != 700 {
		t.Fatalf("put outcomes = %v", res.Ops[OpPut].Outcomes)
	}
	rep := res.Report()
	if rep.Errors != 300 || rep.ErrorClasses["timeout"] != 100 || rep.ErrorSamples["other"] != "put: something else" {
		t.Fatalf("report errors = %d, %v, %v", rep.Errors, rep.ErrorClasses, rep.ErrorSamples)
	}
}

func TestRunnerWorkloadIsReproducibleWithASeed(t *testing.T) {
	sequence := func(seed uint64) []string {
		kv := newMemKV()
		kv.logging = true
		cfg := testConfig("put=25,get=25,cas=25,delete=25")
		cfg.Concurrency, cfg.Ops, cfg.Seed, cfg.Dist = 1, 500, seed, Zipf
		run(t, cfg, kv)
		return kv.log
	}
	a, b, c := sequence(42), sequence(42), sequence(43)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("two runs with seed 42 sent different operations")
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Fatal("runs with seeds 42 and 43 sent the same operations")
	}
}

func TestRunnerPreloadsEveryKeyThenWarmsUpUnrecorded(t *testing.T) {
	kv := newMemKV()
	cfg := testConfig("get=100")
	cfg.Preload, cfg.Keys, cfg.Ops, cfg.Warmup = true, 500, 300, 20*time.Millisecond
	res := run(t, cfg, kv)
	if len(kv.data) != 500 || kv.calls[OpPut] != 500 {
		t.Fatalf("after preload the store holds %d keys from %d puts, want 500", len(kv.data), kv.calls[OpPut])
	}
	if res.Preload == nil || res.Preload.Keys != 500 || res.Preload.Outcomes[OK] != 500 {
		t.Fatalf("preload = %+v", res.Preload)
	}
	if res.Count() != 300 || res.Ops[OpGet].Outcomes[OK] != 300 {
		t.Fatalf("recorded %d ops (%v), want the 300 measured gets, all found", res.Count(), res.Ops[OpGet].Outcomes)
	}
	if kv.calls[OpGet] < 300 {
		t.Fatalf("the store saw %d gets, want 300 measured plus the warmup's", kv.calls[OpGet])
	}
	if got := res.WarmupOps + res.Count(); got != int64(kv.calls[OpGet]) {
		t.Fatalf("warmup %d + measured %d ops, but the store served %d gets", res.WarmupOps, res.Count(), kv.calls[OpGet])
	}
	if rep := res.Report(); rep.WarmupOps != res.WarmupOps || len(rep.LatencyCDF) != len(CDFQuantiles) {
		t.Fatalf("report: warmup_ops %d, %d CDF points", rep.WarmupOps, len(rep.LatencyCDF))
	}
}

func TestRunnerStopsWhenItsContextEnds(t *testing.T) {
	kv := newMemKV()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kv.hook = func(n int) error {
		if n == 200 {
			cancel()
		}
		return nil
	}
	kv.service = time.Microsecond // in-flight calls see the cancellation
	cfg := testConfig("put=50,get=50")
	cfg.Duration = time.Hour
	r, err := NewRunner(cfg, kv)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The 200th call cancels; calls other workers had already started may
	// still finish and count, one per worker at most, but no new one starts.
	if limit := int64(200 + cfg.Concurrency); !res.Interrupted || res.Count() > limit || res.Count() == 0 {
		t.Fatalf("interrupted = %v after %d ops, want true and at most %d", res.Interrupted, res.Count(), limit)
	}
	if errs := res.Errors(); errs != [numClasses]int64{} {
		t.Fatalf("cancelled calls were recorded as errors: %v", errs)
	}
}

func TestRunnerProgress(t *testing.T) {
	kv := newMemKV()
	var r *Runner
	var seen []Progress
	kv.hook = func(n int) error {
		if n == 50 || n == 150 {
			seen = append(seen, r.Progress()) // one worker: no race on seen
		}
		return nil
	}
	cfg := testConfig("put=100")
	cfg.Keys, cfg.Preload, cfg.Ops, cfg.Concurrency = 100, true, 100, 1
	var err error
	if r, err = NewRunner(cfg, kv); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 {
		t.Fatalf("progress seen %d times", len(seen))
	}
	if p := seen[0]; p.Phase != PhasePreload || p.Done != 49 || p.Target != 100 {
		t.Errorf("progress during the preload = %+v", p)
	}
	if p := seen[1]; p.Phase != PhaseMeasure || p.Done != 49 || p.Target != 100 {
		t.Errorf("progress while measuring = %+v", p)
	}
	if p := r.Progress(); p.Phase != PhaseDone || p.Done != 100 {
		t.Errorf("progress at the end = %+v", p)
	}
}

// TestOpenLoopCountsTheBacklogInLatency: a store that serves one call in
// 5ms on each of 2 workers does 400 ops/s. Asked for 1000 ops/s, the
// operations due pile up and each one's latency, measured from when it was
// due, grows with the backlog; a closed loop on the same store (and an open
// loop within its capacity) sees about 5ms.
func TestOpenLoopCountsTheBacklogInLatency(t *testing.T) {
	const service = 5 * time.Millisecond
	cfg := testConfig("put=100")
	cfg.Concurrency, cfg.Duration = 2, 400*time.Millisecond

	kv := newMemKV()
	kv.service = service
	cfg.Rate = 1000
	over := run(t, cfg, kv)
	ol := over.OpenLoop
	if ol == nil || ol.Due < 350 || ol.Missed < ol.Due/3 || ol.Started+ol.Missed != ol.Due {
		t.Fatalf("open loop over capacity: %+v, want about 400 due and over a third missed", ol)
	}
	lat := over.Latency
	if p10, p50, p90 := lat.Quantile(0.1), lat.Quantile(0.5), lat.Quantile(0.9); p50 < 4*service || p90 < 2*p10 || lat.Max() < 100*time.Millisecond {
		t.Fatalf("over capacity: p10 %v, p50 %v, p90 %v, max %v; want latencies growing with the backlog far past %v",
			p10, p50, p90, lat.Max(), service)
	}
	if ol.StartLag.Max() < 100*time.Millisecond {
		t.Fatalf("start lag max %v, want the backlog's delay", ol.StartLag.Max())
	}

	cfg.Rate = 0
	closed := run(t, cfg, newKVWithService(service))
	if p50 := closed.Latency.Quantile(0.5); p50 < service || p50 > 3*service {
		t.Fatalf("closed loop p50 = %v, want about %v", p50, service)
	}

	cfg.Rate = 100
	under := run(t, cfg, newKVWithService(service))
	if p50 := under.Latency.Quantile(0.5); p50 < service || p50 > 3*service || under.OpenLoop.Missed > 2 {
		t.Fatalf("open loop within capacity: p50 %v, missed %d; want about %v and none missed",
			p50, under.OpenLoop.Missed, service)
	}
}

func newKVWithService(d time.Duration) *memKV {
	kv := newMemKV()
	kv.service = d
	return kv
}

func TestConfigValidateNamesTheField(t *testing.T) {
	base := testConfig("put=100")
	base.Ops = 1
	tests := []struct {
		field  string
		change func(*Config)
	}{
		{"Mix", func(c *Config) { c.Mix = Mix{OpPut: 50} }},
		{"KeySize", func(c *Config) { c.Keys, c.KeySize = 100000, 5 }},
		{"ZipfS", func(c *Config) { c.Dist, c.ZipfS = Zipf, 0.9 }},
		{"Dist", func(c *Config) { c.Dist = "normal" }},
		{"Concurrency", func(c *Config) { c.Concurrency = -1 }},
		{"Duration", func(c *Config) { c.Ops, c.Duration = 0, 0 }},
		{"Rate", func(c *Config) { c.Rate = -5 }},
		{"Warmup", func(c *Config) { c.Warmup = -time.Second }},
	}
	for _, tt := range tests {
		c := base
		tt.change(&c)
		var ce *ConfigError
		if err := c.Validate(); !errors.As(err, &ce) || ce.Field != tt.field {
			t.Errorf("%s: Validate() = %v, want a ConfigError for %s", tt.field, err, tt.field)
		}
	}
	if err := base.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}

// perWorkerKV hands every worker a KV that counts its calls under the
// worker's id, over one shared memKV.
type perWorkerKV struct {
	*memKV
	mu    sync.Mutex
	calls map[int]int
}

type workerKV struct {
	*memKV
	p  *perWorkerKV
	id int
}

func (p *perWorkerKV) ForWorker(id int) KV { return &workerKV{memKV: p.memKV, p: p, id: id} }

func (w *workerKV) Put(ctx context.Context, key, value []byte) error {
	w.p.mu.Lock()
	w.p.calls[w.id]++
	w.p.mu.Unlock()
	return w.memKV.Put(ctx, key, value)
}

func TestRunnerGivesEachWorkerItsOwnKV(t *testing.T) {
	kv := &perWorkerKV{memKV: newMemKV(), calls: map[int]int{}}
	cfg := testConfig("put=100")
	cfg.Ops = 800
	run(t, cfg, kv)
	total := 0
	for id, n := range kv.calls {
		if id < 0 || id >= cfg.Concurrency {
			t.Errorf("worker id %d outside [0, %d)", id, cfg.Concurrency)
		}
		total += n
	}
	if total != 800 || kv.totalCalls() != 800 {
		t.Fatalf("%d calls through the workers' KVs, %d in the store; want 800 each", total, kv.totalCalls())
	}
}
