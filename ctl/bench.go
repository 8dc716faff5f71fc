package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/carpkv/carpkv/internal/loadgen"
	"github.com/carpkv/carpkv/kvclient"
)

// bench: the workload, its timing and its numbers live in internal/loadgen;
// this file is the command line, the kvclient adapter and the output.

func (e *env) benchCommand() *cli.Command {
	d := loadgen.DefaultConfig()
	return &cli.Command{
		Name:      "bench",
		Usage:     "load the cluster with a workload and report throughput, errors and latency",
		UsageText: "carpkvctl bench [--mix put=50,get=50] [--duration 10s | --ops N] [--rate OPS/S] [options]",
		Description: `Runs --concurrency workers, each one goroutine sharing one client, that send
a mix of operations on a key space for --duration (or --ops operations)
after a --warmup that is not recorded, then prints the throughput, the count
of each outcome per operation, errors by class, and latency percentiles
(p50, p90, p99, p99.9, max) overall and per operation.

Operations (--mix, whole percentages summing to 100):
   put     write a --value-size value
   get     read (linearizable; --stale: any member's copy)
   cas     compare-and-swap against the version the benchmark last saw for
           the key (from its own answers); one request per operation
   delete  delete the key
Keys are "k" and the key number, zero-padded to --key-size bytes
("k000000000000042"), drawn --dist uniform or zipf (key 0 hottest).

Outcomes: not_found is normal for get and delete, cas_failed for cas; errors
are counted by class: unavailable (nothing applied), timeout (no answer in
time: a write's outcome is unknown) and other. --timeout bounds each
operation here, not the whole command. Latency covers every operation,
errors included.

Closed loop (default): a worker sends its next operation when the previous
one ends; latency runs from the send. Open loop (--rate): operations are due
at fixed intervals whatever the cluster does, and latency runs from when each
was due, so a stall counts for every operation it delays (no coordinated
omission). Operations still waiting for a worker when the time is up are
reported as missed: the cluster cannot keep up with --rate, or --concurrency
is too low for its latency (about rate × latency workers are busy at once).

A progress line is shown on stderr when it is a terminal (or with
--progress), never with --output json. Ctrl-C stops early and prints what was
measured.

Examples:
   carpkvctl bench --mix put=100 --concurrency 64 --duration 10s
   carpkvctl bench --mix get=90,put=10 --preload --dist zipf
   carpkvctl bench --mix put=50,get=50 --rate 2000 --duration 30s -o json`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "mix", Value: "put=50,get=50", Usage: "operation `MIX`: op=percent for put, get, cas, delete, summing to 100"},
			&cli.IntFlag{Name: "keys", Value: d.Keys, Usage: "key space size `N`"},
			&cli.IntFlag{Name: "key-size", Value: d.KeySize, Usage: "key length in `BYTES`"},
			&cli.IntFlag{Name: "value-size", Value: d.ValueSize, Usage: "value length in `BYTES`"},
			&cli.StringFlag{Name: "dist", Value: string(d.Dist), Usage: "key distribution: uniform or zipf"},
			&cli.Float64Flag{Name: "zipf-s", Value: d.ZipfS, Usage: "Zipf exponent `S` (> 1; higher is more skewed)"},
			&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Value: d.Concurrency, Usage: "`N` workers, one operation in flight each"},
			&cli.DurationFlag{Name: "duration", Value: d.Duration, Usage: "measured time, after the warmup"},
			&cli.Int64Flag{Name: "ops", Usage: "stop after `N` measured operations (instead of --duration, unless that is given too)"},
			&cli.Float64Flag{Name: "rate", Usage: "open loop: `OPS/S` due over all workers (0: closed loop)"},
			&cli.StringFlag{Name: "transport", Value: kvclient.TransportStream, Usage: "how operations travel: stream (binary, many in flight per connection) or http (one HTTP/1.1 request each)"},
			&cli.BoolFlag{Name: "stale", Usage: "stale reads (any member's copy) instead of linearizable ones"},
			&cli.BoolFlag{Name: "preload", Usage: "write every key once before the warmup"},
			&cli.DurationFlag{Name: "warmup", Value: d.Warmup, Usage: "run this long before measuring, unrecorded"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "`SEED` of the workers' op and key sequences"},
			&cli.BoolFlag{Name: "progress", Usage: "show the progress line even if stderr is not a terminal (never with -o json)"},
		},
		Action: e.bench,
	}
}

// benchFlags maps loadgen's Config fields to the flags that set them.
var benchFlags = map[string]string{
	"Mix": "--mix", "Keys": "--keys", "KeySize": "--key-size", "ValueSize": "--value-size",
	"Dist": "--dist", "ZipfS": "--zipf-s", "Concurrency": "--concurrency", "Duration": "--duration",
	"Ops": "--ops", "Rate": "--rate", "Warmup": "--warmup", "OpTimeout": "--timeout",
}

func benchUsage(format string, args ...any) error {
	return &usageError{msg: "bench: " + fmt.Sprintf(format, args...), cmd: "bench"}
}

// benchConfig turns the flags into a workload.
func benchConfig(c *cli.Context) (loadgen.Config, error) {
	cfg := loadgen.DefaultConfig()
	mix, err := loadgen.ParseMix(c.String("mix"))
	if err != nil {
		return cfg, benchUsage("--mix: %v", err)
	}
	dist, err := loadgen.ParseDist(c.String("dist"))
	if err != nil {
		return cfg, benchUsage("--dist: %v", err)
	}
	for _, f := range []string{"keys", "key-size", "value-size", "concurrency"} {
		if c.Int(f) < 1 {
			return cfg, benchUsage("--%s must be at least 1, not %d", f, c.Int(f))
		}
	}
	if c.IsSet("ops") && c.Int64("ops") < 1 {
		return cfg, benchUsage("--ops must be at least 1, not %d", c.Int64("ops"))
	}
	if c.IsSet("duration") && c.Duration("duration") <= 0 {
		return cfg, benchUsage("--duration must be positive, not %v", c.Duration("duration"))
	}
	cfg.Mix, cfg.Dist, cfg.ZipfS = mix, dist, c.Float64("zipf-s")
	cfg.Keys, cfg.KeySize, cfg.ValueSize = c.Int("keys"), c.Int("key-size"), c.Int("value-size")
	cfg.Concurrency, cfg.Rate, cfg.Seed = c.Int("concurrency"), c.Float64("rate"), c.Uint64("seed")
	cfg.Duration, cfg.Warmup, cfg.Preload = c.Duration("duration"), c.Duration("warmup"), c.Bool("preload")
	cfg.OpTimeout = c.Duration("timeout")
	if c.IsSet("ops") {
		cfg.Ops = c.Int64("ops")
		if !c.IsSet("duration") {
			cfg.Duration = 0
		}
	}
	cfg.Classify = classifyKV
	if err := cfg.Validate(); err != nil {
		var ce *loadgen.ConfigError
		if errors.As(err, &ce) {
			return cfg, benchUsage("%s: %s", benchFlags[ce.Field], ce.Msg)
		}
		return cfg, benchUsage("%v", err)
	}
	return cfg, nil
}

func (e *env) bench(c *cli.Context) error {
	if err := wantArgs(c, 0, 0, "no arguments"); err != nil {
		return err
	}
	cfg, err := benchConfig(c)
	if err != nil {
		return err
	}
	addrs, err := resolveAddrs(c)
	if err != nil {
		return err
	}
	switch t := c.String("transport"); t {
	case kvclient.TransportStream, kvclient.TransportHTTP:
	default:
		return benchUsage("--transport: %q is not stream or http", t)
	}
	kcfg := kvclient.Config{Addrs: addrs, MaxIdleConnsPerHost: max(kvclient.DefaultMaxIdleConnsPerHost, cfg.Concurrency), Transport: c.String("transport")}
	if c.Bool("verbose") {
		kcfg.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	client, err := kvclient.New(kcfg)
	if err != nil {
		return usageErrorf("--addr: %v", err)
	}
	defer client.Close()
	kv := newBenchKV(client, c.Bool("stale"))

	// Fail fast, with the usual exit code, if the cluster cannot serve.
	pctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	err = kv.Get(pctx, loadgen.AppendKey(nil, 0, cfg.KeySize))
	cancel()
	if err != nil && !errors.Is(err, kvclient.ErrNotFound) {
		return fmt.Errorf("bench: the cluster does not serve a first read: %w", err)
	}

	r, err := loadgen.NewRunner(cfg, kv)
	if err != nil {
		return benchUsage("%v", err)
	}
	var bar *progressBar
	if !e.json && (c.Bool("progress") || isTerminal(e.stderr)) {
		bar = startProgress(e.stderr, r)
	}
	res, runErr := r.Run(c.Context)
	if bar != nil {
		bar.stop()
	}

	rep := res.Report()
	rep.Labels = map[string]string{"system": "carpkv", "reads": "linearizable", "addrs": strings.Join(addrs, ",")}
	if c.Bool("stale") {
		rep.Labels["reads"] = "stale"
	}
	if e.json {
		err = writeJSON(e.stdout, rep)
	} else {
		err = printBench(e.stdout, res, rep)
	}
	if err != nil {
		return err
	}
	if runErr != nil || res.Interrupted {
		return errors.New("bench: interrupted; the results cover the run until then")
	}
	return nil
}

// classifyKV sorts kvclient's errors as the exit codes do (exit.go), so a
// bench error class and a command's exit code always agree.
func classifyKV(err error) loadgen.Class {
	switch exitCode(err) {
	case exitOK:
		return loadgen.OK
	case exitNotFound:
		return loadgen.NotFound
	case exitCASFailed:
		return loadgen.CASFailed
	case exitUnavailable:
		return loadgen.Unavailable
	case exitTimeout:
		return loadgen.Timeout
	}
	return loadgen.Other
}

// benchKV adapts a kvclient.Client to loadgen.KV. It remembers the last
// version it saw of each key, from every answer, so that a cas is one
// compare-and-swap against that version.
type benchKV struct {
	c        *kvclient.Client
	read     []kvclient.ReadOption
	versions loadgen.Versions
}

func newBenchKV(c *kvclient.Client, stale bool) *benchKV {
	kv := &benchKV{c: c}
	if stale {
		kv.read = []kvclient.ReadOption{kvclient.Stale()}
	}
	return kv
}

func (kv *benchKV) Put(ctx context.Context, key, value []byte) error {
	v, err := kv.c.Put(ctx, key, value)
	if err == nil {
		kv.versions.Set(key, v)
	}
	return err
}

func (kv *benchKV) Get(ctx context.Context, key []byte) error {
	v, err := kv.c.Get(ctx, key, kv.read...)
	switch {
	case err == nil:
		kv.versions.Set(key, v.Version)
	case errors.Is(err, kvclient.ErrNotFound):
		kv.versions.Set(key, 0)
	}
	return err
}

func (kv *benchKV) CAS(ctx context.Context, key, value []byte) error {
	v, err := kv.c.CompareAndSwap(ctx, key, value, kv.versions.Get(key))
	var ce *kvclient.CASError
	switch {
	case err == nil:
		kv.versions.Set(key, v)
	case errors.As(err, &ce):
		kv.versions.Set(key, ce.Current)
	}
	return err
}

func (kv *benchKV) Delete(ctx context.Context, key []byte) error {
	_, err := kv.c.Delete(ctx, key)
	if err == nil || errors.Is(err, kvclient.ErrNotFound) {
		kv.versions.Set(key, 0)
	}
	return err
}

// printBench writes the result as a summary and a table per operation.
func printBench(w io.Writer, res *loadgen.Result, rep *loadgen.Report) error {
	cfg := res.Config
	dist := string(cfg.Dist)
	if cfg.Dist == loadgen.Zipf {
		dist = fmt.Sprintf("zipf s=%g", cfg.ZipfS)
	}
	loop := "closed loop"
	if cfg.Rate > 0 {
		loop = fmt.Sprintf("open loop at %g ops/s", cfg.Rate)
	}
	var span []string
	if cfg.Duration > 0 {
		span = append(span, cfg.Duration.String())
	}
	if cfg.Ops > 0 {
		span = append(span, fmt.Sprintf("%d ops", cfg.Ops))
	}
	fmt.Fprintf(w, "workload  %s; %d keys (%s), %d B keys, %d B values, %s reads\n",
		cfg.Mix, cfg.Keys, dist, cfg.KeySize, cfg.ValueSize, rep.Labels["reads"])
	fmt.Fprintf(w, "load      %d workers, %s, %s measured after %v warmup, seed %d\n",
		cfg.Concurrency, loop, strings.Join(span, " or "), cfg.Warmup, cfg.Seed)
	if p := rep.Preload; p != nil {
		fmt.Fprintf(w, "preload   %d keys in %v, %d errors\n", p.Keys, p.Elapsed.Round(time.Millisecond), p.Errors)
	}
	fmt.Fprintf(w, "result    %d ops in %v: %.1f ops/s, %d errors\n",
		rep.Ops, rep.Elapsed.Round(time.Millisecond), rep.OpsPerSec, rep.Errors)
	fmt.Fprintf(w, "errors    unavailable %d, timeout (outcome unknown) %d, other %d",
		rep.ErrorClasses["unavailable"], rep.ErrorClasses["timeout"], rep.ErrorClasses["other"])
	if n := rep.ErrorClasses["not_found"] + rep.ErrorClasses["cas_failed"]; n > 0 {
		fmt.Fprintf(w, ", not_found/cas_failed where not expected %d", n)
	}
	fmt.Fprintln(w)
	for _, c := range loadgen.Classes() {
		if s := rep.ErrorSamples[c.String()]; s != "" {
			fmt.Fprintf(w, "  first %s: %s\n", c, strings.TrimPrefix(s, "kvclient: "))
		}
	}
	if ol := rep.OpenLoop; ol != nil {
		fmt.Fprintf(w, "schedule  %d due, %d started, %d missed; start lag p50 %s p99 %s max %s\n",
			ol.Due, ol.Started, ol.Missed, fmtLatency(ol.StartLag.P50), fmtLatency(ol.StartLag.P99), fmtLatency(ol.StartLag.Max))
		if ol.Missed > 0 {
			fmt.Fprintln(w, "          behind the rate: the cluster is slower than --rate, or --concurrency is too low for its latency")
		}
	}
	if res.Interrupted {
		fmt.Fprintln(w, "          INTERRUPTED: the numbers cover the run until then")
	}
	fmt.Fprintln(w)

	var rows [][]string
	var allOK, allNF, allCF int64 // normal outcomes over every op
	for _, op := range loadgen.Ops() {
		or, ok := rep.ByOp[op.String()]
		if !ok {
			continue
		}
		nf, cf := "", ""
		if !loadgen.IsError(op, loadgen.NotFound) {
			nf = fmt.Sprint(or.Outcomes["not_found"])
			allNF += or.Outcomes["not_found"]
		}
		if !loadgen.IsError(op, loadgen.CASFailed) {
			cf = fmt.Sprint(or.Outcomes["cas_failed"])
			allCF += or.Outcomes["cas_failed"]
		}
		allOK += or.Outcomes["ok"]
		rows = append(rows, benchRow(op.String(), or.Ops, or.OpsPerSec, fmt.Sprint(or.Outcomes["ok"]), nf, cf, or.Errors, or.Latency))
	}
	rows = append(rows, benchRow("all", rep.Ops, rep.OpsPerSec, fmt.Sprint(allOK), fmt.Sprint(allNF), fmt.Sprint(allCF), rep.Errors, rep.Latency))
	return writeTable(w, []string{"OP", "OPS", "OPS/S", "OK", "NOT_FOUND", "CAS_FAILED", "ERRORS", "P50", "P90", "P99", "P99.9", "MAX"}, rows)
}

func benchRow(name string, ops int64, rate float64, ok, nf, cf string, errs int64, l loadgen.Summary) []string {
	return []string{name, fmt.Sprint(ops), fmt.Sprintf("%.1f", rate), ok, nf, cf, fmt.Sprint(errs),
		fmtLatency(l.P50), fmtLatency(l.P90), fmtLatency(l.P99), fmtLatency(l.P999), fmtLatency(l.Max)}
}

// fmtLatency shows three significant digits or so: 87.2µs, 1.23ms, 2.05s.
func fmtLatency(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < 100*time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar redraws one line on w about four times a second.
type progressBar struct {
	w    io.Writer
	r    *loadgen.Runner
	quit chan struct{}
	done chan struct{}

	last      loadgen.Progress
	lastAt    time.Time
	rate      float64
	lastPhase loadgen.Phase
}

func startProgress(w io.Writer, r *loadgen.Runner) *progressBar {
	b := &progressBar{w: w, r: r, quit: make(chan struct{}), done: make(chan struct{}), lastAt: time.Now()}
	go b.loop()
	return b
}

func (b *progressBar) loop() {
	defer close(b.done)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.draw(b.r.Progress(), time.Now())
		case <-b.quit:
			return
		}
	}
}

// stop ends the redraws and leaves a final line.
func (b *progressBar) stop() {
	close(b.quit)
	<-b.done
	p := b.r.Progress()
	fmt.Fprintf(b.w, "\r\x1b[Kdone: %d ops, %d errors\n", p.Done, p.Errors)
}

func (b *progressBar) draw(p loadgen.Progress, now time.Time) {
	if p.Phase == loadgen.PhaseIdle {
		return
	}
	if p.Phase != b.lastPhase {
		b.last, b.lastAt, b.rate, b.lastPhase = loadgen.Progress{}, now.Add(-p.Elapsed), 0, p.Phase
	}
	if dt := now.Sub(b.lastAt).Seconds(); dt > 0 {
		b.rate = float64(p.Done-b.last.Done) / dt
	}
	b.last, b.lastAt = p, now

	var frac float64
	var where string
	switch {
	case p.Target > 0 && (p.Total == 0 || float64(p.Done)/float64(p.Target) > p.Elapsed.Seconds()/p.Total.Seconds()):
		frac = float64(p.Done) / float64(p.Target)
		where = fmt.Sprintf("%d/%d ops, %v", p.Done, p.Target, p.Elapsed.Round(100*time.Millisecond))
	case p.Total > 0:
		frac = p.Elapsed.Seconds() / p.Total.Seconds()
		where = fmt.Sprintf("%v/%v, %d ops", p.Elapsed.Round(100*time.Millisecond), p.Total, p.Done)
	default:
		where = fmt.Sprintf("%v, %d ops", p.Elapsed.Round(100*time.Millisecond), p.Done)
	}
	const width = 24
	filled := min(max(int(frac*width), 0), width)
	line := fmt.Sprintf("%-7s [%s%s] %s, %.0f ops/s, %d errors",
		p.Phase, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), where, b.rate, p.Errors)
	if p.Backlog > 0 {
		line += fmt.Sprintf(", %d behind schedule", p.Backlog)
	}
	fmt.Fprintf(b.w, "\r\x1b[K%s", line)
}
