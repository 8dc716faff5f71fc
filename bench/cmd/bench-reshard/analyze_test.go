package main

import (
	"testing"
	"time"
)

const ms = time.Millisecond

func op(key uint32, start, end time.Duration, class uint8) Op {
	return Op{Key: key, Start: start, End: end, Class: class}
}

func TestSeriesBucketsByReturnTimeAndKeepsEmptySeconds(t *testing.T) {
	ops := []Op{
		op(1, 0, 10*ms, classOK),
		op(2, 500*ms, 900*ms, classOK),
		op(3, 900*ms, 1100*ms, classTimeout), // returns in the second bucket
		op(4, 2900*ms, 3100*ms, classOK),     // past until: dropped
	}
	pts := Series(ops, time.Second, 3*time.Second)
	if len(pts) != 3 {
		t.Fatalf("got %d points, want 3", len(pts))
	}
	if pts[0].Ops != 2 || pts[1].Ops != 1 || pts[2].Ops != 0 {
		t.Errorf("ops per second = %d %d %d, want 2 1 0", pts[0].Ops, pts[1].Ops, pts[2].Ops)
	}
	if pts[1].Errors != 1 || pts[0].Errors != 0 {
		t.Errorf("errors = %d %d, want 0 1", pts[0].Errors, pts[1].Errors)
	}
	if pts[0].Max != 400*ms || pts[1].P99 != 200*ms {
		t.Errorf("max of first = %v (want 400ms), p99 of second = %v (want 200ms)", pts[0].Max, pts[1].P99)
	}
	if pts[2].P99 != 0 || pts[2].OpsSec != 0 {
		t.Errorf("empty second: %+v", pts[2])
	}
}

func TestWindowCountsOpsSentInsideIt(t *testing.T) {
	ops := []Op{
		op(1, 0, 5*ms, classOK),
		op(1, 10*ms, 1500*ms, classOK), // over a second
		op(2, 20*ms, 30*ms, classUnavailable),
		op(3, 100*ms, 110*ms, classOK), // outside [0, 100ms)
	}
	w := WindowOf(ops, 0, 100*ms)
	if w.Ops != 3 || w.Over1s != 1 || w.Failed() != 1 || w.Outcomes["ok"] != 2 {
		t.Errorf("window = %+v, failed %d", w, w.Failed())
	}
	if w.Latency.Max != 1490*ms {
		t.Errorf("max = %v, want 1.49s", w.Latency.Max)
	}
}

func TestOutagesMergeOverlappingSlowOpsOnOneKey(t *testing.T) {
	ops := []Op{
		op(7, 0, 5*ms, classOK),          // quick: not an outage
		op(7, 100*ms, 700*ms, classOK),   // slow
		op(7, 300*ms, 900*ms, classOK),   // overlaps: merged, 100..900
		op(7, 400*ms, 402*ms, classOK),   // quick inside: ignored
		op(7, 2000*ms, 2300*ms, classOK), // slow again, separate
		op(8, 1000*ms, 1200*ms, classOK), // another key
		op(9, 10*ms, 15*ms, classOK),     // never slow
		op(9, 5000*ms, 5001*ms, classOK), // never slow
		op(8, 1300*ms, 1301*ms, classOK), // quick after: nothing
		op(7, 5000*ms, 5010*ms, classOK), // quick
		op(8, 9000*ms, 9300*ms, classOK), // slow but outside the window
	}
	got := Outages(ops, 100*ms, 0, 5*time.Second)
	want := []Outage{
		{Key: 7, From: 100 * ms, To: 900 * ms, Ops: 2},
		{Key: 7, From: 2000 * ms, To: 2300 * ms, Ops: 1},
		{Key: 8, From: 1000 * ms, To: 1200 * ms, Ops: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d outages %+v, want %+v", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("outage %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestOutageEndingInAFailureIsALowerBound(t *testing.T) {
	ops := []Op{
		op(1, 0, 50*ms, classUnavailable), // a quick failure is an outage
		op(1, 40*ms, 70*ms, classTimeout), // overlapping failure: merged
		op(1, 800*ms, 810*ms, classOK),    // served: not an outage
		op(2, 100*ms, 900*ms, classTimeout),
		op(2, 200*ms, 300*ms, classOK), // slow success inside: merged, still open
		op(3, 0, 500*ms, classTimeout),
		op(3, 100*ms, 600*ms, classOK), // a slow success ends it last: closed
	}
	got := Outages(ops, 100*ms, 0, time.Second)
	want := []Outage{
		{Key: 2, From: 100 * ms, To: 900 * ms, Ops: 2, Failed: 1, Open: true},
		{Key: 3, From: 0, To: 600 * ms, Ops: 2, Failed: 1},
		{Key: 1, From: 0, To: 70 * ms, Ops: 2, Failed: 2, Open: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("outage %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCheckMovementOfAnAdd(t *testing.T) {
	before := map[string]int{"g1": 3400, "g2": 3300, "g3": 3300}
	after := map[string]int{"g1": 2550, "g2": 2480, "g3": 2470, "g4": 2500}
	pairs := []Pair{
		{Source: "g1", Dest: "g4", Keys: 860, Bytes: 860 * 272}, // 10 resent
		{Source: "g2", Dest: "g4", Keys: 820},
		{Source: "g3", Dest: "g4", Keys: 830},
		{Source: "g1", Dest: "g1"}, // empty pairs do not count
	}
	m := CheckMovement("add-group", "g4", before, after, pairs, 0.25, 2500)
	if m.Total != 10000 || m.Moved != 2500 || m.Ideal != 2500 || m.DevIdeal != 0 || m.DevMinimal != 0 {
		t.Errorf("movement = %+v", m)
	}
	if !m.OnlyChanging || m.Sent != 2510 || m.SentBytes != 860*272 {
		t.Errorf("only changing %v, sent %d bytes %d", m.OnlyChanging, m.Sent, m.SentBytes)
	}
	// A pair between two groups that stay is a violation.
	m = CheckMovement("add-group", "g4", before, after, append(pairs, Pair{Source: "g1", Dest: "g2", Keys: 1}), 0.25, 2500)
	if m.OnlyChanging {
		t.Error("a g1 → g2 pair passed as moving only to the new group")
	}
	// A group that gained keys in an add is a violation too.
	after2 := map[string]int{"g1": 2550, "g2": 3400, "g3": 2470, "g4": 2500}
	if CheckMovement("add-group", "g4", before, after2, pairs, 0.25, 2500).OnlyChanging {
		t.Error("g2 gained keys in an add and passed")
	}
}

func TestCheckMovementOfARemove(t *testing.T) {
	before := map[string]int{"g1": 2550, "g2": 2480, "g3": 2470, "g4": 2500}
	after := map[string]int{"g1": 0, "g2": 3330, "g3": 3340, "g4": 3330}
	pairs := []Pair{
		{Source: "g1", Dest: "g2", Keys: 850},
		{Source: "g1", Dest: "g3", Keys: 870},
		{Source: "g1", Dest: "g4", Keys: 830},
	}
	m := CheckMovement("remove-group", "g1", before, after, pairs, 0, 2550)
	if m.Moved != 2550 || m.Ideal != 2550 || !m.OnlyChanging || m.DevIdeal != 0 {
		t.Errorf("movement = %+v", m)
	}
	m = CheckMovement("remove-group", "g1", before, after, pairs, 0, 2500)
	if m.DevMinimal != 0.02 {
		t.Errorf("dev from minimal = %v, want 0.02", m.DevMinimal)
	}
}

func TestPhaseSpan(t *testing.T) {
	ph := []Phase{{"prepare", 1 * time.Second}, {"copy", 2 * time.Second}, {"done", 9 * time.Second}}
	if f, to, ok := PhaseSpan(ph, "copy", "done"); !ok || f != 2*time.Second || to != 9*time.Second {
		t.Errorf("copy..done = %v %v %v", f, to, ok)
	}
	if _, _, ok := PhaseSpan(ph, "copy", "cleanup"); ok {
		t.Error("a missing phase gave a span")
	}
}

func TestParsePhaseLineTextAndJSON(t *testing.T) {
	want := time.Date(2026, 11, 26, 4, 40, 1, 123e6, time.UTC)
	for _, line := range []string{
		`time=2026-11-26T04:40:01.123Z level=INFO msg="ring change: phase" epoch=2 phase=copy`,
		`{"time":"2026-11-26T04:40:01.123Z","level":"INFO","msg":"ring change: phase","epoch":2,"phase":"copy"}`,
	} {
		at, epoch, phase, ok := parsePhaseLine(line)
		if !ok || !at.Equal(want) || epoch != 2 || phase != "copy" {
			t.Errorf("%s: got %v %d %q %v", line, at, epoch, phase, ok)
		}
	}
	for _, line := range []string{
		`time=2026-11-26T04:40:01.123Z level=INFO msg="ring change: will retry" epoch=2 phase=copy err=x`,
		`time=bad level=INFO msg="ring change: phase" epoch=2 phase=copy`,
	} {
		if _, _, _, ok := parsePhaseLine(line); ok {
			t.Errorf("%s: parsed", line)
		}
	}
}

func TestReplaceSectionKeepsTheRest(t *testing.T) {
	doc := "# B\n\nintro\n\n## Ring changes\n\nprose before\n\n" + beginMarker + "\nold\n" + endMarker + "\n\nprose after\n"
	got := replaceSection(doc, beginMarker+"\nnew\n"+endMarker+"\n")
	want := "# B\n\nintro\n\n## Ring changes\n\nprose before\n\n" + beginMarker + "\nnew\n" + endMarker + "\n\nprose after\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	got = replaceSection("# B\n", beginMarker+"\nx\n"+endMarker)
	if want := "# B\n\n## Ring changes\n\n" + beginMarker + "\nx\n" + endMarker + "\n"; got != want {
		t.Errorf("append: got %q, want %q", got, want)
	}
}

func TestGroupDigits(t *testing.T) {
	for in, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1000000: "1,000,000", -12345: "-12,345"} {
		if got := fmtInt(in); got != want {
			t.Errorf("fmtInt(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestOpsRoundTripThroughTheirFile(t *testing.T) {
	ops := []Op{op(1, 2, 3, classOK), {Start: 5 * time.Second, End: 6 * time.Second, Key: 1 << 30, Kind: kindPut, Class: classTimeout}}
	path := t.TempDir() + "/ops.bin"
	if err := saveOps(path, ops); err != nil {
		t.Fatal(err)
	}
	got, err := loadOps(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ops) || got[0] != ops[0] || got[1] != ops[1] {
		t.Errorf("got %+v, want %+v", got, ops)
	}
}
