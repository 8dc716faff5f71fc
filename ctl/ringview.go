package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// How ring changes are shown: the progress line of --wait, the recorded
// and finished change, and "ring status". Pure functions of the wire
// structs (and of the time, passed in), so tests pin them.

// rateMeter measures the change's throughput on this host's clock, from
// the first sample it saw (the coordinator's clock may differ).
type rateMeter struct {
	t0           time.Time
	keys0, byte0 uint64
	started      bool
}

// rate is keys and bytes per second; ok is false until there is a
// measure.
type rate struct {
	keys, bytes float64
	ok          bool
}

func (m *rateMeter) sample(now time.Time, st *wire.RingChangeStatus) rate {
	keys, bytes := pairTotals(st)
	if !m.started || keys < m.keys0 {
		m.t0, m.keys0, m.byte0, m.started = now, keys, bytes, true
		return rate{}
	}
	d := now.Sub(m.t0).Seconds()
	if d < 0.5 {
		return rate{}
	}
	return rate{keys: float64(keys-m.keys0) / d, bytes: float64(bytes-m.byte0) / d, ok: true}
}

func pairTotals(st *wire.RingChangeStatus) (keys, bytes uint64) {
	for _, p := range st.Pairs {
		keys += p.Keys
		bytes += p.Bytes
	}
	return keys, bytes
}

func estimateTotal(st *wire.RingChangeStatus) uint64 {
	var n uint64
	for _, s := range st.Sources {
		n += s.Estimate
	}
	return n
}

// progressLine is one line of progress: phase, per pair, total against
// the estimate, rate, ETA.
func progressLine(st *wire.RingChangeStatus, r rate, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "epoch %d→%d %s: %s", st.From.Epoch, st.To.Epoch, changeWhat(st), phaseOf(st.Phase))
	for _, p := range st.Pairs {
		fmt.Fprintf(&b, " · %s→%s %s keys %s", p.Source, p.Dest, count(p.Keys), humanBytes(int64(p.Bytes)))
	}
	keys, bytes := pairTotals(st)
	est := estimateTotal(st)
	fmt.Fprintf(&b, " · total %s", count(keys))
	if est > 0 {
		fmt.Fprintf(&b, "/~%s keys (%s)", count(est), percent(min(1, float64(keys)/float64(est))))
	} else {
		b.WriteString(" keys")
	}
	fmt.Fprintf(&b, " %s", humanBytes(int64(bytes)))
	if r.ok {
		fmt.Fprintf(&b, " · %s keys/s %.1f MB/s", count(uint64(r.keys)), r.bytes/1e6)
		if est > keys && r.keys > 0 && (st.Phase == wire.PhaseCopy || st.Phase == wire.PhasePrepare) {
			eta := time.Duration(float64(est-keys) / r.keys * float64(time.Second))
			fmt.Fprintf(&b, " · ETA %s", humanDur(eta))
		}
	}
	if st.StartedAt > 0 {
		fmt.Fprintf(&b, " · %s elapsed", humanDur(now.Sub(time.UnixMilli(st.StartedAt))))
	}
	if st.LastError != "" {
		fmt.Fprintf(&b, " · retrying: %s", st.LastError)
	}
	return b.String()
}

var phases = []string{wire.PhasePrepare, wire.PhaseCopy, wire.PhaseFreeze, wire.PhaseFinal,
	wire.PhaseActivate, wire.PhaseCleanup, wire.PhaseFinish, wire.PhaseDone}

// phaseOf names a phase with its place among the phases: "copy (2/8)".
func phaseOf(p string) string {
	for i, x := range phases {
		if x == p {
			return fmt.Sprintf("%s (%d/%d)", p, i+1, len(phases))
		}
	}
	return p
}

// changeWhat says what a change does, from its rings: "add g4 (weight
// 2)", "remove g3", "g2 weight 1 → 2".
func changeWhat(st *wire.RingChangeStatus) string {
	from, to := weights(st.From), weights(st.To)
	switch st.Kind {
	case wire.ChangeAddGroup:
		if w, ok := to[st.Group]; ok {
			return fmt.Sprintf("add %s (weight %s)", st.Group, trimFloat(w))
		}
		return "add " + st.Group
	case wire.ChangeRemoveGroup:
		return "remove " + st.Group
	case wire.ChangeSetWeight:
		fw, ok1 := from[st.Group]
		tw, ok2 := to[st.Group]
		if ok1 && ok2 {
			return fmt.Sprintf("%s weight %s → %s", st.Group, trimFloat(fw), trimFloat(tw))
		}
		return "set the weight of " + st.Group
	}
	return st.Kind + " " + st.Group
}

func weights(r wire.RingSpec) map[string]float64 {
	m := make(map[string]float64, len(r.Groups))
	for _, g := range r.Groups {
		m[g.ID] = g.Weight
	}
	return m
}

// ringWeights renders a ring's groups and weights: "g1 1, g2 1".
func ringWeights(r wire.RingSpec) string {
	parts := make([]string, len(r.Groups))
	for i, g := range r.Groups {
		parts[i] = g.ID + " " + trimFloat(g.Weight)
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, ", ")
}

// printRecorded shows a change just recorded.
func printRecorded(w io.Writer, st *wire.RingChangeStatus) {
	fmt.Fprintf(w, "ring change recorded by %s: %s, ring epoch %d → %d (phase %s)\n",
		orUnknown(st.Coordinator), changeWhat(st), st.From.Epoch, st.To.Epoch, st.Phase)
	fmt.Fprintf(w, "  weights: %s → %s\n", ringWeights(st.From), ringWeights(st.To))
}

// printFinished shows a change that is done.
func printFinished(w io.Writer, st *wire.RingChangeStatus) {
	keys, bytes := pairTotals(st)
	fmt.Fprintf(w, "ring change done: %s, ring epoch %d → %d", changeWhat(st), st.From.Epoch, st.To.Epoch)
	if st.StartedAt > 0 && st.FinishedAt >= st.StartedAt {
		fmt.Fprintf(w, " in %s", humanDur(time.Duration(st.FinishedAt-st.StartedAt)*time.Millisecond))
	}
	fmt.Fprintf(w, "; %s keys (%s) moved\n", count(keys), humanBytes(int64(bytes)))
}

// printChangeStatus renders `ring status`.
func printChangeStatus(w io.Writer, ans *wire.RingChangeAnswer, now time.Time) error {
	if ans.Active == nil {
		if ans.Last == nil {
			_, err := fmt.Fprintln(w, "no ring change recorded: the ring is as it was first committed")
			return err
		}
		fmt.Fprint(w, "no ring change in progress; last ")
		printFinished(w, ans.Last)
		if ans.Last.FinishedAt > 0 {
			fmt.Fprintf(w, "  finished %s (%s ago)\n", time.UnixMilli(ans.Last.FinishedAt).UTC().Format(time.RFC3339), humanDur(now.Sub(time.UnixMilli(ans.Last.FinishedAt))))
		}
		return nil
	}
	a := ans.Active
	fmt.Fprintf(w, "ring change in progress: %s, ring epoch %d → %d, phase %s\n", changeWhat(a), a.From.Epoch, a.To.Epoch, phaseOf(a.Phase))
	source := "live, from its leader"
	if !a.Live {
		source = "recorded state, from a follower: no live progress"
	}
	fmt.Fprintf(w, "  coordinator %s (%s)\n", orUnknown(a.Coordinator), source)
	if a.StartedAt > 0 {
		fmt.Fprintf(w, "  started %s, %s ago", time.UnixMilli(a.StartedAt).UTC().Format(time.RFC3339), humanDur(now.Sub(time.UnixMilli(a.StartedAt))))
		if a.PhaseAt > 0 {
			fmt.Fprintf(w, "; in this phase for %s", humanDur(now.Sub(time.UnixMilli(a.PhaseAt))))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  weights: %s → %s\n", ringWeights(a.From), ringWeights(a.To))
	if a.LastError != "" {
		fmt.Fprintf(w, "  last error (the coordinator retries): %s\n", a.LastError)
	}
	if len(a.Sources) > 0 {
		fmt.Fprintln(w)
		rows := make([][]string, len(a.Sources))
		for i, s := range a.Sources {
			rows[i] = []string{s.Group, count(s.Estimate), fmt.Sprint(s.Rounds), yesNo(s.Frozen), yesNo(s.Sealed), yesNo(s.Cleaned), count(s.Dropped)}
		}
		if err := writeTable(w, []string{"SOURCE", "ESTIMATE", "ROUNDS", "FROZEN", "SEALED", "CLEANED", "DROPPED"}, rows); err != nil {
			return err
		}
	}
	if len(a.Pairs) > 0 {
		fmt.Fprintln(w)
		rows := make([][]string, len(a.Pairs))
		for i, p := range a.Pairs {
			rows[i] = []string{p.Source + " → " + p.Dest, count(p.Keys), humanBytes(int64(p.Bytes))}
		}
		if err := writeTable(w, []string{"SOURCE → DEST", "KEYS SENT", "BYTES SENT"}, rows); err != nil {
			return err
		}
	}
	keys, bytes := pairTotals(a)
	fmt.Fprintf(w, "\ntotal: %s keys (%s) sent", count(keys), humanBytes(int64(bytes)))
	if est := estimateTotal(a); est > 0 {
		fmt.Fprintf(w, " of ~%s estimated to move", count(est))
	}
	_, err := fmt.Fprintln(w)
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orUnknown(s string) string {
	if s == "" {
		return "the coordinator"
	}
	return s
}

// count renders a count with thousands separators: 12,345.
func count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// humanDur rounds a duration for people: 1.2s, 42s, 3m10s.
func humanDur(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}
