package loadgen

import "time"

// Result is what a run measured. Latencies cover every recorded operation
// whatever its outcome, errors included; in open loop they run from the
// time each operation was due.
type Result struct {
	Config      Config
	Interrupted bool          // the run's context ended before the workload did
	Elapsed     time.Duration // from the end of the warmup to the end of the last operation
	WarmupOps   int64         // operations completed during the warmup (not recorded)

	Ops          [numOps]OpStats    // indexed by Op
	Latency      *Histogram         // every operation
	ErrorSamples [numClasses]string // the first error message seen of each class

	OpenLoop *OpenLoop // nil in closed loop
	Preload  *Preload  // nil without preload
}

// OpStats is one operation's outcomes and latencies.
type OpStats struct {
	Outcomes [numClasses]int64 // indexed by Class
	Latency  *Histogram
}

// Count is the number of operations recorded.
func (s *OpStats) Count() int64 {
	var n int64
	for _, c := range s.Outcomes {
		n += c
	}
	return n
}

// OpenLoop is the schedule's side of an open-loop run.
type OpenLoop struct {
	Rate    float64 // target operations per second
	Due     int64   // measured operations due in the window (or Ops)
	Started int64   // of which started
	// Missed were due but still waiting for a free worker when the window
	// closed: the workers could not keep up with the rate.
	Missed int64
	// StartLag is how long after its due time each operation started:
	// near zero while the workers keep up.
	StartLag *Histogram
}

// Preload is the outcome of writing every key once.
type Preload struct {
	Keys     int64
	Outcomes [numClasses]int64 // every class but OK is an error here
	Elapsed  time.Duration
}

// Count is the number of operations recorded.
func (r *Result) Count() int64 {
	var n int64
	for op := range r.Ops {
		n += r.Ops[op].Count()
	}
	return n
}

// Errors counts the errors of each class (outcomes that are normal for
// their op, such as not_found for get, are not errors).
func (r *Result) Errors() [numClasses]int64 {
	var e [numClasses]int64
	for op := range r.Ops {
		for c, n := range r.Ops[op].Outcomes {
			if IsError(Op(op), Class(c)) {
				e[c] += n
			}
		}
	}
	return e
}

// OpErrors is the number of errors of op.
func (r *Result) OpErrors(op Op) int64 {
	var n int64
	for c, k := range r.Ops[op].Outcomes {
		if IsError(op, Class(c)) {
			n += k
		}
	}
	return n
}

// Throughput is in operations per second over Elapsed.
func (r *Result) Throughput() float64 { return perSecond(r.Count(), r.Elapsed) }

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func sum(a [numClasses]int64) int64 {
	var n int64
	for _, v := range a {
		n += v
	}
	return n
}

// Report is a Result for machines (JSON): every count, rates in
// operations per second, durations in nanoseconds.
type Report struct {
	// Labels describe the target (system, read mode, ...); set by the
	// caller.
	Labels       map[string]string `json:"labels,omitempty"`
	Config       Config            `json:"config"`
	Interrupted  bool              `json:"interrupted"`
	Elapsed      time.Duration     `json:"elapsed_ns"`
	Ops          int64             `json:"ops"`
	OpsPerSec    float64           `json:"ops_per_sec"`
	Errors       int64             `json:"errors"`
	ErrorClasses map[string]int64  `json:"error_classes"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	Latency      Summary           `json:"latency"`
	// LatencyCDF is the latency of every operation at the quantiles of
	// CDFQuantiles: enough points to draw its distribution.
	LatencyCDF []CDFPoint `json:"latency_cdf"`
	// WarmupOps completed during the warmup: with Ops they are all the
	// operations the store served in the run (for cost per operation).
	WarmupOps int64               `json:"warmup_ops"`
	ByOp      map[string]OpReport `json:"by_op"` // the ops of the mix
	OpenLoop  *OpenLoopReport     `json:"open_loop,omitempty"`
	Preload   *PreloadReport      `json:"preload,omitempty"`
}

// OpReport is one operation in a Report.
type OpReport struct {
	Ops       int64            `json:"ops"`
	OpsPerSec float64          `json:"ops_per_sec"`
	Errors    int64            `json:"errors"`
	Outcomes  map[string]int64 `json:"outcomes"` // every class, "ok" and normal ones included
	Latency   Summary          `json:"latency"`
}

// OpenLoopReport is OpenLoop in a Report.
type OpenLoopReport struct {
	TargetOpsPerSec float64 `json:"target_ops_per_sec"`
	Due             int64   `json:"due"`
	Started         int64   `json:"started"`
	Missed          int64   `json:"missed"`
	StartLag        Summary `json:"start_lag"`
}

// PreloadReport is Preload in a Report.
type PreloadReport struct {
	Keys         int64            `json:"keys"`
	Errors       int64            `json:"errors"`
	ErrorClasses map[string]int64 `json:"error_classes"`
	Elapsed      time.Duration    `json:"elapsed_ns"`
}

// errorClasses are the classes that can be errors, in report order.
var errorClasses = []Class{Unavailable, Timeout, Other, NotFound, CASFailed}

// Report returns r for machines.
func (r *Result) Report() *Report {
	rep := &Report{
		Config:       r.Config,
		Interrupted:  r.Interrupted,
		Elapsed:      r.Elapsed,
		Ops:          r.Count(),
		OpsPerSec:    r.Throughput(),
		ErrorClasses: map[string]int64{},
		Latency:      r.Latency.Summary(),
		LatencyCDF:   r.Latency.CDF(),
		WarmupOps:    r.WarmupOps,
		ByOp:         map[string]OpReport{},
	}
	errs := r.Errors()
	rep.Errors = sum(errs)
	for _, c := range errorClasses {
		rep.ErrorClasses[c.String()] = errs[c]
	}
	for c, s := range r.ErrorSamples {
		if s != "" {
			if rep.ErrorSamples == nil {
				rep.ErrorSamples = map[string]string{}
			}
			rep.ErrorSamples[Class(c).String()] = s
		}
	}
	for _, op := range Ops() {
		s := &r.Ops[op]
		if r.Config.Mix[op] == 0 && s.Count() == 0 {
			continue
		}
		or := OpReport{
			Ops: s.Count(), OpsPerSec: perSecond(s.Count(), r.Elapsed), Errors: r.OpErrors(op),
			Outcomes: map[string]int64{}, Latency: s.Latency.Summary(),
		}
		for c, n := range s.Outcomes {
			or.Outcomes[Class(c).String()] = n
		}
		rep.ByOp[op.String()] = or
	}
	if ol := r.OpenLoop; ol != nil {
		rep.OpenLoop = &OpenLoopReport{
			TargetOpsPerSec: ol.Rate, Due: ol.Due, Started: ol.Started, Missed: ol.Missed,
			StartLag: ol.StartLag.Summary(),
		}
	}
	if p := r.Preload; p != nil {
		pr := &PreloadReport{Keys: p.Keys, Elapsed: p.Elapsed, ErrorClasses: map[string]int64{}}
		for _, c := range errorClasses {
			pr.ErrorClasses[c.String()] = p.Outcomes[c]
			pr.Errors += p.Outcomes[c]
		}
		rep.Preload = pr
	}
	return rep
}
