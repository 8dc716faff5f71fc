package loadgen

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Runner runs one workload against one KV. Progress may be called from
// any goroutine while Run runs.
type Runner struct {
	cfg Config
	kv  KV

	phase atomic.Int32         // PhaseWarmup stands for the measured phase too
	plan  atomic.Pointer[plan] // set when the warmup begins
	pre   atomic.Pointer[time.Time]

	preDone, preErrs   atomic.Int64
	warmDone, warmErrs atomic.Int64
	measDone, measErrs atomic.Int64
	tickets            atomic.Int64 // closed loop with Ops: measured operations claimed
	seq                atomic.Int64 // open loop: next operation to schedule
	started            atomic.Int64 // open loop: operations started, warmup included
}

// Phase is what a Runner is doing.
type Phase int32

// The phases, in order.
const (
	PhaseIdle Phase = iota
	PhasePreload
	PhaseWarmup
	PhaseMeasure
	PhaseDone
)

func (p Phase) String() string {
	return [...]string{"idle", "preload", "warmup", "measure", "done"}[p]
}

// NewRunner checks cfg and returns a Runner for it.
func NewRunner(cfg Config, kv KV) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg.withDefaults(), kv: kv}, nil
}

// Config is the workload, defaults filled in.
func (r *Runner) Config() Config { return r.cfg }

// plan is the timeline of the measured phase.
type plan struct {
	start   time.Time // warmup starts
	warmEnd time.Time // measurement starts
	end     time.Time // measurement ends; zero when bounded by Ops only
	ops     int64     // measured operations; 0: bounded by time only

	// Open loop: operation seq is due at start + at(seq).
	rate      float64
	warmSeqs  int64 // operations due before warmEnd
	limitSeqs int64 // operations due before the end (or warmSeqs+ops)
}

func (p *plan) at(seq int64) time.Duration {
	return time.Duration(float64(seq) * float64(time.Second) / p.rate)
}

// dueBefore is the number of operations due before offset d.
func (p *plan) dueBefore(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	n := int64(math.Ceil(float64(d) / float64(time.Second) * p.rate))
	for n > 0 && p.at(n-1) >= d {
		n--
	}
	for p.at(n) < d {
		n++
	}
	return n
}

// Run runs the workload: the preload if configured, the warmup, then the
// measured phase. When ctx ends early the result covers what was done,
// marked Interrupted; operations cut short by it are not recorded. The
// error is non-nil only if ctx ended before anything was measured.
func (r *Runner) Run(ctx context.Context) (*Result, error) {
	res := &Result{Config: r.cfg, Latency: NewHistogram()}
	for op := range res.Ops {
		res.Ops[op].Latency = NewHistogram()
	}
	if r.cfg.Preload {
		res.Preload = r.preload(ctx)
		if ctx.Err() != nil {
			r.phase.Store(int32(PhaseDone))
			res.Interrupted = true
			return res, ctx.Err()
		}
	}
	r.measure(ctx, res)
	r.phase.Store(int32(PhaseDone))
	return res, nil
}

// worker is one goroutine's state; nothing in it is shared.
type worker struct {
	kv    KV         // the Runner's, or its PerWorkerKV's for this worker
	rng   *rand.Rand // op choice
	keys  KeyPicker
	key   []byte
	value []byte

	outcomes [numOps][numClasses]int64
	hist     [numOps]*Histogram
	lag      *Histogram // open loop: start time minus due time; nil in closed loop
	samples  [numClasses]string
}

func (r *Runner) newWorker(id int) *worker {
	seed := r.cfg.Seed
	keys, err := NewKeyPicker(r.cfg.Dist, r.cfg.Keys, r.cfg.ZipfS, [2]uint64{seed, uint64(id)<<1 | 1})
	if err != nil {
		panic(err) // Validate accepted the config
	}
	w := &worker{
		kv:    r.kv,
		rng:   rand.New(rand.NewPCG(seed, uint64(id)<<1)),
		keys:  keys,
		key:   make([]byte, 0, r.cfg.KeySize),
		value: make([]byte, r.cfg.ValueSize),
	}
	if pw, ok := r.kv.(PerWorkerKV); ok {
		w.kv = pw.ForWorker(id)
	}
	for i := range w.value {
		w.value[i] = byte(w.rng.Uint32())
	}
	// ~30 KiB each: only what this workload records.
	for op := range w.hist {
		if r.cfg.Mix[op] > 0 {
			w.hist[op] = NewHistogram()
		}
	}
	if r.cfg.Rate > 0 {
		w.lag = NewHistogram()
	}
	return w
}

// preload puts every key once, keys shared out among the workers.
func (r *Runner) preload(ctx context.Context) *Preload {
	now := time.Now()
	r.pre.Store(&now)
	r.phase.Store(int32(PhasePreload))
	p := &Preload{Keys: int64(r.cfg.Keys)}
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id := range min(r.cfg.Concurrency, r.cfg.Keys) {
		wg.Go(func() {
			w := r.newWorker(id)
			var classes [numClasses]int64
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(r.cfg.Keys) {
					break
				}
				w.key = AppendKey(w.key[:0], int(i), r.cfg.KeySize)
				err := r.call(ctx, w.kv, OpPut, w.key, w.value)
				if err != nil && ctx.Err() != nil {
					break
				}
				c := r.cfg.Classify(err)
				classes[c]++
				if c != OK {
					r.preErrs.Add(1)
				}
				r.preDone.Add(1)
			}
			mu.Lock()
			for c, n := range classes {
				p.Outcomes[c] += n
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	p.Elapsed = time.Since(now)
	return p
}

func (r *Runner) measure(ctx context.Context, res *Result) {
	start := time.Now()
	p := &plan{start: start, warmEnd: start.Add(r.cfg.Warmup), ops: r.cfg.Ops, rate: r.cfg.Rate}
	if r.cfg.Duration > 0 {
		p.end = p.warmEnd.Add(r.cfg.Duration)
	}
	if p.rate > 0 {
		p.warmSeqs = p.dueBefore(r.cfg.Warmup)
		p.limitSeqs = math.MaxInt64
		if r.cfg.Duration > 0 {
			p.limitSeqs = p.dueBefore(r.cfg.Warmup + r.cfg.Duration)
		}
		if p.ops > 0 {
			p.limitSeqs = min(p.limitSeqs, p.warmSeqs+p.ops)
		}
	}
	r.plan.Store(p)
	r.phase.Store(int32(PhaseWarmup))

	workers := make([]*worker, r.cfg.Concurrency)
	var wg sync.WaitGroup
	for id := range workers {
		w := r.newWorker(id)
		workers[id] = w
		if p.rate > 0 {
			wg.Go(func() { r.openLoop(ctx, p, w) })
		} else {
			wg.Go(func() { r.closedLoop(ctx, p, w) })
		}
	}
	wg.Wait()
	finish := time.Now()

	res.Interrupted = ctx.Err() != nil
	res.Elapsed = max(finish.Sub(p.warmEnd), 0)
	res.WarmupOps = r.warmDone.Load()
	lag := NewHistogram()
	for _, w := range workers {
		for op := range res.Ops {
			for c, n := range w.outcomes[op] {
				res.Ops[op].Outcomes[c] += n
			}
			res.Ops[op].Latency.Merge(w.hist[op])
			res.Latency.Merge(w.hist[op])
		}
		lag.Merge(w.lag)
		for c, s := range w.samples {
			if s != "" && res.ErrorSamples[c] == "" {
				res.ErrorSamples[c] = s
			}
		}
	}
	if p.rate > 0 {
		due := p.limitSeqs
		if res.Interrupted {
			due = min(due, p.dueBefore(finish.Sub(start)))
		}
		ol := &OpenLoop{Rate: p.rate, Due: max(due-p.warmSeqs, 0), Started: int64(lag.Count()), StartLag: lag}
		ol.Missed = max(ol.Due-ol.Started, 0)
		res.OpenLoop = ol
	}
}

// closedLoop sends one operation after the other, each measured from its
// send.
func (r *Runner) closedLoop(ctx context.Context, p *plan, w *worker) {
	for ctx.Err() == nil {
		now := time.Now()
		measured := !now.Before(p.warmEnd)
		if measured {
			if !p.end.IsZero() && !now.Before(p.end) {
				return
			}
			if p.ops > 0 && r.tickets.Add(1) > p.ops {
				return
			}
		}
		r.do(ctx, w, now, measured)
	}
}

// openLoop takes the next due operation, waits for its time if early, and
// measures it from the time it was due.
func (r *Runner) openLoop(ctx context.Context, p *plan, w *worker) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		seq := r.seq.Add(1) - 1
		if seq >= p.limitSeqs {
			return
		}
		due := p.start.Add(p.at(seq))
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		if !p.end.IsZero() && !now.Before(p.end) {
			// Due in the window but no worker was free before it closed:
			// counted as missed.
			return
		}
		r.started.Add(1)
		measured := seq >= p.warmSeqs
		if measured {
			w.lag.Record(now.Sub(due))
		}
		r.do(ctx, w, due, measured)
	}
}

// do runs one operation and records its latency from `from`.
func (r *Runner) do(ctx context.Context, w *worker, from time.Time, measured bool) {
	op := r.cfg.Mix.pick(w.rng.IntN(100))
	w.key = AppendKey(w.key[:0], w.keys.Next(), r.cfg.KeySize)
	err := r.call(ctx, w.kv, op, w.key, w.value)
	took := time.Since(from)
	if err != nil && ctx.Err() != nil {
		return // cut short by the end of the run: not an outcome of the store
	}
	c := r.cfg.Classify(err)
	isErr := IsError(op, c)
	if !measured {
		r.warmDone.Add(1)
		if isErr {
			r.warmErrs.Add(1)
		}
		return
	}
	w.hist[op].Record(took)
	w.outcomes[op][c]++
	if isErr {
		if w.samples[c] == "" {
			w.samples[c] = op.String() + ": " + err.Error()
		}
		r.measErrs.Add(1)
	}
	r.measDone.Add(1)
}

func (r *Runner) call(ctx context.Context, kv KV, op Op, key, value []byte) error {
	if r.cfg.OpTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.cfg.OpTimeout)
		defer cancel()
	}
	switch op {
	case OpPut:
		return kv.Put(ctx, key, value)
	case OpGet:
		return kv.Get(ctx, key)
	case OpCAS:
		return kv.CAS(ctx, key, value)
	default:
		return kv.Delete(ctx, key)
	}
}

// Progress is a snapshot of a running Runner.
type Progress struct {
	Phase   Phase
	Elapsed time.Duration // since the phase began
	Total   time.Duration // the phase's planned length; 0 if not bounded by time
	Done    int64         // operations completed in the phase (preload: keys written)
	Errors  int64         // of which errors
	Target  int64         // operations the phase will do; 0 if bounded by time
	Backlog int64         // open loop: operations past due and not started
}

// Progress returns a snapshot of the run.
func (r *Runner) Progress() Progress {
	now := time.Now()
	pr := Progress{Phase: Phase(r.phase.Load())}
	switch pr.Phase {
	case PhasePreload:
		pr.Elapsed = now.Sub(*r.pre.Load())
		pr.Done, pr.Errors, pr.Target = r.preDone.Load(), r.preErrs.Load(), int64(r.cfg.Keys)
		return pr
	case PhaseIdle:
		return pr
	}
	p := r.plan.Load()
	if p == nil { // ended during the preload
		pr.Done, pr.Errors = r.preDone.Load(), r.preErrs.Load()
		return pr
	}
	if pr.Phase == PhaseWarmup && !now.Before(p.warmEnd) {
		pr.Phase = PhaseMeasure
	}
	if pr.Phase == PhaseWarmup {
		pr.Elapsed, pr.Total = now.Sub(p.start), r.cfg.Warmup
		pr.Done, pr.Errors = r.warmDone.Load(), r.warmErrs.Load()
	} else {
		pr.Elapsed, pr.Total, pr.Target = max(now.Sub(p.warmEnd), 0), r.cfg.Duration, r.cfg.Ops
		pr.Done, pr.Errors = r.measDone.Load(), r.measErrs.Load()
	}
	if p.rate > 0 && pr.Phase != PhaseDone {
		due := min(p.dueBefore(now.Sub(p.start)), p.limitSeqs)
		pr.Backlog = max(due-r.started.Load(), 0)
	}
	return pr
}
