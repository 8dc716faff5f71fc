package main

import (
	"slices"
	"sort"
	"time"

	"github.com/carpkv/carpkv/internal/loadgen"
)

// The analysis is pure: operation records and change timings in, figures
// out. Nothing here touches a cluster, a clock or a file.

// Kinds of operation the load sends.
const (
	kindGet uint8 = iota
	kindPut
)

// Outcomes of one operation. notFound is a failure here: every key the
// load touches was written before it began, so an absent key is a lost one.
const (
	classOK uint8 = iota
	classNotFound
	classUnavailable // refused, nothing applied (kvclient.ErrUnavailable, key_moving past the deadline...)
	classTimeout     // no answer in time: a write's outcome is unknown (kvclient.ErrTimeout)
	classOther
	numClasses
)

var classNames = [numClasses]string{"ok", "not_found", "unavailable", "timeout", "other"}

// Op is one operation of the load: when it was sent and when it returned,
// in time since the load began, on which key, and how it ended. 24 bytes,
// so a run of millions of operations stays in memory.
type Op struct {
	Start, End time.Duration
	Key        uint32
	Kind       uint8
	Class      uint8
}

func (o Op) latency() time.Duration { return o.End - o.Start }

// Point is one second (one bucket) of the run, by the time operations
// returned.
type Point struct {
	T      time.Duration `json:"t_ns"` // bucket start, since the load began
	Ops    int64         `json:"ops"`  // operations that returned in it
	OpsSec float64       `json:"ops_per_s"`
	Errors int64         `json:"errors"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
	Max    time.Duration `json:"max_ns"`
}

// Series buckets ops by the time they returned, width bucket, over
// [0, until): throughput, errors and latency per bucket. Empty buckets
// are kept (zero throughput is what a stall looks like).
func Series(ops []Op, bucket, until time.Duration) []Point {
	if bucket <= 0 || until <= 0 {
		return nil
	}
	n := int((until + bucket - 1) / bucket)
	hs := make([]*loadgen.Histogram, n)
	pts := make([]Point, n)
	for i := range pts {
		pts[i].T = time.Duration(i) * bucket
		hs[i] = loadgen.NewHistogram()
	}
	for _, o := range ops {
		if o.End < 0 || o.End >= until {
			continue
		}
		i := int(o.End / bucket)
		pts[i].Ops++
		if o.Class != classOK {
			pts[i].Errors++
		}
		hs[i].Record(o.latency())
	}
	for i := range pts {
		pts[i].OpsSec = float64(pts[i].Ops) / bucket.Seconds()
		pts[i].P50, pts[i].P99, pts[i].Max = hs[i].Quantile(0.5), hs[i].Quantile(0.99), hs[i].Max()
	}
	return pts
}

// Window summarises the operations sent in [from, to).
type Window struct {
	From     time.Duration   `json:"from_ns"`
	To       time.Duration   `json:"to_ns"`
	Ops      int64           `json:"ops"`
	OpsSec   float64         `json:"ops_per_s"`
	Outcomes map[string]int  `json:"outcomes"`
	Latency  loadgen.Summary `json:"latency"`
	Over1s   int             `json:"ops_over_1s"` // operations that took longer than a second
}

// Failed is the count of operations that did not succeed.
func (w Window) Failed() int {
	n := 0
	for c, k := range w.Outcomes {
		if c != classNames[classOK] {
			n += k
		}
	}
	return n
}

// WindowOf summarises the ops sent in [from, to).
func WindowOf(ops []Op, from, to time.Duration) Window {
	w := Window{From: from, To: to, Outcomes: map[string]int{}}
	h := loadgen.NewHistogram()
	for _, o := range ops {
		if o.Start < from || o.Start >= to {
			continue
		}
		w.Ops++
		w.Outcomes[classNames[o.Class]]++
		h.Record(o.latency())
		if o.latency() > time.Second {
			w.Over1s++
		}
	}
	if to > from {
		w.OpsSec = float64(w.Ops) / (to - from).Seconds()
	}
	w.Latency = h.Summary()
	return w
}

// Outage is a stretch of time in which one key could not be served: the
// union of overlapping operations on it that failed or took at least the
// threshold. kvclient retries key_moving and elections inside one call,
// so a key in hand-off shows as one slow operation, not as a failure.
// The load draws keys at random and seldom comes back to the same key
// soon, so an outage that ends in a failure (Open) is a lower bound: the
// key was unavailable at least that long, and when it came back is not
// known.
type Outage struct {
	Key    uint32        `json:"key"`
	From   time.Duration `json:"from_ns"`
	To     time.Duration `json:"to_ns"`
	Ops    int           `json:"ops"`              // operations in it
	Failed int           `json:"failed"`           // of which failed
	Open   bool          `json:"open,omitempty"`   // its last operation failed: the length is a lower bound
	Moving bool          `json:"moving,omitempty"` // the key changes owner in the change it overlaps
}

// Length is how long the key was unavailable.
func (o Outage) Length() time.Duration { return o.To - o.From }

// Outages returns every key's outages that overlap [from, to], longest
// first. An operation counts when it failed or took at least threshold.
func Outages(ops []Op, threshold, from, to time.Duration) []Outage {
	// Only the keys with a slow or failed operation matter; collect their
	// operations (all of them: a later success closes a failure's outage).
	bad := map[uint32]bool{}
	for _, o := range ops {
		if o.Class != classOK || o.latency() >= threshold {
			bad[o.Key] = true
		}
	}
	byKey := map[uint32][]Op{}
	for _, o := range ops {
		if bad[o.Key] {
			byKey[o.Key] = append(byKey[o.Key], o)
		}
	}
	var out []Outage
	for key, kops := range byKey {
		slices.SortFunc(kops, func(a, b Op) int { return cmpDur(a.Start, b.Start) })
		var cur *Outage
		flush := func() {
			if cur != nil && cur.To >= from && cur.From <= to {
				out = append(out, *cur)
			}
			cur = nil
		}
		for _, o := range kops {
			failed := o.Class != classOK
			if !failed && o.latency() < threshold {
				continue // served quickly: not part of an outage
			}
			if cur != nil && o.Start > cur.To {
				flush()
			}
			if cur == nil {
				cur = &Outage{Key: key, From: o.Start, To: o.End}
			}
			if o.End >= cur.To {
				cur.Open = failed
			}
			cur.To = max(cur.To, o.End)
			cur.Ops++
			if failed {
				cur.Failed++
			}
		}
		flush()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Length() != out[j].Length() {
			return out[i].Length() > out[j].Length()
		}
		return out[i].Key < out[j].Key
	})
	return out
}

func cmpDur(a, b time.Duration) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Movement checks where the keys of one change went against the ideal.
type Movement struct {
	Kind  string `json:"kind"`  // add-group or remove-group
	Group string `json:"group"` // the group added or removed
	Total int    `json:"total"` // keys in the cluster
	// Ideal is what should move: for an add, the new group's share of the
	// keys (1/4 of them when it joins three of equal weight); for a
	// remove, every key of the removed group.
	Ideal float64 `json:"ideal"`
	// Minimal is the exact count of keys whose CARP owner differs
	// between the two rings: what a perfect mover moves.
	Minimal int `json:"minimal"`
	// Moved is measured from the key counts: for an add, the keys the new
	// group holds afterwards; for a remove, the keys it held before.
	Moved int `json:"moved"`
	// Sent is what the sources sent, from the change's record (every
	// round; a key written during the copy is sent again).
	Sent      uint64 `json:"sent"`
	SentBytes uint64 `json:"sent_bytes"`
	// DevIdeal and DevMinimal are |Moved - x| / x.
	DevIdeal   float64 `json:"dev_ideal"`
	DevMinimal float64 `json:"dev_minimal"`
	// OnlyChanging: every source → destination pair that carried keys
	// has the changing group at one end, and every other group's count
	// changed only by what it exchanged with it.
	OnlyChanging bool           `json:"only_changing"`
	Pairs        []Pair         `json:"pairs"`
	Before       map[string]int `json:"before"`
	After        map[string]int `json:"after"`
}

// Pair is what one source sent one destination.
type Pair struct {
	Source string `json:"source"`
	Dest   string `json:"dest"`
	Keys   uint64 `json:"keys"`
	Bytes  uint64 `json:"bytes"`
}

// CheckMovement compares the key counts before and after a change, and
// what the change record says was sent, with the ideal. share is the
// changing group's share of the new ring (add) and minimal the exact CARP
// count (see Movement).
func CheckMovement(kind, group string, before, after map[string]int, pairs []Pair, share float64, minimal int) Movement {
	m := Movement{Kind: kind, Group: group, Before: before, After: after, Pairs: pairs, Minimal: minimal}
	for _, n := range before {
		m.Total += n
	}
	if kind == "remove-group" {
		m.Ideal = float64(before[group])
		m.Moved = before[group]
	} else {
		m.Ideal = share * float64(m.Total)
		m.Moved = after[group]
	}
	m.OnlyChanging = true
	flow := map[string]int{} // what each other group gained from the changing one
	for _, p := range pairs {
		m.Sent += p.Keys
		m.SentBytes += p.Bytes
		if p.Keys == 0 {
			continue
		}
		switch group {
		case p.Source:
			flow[p.Dest] += int(p.Keys)
		case p.Dest:
			flow[p.Source] -= int(p.Keys)
		default:
			m.OnlyChanging = false
		}
	}
	// Counts of the other groups move only with the changing group.
	// Resent keys make the record's counts an upper bound, so check the
	// direction and the bound, not equality.
	for g, b := range before {
		if g == group {
			continue
		}
		d := after[g] - b
		switch {
		case kind == "remove-group" && (d < 0 || d > flow[g]):
			m.OnlyChanging = false
		case kind != "remove-group" && (d > 0 || -d > -flow[g]):
			m.OnlyChanging = false
		}
	}
	if m.Ideal > 0 {
		m.DevIdeal = abs(float64(m.Moved)-m.Ideal) / m.Ideal
	}
	if minimal > 0 {
		m.DevMinimal = abs(float64(m.Moved-minimal)) / float64(minimal)
	}
	return m
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// Phase is one phase of a change and when it began, as recorded.
type Phase struct {
	Name string        `json:"name"`
	At   time.Duration `json:"at_ns"` // since the load began
}

// PhaseSpan returns when phase name began and when the next recorded
// phase began (ok false if either is missing).
func PhaseSpan(phases []Phase, name, until string) (from, to time.Duration, ok bool) {
	var hasFrom, hasTo bool
	for _, p := range phases {
		switch p.Name {
		case name:
			from, hasFrom = p.At, true
		case until:
			to, hasTo = p.At, true
		}
	}
	return from, to, hasFrom && hasTo && to >= from
}
