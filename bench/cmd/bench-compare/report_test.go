package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carpkv/carpkv/internal/loadgen"
)

func sample(sys, wl string, rep int, ops float64, p99 time.Duration) Sample {
	return Sample{System: sys, Workload: wl, Rep: rep, ServerCPU: time.Second,
		Report: &loadgen.Report{OpsPerSec: ops, Ops: 1000, Latency: loadgen.Summary{P50: p99 / 2, P99: p99}}}
}

func TestCellIsTheMedianOfTheRuns(t *testing.T) {
	res := &Results{Samples: []Sample{
		sample("etcd", "write-c1", 1, 900, time.Millisecond),
		sample("etcd", "write-c1", 2, 1000, 3*time.Millisecond),
		sample("etcd", "write-c1", 3, 100, 2*time.Millisecond),
		sample("carpkv-1g", "write-c1", 1, 50, time.Millisecond),
	}}
	c := cellOf(res, "etcd", "write-c1")
	if !c.ok || c.opsPerSec != 900 || c.p99 != 2*time.Millisecond || c.median.Rep != 1 {
		t.Fatalf("cell %+v", c)
	}
	if cellOf(res, "carpkv-3g", "write-c1").ok {
		t.Fatal("a cell without runs")
	}
	if got := c.cpu1000; got != 1 {
		t.Fatalf("cpu per 1000 ops %v, want 1 (1 s over 1000 ops)", got)
	}
}

func TestRenderKeepsTheProseAroundTheMarkers(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "benchmarks.md")
	prose := "# Title\n\nintro\n\n" + beginMarker + "\nold numbers\n" + endMarker + "\n\n## Analysis\n\nkept\n"
	if err := os.WriteFile(doc, []byte(prose), 0o644); err != nil {
		t.Fatal(err)
	}
	res := &Results{
		Started: time.Now(), Reps: 1, Order: []string{"etcd", "carpkv-1g"},
		Systems:   map[string]string{"etcd": "etcd x", "carpkv-1g": "carpkv, 1 group"},
		Workloads: []workload{workloads[2]},
		Samples: []Sample{
			sample("etcd", workloads[2].ID, 1, 1000, time.Millisecond),
			sample("carpkv-1g", workloads[2].ID, 1, 1500, time.Millisecond),
		},
		Idle: map[string]float64{},
	}
	if err := render(res, doc, filepath.Join(dir, "plots")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(doc)
	out := string(b)
	for _, want := range []string{"# Title\n\nintro\n\n", "## Analysis\n\nkept\n", "| writes, 100 clients | 1000 | 1500 |", "1.50×"} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered doc lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "old numbers") || strings.Count(out, beginMarker) != 1 {
		t.Errorf("the old section was not replaced:\n%s", out)
	}
}
