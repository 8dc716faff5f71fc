// Command carpkv-agent runs one member of a carpkv shard group: a Raft
// voter with its persistent state machine and the HTTP API. Settings come
// from flags, CARPKV_* environment variables and an optional YAML config
// file, in that order of precedence.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"

	"github.com/carpkv/carpkv/agent/cluster"
	"github.com/carpkv/carpkv/agent/config"
	"github.com/carpkv/carpkv/agent/gossip"
	"github.com/carpkv/carpkv/agent/node"
	"github.com/carpkv/carpkv/agent/server"
	"github.com/carpkv/carpkv/agent/store"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	app := newApp(run)
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "carpkv-agent:", err)
		os.Exit(1)
	}
}

// newApp builds the command; action receives the parsed settings (the
// tests substitute it to check where each setting came from).
func newApp(action func(*cli.Context, config.Config) error) *cli.App {
	d := config.Default()
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config", EnvVars: []string{"CARPKV_CONFIG"}, Usage: "YAML `FILE` with settings (keys are the flag names); flags and CARPKV_* variables override it"},
		str("node-id", "", "this node's stable ID (default: generated once and kept in <data-dir>/node-id)"),
		str("group", "", "ID of the shard group this agent serves (required)"),
		str("data-dir", "", "directory for the Raft log, snapshots and the state machine (required)"),
		str("raft-addr", d.RaftBind, "host:port the Raft transport listens on"),
		str("raft-advertise", "", "host:port peers use to reach the Raft transport (default: --raft-addr)"),
		str("http-addr", d.HTTPBind, "host:port of the HTTP API (KV and management)"),
		str("http-advertise", "", "host:port others use to reach the HTTP API (default: --http-addr)"),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "join", EnvVars: []string{"CARPKV_JOIN"}, Usage: "HTTP `ADDR` of an existing member to join through (repeatable; retried until one answers)"}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "bootstrap", EnvVars: []string{"CARPKV_BOOTSTRAP"}, Usage: "form a new single-member group if this node has no Raft state"}),
		integer("bootstrap-expect", 0, "form a new group once this many agents of the group are visible by gossip (none with Raft state); 0: off"),
		str("gossip-addr", d.GossipBind, "host:port (TCP and UDP) of the cluster-wide gossip pool"),
		str("gossip-advertise", "", "host:port others use to reach this agent's gossip (default: --gossip-addr)"),
		str("gossip-profile", d.GossipProfile, "gossip timing: lan, or local for clusters on one host (faster failure detection)"),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "retry-join", EnvVars: []string{"CARPKV_RETRY_JOIN"}, Usage: "gossip `ADDR` (host:port, any group) to join the pool through; repeatable, retried until one answers"}),
		integer("expect-groups", 0, "shard across this many groups: the first ring is committed once they all have leaders; 0: a standalone group serving every key"),
		altsrc.NewFloat64Flag(&cli.Float64Flag{Name: "group-weight", EnvVars: []string{"CARPKV_GROUP_WEIGHT"}, Value: d.GroupWeight, Usage: "this group's relative share of the keys"}),
		str("ring-mode", d.RingMode, "CARP mode of the first ring: strong (default, balanced) or spec (draft-exact hashing)"),
		str("log-level", d.LogLevel, "debug, info, warn or error"),
		str("log-format", d.LogFormat, "text or json"),
		str("raft-log-store", d.RaftLogStore, "Raft log store: wal (segment files, one fsync per append) or bolt (raft-boltdb); default: the kind the data directory holds, wal in a new one (naming the other kind is refused)"),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "store-sync-every-commit", EnvVars: []string{"CARPKV_STORE_SYNC_EVERY_COMMIT"}, Usage: "fsync every state-machine commit (the Raft log is the durable copy either way; costs 20-30% of write throughput)"}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "enable-pprof", EnvVars: []string{"CARPKV_ENABLE_PPROF"}, Usage: "serve Go's profiler under /debug/pprof/ on the HTTP port (for performance work; off in production)"}),
		integer("max-key-bytes", d.Limits.MaxKeyBytes, "largest accepted key"),
		integer("max-value-bytes", d.Limits.MaxValueBytes, "largest accepted value"),
		integer("max-body-bytes", d.Limits.MaxBodyBytes, "largest accepted request body"),
		integer("max-in-flight", d.Limits.MaxInFlight, "KV requests served at once; more are refused with unavailable"),
		dur("request-timeout", d.Limits.RequestTimeout, "server-side deadline of every request"),
		dur("raft-heartbeat-timeout", d.Raft.HeartbeatTimeout, "follower waits this long without a leader before an election"),
		dur("raft-election-timeout", d.Raft.ElectionTimeout, "candidate waits this long before retrying an election"),
		dur("raft-leader-lease-timeout", d.Raft.LeaderLeaseTimeout, "leader steps down after this long without a quorum"),
		dur("raft-commit-timeout", d.Raft.CommitTimeout, "idle time before the leader pushes its commit index"),
		integer("raft-max-append-entries", d.Raft.MaxAppendEntries, "entries per AppendEntries RPC"),
		altsrc.NewUint64Flag(&cli.Uint64Flag{Name: "raft-snapshot-threshold", EnvVars: []string{"CARPKV_RAFT_SNAPSHOT_THRESHOLD"}, Value: d.Raft.SnapshotThreshold, Usage: "snapshot after this many new log entries"}),
		dur("raft-snapshot-interval", d.Raft.SnapshotInterval, "how often to check the snapshot threshold"),
		altsrc.NewUint64Flag(&cli.Uint64Flag{Name: "raft-trailing-logs", EnvVars: []string{"CARPKV_RAFT_TRAILING_LOGS"}, Value: d.Raft.TrailingLogs, Usage: "log entries kept after a snapshot"}),
		integer("raft-snapshot-retain", d.Raft.SnapshotRetain, "snapshots kept on disk"),
	}
	return &cli.App{
		Name:    "carpkv-agent",
		Usage:   "run one member of a carpkv shard group",
		Version: version,
		Description: `Examples:
   # first member of group g1
   carpkv-agent --group g1 --data-dir /var/lib/carpkv --bootstrap \
     --raft-addr 10.0.0.1:7000 --http-addr 10.0.0.1:8000
   # further members join through any existing member
   carpkv-agent --group g1 --data-dir /var/lib/carpkv --join 10.0.0.1:8000 \
     --raft-addr 10.0.0.2:7000 --http-addr 10.0.0.2:8000

Every flag can also be set as CARPKV_<FLAG> (upper case, '-' as '_') or in
the --config YAML file; flags win over variables, variables over the file.`,
		Flags:  flags,
		Before: altsrc.InitInputSourceWithContext(flags, configFile),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q (settings are flags; see --help)", c.Args().First())
			}
			cfg := fromCLI(c)
			if err := cfg.Validate(); err != nil {
				return err
			}
			return action(c, cfg)
		},
	}
}

// configFile loads the YAML file named by --config, or nothing. YAML reads
// "weight: 2" as an integer; float settings take it as the number it is
// (altsrc alone would refuse it as a type mismatch).
func configFile(c *cli.Context) (altsrc.InputSourceContext, error) {
	name := c.String("config")
	if name == "" {
		return &altsrc.MapInputSource{}, nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("invalid setting --config: %w", err)
	}
	values := map[any]any{}
	if err := yaml.Unmarshal(data, &values); err != nil {
		return nil, fmt.Errorf("invalid setting --config: %s is not YAML: %w", name, err)
	}
	for _, key := range floatSettings {
		if v, ok := values[key].(int); ok {
			values[key] = float64(v)
		}
	}
	return altsrc.NewMapInputSource(name, values), nil
}

// floatSettings are the float64 flags a config file may set.
var floatSettings = []string{"group-weight"}

func env(name string) []string {
	return []string{"CARPKV_" + upperSnake(name)}
}

func upperSnake(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func str(name, value, usage string) cli.Flag {
	return altsrc.NewStringFlag(&cli.StringFlag{Name: name, EnvVars: env(name), Value: value, Usage: usage})
}

func integer(name string, value int, usage string) cli.Flag {
	return altsrc.NewIntFlag(&cli.IntFlag{Name: name, EnvVars: env(name), Value: value, Usage: usage})
}

func dur(name string, value time.Duration, usage string) cli.Flag {
	return altsrc.NewDurationFlag(&cli.DurationFlag{Name: name, EnvVars: env(name), Value: value, Usage: usage})
}

// fromCLI reads the settings into a Config.
func fromCLI(c *cli.Context) config.Config {
	cfg := config.Default()
	cfg.NodeID = c.String("node-id")
	cfg.Group = c.String("group")
	cfg.DataDir = c.String("data-dir")
	cfg.RaftBind = c.String("raft-addr")
	cfg.RaftAdvertise = c.String("raft-advertise")
	cfg.HTTPBind = c.String("http-addr")
	cfg.HTTPAdvertise = c.String("http-advertise")
	cfg.Join = c.StringSlice("join")
	cfg.Bootstrap = c.Bool("bootstrap")
	cfg.BootstrapExpect = c.Int("bootstrap-expect")
	cfg.GossipBind = c.String("gossip-addr")
	cfg.GossipAdvertise = c.String("gossip-advertise")
	cfg.GossipProfile = c.String("gossip-profile")
	cfg.RetryJoin = c.StringSlice("retry-join")
	cfg.ExpectGroups = c.Int("expect-groups")
	cfg.GroupWeight = c.Float64("group-weight")
	cfg.RingMode = c.String("ring-mode")
	cfg.LogLevel = c.String("log-level")
	cfg.LogFormat = c.String("log-format")
	cfg.Pprof = c.Bool("enable-pprof")
	cfg.StoreSyncEveryCommit = c.Bool("store-sync-every-commit")
	cfg.RaftLogStore = c.String("raft-log-store")
	cfg.Limits.MaxKeyBytes = c.Int("max-key-bytes")
	cfg.Limits.MaxValueBytes = c.Int("max-value-bytes")
	cfg.Limits.MaxBodyBytes = c.Int("max-body-bytes")
	cfg.Limits.MaxInFlight = c.Int("max-in-flight")
	cfg.Limits.RequestTimeout = c.Duration("request-timeout")
	cfg.Raft.HeartbeatTimeout = c.Duration("raft-heartbeat-timeout")
	cfg.Raft.ElectionTimeout = c.Duration("raft-election-timeout")
	cfg.Raft.LeaderLeaseTimeout = c.Duration("raft-leader-lease-timeout")
	cfg.Raft.CommitTimeout = c.Duration("raft-commit-timeout")
	cfg.Raft.MaxAppendEntries = c.Int("raft-max-append-entries")
	cfg.Raft.SnapshotThreshold = c.Uint64("raft-snapshot-threshold")
	cfg.Raft.SnapshotInterval = c.Duration("raft-snapshot-interval")
	cfg.Raft.TrailingLogs = c.Uint64("raft-trailing-logs")
	cfg.Raft.SnapshotRetain = c.Int("raft-snapshot-retain")
	return cfg
}

func newLogger(cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func run(c *cli.Context, cfg config.Config) error {
	if _, err := cfg.EnsureNodeID(); err != nil {
		return err
	}
	log := newLogger(cfg).With("node", cfg.NodeID, "group", cfg.Group)
	if f := os.Getenv("CARPKV_BOOT_ID_FILE"); f != "" {
		// For tests: a machine restart is a change of this file.
		store.BootIDPath = f
	}

	// Listen before starting Raft so a busy port fails fast and cleanly.
	ln, err := net.Listen("tcp", cfg.HTTPBind)
	if err != nil {
		return fmt.Errorf("invalid setting --http-addr: %w", err)
	}
	n, err := node.Open(cfg, log)
	if err != nil {
		ln.Close()
		return err
	}
	g, err := gossip.Start(gossip.Config{
		BindAddr: cfg.GossipBind, AdvertiseAddr: cfg.GossipAdvertise, RetryJoin: cfg.RetryJoin,
		Profile: gossip.Profile(cfg.GossipProfile), Logger: log.With("component", "gossip"),
	}, gossip.Meta{
		NodeID: cfg.NodeID, Group: cfg.Group, RaftAddr: cfg.RaftAdvertise, HTTPAddr: cfg.HTTPAdvertise,
		Weight: cfg.GroupWeight, HasState: n.HasState(), RingEpoch: n.Store().Epoch(),
	})
	if err != nil {
		ln.Close()
		_ = n.Shutdown(context.Background())
		return fmt.Errorf("invalid setting --gossip-addr: %w", err)
	}
	runner := cluster.Start(cfg, n, g, log)
	srv := server.New(n, cfg.Limits, version, runner, log)
	if cfg.Pprof {
		srv.EnablePprof()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("agent started", "raft", cfg.RaftAdvertise, "http", cfg.HTTPAdvertise, "version", version)
	notifyReady(log)
	stopWatchdog := make(chan struct{})
	go watchdog(func() bool { return n.Raft().State() != raft.Shutdown }, stopWatchdog, log)

	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err = <-serveErr:
		log.Error("HTTP server failed", "err", err)
	}
	// Stop order: the cluster loop; Raft (a leader hands over leadership
	// while the HTTP API still answers not_leader with the new leader);
	// gossip, leaving the pool so others see "left", not "dead"; HTTP.
	notifyStopping()
	close(stopWatchdog)
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runner.Stop()
	nerr := n.Shutdown(shutCtx)
	if lerr := g.Leave(2 * time.Second); lerr != nil {
		log.Warn("leaving the gossip pool", "err", lerr)
	}
	_ = g.Shutdown()
	herr := srv.Shutdown(shutCtx)
	log.Info("stopped")
	return errors.Join(err, nerr, herr)
}
