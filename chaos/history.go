package chaos

import (
	"encoding/json"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// OpKind is a client operation of the workload.
type OpKind string

// The operations of the workload, one per kvclient method.
const (
	OpGet              OpKind = "get"
	OpPut              OpKind = "put"
	OpPutIfAbsent      OpKind = "put-if-absent"
	OpCAS              OpKind = "cas"
	OpDelete           OpKind = "delete"
	OpCompareAndDelete OpKind = "compare-and-delete"
)

// Outcome is what an operation's answer proves.
type Outcome string

const (
	// OutcomeOK: applied (a write) or served (a read).
	OutcomeOK Outcome = "ok"
	// OutcomeNotFound: the key was absent; nothing changed.
	OutcomeNotFound Outcome = "not_found"
	// OutcomeCASFailed: the precondition did not hold; nothing changed.
	OutcomeCASFailed Outcome = "cas_failed"
	// OutcomeUnknown: a write that may or may not have been applied, now
	// or later (ErrTimeout, or any error that does not prove otherwise).
	OutcomeUnknown Outcome = "unknown"
	// OutcomeFailed: certainly not applied (unavailable, not leader, wrong
	// group, stale ring), or a read without an answer. Not checked: it
	// constrains nothing.
	OutcomeFailed Outcome = "failed"
)

// Op is one operation of the history, as recorded. Times are nanoseconds
// on the run's monotonic clock.
type Op struct {
	ID     int    `json:"id"`
	Client int    `json:"client"` // porcupine's process: a worker takes a new one after an unknown outcome
	Worker string `json:"worker"`
	Key    string `json:"key"`
	Group  string `json:"group"`
	Kind   OpKind `json:"op"`
	// Value is the value written (put, put-if-absent, cas) or read (get).
	Value  string `json:"value,omitempty"`
	Expect uint64 `json:"expect,omitempty"`
	Call   int64  `json:"call_ns"`
	Return int64  `json:"return_ns"`
	// Deadline is the call's context deadline (0: none).
	Deadline int64 `json:"deadline_ns,omitempty"`
	// Outcome and Version: the version read, written or deleted (ok), or
	// the current version (cas_failed).
	Outcome Outcome `json:"outcome"`
	Version uint64  `json:"version,omitempty"`
	Err     string  `json:"error,omitempty"`
}

// IsWrite reports whether the op may change the key.
func (o Op) IsWrite() bool { return o.Kind != OpGet }

// History records operations from many goroutines.
type History struct {
	start time.Time

	mu      sync.Mutex
	ops     []Op
	clients int
}

// NewHistory starts the run's clock.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the current time on the history's clock.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// At converts a wall-clock instant to the history's clock.
func (h *History) At(t time.Time) int64 { return int64(t.Sub(h.start)) }

func (h *History) startTime() time.Time { return h.start }

// NewClient returns a fresh porcupine client ID.
func (h *History) NewClient() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := h.clients
	h.clients++
	return id
}

// Add records a completed operation and returns its ID.
func (h *History) Add(op Op) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.ID = len(h.ops)
	h.ops = append(h.ops, op)
	return op.ID
}

// Ops returns a copy of everything recorded so far.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}

// WriteJSON saves ops to path, one JSON document.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// byKey groups ops by key, keys sorted.
func byKey(ops []Op) (keys []string, groups map[string][]Op) {
	groups = map[string][]Op{}
	for _, o := range ops {
		if _, ok := groups[o.Key]; !ok {
			keys = append(keys, o.Key)
		}
		groups[o.Key] = append(groups[o.Key], o)
	}
	sort.Strings(keys)
	return keys, groups
}

// porcupineOps turns one key's recorded ops into porcupine's form:
//   - ops that certainly had no effect (OutcomeFailed) are left out;
//   - an unknown-outcome write may have taken effect at any moment after
//     its call, or never: it returns at horizon (after every other op), so
//     the checker may linearize it anywhere after its call, including
//     after everything else, which is the same as never. If a read
//     observed its (unique) value, it certainly happened before that read
//     returned: its return is pulled in to that read's return, which
//     admits exactly the same linearizations and makes the search cheaper.
//
// It also returns, in the same order, the recorded op of each entry.
func porcupineOps(ops []Op, horizon int64) ([]porcupine.Operation, []Op) {
	firstRead := map[string]int64{}
	for _, o := range ops {
		if o.Kind == OpGet && o.Outcome == OutcomeOK {
			if t, ok := firstRead[o.Value]; !ok || o.Return < t {
				firstRead[o.Value] = o.Return
			}
		}
	}
	var out []porcupine.Operation
	var src []Op
	for _, o := range ops {
		if o.Outcome == OutcomeFailed {
			continue
		}
		ret := o.Return
		if o.Outcome == OutcomeUnknown {
			ret = horizon
			if t, ok := firstRead[o.Value]; ok && o.Value != "" && t >= o.Call && t < ret {
				ret = t
			}
		}
		out = append(out, porcupine.Operation{
			ClientId: o.Client,
			Input:    registerInput{Kind: o.Kind, Value: writtenValue(o), Expect: o.Expect},
			Call:     o.Call,
			Output:   registerOutput{Outcome: o.Outcome, Value: readValue(o), Version: o.Version},
			Return:   ret,
			Metadata: o.ID,
		})
		src = append(src, o)
	}
	return out, src
}

func writtenValue(o Op) string {
	if o.Kind == OpGet {
		return ""
	}
	return o.Value
}

func readValue(o Op) string {
	if o.Kind == OpGet {
		return o.Value
	}
	return ""
}

// horizon is a time after every recorded call and return.
func horizon(ops []Op) int64 {
	var h int64
	for _, o := range ops {
		h = max(h, o.Call, o.Return)
	}
	return h + 1
}
