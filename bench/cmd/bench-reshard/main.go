// Command bench-reshard measures a ring change under load (issue 11): a
// fresh local cluster of 3 groups × 3 agents (carpkvctl local up) holding
// -keys keys of 256-byte values (MultiPut), a closed-loop load of
// -clients clients, 90% linearizable reads and 10% writes, through
// kvclient for the whole run; after a steady period `carpkvctl local
// add-group` adds g4, then `carpkvctl local remove-group` removes -remove.
// It records every operation (when it was sent, when it returned, its key
// and its outcome) and the phases of each change, then reports per change:
// keys moved against the ideal and where they went, failed operations and
// unknown outcomes, the longest time a key was unavailable, p99 during the
// change against the 10 s before it, and the migration rate. It writes
// the results as JSON, a plot of throughput and p99 over time with each
// change's start and end, and its section of docs/benchmarks.md.
// `make bench-reshard` runs it.
//
//	bench-reshard run [flags]       the whole benchmark
//	bench-reshard render [flags]    the page and the plot again, from -json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "render":
		err = renderCmd(os.Args[2:])
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "bench-reshard: unknown command %q\n", os.Args[1])
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-reshard:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  bench-reshard run [-keys 1000000] [-clients 100] [-steady 30s] [-remove g1] [-bin bin] [-work .bench/reshard] [-doc docs/benchmarks.md] [-plot docs/bench/reshard.png] [-json docs/bench/reshard.json]
  bench-reshard render [-json docs/bench/reshard.json] [-ops .bench/reshard/ops.bin] [-doc ...] [-plot ...]
Run "bench-reshard run -h" for the flags.
`)
	os.Exit(2)
}

type outputs struct{ doc, plot, json string }

func outputFlags(fs *flag.FlagSet) *outputs {
	o := &outputs{}
	fs.StringVar(&o.doc, "doc", "docs/benchmarks.md", "markdown page whose bench-reshard section is rewritten (empty: none)")
	fs.StringVar(&o.plot, "plot", "docs/bench/reshard.png", "PNG plot of throughput and p99 over time (empty: none)")
	fs.StringVar(&o.json, "json", "docs/bench/reshard.json", "results as JSON")
	return o
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var o options
	fs.StringVar(&o.Bin, "bin", "bin", "directory of carpkvctl and carpkv-agent")
	fs.StringVar(&o.Work, "work", ".bench/reshard", "working directory: the cluster, carpkvctl's logs")
	fs.IntVar(&o.Keys, "keys", 1_000_000, "keys loaded before the load begins")
	fs.IntVar(&o.KeySize, "key-size", 16, "key length in bytes")
	fs.IntVar(&o.ValueSize, "value-size", 256, "value length in bytes")
	fs.IntVar(&o.Clients, "clients", 100, "concurrent clients of the load, one operation in flight each")
	fs.IntVar(&o.PutPct, "put-pct", 10, "percentage of writes; the rest are linearizable reads")
	fs.IntVar(&o.LoadBatch, "load-batch", 20000, "keys per MultiPut while loading")
	fs.IntVar(&o.LoadConc, "load-concurrency", 64, "keys per group in flight in a MultiPut (kvclient BatchConcurrency)")
	fs.DurationVar(&o.Steady, "steady", 30*time.Second, "steady load before the add, between the changes and after the remove")
	fs.StringVar(&o.Remove, "remove", "g1", "group to remove after the add")
	fs.DurationVar(&o.OpTimeout, "op-timeout", 10*time.Second, "deadline of each operation")
	fs.DurationVar(&o.Threshold, "threshold", 100*time.Millisecond, "an operation this slow counts as its key being unavailable")
	fs.BoolVar(&o.Verify, "verify", true, "read every key back at the end")
	fs.BoolVar(&o.Keep, "keep", false, "leave the cluster running at the end (default: local down --purge)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the clients' key and op sequences")
	out := outputFlags(fs)
	_ = fs.Parse(args)
	o.Via, o.Command = commandLine()
	if o.Keys < 1 || o.Clients < 1 || o.PutPct < 0 || o.PutPct > 100 || o.LoadBatch < 1 || o.LoadConc < 1 {
		return fmt.Errorf("-keys, -clients, -load-batch and -load-concurrency must be at least 1 and -put-pct within 0..100")
	}
	res, runErr := run(o)
	if res == nil {
		return runErr
	}
	if err := emit(res, out); err != nil {
		return err
	}
	return runErr
}

func renderCmd(args []string) error {
	fs := flag.NewFlagSet("render", flag.ExitOnError)
	out := outputFlags(fs)
	opsPath := fs.String("ops", "", "analyse again from the operations a run kept (e.g. .bench/reshard/ops.bin)")
	_ = fs.Parse(args)
	b, err := os.ReadFile(out.json)
	if err != nil {
		return err
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", out.json, err)
	}
	if *opsPath == "" {
		out.json = "" // do not rewrite what we read
		return emit(&res, out)
	}
	ops, err := loadOps(*opsPath)
	if err != nil {
		return err
	}
	for _, ch := range res.Changes {
		if ch.Record != nil {
			// Runs before the fix of fixTimes kept a bad end.
			if ch.Record.FinishedAt == 0 {
				if t0, ok := loadStart(ch); ok {
					ch.fixTimes(t0)
				}
			}
			ch.Minimal, ch.moving, ch.Share = minimalMove(*ch.Record, res.Keys, res.KeySize)
		}
	}
	res.Summaries = nil
	analyse(&res, ops)
	return emit(&res, out)
}

func emit(res *Results, out *outputs) error {
	if out.json != "" {
		if err := writeJSON(out.json, res); err != nil {
			return err
		}
	}
	rel := ""
	if out.plot != "" {
		if err := drawPlot(res, out.plot); err != nil {
			logf("no plot: %v", err)
		} else if out.doc != "" {
			r, err := filepath.Rel(filepath.Dir(out.doc), out.plot)
			if err != nil {
				r = out.plot
			}
			rel = r
		}
	}
	if out.doc != "" {
		return writeBetweenMarkers(out.doc, section(res, rel))
	}
	fmt.Println(section(res, rel))
	return nil
}

// commandLine is how the run was started, for the report: make's
// command line when the Makefile says so (BENCH_RESHARD_VIA), and the
// arguments.
func commandLine() (via, args string) {
	return os.Getenv("BENCH_RESHARD_VIA"), "bench-reshard " + strings.Join(os.Args[1:], " ")
}

// loadStart recovers when the load began from a change whose record has
// a start time.
func loadStart(ch *change) (time.Time, bool) {
	if ch.Record == nil || ch.Record.StartedAt == 0 {
		return time.Time{}, false
	}
	for _, p := range ch.Phases {
		if p.Name == "prepare" {
			return time.UnixMilli(ch.Record.StartedAt).Add(-p.At), true
		}
	}
	return time.Time{}, false
}
