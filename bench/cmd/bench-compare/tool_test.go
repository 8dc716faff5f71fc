package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// A summary as etcd's benchmark tool (v3.6.8, --precise) prints it, with
// an error distribution as its pkg/report writes one.
const toolOutput = `bench with linearizable range

Summary:
  Total:	2.5 secs.
  Slowest:	0.011363444 secs.
  Fastest:	0.00023561 secs.
  Average:	0.0010773361580000006 secs.
  Stddev:	0.0013055848940428595 secs.
  Requests/sec:	3600.5

Response time histogram:
  0.00023561 [1]	|
  0.0011 [400]	|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎

Latency distribution:
  10% in 0.000412457 secs.
  25% in 0.000509633 secs.
  50% in 0.000674489 secs.
  75% in 0.001127294 secs.
  90% in 0.001869682 secs.
  95% in 0.003217816 secs.
  99% in 0.008046278 secs.
  99.9% in 0.0105 secs.

Error distribution:
  [3]	rpc error: code = Unavailable desc = connection refused
  [2]	context deadline exceeded
`

func TestParseToolReport(t *testing.T) {
	rep, err := parseToolReport([]byte(toolOutput))
	if err != nil {
		t.Fatal(err)
	}
	if rep.OpsPerSec != 3600.5 || rep.Elapsed != 2500*time.Millisecond || rep.Ops != 9001 {
		t.Errorf("rate %v over %v, %d ops; want 3600.5 over 2.5s, 9001", rep.OpsPerSec, rep.Elapsed, rep.Ops)
	}
	if rep.Latency.P50 != 674489*time.Nanosecond || rep.Latency.P99 != 8046278*time.Nanosecond || rep.Latency.P999 != 10500*time.Microsecond {
		t.Errorf("latency %+v", rep.Latency)
	}
	if len(rep.LatencyCDF) != 8 || rep.LatencyCDF[0].Q != 0.1 || rep.LatencyCDF[7].Q != 0.999 {
		t.Errorf("cdf %+v", rep.LatencyCDF)
	}
	if rep.Errors != 5 || rep.ErrorClasses["other"] != 5 {
		t.Errorf("errors %d %v, want 5", rep.Errors, rep.ErrorClasses)
	}
}

func TestParseToolReportWithoutSummaryFails(t *testing.T) {
	if _, err := parseToolReport([]byte("dial error: connection refused\n")); err == nil {
		t.Fatal("no error for output without a summary")
	}
}

func TestToolArgsMatchTheWorkload(t *testing.T) {
	byID := map[string]workload{}
	for _, w := range workloads {
		byID[w.ID] = w
	}
	put := strings.Join(toolArgs(byID["write-c1000"], "a,b,c", 10000, 16, 256, 9000, 5*time.Second), " ")
	for _, want := range []string{"--endpoints a,b,c", "--conns 100", "--clients 1000", "put", "--key-size 16", "--val-size 256", "--key-space-size 10000", "--total 45000"} {
		if !strings.Contains(put, want) {
			t.Errorf("%q lacks %q", put, want)
		}
	}
	stale := toolArgs(byID["stale-c100"], "a", 10000, 16, 256, 10, time.Second)
	if !slices.Contains(stale, "range") || !slices.Contains(stale, "k000000000005000") || strings.Join(stale, " ") == "" ||
		!strings.Contains(strings.Join(stale, " "), "--consistency s --total 2000") {
		t.Errorf("stale reads: %q (want a range of a preloaded key, serializable, at least 20 requests per worker)", stale)
	}
	for _, w := range workloads {
		if want := w.Kind == "writes" || w.Kind == "reads" || w.Kind == "stale"; toolRuns(w) != want {
			t.Errorf("toolRuns(%s) = %v", w.ID, !want)
		}
	}
}

func TestEtcdCellIsTheStrongerClient(t *testing.T) {
	res := &Results{Samples: []Sample{
		sample("etcd", "write-c100", 1, 900, time.Millisecond),
		sample(toolKey, "write-c100", 1, 1000, 2*time.Millisecond),
		sample("etcd", "read-c100", 1, 2000, time.Millisecond),
		sample(toolKey, "read-c100", 1, 1900, time.Millisecond),
		sample("etcd", "mixed-c100", 1, 500, time.Millisecond),
	}}
	for _, c := range []struct {
		wl, by string
		ops    float64
	}{{"write-c100", toolKey, 1000}, {"read-c100", "etcd", 2000}, {"mixed-c100", "etcd", 500}} {
		got := cellOf(res, "etcd", c.wl)
		if got.by != c.by || got.opsPerSec != c.ops {
			t.Errorf("%s: etcd cell by %s at %v, want %s at %v", c.wl, got.by, got.opsPerSec, c.by, c.ops)
		}
	}
	if got := clientCell(res, "etcd", "write-c100"); got.opsPerSec != 900 {
		t.Errorf("the driver's own cell: %v", got.opsPerSec)
	}
}
