package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/carpkv/carpkv/internal/loadgen"
)

// workload is one cell of the comparison.
type workload struct {
	ID          string  `json:"id"`
	Title       string  `json:"title"`
	Kind        string  `json:"kind"` // writes, reads, stale, mixed, fixed-rate
	Mix         string  `json:"mix"`
	Concurrency int     `json:"concurrency"`
	Stale       bool    `json:"stale,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
}

var workloads = []workload{
	{ID: "write-c1", Title: "writes, 1 client", Kind: "writes", Mix: "put=100", Concurrency: 1},
	{ID: "write-c16", Title: "writes, 16 clients", Kind: "writes", Mix: "put=100", Concurrency: 16},
	{ID: "write-c100", Title: "writes, 100 clients", Kind: "writes", Mix: "put=100", Concurrency: 100},
	{ID: "write-c1000", Title: "writes, 1000 clients", Kind: "writes", Mix: "put=100", Concurrency: 1000},
	{ID: "write-rate2000", Title: "writes at a fixed 2,000/s (open loop)", Kind: "fixed-rate", Mix: "put=100", Concurrency: 200, Rate: 2000},
	{ID: "read-c100", Title: "linearizable reads, 100 clients", Kind: "reads", Mix: "get=100", Concurrency: 100},
	{ID: "stale-c100", Title: "stale (carpkv) / serializable (etcd) reads, 100 clients", Kind: "stale", Mix: "get=100", Concurrency: 100, Stale: true},
	{ID: "mixed-c100", Title: "90% reads / 10% writes, 100 clients", Kind: "mixed", Mix: "get=90,put=10", Concurrency: 100},
}

// Sample is one measured run of one workload on one system.
type Sample struct {
	System   string          `json:"system"`
	Workload string          `json:"workload"`
	Rep      int             `json:"rep"`
	Report   *loadgen.Report `json:"report"`
	// ServerCPU is the CPU time all server processes of the system used
	// while the client ran (warmup included: Report.WarmupOps counts its
	// operations).
	ServerCPU time.Duration `json:"server_cpu_ns"`
	// ClientCPU is the CPU time of the client process, from its start to
	// its exit (the two clients share the machine's cores with the
	// servers).
	ClientCPU time.Duration `json:"client_cpu_ns"`
	// DiskWritten is what the server processes wrote to storage while the
	// client ran (/proc/PID/io write_bytes; warmup included).
	DiskWritten int64 `json:"disk_written_bytes,omitempty"`
}

// CPUPer1000 is server CPU-seconds per 1000 operations.
func (s Sample) CPUPer1000() float64 {
	n := s.Report.Ops + s.Report.WarmupOps
	if n == 0 {
		return 0
	}
	return s.ServerCPU.Seconds() / float64(n) * 1000
}

// ClientCPUPer1000 is the client's CPU-seconds per 1000 operations.
func (s Sample) ClientCPUPer1000() float64 {
	n := s.Report.Ops + s.Report.WarmupOps
	if n == 0 {
		return 0
	}
	return s.ClientCPU.Seconds() / float64(n) * 1000
}

// Results is everything one run measured.
type Results struct {
	Started   time.Time          `json:"started"`
	Took      time.Duration      `json:"took_ns"`
	Command   string             `json:"command"`
	Machine   map[string]string  `json:"machine"`
	Reps      int                `json:"reps"`
	Duration  time.Duration      `json:"duration_ns"`
	Warmup    time.Duration      `json:"warmup_ns"`
	Keys      int                `json:"keys"`
	KeySize   int                `json:"key_size"`
	ValueSize int                `json:"value_size"`
	Systems   map[string]string  `json:"systems"` // key -> name (toolKey too)
	Order     []string           `json:"order"`   // the systems compared (not toolKey)
	Workloads []workload         `json:"workloads"`
	Floor     Floor              `json:"floor"`
	Idle      map[string]float64 `json:"idle_cpu_percent"` // each system's server CPU while no load ran
	Samples   []Sample           `json:"samples"`
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	reps := fs.Int("reps", 3, "runs of every workload on every system (the tables show medians)")
	duration := fs.Duration("duration", 5*time.Second, "measured time of each run")
	warmup := fs.Duration("warmup", time.Second, "unrecorded warmup of each run")
	only := fs.String("only", "", "comma-separated workload IDs or kinds to run (default: all)")
	binDir := fs.String("bin", "bin", "directory with carpkvctl, carpkv-agent, etcd and etcd-benchmark (etcd's own benchmark tool, bench/etcdtool)")
	work := fs.String("work", ".bench", "scratch directory for the clusters' data (on the disk under test)")
	doc := fs.String("doc", "docs/benchmarks.md", "markdown to write the results into (between its results markers)")
	plots := fs.String("plots", "docs/bench", "directory for the PNG plots")
	resultsPath := fs.String("results", "", "also write the raw results as JSON here (default: WORK/results.json)")
	from := fs.String("from", "", "render the doc from an earlier results JSON instead of measuring")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from != "" {
		res, err := readResults[Results](*from)
		if err != nil {
			return err
		}
		return render(res, *doc, *plots)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bin, err := filepath.Abs(*binDir)
	if err != nil {
		return err
	}
	toolBin := filepath.Join(bin, "etcd-benchmark")
	if _, err := os.Stat(toolBin); err != nil {
		return fmt.Errorf("etcd's benchmark tool: %w (make bench-tools builds it from bench/etcdtool)", err)
	}
	selected := selectWorkloads(*only)
	if len(selected) == 0 {
		return fmt.Errorf("-only %q matches no workload", *only)
	}
	if err := os.RemoveAll(*work); err != nil {
		return err
	}
	if err := os.MkdirAll(*work, 0o755); err != nil {
		return err
	}
	workAbs, _ := filepath.Abs(*work)
	res := &Results{
		Started: time.Now().UTC(), Command: "bench-compare run " + strings.Join(args, " "),
		Machine: machine(), Reps: *reps, Duration: *duration, Warmup: *warmup,
		Keys: 10000, KeySize: 16, ValueSize: 256,
		Systems: map[string]string{}, Workloads: selected, Idle: map[string]float64{},
	}
	logf("measuring the floor: fsync in %s, loopback round trip", workAbs)
	if res.Floor, err = measureFloor(workAbs, self); err != nil {
		return err
	}
	logf("  fsync p50 %v (%.0f/s), loopback RTT p50 %v", res.Floor.FsyncP50, res.Floor.FsyncPerS, res.Floor.RTTP50)

	var systems []*system
	defer func() {
		for _, s := range systems {
			s.stop()
		}
	}()
	logf("starting etcd (3 members)")
	es, tool, err := etcdSystems(self, filepath.Join(bin, "etcd"), toolBin, filepath.Join(workAbs, "etcd"))
	if err != nil {
		return err
	}
	systems = append(systems, es)
	res.Systems[tool.Key] = tool.Name
	for _, g := range []int{1, 3} {
		logf("starting carpkv (%d group(s) × 3 agents)", g)
		cs, err := startCarpkv(bin, filepath.Join(workAbs, fmt.Sprintf("carpkv-%dg", g)), g)
		if err != nil {
			return err
		}
		systems = append(systems, cs)
	}
	for _, s := range systems {
		res.Systems[s.Key] = s.Name
		res.Order = append(res.Order, s.Key)
	}
	for _, s := range systems {
		if res.Idle[s.Key], err = idleCPU(s, 2*time.Second); err != nil {
			return err
		}
	}
	// Every key exists before anything reads it.
	for _, s := range systems {
		logf("preloading %d keys into %s", res.Keys, s.Name)
		if _, err := runLoad(s, preloadArgs(res.Keys, res.KeySize, res.ValueSize)); err != nil {
			return fmt.Errorf("preload %s: %w", s.Name, err)
		}
	}
	total := *reps * len(selected) * len(systems)
	for _, w := range selected {
		if toolRuns(w) {
			total += *reps
		}
	}
	done := 0
	// etcd's last throughput in each workload, under either client: how
	// many requests the tool is given to run about as long as the others.
	lastEtcd := map[string]float64{}
	record := func(smp *Sample, w workload, rep int, name string) {
		smp.Workload, smp.Rep = w.ID, rep
		res.Samples = append(res.Samples, *smp)
		if smp.System == "etcd" || smp.System == toolKey {
			lastEtcd[w.ID] = smp.Report.OpsPerSec
		}
		done++
		logf("[%3d/%d] rep %d %-15s %-18s %9.0f ops/s  p50 %-9v p99 %-9v errors %d  cpu %.3f s/1000 ops (client %.3f)",
			done, total, rep, w.ID, name, smp.Report.OpsPerSec, smp.Report.Latency.P50.Round(time.Microsecond),
			smp.Report.Latency.P99.Round(time.Microsecond), smp.Report.Errors, smp.CPUPer1000(), smp.ClientCPUPer1000())
	}
	for rep := 1; rep <= *reps; rep++ {
		for wi, w := range selected {
			// Rotate who goes first, so no system always runs right after
			// the same other one.
			for k := range systems {
				s := systems[(k+wi+rep)%len(systems)]
				a := append(loadArgs(w, res.Keys, res.KeySize, res.ValueSize), "--duration", duration.String(), "--warmup", warmup.String())
				// etcd's turn runs both its clients back to back, each
				// going first in every other repetition (the driver in
				// the first, which sizes the tool's run).
				runs := []*system{s}
				if s == es && toolRuns(w) {
					runs = []*system{es, tool}
					if rep%2 == 0 {
						runs = []*system{tool, es}
					}
				}
				for _, r := range runs {
					var smp *Sample
					var err error
					if r == tool {
						expect, ok := lastEtcd[w.ID]
						if !ok {
							expect = 1000
						}
						smp, err = runTool(tool, w, res, expect, *duration)
					} else {
						smp, err = runLoad(r, a)
					}
					if err != nil {
						return fmt.Errorf("%s on %s: %w", w.ID, r.Name, err)
					}
					name := r.Name
					if r == tool {
						name = "etcd (etcd's tool)"
					}
					record(smp, w, rep, name)
				}
			}
		}
	}
	res.Took = time.Since(res.Started)
	out := *resultsPath
	if out == "" {
		out = filepath.Join(*work, "results.json")
	}
	b, _ := json.MarshalIndent(res, "", " ")
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return err
	}
	logf("raw results in %s", out)
	return render(res, *doc, *plots)
}

// loadArgs are carpkvctl bench's (and etcd-load's) flags for workload w
// on keys keys of keySize bytes with values of valueSize bytes; the run's
// length is added by the caller.
func loadArgs(w workload, keys, keySize, valueSize int) []string {
	a := []string{"--mix", w.Mix, "--concurrency", fmt.Sprint(w.Concurrency), "--keys", fmt.Sprint(keys),
		"--key-size", fmt.Sprint(keySize), "--value-size", fmt.Sprint(valueSize), "--seed", "1"}
	if w.Stale {
		a = append(a, "--stale")
	}
	if w.Rate > 0 {
		a = append(a, "--rate", fmt.Sprint(w.Rate))
	}
	return a
}

// preloadArgs write every one of keys keys once, with 100 clients.
func preloadArgs(keys, keySize, valueSize int) []string {
	return append(loadArgs(workload{Mix: "put=100", Concurrency: 100}, keys, keySize, valueSize),
		"--preload", "--duration", "100ms", "--warmup", "0s")
}

// runLoad runs one client against s and measures the servers' CPU meanwhile.
func runLoad(s *system, args []string) (*Sample, error) {
	cmd := s.load(args)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cpu0, err := cpuTime(s.pids())
	if err != nil {
		return nil, err
	}
	disk0, err := diskWritten(s.pids())
	if err != nil {
		return nil, err
	}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%v: %v\n%s", cmd.Args, err, stderr.String())
	}
	cpu1, err := cpuTime(s.pids())
	if err != nil {
		return nil, err
	}
	disk1, err := diskWritten(s.pids())
	if err != nil {
		return nil, err
	}
	var rep loadgen.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("report of %v: %v\n%s", cmd.Args, err, stdout.String())
	}
	return &Sample{
		System: s.Key, Report: &rep, ServerCPU: cpu1 - cpu0, DiskWritten: disk1 - disk0,
		ClientCPU: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
	}, nil
}

// runTool runs etcd's benchmark tool on workload w, sized to run about d
// at expect operations per second, and measures the servers' CPU meanwhile.
func runTool(s *system, w workload, res *Results, expect float64, d time.Duration) (*Sample, error) {
	cmd := s.tool(w, res.Keys, res.KeySize, res.ValueSize, expect, d)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cpu0, err := cpuTime(s.pids())
	if err != nil {
		return nil, err
	}
	disk0, err := diskWritten(s.pids())
	if err != nil {
		return nil, err
	}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%v: %v\n%s", cmd.Args, err, stderr.String())
	}
	cpu1, err := cpuTime(s.pids())
	if err != nil {
		return nil, err
	}
	disk1, err := diskWritten(s.pids())
	if err != nil {
		return nil, err
	}
	rep, err := parseToolReport(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%v: %v", cmd.Args, err)
	}
	rep.Labels = map[string]string{"system": toolKey, "command": strings.Join(cmd.Args[1:], " ")}
	return &Sample{
		System: s.Key, Report: rep, ServerCPU: cpu1 - cpu0, DiskWritten: disk1 - disk0,
		ClientCPU: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
	}, nil
}

// idleCPU is s's server CPU use with no load, in percent of one core.
func idleCPU(s *system, d time.Duration) (float64, error) {
	c0, err := cpuTime(s.pids())
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	c1, err := cpuTime(s.pids())
	if err != nil {
		return 0, err
	}
	return 100 * (c1 - c0).Seconds() / d.Seconds(), nil
}

func selectWorkloads(only string) []workload {
	if only == "" {
		return workloads
	}
	want := map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		want[strings.TrimSpace(s)] = true
	}
	var out []workload
	for _, w := range workloads {
		if want[w.ID] || want[w.Kind] {
			out = append(out, w)
		}
	}
	return out
}

func machine() map[string]string {
	m := map[string]string{"cpus": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version(), "os": runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	return m
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
