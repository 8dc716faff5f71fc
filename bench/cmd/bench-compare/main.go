// Command bench-compare measures carpkv against etcd on this machine, in
// one run: the same load generator (internal/loadgen) drives a carpkv
// cluster of one group, one of three groups, and a 3-member etcd cluster,
// all on loopback with fsync on, alternating between them workload by
// workload so that the machine's noise hits all of them. It records
// throughput, latency, errors and the CPU time of every server process,
// measures the machine's physical floor (fsync, loopback round trip), and
// writes docs/benchmarks.md and its plots. `make bench-compare` runs it.
//
//	bench-compare run [flags]       the whole comparison
//	bench-compare stores [flags]    carpkv's two Raft log stores side by side (make bench-logstore)
//	bench-compare bulk [flags]      MultiPut and MultiGet of a million keys on 3 × 3 (make bench-bulk)
//	bench-compare etcd-load [flags] one loadgen run against etcd, a JSON report on stdout
//	bench-compare echo              a loopback echo server (for the round-trip floor)
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "stores":
		err = storesCmd(os.Args[2:])
	case "bulk":
		err = bulkCmd(os.Args[2:])
	case "etcd-load":
		err = etcdLoadCmd(os.Args[2:])
	case "echo":
		err = echoCmd()
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "bench-compare: unknown command %q\n", os.Args[1])
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-compare:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  bench-compare run [-reps 3] [-duration 5s] [-only writes,reads,...] [-bin bin] [-work .bench] [-doc docs/benchmarks.md] [-plots docs/bench]
  bench-compare stores [-reps 3] [-duration 5s] [-burst 200000] [-bin bin] [-work .bench/stores] [-doc docs/benchmarks.md] [-json docs/bench/logstores.json]
  bench-compare bulk [-keys 1000000] [-call 100000] [-reps 3] [-single 50000] [-bin bin] [-work .bench/bulk] [-doc docs/benchmarks.md] [-json docs/bench/bulk.json]
  bench-compare etcd-load -endpoints A,B,C [loadgen flags]   (used by run)
  bench-compare echo                                           (used by run)
Run "bench-compare run -h" for the flags.
`)
	os.Exit(2)
}
