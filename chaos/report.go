package chaos

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// Report is what a run did and found; summary.json in the run's
// directory.
type Report struct {
	Seed    uint64        `json:"seed"`
	Name    string        `json:"name"`
	Dir     string        `json:"dir"`
	Config  string        `json:"config"`
	Elapsed time.Duration `json:"elapsed_ns"` // the fault schedule

	Ops       int             `json:"ops"`
	ByOutcome map[Outcome]int `json:"ops_by_outcome"`
	ByKind    map[OpKind]int  `json:"ops_by_kind"`

	Steps          []Step         `json:"schedule"`
	Events         []Event        `json:"events"`
	Faults         map[Kind]int   `json:"faults"`
	Unavailability map[Kind]Stats `json:"unavailability"`

	// FirstRing is the ring the run began with; Changes the ring changes
	// made, in order (the nemesis's and those a step needed first).
	FirstRing wire.RingSpec      `json:"first_ring"`
	Changes   []RingChangeRecord `json:"ring_changes,omitempty"`

	Keys       []KeyResult    `json:"keys"`
	Unexpected map[string]int `json:"unexpected_errors,omitempty"`
	Problems   []string       `json:"problems"`
	// Slow lists faults after which the group took longer than it should
	// to acknowledge a write again (slowAfter). Not a failure of the run,
	// but the run keeps its history and logs to explain it.
	Slow []string `json:"slow,omitempty"`
}

// slowAfter is how long a group may take to acknowledge a write after a
// fault that leaves a majority working, before the run calls it slow:
// several election rounds at the default timeouts.
var slowAfter = map[Kind]time.Duration{
	KillLeader: 4 * time.Second, PauseLeader: 4 * time.Second,
	PartitionLeader: 4 * time.Second, PartitionOneWay: 4 * time.Second,
	RestartGroup: 10 * time.Second,
}

// Stats summarises measured times.
type Stats struct {
	N      int           `json:"n"`
	Median time.Duration `json:"median_ns"`
	Worst  time.Duration `json:"worst_ns"`
	Missed int           `json:"missed"` // no write acknowledged within the prober's limit
}

// NewStats summarises ds; negative entries count as missed.
func NewStats(ds []time.Duration) Stats {
	var ok []time.Duration
	s := Stats{}
	for _, d := range ds {
		if d < 0 {
			s.Missed++
			continue
		}
		ok = append(ok, d)
	}
	s.N = len(ok)
	if len(ok) == 0 {
		return s
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i] < ok[j] })
	if len(ok)%2 == 1 {
		s.Median = ok[len(ok)/2]
	} else {
		s.Median = (ok[len(ok)/2-1] + ok[len(ok)/2]) / 2
	}
	s.Worst = ok[len(ok)-1]
	return s
}

// Merge combines the measurements of several runs of one kind.
func MergeStats(all map[Kind][]time.Duration) map[Kind]Stats {
	out := map[Kind]Stats{}
	for k, ds := range all {
		out[k] = NewStats(ds)
	}
	return out
}

func (s Stats) String() string {
	if s.N == 0 {
		return fmt.Sprintf("none measured (%d missed)", s.Missed)
	}
	out := fmt.Sprintf("median %v, worst %v over %d", s.Median.Round(time.Millisecond), s.Worst.Round(time.Millisecond), s.N)
	if s.Missed > 0 {
		out += fmt.Sprintf(", %d missed", s.Missed)
	}
	return out
}

func describeConfig(c Config) string {
	return fmt.Sprintf("seed=%d duration=%v rapid=%t groups=%d replicas=%d workers=%d keys/group=%d faults=%s agent-args=%s",
		c.Seed, c.Duration, c.Rapid, c.Groups, c.Replicas, c.Workers, c.KeysPerGroup, joinKinds(c.Kinds), strings.Join(c.AgentArgs, " "))
}

func (r *Report) count(ops []Op) {
	r.Ops = len(ops)
	r.ByOutcome = map[Outcome]int{}
	r.ByKind = map[OpKind]int{}
	for _, o := range ops {
		r.ByOutcome[o.Outcome]++
		r.ByKind[o.Kind]++
	}
}

func (r *Report) summarize() {
	r.Faults = map[Kind]int{}
	r.Slow = nil
	for _, e := range r.Events {
		r.Faults[e.Kind]++
		if limit, ok := slowAfter[e.Kind]; ok && (e.Unavailable < 0 || e.Unavailable > limit) {
			r.Slow = append(r.Slow, fmt.Sprintf("step %d (%s, %s): no write acknowledged for %v", e.N, e.Kind, e.Detail, e.Unavailable.Round(time.Millisecond)))
		}
	}
	r.Unavailability = MergeStats(r.Durations())
}

// Durations returns the measured unavailability of each event, by kind.
func (r *Report) Durations() map[Kind][]time.Duration {
	out := map[Kind][]time.Duration{}
	for _, e := range r.Events {
		if e.Unavailable != 0 {
			out[e.Kind] = append(out[e.Kind], e.Unavailable)
		}
	}
	return out
}

// Passed reports whether the checks found nothing.
func (r *Report) Passed() bool { return len(r.Problems) == 0 }

// String is the human summary printed at the end of a run.
func (r *Report) String() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.Passed() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "chaos run %s: seed %d: %s\n", r.Name, r.Seed, verdict)
	fmt.Fprintf(&b, "  schedule %v, %d faults: %s\n", r.Elapsed.Round(time.Second), len(r.Events), countKinds(r.Faults))
	fmt.Fprintf(&b, "  %d operations: %s\n", r.Ops, countOutcomes(r.ByOutcome))
	illegal, unknownKeys := 0, 0
	for _, k := range r.Keys {
		switch k.Result {
		case "Illegal":
			illegal++
		case "Unknown":
			unknownKeys++
		}
	}
	fmt.Fprintf(&b, "  linearizability: %d keys checked, %d not linearizable, %d inconclusive\n", len(r.Keys), illegal, unknownKeys)
	kinds := make([]string, 0, len(r.Unavailability))
	for k := range r.Unavailability {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, "  time to an acknowledged write after %s: %s\n", k, r.Unavailability[Kind(k)])
	}
	if len(r.Changes) > 0 {
		fmt.Fprintf(&b, "  ring changes: %s\n", describeChanges(r.Changes))
	}
	if len(r.Unexpected) > 0 {
		fmt.Fprintf(&b, "  errors taken as unknown outcomes that were not timeouts: %v\n", r.Unexpected)
	}
	for _, s := range r.Slow {
		fmt.Fprintf(&b, "  slow: %s\n", s)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  PROBLEM: %s\n", p)
	}
	fmt.Fprintf(&b, "  results: %s (reproduce: make chaos SEED=%d)\n", r.Dir, r.Seed)
	return b.String()
}

// describeChanges summarises ring changes: how many completed, how long
// they took (as the coordinator recorded them), the keys they moved.
func describeChanges(cs []RingChangeRecord) string {
	var took []time.Duration
	kinds := map[string]int{}
	var sent uint64
	moved, incomplete := 0, 0
	for _, c := range cs {
		if c.Done == 0 {
			incomplete++
			continue
		}
		kinds[c.Kind]++
		took = append(took, time.Duration(c.Took)*time.Millisecond)
		moved += len(c.MovedKeys)
		for _, p := range c.Pairs {
			sent += p.Keys
		}
	}
	var parts []string
	for _, k := range []string{wire.ChangeAddGroup, wire.ChangeRemoveGroup, wire.ChangeSetWeight} {
		if kinds[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s×%d", k, kinds[k]))
		}
	}
	out := fmt.Sprintf("%d completed (%s), took %s; %d workload keys changed owner, %d records sent",
		len(took), strings.Join(parts, " "), NewStats(took), moved, sent)
	if incomplete > 0 {
		out += fmt.Sprintf("; %d NOT COMPLETED", incomplete)
	}
	return out
}

func countKinds(m map[Kind]int) string {
	var parts []string
	for _, k := range AllKinds {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
		}
	}
	return strings.Join(parts, " ")
}

func countOutcomes(m map[Outcome]int) string {
	var parts []string
	for _, o := range []Outcome{OutcomeOK, OutcomeNotFound, OutcomeCASFailed, OutcomeUnknown, OutcomeFailed} {
		parts = append(parts, fmt.Sprintf("%s %d", o, m[o]))
	}
	return strings.Join(parts, ", ")
}
