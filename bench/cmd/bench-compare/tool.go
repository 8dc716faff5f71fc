package main

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/carpkv/carpkv/internal/loadgen"
)

// toolKey is the results key of etcd driven by etcd's own benchmark tool
// (go.etcd.io/etcd/v3/tools/benchmark, built by bench/etcdtool). It runs
// on the same cluster as "etcd", right before or after our driver, on the
// workloads the tool has: closed-loop puts, linearizable and serializable
// ranges. The tables take, workload by workload, whichever of the two got
// more out of etcd (etcdCell), so that carpkv is never compared with an
// etcd driven less hard than by its own tool; the page also shows the two
// side by side (driverCheck).
const toolKey = "etcd-tool"

// driverTolerance is how far below the tool our driver may fall before
// the page says it does not match.
const driverTolerance = 0.05

// toolRuns says whether the tool has a counterpart of w.
func toolRuns(w workload) bool {
	return w.Rate == 0 && (w.Kind == "writes" || w.Kind == "reads" || w.Kind == "stale")
}

// toolConns is the number of gRPC connections of both etcd clients: one per
// 10 workers, at most 100 (etcd-load's default; etcd's benchmark docs run
// 1000 clients on 100 connections).
func toolConns(concurrency int) int { return min(max(concurrency/10, 1), 100) }

// toolArgs is the tool's command line for w against endpoints, sized to
// run about d at expect operations per second: the tool runs a number of
// requests, not a duration.
func toolArgs(w workload, endpoints string, keys, keySize, valueSize int, expect float64, d time.Duration) []string {
	total := max(int(expect*d.Seconds()), 20*w.Concurrency, 1000)
	a := []string{"--endpoints", endpoints, "--precise",
		"--conns", fmt.Sprint(toolConns(w.Concurrency)), "--clients", fmt.Sprint(w.Concurrency)}
	if w.Kind == "writes" {
		// Keys: a varint of a uniform index in [0, keys) in a keySize
		// buffer; one random value of valueSize bytes.
		return append(a, "put", "--key-size", fmt.Sprint(keySize), "--val-size", fmt.Sprint(valueSize),
			"--key-space-size", fmt.Sprint(keys), "--total", fmt.Sprint(total))
	}
	// The tool reads one key over and over: one of those the preload
	// wrote (valueSize bytes).
	consistency := "l"
	if w.Stale {
		consistency = "s"
	}
	key := string(loadgen.AppendKey(nil, keys/2, keySize))
	return append(a, "range", key, "--consistency", consistency, "--total", fmt.Sprint(total))
}

// parseToolReport reads the tool's summary (etcd's pkg/report: "Total:",
// "Requests/sec:", the latency percentiles, the error distribution) into
// a loadgen report. Its latency CDF has the tool's eight percentiles.
func parseToolReport(out []byte) (*loadgen.Report, error) {
	rep := &loadgen.Report{ErrorClasses: map[string]int64{}}
	var haveRate bool
	inErrors := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "Error distribution:"):
			inErrors = true
		case inErrors && strings.HasPrefix(l, "["):
			// "[count]\terror"
			n, err := strconv.ParseInt(strings.TrimPrefix(l[:strings.IndexByte(l, ']')], "["), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("tool error line %q: %v", l, err)
			}
			rep.Errors += n
			if rep.ErrorSamples == nil {
				rep.ErrorSamples = map[string]string{"other": strings.TrimSpace(l[strings.IndexByte(l, ']')+1:])}
			}
		case strings.HasPrefix(l, "Total:"):
			d, err := toolSeconds(strings.TrimPrefix(l, "Total:"))
			if err != nil {
				return nil, err
			}
			rep.Elapsed = d
		case strings.HasPrefix(l, "Average:"):
			d, err := toolSeconds(strings.TrimPrefix(l, "Average:"))
			if err != nil {
				return nil, err
			}
			rep.Latency.Mean = d
		case strings.HasPrefix(l, "Requests/sec:"):
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(l, "Requests/sec:")), 64)
			if err != nil {
				return nil, fmt.Errorf("tool line %q: %v", l, err)
			}
			rep.OpsPerSec, haveRate = v, true
		case strings.Contains(l, "% in "):
			// "99.9% in 0.0123 secs."
			pct, rest, _ := strings.Cut(l, "% in ")
			q, err := strconv.ParseFloat(pct, 64)
			if err != nil {
				return nil, fmt.Errorf("tool line %q: %v", l, err)
			}
			d, err := toolSeconds(rest)
			if err != nil {
				return nil, err
			}
			rep.LatencyCDF = append(rep.LatencyCDF, loadgen.CDFPoint{Q: math.Round(q*10) / 1000, Latency: d})
			switch q {
			case 50:
				rep.Latency.P50 = d
			case 90:
				rep.Latency.P90 = d
			case 99:
				rep.Latency.P99 = d
			case 99.9:
				rep.Latency.P999 = d
			}
		}
	}
	if !haveRate || rep.Elapsed <= 0 {
		return nil, fmt.Errorf("no summary in the tool's output:\n%s", out)
	}
	rep.Ops = int64(rep.OpsPerSec*rep.Elapsed.Seconds() + 0.5)
	rep.Latency.Count = uint64(rep.Ops)
	if rep.Errors > 0 {
		rep.ErrorClasses["other"] = rep.Errors
	}
	return rep, nil
}

// toolSeconds parses the tool's "0.0012 secs." into a duration.
func toolSeconds(s string) (time.Duration, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "secs")), 64)
	if err != nil {
		return 0, fmt.Errorf("tool duration %q: %v", s, err)
	}
	return time.Duration(v * float64(time.Second)), nil
}

// toolSystem drives cluster c with the tool at bin.
func toolSystem(bin string, c *etcdCluster, name string) *system {
	eps := strings.Join(c.endpoints, ",")
	return &system{
		Key: toolKey, Name: name, pids: c.pids,
		tool: func(w workload, keys, keySize, valueSize int, expect float64, d time.Duration) *exec.Cmd {
			return exec.Command(bin, toolArgs(w, eps, keys, keySize, valueSize, expect, d)...)
		},
		stop: func() {},
	}
}

// toolVersion names the tool's module version and the etcd client it was
// built with, from the binary's build information.
func toolVersion(bin string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "?"
	}
	var tool, client string
	for _, d := range bi.Deps {
		v := d.Version
		if d.Replace != nil {
			v = d.Replace.Version
		}
		switch d.Path {
		case "go.etcd.io/etcd/v3":
			tool = v
		case "go.etcd.io/etcd/client/v3":
			client = v
		}
	}
	return fmt.Sprintf("tools/benchmark %s, client %s", tool, client)
}
