package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/carpkv/carpkv/bench/etcdkv"
	"github.com/carpkv/carpkv/ctl/localcluster"
	"github.com/carpkv/carpkv/internal/loadgen"
)

// etcdCluster is three etcd members on loopback, each its own process with
// its own data directory, with etcd's defaults (fsync on every commit,
// 100 ms heartbeat, 1 s election timeout), as a user would run it.
type etcdCluster struct {
	procs     []*exec.Cmd
	endpoints []string
	logs      []*os.File
}

func startEtcd(bin, dir string) (*etcdCluster, error) {
	ports, err := localcluster.FreePorts(6)
	if err != nil {
		return nil, err
	}
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i+1, ports[3+i]))
	}
	c := &etcdCluster{}
	for i := range 3 {
		name := fmt.Sprintf("m%d", i+1)
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[i])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[3+i])
		data := filepath.Join(dir, name)
		if err := os.MkdirAll(data, 0o700); err != nil {
			return nil, err
		}
		log, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin,
			"--name", name, "--data-dir", data,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", "bench-compare",
			"--log-level", "warn")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			c.stop()
			return nil, fmt.Errorf("starting etcd: %w", err)
		}
		c.procs = append(c.procs, cmd)
		c.logs = append(c.logs, log)
		c.endpoints = append(c.endpoints, strings.TrimPrefix(client, "http://"))
	}
	if err := c.waitReady(60 * time.Second); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// waitReady polls until a write through the cluster succeeds.
func (c *etcdCluster) waitReady(timeout time.Duration) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = cli.Put(ctx, "bench-compare/ready", "1")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd not ready after %v: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *etcdCluster) pids() []int {
	var out []int
	for _, p := range c.procs {
		out = append(out, p.Process.Pid)
	}
	return out
}

func (c *etcdCluster) stop() {
	for _, p := range c.procs {
		_ = p.Process.Signal(os.Interrupt)
	}
	for _, p := range c.procs {
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	for _, l := range c.logs {
		l.Close()
	}
}

// etcdLoadCmd runs one loadgen workload against etcd and prints the
// report as JSON: the counterpart of `carpkvctl bench -o json`, with the
// same workload flags.
func etcdLoadCmd(args []string) error {
	fs := flag.NewFlagSet("etcd-load", flag.ContinueOnError)
	endpoints := fs.String("endpoints", "", "etcd client endpoints, comma-separated")
	conns := fs.Int("conns", 0, "gRPC connections shared by the workers (0: one per 10 workers, at most 100, as etcd's benchmark docs run 1000 clients on 100 connections)")
	cpuProfile := fs.String("cpuprofile", "", "write the client's CPU profile to this file")
	cfg, stale := workloadFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *endpoints == "" {
		return fmt.Errorf("etcd-load: -endpoints is required")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	n := *conns
	if n <= 0 {
		n = min(max(cfg.Concurrency/10, 1), 100)
	}
	// One endpoint per connection, round-robin over the members, as etcd's
	// benchmark tool dials them (tools/benchmark/cmd/util.go). A client
	// given all three endpoints holds a gRPC sub-connection to each and
	// balances over them: three connections where the tool has one, which
	// cost this client 10-25% of its throughput (issue 14).
	eps := strings.Split(*endpoints, ",")
	var clients []*clientv3.Client
	for i := range n {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints: []string{eps[i%len(eps)]}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		})
		if err != nil {
			return err
		}
		defer cli.Close()
		clients = append(clients, cli)
	}
	cfg.Classify = etcdkv.Classify
	// The operations run under context.Background(), as the tool's do: no
	// deadline (a timer here, and a grpc-timeout that the server arms a
	// timer for), and not even a cancellable parent, whose every child
	// (gRPC derives one per call) registers in the parent under its mutex:
	// one lock and one map update per operation shared by all workers. A
	// stuck cluster is cut off by ending the process instead.
	cfg.OpTimeout = 0
	limit := cfg.Warmup + cfg.Duration + time.Minute
	defer time.AfterFunc(limit, func() {
		fmt.Fprintf(os.Stderr, "bench-compare: etcd-load: the run did not end within %v\n", limit)
		os.Exit(1)
	}).Stop()
	ctx := context.Background()
	kv := etcdkv.New(clients, etcdkv.Options{Serializable: *stale, CAS: cfg.Mix[loadgen.OpCAS] > 0})
	r, err := loadgen.NewRunner(*cfg, kv)
	if err != nil {
		return err
	}
	res, err := r.Run(ctx)
	if err != nil {
		return err
	}
	rep := res.Report()
	rep.Labels = map[string]string{"system": "etcd", "reads": "linearizable", "conns": fmt.Sprint(n)}
	if *stale {
		rep.Labels["reads"] = "serializable"
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// workloadFlags defines the workload flags carpkvctl bench also has, with
// the same names and defaults.
func workloadFlags(fs *flag.FlagSet) (*loadgen.Config, *bool) {
	cfg := loadgen.DefaultConfig()
	fs.Func("mix", "operation mix, e.g. put=100 or get=90,put=10", func(s string) error {
		m, err := loadgen.ParseMix(s)
		cfg.Mix = m
		return err
	})
	fs.IntVar(&cfg.Keys, "keys", cfg.Keys, "key space size")
	fs.IntVar(&cfg.KeySize, "key-size", cfg.KeySize, "key length in bytes")
	fs.IntVar(&cfg.ValueSize, "value-size", cfg.ValueSize, "value length in bytes")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "workers")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured time")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unrecorded time before")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: operations per second (0: closed loop)")
	fs.BoolVar(&cfg.Preload, "preload", false, "write every key once first")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the op and key sequences")
	fs.Func("dist", "uniform or zipf", func(s string) error {
		d, err := loadgen.ParseDist(s)
		cfg.Dist = d
		return err
	})
	return &cfg, fs.Bool("stale", false, "serializable reads (etcd's local reads)")
}
