package chaos

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// KeyResult is the linearizability verdict for one key.
type KeyResult struct {
	Key     string                `json:"key"`
	Group   string                `json:"group"`
	Ops     int                   `json:"ops"`     // ops checked (definite failures left out)
	Unknown int                   `json:"unknown"` // of which unknown-outcome writes
	Result  porcupine.CheckResult `json:"result"`  // Ok, Illegal, or Unknown (the checker timed out)
	Elapsed time.Duration         `json:"elapsed_ns"`
	// Visualization is the HTML file porcupine drew for an Illegal key.
	Visualization string `json:"visualization,omitempty"`
}

// CheckLinearizable checks every key's history on its own (a key is a
// register; keys are independent). timeout bounds each key (0: none); a
// key whose check times out is reported Unknown, not Ok. For every Illegal
// key it draws porcupine's visualization into dir (if dir is not empty),
// with the nemesis events as annotations.
func CheckLinearizable(ops []Op, timeout time.Duration, dir string, events []Event) ([]KeyResult, error) {
	h := horizon(ops)
	keys, groups := byKey(ops)
	var out []KeyResult
	for _, k := range keys {
		pops, src := porcupineOps(groups[k], h)
		r := KeyResult{Key: k, Ops: len(pops)}
		for _, o := range src {
			if o.Group != "" {
				r.Group = o.Group // the last group that served it
			}
		}
		for _, o := range src {
			if o.Outcome == OutcomeUnknown {
				r.Unknown++
			}
		}
		start := time.Now()
		r.Result = porcupine.CheckOperationsTimeout(registerModel, pops, timeout)
		r.Elapsed = time.Since(start)
		if r.Result == porcupine.Illegal && dir != "" {
			_, info := porcupine.CheckOperationsVerbose(registerModel, pops, timeout)
			info.AddAnnotations(annotations(events))
			r.Visualization = filepath.Join(dir, "linearizability-"+safeName(k)+".html")
			if err := porcupine.VisualizePath(registerModel, info, r.Visualization); err != nil {
				return out, fmt.Errorf("visualizing %q: %w", k, err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// annotations shows each fault as a bar on the nemesis line.
func annotations(events []Event) []porcupine.Annotation {
	var out []porcupine.Annotation
	for _, e := range events {
		out = append(out, porcupine.Annotation{
			Tag:             "nemesis",
			Start:           e.Start,
			End:             e.Healed,
			Description:     string(e.Kind),
			Details:         e.Detail,
			BackgroundColor: "#fde2e2",
		})
	}
	return out
}

func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// CheckVersionOrder checks what the group's version clock promises across
// keys: every acknowledged put, put-if-absent and CAS of a group got its
// own version, and a write acknowledged before another was invoked got a
// smaller one (a linearizable clock). Deletes are left out: they answer
// with the version they deleted, not their own point on the clock. So are
// writes without a group: a key handed over by a ring change while the
// call ran may have been served by either group (Timeline.StableOwner).
func CheckVersionOrder(ops []Op) []string {
	byGroup := map[string][]Op{}
	for _, o := range ops {
		switch o.Kind {
		case OpPut, OpPutIfAbsent, OpCAS:
			if o.Outcome == OutcomeOK && o.Group != "" {
				byGroup[o.Group] = append(byGroup[o.Group], o)
			}
		}
	}
	var problems []string
	for _, g := range slices.Sorted(maps.Keys(byGroup)) {
		ws := byGroup[g]
		seen := map[uint64]Op{}
		for _, o := range ws {
			if p, dup := seen[o.Version]; dup {
				problems = append(problems, fmt.Sprintf("group %s: version %d acknowledged twice: op %d (%s %q) and op %d (%s %q)",
					g, o.Version, p.ID, p.Kind, p.Key, o.ID, o.Kind, o.Key))
			}
			seen[o.Version] = o
		}
		// Sweep in call order, keeping the largest version among writes
		// that returned before the current call.
		byCall := append([]Op(nil), ws...)
		sort.Slice(byCall, func(i, j int) bool { return byCall[i].Call < byCall[j].Call })
		byRet := append([]Op(nil), ws...)
		sort.Slice(byRet, func(i, j int) bool { return byRet[i].Return < byRet[j].Return })
		var best *Op
		r := 0
		for _, o := range byCall {
			for r < len(byRet) && byRet[r].Return < o.Call {
				if best == nil || byRet[r].Version > best.Version {
					best = &byRet[r]
				}
				r++
			}
			if best != nil && best.Version >= o.Version {
				problems = append(problems, fmt.Sprintf("group %s: op %d (%s %q) got version %d, but op %d (%s %q) had already returned version %d",
					g, o.ID, o.Kind, o.Key, o.Version, best.ID, best.Kind, best.Key, best.Version))
			}
		}
	}
	return problems
}

// FinalValue is a key as read after the faults healed.
type FinalValue struct {
	Key     string
	Exists  bool
	Value   string
	Version uint64
}

// CheckDurable checks that every acknowledged write is still there, or
// was superseded: the final version of each key is at least the highest
// version any acknowledged put or CAS of it returned (with that very value
// if equal), and a key found absent had a delete that could explain it.
// (The linearizability check proves this too; this says it in plain
// words when it fails.)
func CheckDurable(ops []Op, final map[string]FinalValue) []string {
	type last struct {
		op      Op
		deleted uint64 // highest version an acknowledged delete removed
		unknown bool   // some delete had an unknown outcome
	}
	per := map[string]*last{}
	for _, o := range ops {
		if !o.IsWrite() {
			continue
		}
		l := per[o.Key]
		if l == nil {
			l = &last{}
			per[o.Key] = l
		}
		switch {
		case (o.Kind == OpDelete || o.Kind == OpCompareAndDelete) && o.Outcome == OutcomeOK:
			l.deleted = max(l.deleted, o.Version)
		case (o.Kind == OpDelete || o.Kind == OpCompareAndDelete) && o.Outcome == OutcomeUnknown:
			l.unknown = true
		case o.Outcome == OutcomeOK && o.Version > l.op.Version:
			l.op = o
		}
	}
	var problems []string
	for _, k := range slices.Sorted(maps.Keys(per)) {
		l := per[k]
		if l.op.Version == 0 {
			continue // no acknowledged put
		}
		f, ok := final[k]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("key %q: no final read", k))
		case f.Exists && f.Version < l.op.Version:
			problems = append(problems, fmt.Sprintf("key %q: acknowledged write %q@%d (op %d) lost: the key is at %q@%d",
				k, l.op.Value, l.op.Version, l.op.ID, f.Value, f.Version))
		case f.Exists && f.Version == l.op.Version && f.Value != l.op.Value:
			problems = append(problems, fmt.Sprintf("key %q: version %d holds %q, but op %d wrote %q at that version",
				k, f.Version, f.Value, l.op.ID, l.op.Value))
		case !f.Exists && l.deleted < l.op.Version && !l.unknown:
			problems = append(problems, fmt.Sprintf("key %q: acknowledged write %q@%d (op %d) lost: the key is absent and no delete removed it",
				k, l.op.Value, l.op.Version, l.op.ID))
		}
	}
	return problems
}

// CheckDeadlines checks invariant 5's "never a hang": every call returned
// by its context's deadline, give or take slack.
func CheckDeadlines(ops []Op, slack time.Duration) []string {
	var late []Op
	for _, o := range ops {
		if o.Deadline > 0 && o.Return > o.Deadline+int64(slack) {
			late = append(late, o)
		}
	}
	if len(late) == 0 {
		return nil
	}
	o := late[0]
	return []string{fmt.Sprintf("%d calls returned more than %v after their deadline; the first: op %d (%s %q by %s) returned %v late: %s",
		len(late), slack, o.ID, o.Kind, o.Key, o.Worker, time.Duration(o.Return-o.Deadline).Round(time.Millisecond), o.Err)}
}
