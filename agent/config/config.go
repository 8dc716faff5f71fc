// Package config holds the settings of one carpkv agent: their defaults,
// their validation, and the node ID that is generated once and persisted.
// Where the values come from (flags, CARPKV_* variables, a config file) is
// the command's business, not this package's.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/carpkv/carpkv/carp"
)

// Config is one agent's configuration. The zero value is not valid; start
// from Default().
type Config struct {
	// NodeID names this agent inside its group, stable for its lifetime.
	// Empty: generated on first start and kept in <DataDir>/node-id.
	NodeID string
	// Group is the ID of the shard group (Raft cluster) this agent serves.
	Group string
	// DataDir holds raft/ (log, stable store, snapshots) and kv/ (the state
	// machine). It must be on a disk that honours fsync.
	DataDir string

	// RaftBind is the TCP address the Raft transport listens on;
	// RaftAdvertise is the address peers dial (default: RaftBind, which
	// then must not be an unspecified address such as 0.0.0.0).
	RaftBind, RaftAdvertise string
	// HTTPBind is the address of the management and KV API; HTTPAdvertise
	// is what other agents and clients are told (default: HTTPBind).
	HTTPBind, HTTPAdvertise string

	// Join lists HTTP addresses of existing members of the group. An agent
	// without Raft state asks them to add it, retrying until one succeeds.
	Join []string
	// Bootstrap forms a new single-member group when this agent has no Raft
	// state. Exactly one agent of a new group should set it; the others join.
	Bootstrap bool

	// GossipBind is the address (TCP and UDP) of the cluster-wide gossip
	// pool every agent of every group joins; GossipAdvertise is what
	// others dial (default: GossipBind).
	GossipBind, GossipAdvertise string
	// GossipProfile is "lan" (memberlist's LAN timings: a dead agent is
	// noticed in about 5-10 s) or "local" (loopback clusters: about 1-2 s).
	GossipProfile string
	// RetryJoin lists gossip addresses (or host names) of any agents, of
	// any group; the agent retries until it reaches one, so a fleet can
	// start in any order.
	RetryJoin []string
	// BootstrapExpect forms a new group from gossip alone: once this many
	// agents of the group are visible and none has Raft state, the one with
	// the smallest node ID bootstraps the group with all of them. 0: off.
	BootstrapExpect int
	// ExpectGroups turns on sharding: the first ring is committed once this
	// many groups are visible with leaders, and until then the agent
	// serves no keys. 0: a standalone group that serves every key.
	ExpectGroups int
	// GroupWeight is this group's relative share of the keys (all agents of
	// a group should agree; the leader's value is used).
	GroupWeight float64
	// RingMode is the CARP mode of the first ring: strong or spec.
	RingMode string

	// LogLevel is debug, info, warn or error; LogFormat is text or json.
	LogLevel, LogFormat string
	// Pprof serves Go's profiler under /debug/pprof/ on the HTTP port.
	Pprof bool
	// StoreSyncEveryCommit fsyncs every state-machine commit instead of
	// relying on the Raft log for durability (agent/store/durability.go).
	StoreSyncEveryCommit bool
	// RaftLogStore is the Raft log and stable store: LogStoreWAL or
	// LogStoreBolt (docs/design.md, "The Raft log store"). A data
	// directory keeps the kind it was created with: "" means that kind,
	// or LogStoreWAL for a new directory; naming the other kind is refused.
	RaftLogStore string // default ""

	Limits Limits
	Raft   Raft
}

// Limits bound what one request may cost (DESIGN.md invariant 6).
type Limits struct {
	MaxKeyBytes   int // default 4 KiB
	MaxValueBytes int // default 1 MiB
	// MaxBodyBytes bounds any request body; must be >= MaxValueBytes.
	MaxBodyBytes int // default 1 MiB + 64 KiB
	// RequestTimeout bounds the server side of every KV and management
	// request; a write that exceeds it answers "timeout: outcome unknown".
	RequestTimeout time.Duration // default 5s
	// MaxInFlight bounds concurrently served KV requests; excess requests
	// get "unavailable" at once instead of queueing without bound.
	MaxInFlight int // default 4096
}

// The Raft log stores --raft-log-store chooses from.
const (
	LogStoreBolt = "bolt" // raft-boltdb/v2: a bbolt B+tree, two fsyncs per append
	LogStoreWAL  = "wal"  // raft-wal: segment files, one fsync per append
)

// Raft holds the consensus timings, tuned for a LAN (hashicorp/raft's own
// defaults assume a WAN: 1 s heartbeat and election timeouts).
type Raft struct {
	// HeartbeatTimeout: a follower that hears nothing from the leader for
	// this long starts an election (after a randomised extra delay).
	HeartbeatTimeout time.Duration // default 500ms
	// ElectionTimeout: a candidate that has not won within this long retries.
	ElectionTimeout time.Duration // default 500ms
	// LeaderLeaseTimeout: a leader that cannot reach a quorum for this long
	// steps down. Must not exceed HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration // default 250ms
	// CommitTimeout: how long the leader waits without new entries before
	// sending a heartbeat that carries the commit index to followers. It
	// only matters when the group is idle (under load every new entry
	// carries the commit index at once); then it bounds how far a
	// follower's stale reads lag. 10 ms cost 100 messages per second per
	// follower at rest: 25% of a core for an idle 3x3 local cluster,
	// against 17% at 50 ms; 200 ms took another fifth off (issue 14,
	// docs/benchmarks.md, "Knobs"), for at most 200 ms of follower lag
	// after the last write of a burst.
	CommitTimeout time.Duration // default 200ms
	// MaxAppendEntries caps entries per AppendEntries RPC (and per batch).
	MaxAppendEntries int // default 512
	// SnapshotThreshold: snapshot once this many entries were written since
	// the last snapshot (checked every SnapshotInterval).
	SnapshotThreshold uint64        // default 8192
	SnapshotInterval  time.Duration // default 30s
	// TrailingLogs: entries kept after a snapshot, so a briefly lagging
	// follower catches up from the log rather than by snapshot install.
	TrailingLogs uint64 // default 10240
	// SnapshotRetain: snapshots kept on disk.
	SnapshotRetain int // default 2
}

// Default returns a configuration with every default filled in; Group and
// DataDir still need values.
func Default() Config {
	return Config{
		RaftBind:      "127.0.0.1:7000",
		HTTPBind:      "127.0.0.1:8000",
		GossipBind:    "127.0.0.1:7946",
		GossipProfile: "lan",
		GroupWeight:   1,
		RingMode:      "strong",
		LogLevel:      "info",
		LogFormat:     "text",
		Limits: Limits{
			MaxKeyBytes:    4 << 10,
			MaxValueBytes:  1 << 20,
			MaxBodyBytes:   1<<20 + 64<<10,
			RequestTimeout: 5 * time.Second,
			MaxInFlight:    4096,
		},
		Raft: Raft{
			HeartbeatTimeout:   500 * time.Millisecond,
			ElectionTimeout:    500 * time.Millisecond,
			LeaderLeaseTimeout: 250 * time.Millisecond,
			CommitTimeout:      200 * time.Millisecond,
			MaxAppendEntries:   512,
			SnapshotThreshold:  8192,
			SnapshotInterval:   30 * time.Second,
			TrailingLogs:       10240,
			SnapshotRetain:     2,
		},
	}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks every setting and names the first bad one by its flag
// name. It fills in the advertise addresses when they are empty.
func (c *Config) Validate() error {
	bad := func(setting, format string, args ...any) error {
		return fmt.Errorf("invalid setting --%s: %s", setting, fmt.Sprintf(format, args...))
	}
	if c.NodeID != "" && !idPattern.MatchString(c.NodeID) {
		return bad("node-id", "%q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", c.NodeID)
	}
	if !idPattern.MatchString(c.Group) {
		return bad("group", "%q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Group)
	}
	if c.DataDir == "" {
		return bad("data-dir", "required")
	}
	for _, a := range []struct {
		name     string
		bind     string
		adv      *string
		advName  string
		required bool
	}{
		{"raft-addr", c.RaftBind, &c.RaftAdvertise, "raft-advertise", true},
		{"http-addr", c.HTTPBind, &c.HTTPAdvertise, "http-advertise", true},
		{"gossip-addr", c.GossipBind, &c.GossipAdvertise, "gossip-advertise", true},
	} {
		if err := checkHostPort(a.bind); err != nil {
			return bad(a.name, "%v", err)
		}
		if *a.adv == "" {
			host, _, _ := net.SplitHostPort(a.bind)
			if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
				return bad(a.advName, "required when --%s listens on all interfaces (%s)", a.name, a.bind)
			}
			*a.adv = a.bind
		}
		if err := checkHostPort(*a.adv); err != nil {
			return bad(a.advName, "%v", err)
		}
		if _, port, _ := net.SplitHostPort(*a.adv); port == "0" {
			return bad(a.advName, "port 0 cannot be advertised")
		}
	}
	for _, j := range c.Join {
		if err := checkHostPort(j); err != nil {
			return bad("join", "%v", err)
		}
	}
	if c.Bootstrap && len(c.Join) > 0 {
		return bad("bootstrap", "cannot be combined with --join: a new group is either formed here or joined")
	}
	if c.BootstrapExpect < 0 || c.BootstrapExpect > 9 {
		return bad("bootstrap-expect", "%d is outside 0..9", c.BootstrapExpect)
	}
	if c.Bootstrap && c.BootstrapExpect > 0 {
		return bad("bootstrap", "cannot be combined with --bootstrap-expect")
	}
	for _, j := range c.RetryJoin {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return bad("retry-join", "%q is not host:port", j)
		}
	}
	if c.ExpectGroups < 0 {
		return bad("expect-groups", "must not be negative")
	}
	if !(c.GroupWeight > 0) || c.GroupWeight > 1e6 {
		return bad("group-weight", "%v must be positive and at most 1e6", c.GroupWeight)
	}
	if c.RaftLogStore != "" && c.RaftLogStore != LogStoreWAL && c.RaftLogStore != LogStoreBolt {
		return bad("raft-log-store", "%q is not %s or %s", c.RaftLogStore, LogStoreWAL, LogStoreBolt)
	}
	if _, err := carp.ParseMode(c.RingMode); err != nil {
		return bad("ring-mode", "%q is not strong or spec", c.RingMode)
	}
	if c.GossipProfile != "lan" && c.GossipProfile != "local" {
		return bad("gossip-profile", "%q is not lan or local", c.GossipProfile)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return bad("log-level", "%q is not debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return bad("log-format", "%q is not text or json", c.LogFormat)
	}
	l := c.Limits
	switch {
	case l.MaxKeyBytes < 1 || l.MaxKeyBytes > 64<<10:
		return bad("max-key-bytes", "%d is outside 1..65536", l.MaxKeyBytes)
	case l.MaxValueBytes < 0 || l.MaxValueBytes > 64<<20:
		return bad("max-value-bytes", "%d is outside 0..67108864", l.MaxValueBytes)
	case l.MaxBodyBytes < l.MaxValueBytes:
		return bad("max-body-bytes", "%d is smaller than --max-value-bytes %d", l.MaxBodyBytes, l.MaxValueBytes)
	case l.RequestTimeout <= 0:
		return bad("request-timeout", "must be positive")
	case l.MaxInFlight < 1:
		return bad("max-in-flight", "must be at least 1")
	}
	r := c.Raft
	switch {
	case r.HeartbeatTimeout < 5*time.Millisecond:
		return bad("raft-heartbeat-timeout", "%v is below 5ms", r.HeartbeatTimeout)
	case r.ElectionTimeout < r.HeartbeatTimeout:
		return bad("raft-election-timeout", "%v is below the heartbeat timeout %v", r.ElectionTimeout, r.HeartbeatTimeout)
	case r.LeaderLeaseTimeout < 5*time.Millisecond || r.LeaderLeaseTimeout > r.HeartbeatTimeout:
		return bad("raft-leader-lease-timeout", "%v must be between 5ms and the heartbeat timeout %v", r.LeaderLeaseTimeout, r.HeartbeatTimeout)
	case r.CommitTimeout < time.Millisecond:
		return bad("raft-commit-timeout", "%v is below 1ms", r.CommitTimeout)
	case r.MaxAppendEntries < 1 || r.MaxAppendEntries > 1024:
		return bad("raft-max-append-entries", "%d is outside 1..1024", r.MaxAppendEntries)
	case r.SnapshotThreshold < 1:
		return bad("raft-snapshot-threshold", "must be at least 1")
	case r.SnapshotInterval < 10*time.Millisecond:
		return bad("raft-snapshot-interval", "%v is below 10ms", r.SnapshotInterval)
	case r.SnapshotRetain < 1:
		return bad("raft-snapshot-retain", "must be at least 1")
	}
	return nil
}

func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", addr, err)
	}
	if port == "" {
		return fmt.Errorf("%q has no port", addr)
	}
	return nil
}

// EnsureNodeID returns c.NodeID if set, else the ID stored in
// <DataDir>/node-id, else a new random ID that it stores there (fsynced)
// so the agent keeps its identity across restarts. A configured ID that
// disagrees with the stored one is refused: the data belongs to the other.
func (c *Config) EnsureNodeID() (string, error) {
	if err := os.MkdirAll(c.DataDir, 0o750); err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(c.DataDir, "node-id")
	stored, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(stored))
		if c.NodeID != "" && c.NodeID != id {
			return "", fmt.Errorf("invalid setting --node-id: %q, but %s belongs to node %q", c.NodeID, c.DataDir, id)
		}
		c.NodeID = id
		return id, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read node id: %w", err)
	}
	if c.NodeID == "" {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		c.NodeID = "n-" + hex.EncodeToString(b[:])
	}
	if err := writeFileSync(path, []byte(c.NodeID+"\n")); err != nil {
		return "", fmt.Errorf("store node id: %w", err)
	}
	return c.NodeID, nil
}

func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
