package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/carpkv/carpkv/internal/loadgen"
	"github.com/carpkv/carpkv/kvclient/fakeagent"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// quick is a short, exact workload for the fake group.
var quick = []string{"--ops", "300", "--warmup", "0", "--keys", "50", "-c", "4"}

func benchArgs(extra ...string) []string {
	return append(append([]string{"bench"}, quick...), extra...)
}

func TestBenchPrintsASummaryAndATablePerOp(t *testing.T) {
	cluster(t, 3)
	r := runCLI(t, "", benchArgs("--mix", "put=40,get=40,cas=10,delete=10")...)
	mustSucceed(t, r)
	if r.stderr != "" {
		t.Fatalf("stderr %q: no progress line when stderr is not a terminal", r.stderr)
	}
	out := r.stdout
	for _, want := range []string{
		"workload  put=40,get=40,cas=10,delete=10; 50 keys (uniform), 16 B keys, 256 B values, linearizable reads\n",
		"load      4 workers, closed loop, 300 ops measured after 0s warmup, seed 1\n",
		"result    300 ops in ",
		"errors    unavailable 0, timeout (outcome unknown) 0, other 0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	table := out[strings.Index(out, "\n\n")+2:]
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 6 || strings.Join(strings.Fields(lines[0]), " ") != "OP OPS OPS/S OK NOT_FOUND CAS_FAILED ERRORS P50 P90 P99 P99.9 MAX" {
		t.Fatalf("table:\n%s", table)
	}
	total := 0
	for i, op := range []string{"put", "get", "cas", "delete", "all"} {
		f := strings.Fields(lines[i+1])
		if len(f) != 12 || f[0] != op || f[6] != "0" {
			t.Fatalf("row %q, want 12 columns for %s with 0 errors", lines[i+1], op)
		}
		var n int
		fmt.Sscan(f[1], &n)
		if op != "all" {
			total += n
		} else if n != 300 || total != 300 {
			t.Fatalf("ops per op sum to %d, all says %d; want 300", total, n)
		}
	}
	// not_found is a column only where it is a normal outcome.
	if f := strings.Fields(lines[1]); f[4] != "-" || f[5] != "-" {
		t.Errorf("put row %q: want - under NOT_FOUND and CAS_FAILED", lines[1])
	}
}

func TestBenchJSONHasEveryNumber(t *testing.T) {
	g := cluster(t, 3)
	r := runCLI(t, "", benchArgs("--mix", "get=50,put=30,delete=20", "--preload", "--progress", "-o", "json")...)
	mustSucceed(t, r)
	if r.stderr != "" {
		t.Fatalf("stderr %q: no progress line with -o json, even with --progress", r.stderr)
	}
	var rep loadgen.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("-o json printed %q: %v", r.stdout, err)
	}
	if rep.Ops != 300 || rep.Errors != 0 || rep.OpsPerSec <= 0 || rep.Elapsed <= 0 || rep.Interrupted {
		t.Fatalf("report %+v", rep)
	}
	if rep.Labels["system"] != "carpkv" || rep.Labels["reads"] != "linearizable" || rep.Config.Mix != (loadgen.Mix{30, 50, 0, 20}) || rep.Config.Ops != 300 || rep.Config.Duration != 0 {
		t.Fatalf("labels %v, config %+v", rep.Labels, rep.Config)
	}
	for _, c := range []string{"unavailable", "timeout", "other"} {
		if n, ok := rep.ErrorClasses[c]; !ok || n != 0 {
			t.Errorf("error_classes[%s] = %d, %v", c, n, ok)
		}
	}
	var sum int64
	for _, op := range []string{"put", "get", "delete"} {
		o, ok := rep.ByOp[op]
		if !ok || o.Ops == 0 || o.Outcomes["ok"]+o.Outcomes["not_found"] != o.Ops {
			t.Fatalf("by_op[%s] = %+v", op, o)
		}
		sum += o.Ops
		l := o.Latency
		if l.Count != uint64(o.Ops) || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.P999 || l.P999 > l.Max {
			t.Errorf("by_op[%s].latency = %+v", op, l)
		}
	}
	if _, ok := rep.ByOp["cas"]; ok || sum != 300 || rep.Latency.Count != 300 {
		t.Fatalf("by_op = %+v (sum %d), want put, get and delete summing to 300", rep.ByOp, sum)
	}
	if p := rep.Preload; p == nil || p.Keys != 50 || p.Errors != 0 {
		t.Fatalf("preload = %+v", p)
	}
	// The preload wrote every key; later deletes removed some.
	if _, v := g.Value(loadgen.AppendKey(nil, 49, 16)); v == 0 && rep.ByOp["delete"].Outcomes["ok"] == 0 {
		t.Fatal("the preload did not write k...49")
	}
	if !strings.Contains(r.stdout, `"p999_ns"`) || !strings.Contains(r.stdout, `"ops_per_sec"`) {
		t.Fatalf("JSON lacks the documented field names:\n%s", r.stdout)
	}
}

func TestBenchProgressLineWhenForced(t *testing.T) {
	cluster(t, 1)
	r := runCLI(t, "", benchArgs("--mix", "put=100", "--progress")...)
	mustSucceed(t, r)
	if !strings.HasSuffix(r.stderr, "done: 300 ops, 0 errors\n") {
		t.Fatalf("stderr %q, want the progress line ending in a summary", r.stderr)
	}
}

func TestBenchOpenLoopReportsTheSchedule(t *testing.T) {
	cluster(t, 1)
	r := runCLI(t, "", benchArgs("--mix", "put=50,get=50", "--rate", "5000", "-o", "json")...)
	mustSucceed(t, r)
	var rep loadgen.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if ol := rep.OpenLoop; ol == nil || ol.TargetOpsPerSec != 5000 || ol.Due != 300 || ol.Started != 300 || ol.Missed != 0 {
		t.Fatalf("open_loop = %+v", rep.OpenLoop)
	}
	r = runCLI(t, "", benchArgs("--mix", "put=100", "--rate", "5000")...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "open loop at 5000 ops/s") || !strings.Contains(r.stdout, "schedule  300 due, 300 started, 0 missed") {
		t.Fatalf("table output:\n%s", r.stdout)
	}
}

func TestBenchStaleReadsGoToEveryMember(t *testing.T) {
	g := cluster(t, 3)
	mustSucceed(t, runCLI(t, "", benchArgs("--mix", "get=100", "--stale")...))
	for i, a := range g.Agents() {
		if a.Requests() == 0 {
			t.Errorf("agent %d served no stale read", i)
		}
	}
}

func TestBenchCountsErrorsByClass(t *testing.T) {
	g := cluster(t, 1)
	var n atomic.Int64
	g.Agent(0).SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut {
			return false
		}
		switch n.Add(1) % 10 {
		case 1: // a write whose outcome is unknown: not retried
			fakeagent.WriteError(w, &wire.Error{Code: wire.CodeTimeout, Message: "deadline"})
			return true
		case 2:
			fakeagent.WriteError(w, &wire.Error{Code: wire.CodeInternal, Message: "bug"})
			return true
		}
		return false
	})
	r := runCLI(t, "", benchArgs("--mix", "put=100", "-o", "json")...)
	mustSucceed(t, r)
	var rep loadgen.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.ErrorClasses["timeout"] != 30 || rep.ErrorClasses["other"] != 30 || rep.Errors != 60 || rep.ByOp["put"].Outcomes["ok"] != 240 {
		t.Fatalf("errors %d by class %v, put outcomes %v; want 30 timeouts and 30 others of 300",
			rep.Errors, rep.ErrorClasses, rep.ByOp["put"].Outcomes)
	}
	if !strings.Contains(rep.ErrorSamples["timeout"], "outcome is unknown") {
		t.Fatalf("error_samples = %v", rep.ErrorSamples)
	}
}

func TestBenchUsageErrorsExit3(t *testing.T) {
	cluster(t, 1)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--mix", "put=50,get=40"}, "bench: --mix: the percentages sum to 90, not 100"},
		{[]string{"--mix", "put=50,scan=50"}, `bench: --mix: unknown op "scan"`},
		{[]string{"--mix", "put"}, `bench: --mix: "put" is not op=percent`},
		{[]string{"--dist", "normal"}, `bench: --dist: unknown distribution "normal"`},
		{[]string{"--dist", "zipf", "--zipf-s", "1"}, "bench: --zipf-s: 1: want > 1"},
		{[]string{"--keys", "100000", "--key-size", "4"}, "bench: --key-size: 4 bytes cannot hold 100000 distinct keys"},
		{[]string{"--concurrency", "0"}, "bench: --concurrency must be at least 1"},
		{[]string{"--value-size", "0"}, "bench: --value-size must be at least 1"},
		{[]string{"--duration", "0s"}, "bench: --duration must be positive"},
		{[]string{"--ops", "0"}, "bench: --ops must be at least 1"},
		{[]string{"--rate", "-1"}, "bench: --rate: -1: must not be negative"},
		{[]string{"--warmup", "-1s"}, "bench: --warmup"},
		{[]string{"--transport", "grpc"}, `bench: --transport: "grpc" is not stream or http`},
		{[]string{"extra"}, "bench: too many arguments"},
	}
	for _, tt := range tests {
		r := runCLI(t, "", append([]string{"bench", "--ops", "1"}, tt.args...)...)
		if r.code != 3 || !strings.Contains(r.stderr, tt.want) || !strings.Contains(r.stderr, "carpkvctl bench --help") {
			t.Errorf("bench %s = exit %d, stderr %q; want exit 3 and %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.want)
		}
	}
}

func TestBenchAgainstAnUnreachableClusterExits4(t *testing.T) {
	t.Setenv("CARPKV_ADDR", deadAddr(t))
	r := runCLI(t, "", "--timeout", "300ms", "bench", "--ops", "10")
	if r.code != 4 || !strings.Contains(r.stderr, "bench: the cluster does not serve a first read") || r.stdout != "" {
		t.Fatalf("bench against a dead address = %+v, want exit 4 and nothing on stdout", r)
	}
}
