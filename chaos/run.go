package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/carpkv/carpkv/carp"
	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// Config is one chaos run.
type Config struct {
	// Seed makes the fault schedule and the clients' choices.
	Seed uint64
	// Duration of the fault schedule; 0: one round, every kind once.
	Duration time.Duration
	// Kinds are the faults to draw from.
	Kinds []Kind
	// Groups × Replicas agents form the first ring; Standby more groups
	// wait outside it for ring changes to add them.
	Groups, Standby, Replicas int
	// Workers are the concurrent clients; KeysPerGroup the keys they
	// share in each group.
	Workers, KeysPerGroup int
	// Image is the agent image (BuildImage).
	Image string
	// ResultsDir receives the run's directory.
	ResultsDir string
	// AgentArgs are extra flags for every agent.
	AgentArgs []string
	// CheckTimeout bounds the linearizability check of one key.
	CheckTimeout time.Duration
	// Keep keeps the history, logs and data of a run that passed.
	Keep bool
	// Rapid starts the next fault after a short gap without waiting for
	// the cluster to recover from the last one, so faults catch it
	// mid-election, mid-catch-up or short of a member (each fault still
	// heals; the cluster must recover once the schedule ends).
	Rapid bool
	// StaleReads is the checker's self-test: clients read with ?stale=true,
	// which may return old data, so the run must find anomalies.
	StaleReads bool
	Log        *slog.Logger
}

// DefaultAgentArgs make the agents snapshot and compact often, so that
// restarts, lagging members and fresh members go through snapshots.
var DefaultAgentArgs = []string{
	"--log-level=info",
	"--raft-snapshot-threshold=512", "--raft-snapshot-interval=5s", "--raft-trailing-logs=256",
}

// DefaultConfig is what make chaos runs, for seed.
func DefaultConfig(seed uint64) Config {
	return Config{
		Seed: seed, Kinds: AllKinds, Groups: 2, Standby: 1, Replicas: 3, Workers: 8, KeysPerGroup: 8,
		AgentArgs: DefaultAgentArgs, CheckTimeout: 5 * time.Minute,
		ResultsDir: filepath.Join(os.TempDir(), "carpkv-chaos-results"),
	}
}

// runs numbers the runs of this process, for unique resource names.
var runs atomic.Int64

// ImageName is the agent image of this process.
func ImageName() string { return fmt.Sprintf("%s%d:agent", Prefix, os.Getpid()) }

// BuildImage builds the agent image for this process (ImageName).
func BuildImage(ctx context.Context) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	tag := ImageName()
	return tag, buildAgentImage(ctx, root, tag)
}

// Run runs one chaos run: a fresh cluster, clients and the nemesis for
// the schedule of cfg.Seed, then the checks. The error is for the harness
// failing (Docker, iptables, a fault that could not be injected); what
// the checks found is in Report.Problems. Everything the run created is
// removed before it returns, except its results directory.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := fmt.Sprintf("%s%d-%d", Prefix, os.Getpid(), runs.Add(1))
	dir := filepath.Join(cfg.ResultsDir, fmt.Sprintf("%s-seed%d", time.Now().Format("20060102-150405"), cfg.Seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rep = &Report{Seed: cfg.Seed, Name: name, Dir: dir, Config: describeConfig(cfg)}
	log = log.With("seed", cfg.Seed)
	log.Info("chaos run starting", "name", name, "results", dir, "groups", cfg.Groups, "replicas", cfg.Replicas,
		"faults", joinKinds(cfg.Kinds), "duration", cfg.Duration)

	c, err := StartCluster(ctx, ClusterConfig{
		Groups: cfg.Groups, Standby: cfg.standby(), Replicas: cfg.Replicas, AgentArgs: cfg.AgentArgs, Dir: dir, Log: log,
	}, name, cfg.Image)
	if err != nil {
		return rep, err
	}
	h := NewHistory()
	defer func() {
		failed := err != nil || len(rep.Problems) > 0
		keep := failed || cfg.Keep || len(rep.Slow) > 0
		ops := h.Ops()
		if keep {
			if werr := WriteJSON(filepath.Join(dir, "history.json"), ops); werr != nil {
				err = errors.Join(err, werr)
			}
		}
		if cerr := c.Close(context.WithoutCancel(ctx), keep); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up: %w", cerr))
		}
		if !keep {
			_ = os.RemoveAll(filepath.Join(dir, "data"))
			_ = os.RemoveAll(filepath.Join(dir, "logs")) // of removed members
		}
		if werr := WriteJSON(filepath.Join(dir, "summary.json"), rep); werr != nil {
			err = errors.Join(err, werr)
		}
	}()
	log.Info("cluster formed", "agents", len(c.Agents(false)))

	if needsFirewall(cfg.Kinds) {
		if err := VerifyFirewall(ctx, c); err != nil {
			return rep, err
		}
		log.Info("firewall verified: two-way, one-way and host cuts drop what they should")
	}

	first := c.CurrentRing()
	rep.FirstRing = first
	// The workload's keys spread over every group of the first ring and
	// of the ring with every group in at weight 1, so that every group
	// serves some whatever the ring changes did, and each change moves
	// some (the nemesis picks weights that do).
	rings := []wire.RingSpec{first}
	if cfg.standby() > 0 {
		all := wire.RingSpec{Epoch: first.Epoch + 1, Mode: first.Mode}
		for _, g := range c.Groups() {
			all.Groups = append(all.Groups, wire.RingGroupSpec{ID: g, Weight: 1})
		}
		rings = append(rings, all)
	}
	keys, err := chooseRingKeys(rings, cfg.KeysPerGroup)
	if err != nil {
		return rep, err
	}
	probeKeys, err := probeKeysFor(first)
	if err != nil {
		return rep, err
	}
	// Every key ever written: the workload's, and the probe keys of
	// every ring so far.
	written := append([]string(nil), keys...)
	for _, k := range probeKeys {
		written = append(written, k)
	}
	kv, err := kvclient.New(kvclient.Config{Addrs: c.Addrs(), RequestTimeout: 2 * time.Second, DialTimeout: 500 * time.Millisecond})
	if err != nil {
		return rep, err
	}
	defer kv.Close()
	// The prober's client logs its retries and leader changes: they
	// explain a long unavailability (kept with every run's summary).
	plog, err := os.Create(filepath.Join(dir, "prober-client.log"))
	if err != nil {
		return rep, err
	}
	defer plog.Close()
	pkv, err := kvclient.New(kvclient.Config{
		Addrs: c.Addrs(), RequestTimeout: 500 * time.Millisecond, DialTimeout: 200 * time.Millisecond,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(plog, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		return rep, err
	}
	defer pkv.Close()
	admin, err := kvclient.New(kvclient.Config{Addrs: c.Addrs(), RequestTimeout: 2 * time.Second, DialTimeout: 500 * time.Millisecond})
	if err != nil {
		return rep, err
	}
	defer admin.Close()
	probe := NewProber(pkv, h, probeKeys, 60*time.Second)
	// A first acknowledged write to every group before the clients
	// start (every attempt, answered or not, is in the history). On a busy
	// machine a young group may still be electing: try for a while.
	for _, g := range c.RingGroups() {
		var o Op
		if err := poll(ctx, 90*time.Second, func() error {
			if o = probe.Write(ctx, g, 20*time.Second); o.Outcome != OutcomeOK {
				return fmt.Errorf("%s %s", o.Outcome, o.Err)
			}
			return nil
		}); err != nil {
			return rep, fmt.Errorf("first write to group %s: %w", g, err)
		}
	}

	// The clients run from here until the checks.
	wl := NewWorkload(WorkloadConfig{
		Workers: cfg.Workers, Keys: keys, OpTimeout: 5 * time.Second, Think: 20 * time.Millisecond, Seed: cfg.Seed,
		StaleReads: cfg.StaleReads,
	}, kv, h)
	stop := make(chan struct{})
	wlDone := make(chan struct{})
	go func() {
		defer close(wlDone)
		wl.Run(ctx, stop)
	}()
	stopWorkload := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-wlDone
	}
	defer stopWorkload()

	start := time.Now()
	if err := hold(ctx, 2*time.Second); err != nil { // a calm start, for comparison
		return rep, err
	}
	nem := NewNemesis(c, h, probe, admin, log)
	nem.Keys = keys
	sched := NewSchedule(cfg.Seed, cfg.Kinds, cfg.Groups+cfg.standby())
	var steps []Step
	for {
		if cfg.Duration == 0 && len(steps) == len(cfg.Kinds) {
			break
		}
		if cfg.Duration > 0 && time.Since(start) >= cfg.Duration {
			break
		}
		step := sched.Next()
		steps = append(steps, step)
		ev, ferr := nem.Run(ctx, step)
		gap := step.Gap
		if cfg.Rapid {
			gap /= 4
		} else if ferr == nil {
			if herr := c.WaitHealthy(ctx, 90*time.Second); herr != nil {
				rep.Problems = append(rep.Problems, fmt.Sprintf("step %d (%s): the cluster did not recover: %v", step.N, step.Kind, herr))
			} else {
				ev.Recovered = h.Now()
			}
		}
		if ev.Problem != "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("step %d (%s): %s", step.N, step.Kind, ev.Problem))
		}
		rep.Events = append(rep.Events, ev)
		attrs := []any{"n", step.N, "kind", step.Kind}
		if ev.Unavailable != 0 {
			attrs = append(attrs, "unavailable", ev.Unavailable.Round(time.Millisecond))
		}
		if ev.Recovered > 0 {
			attrs = append(attrs, "recovered_after", time.Duration(ev.Recovered-ev.Healed).Round(time.Millisecond))
		}
		log.Info("fault healed", attrs...)
		if ferr != nil {
			return rep, fmt.Errorf("step %d (%s): %w", step.N, step.Kind, ferr)
		}
		if len(rep.Problems) > 0 {
			break
		}
		if ev.Change != nil {
			// After a ring change: fresh probe keys for the new ring, and
			// every check that does not need the whole history, under the
			// new ring, with the clients paused.
			pk, err := probeKeysFor(c.CurrentRing())
			if err != nil {
				return rep, err
			}
			probe.SetKeys(pk)
			for _, k := range pk {
				if !slices.Contains(written, k) {
					written = append(written, k)
				}
			}
			start := time.Now()
			problems := checkpoint(ctx, c, kv, h, wl, written)
			for _, p := range problems {
				rep.Problems = append(rep.Problems, fmt.Sprintf("after step %d (%s): %s", step.N, step.Kind, p))
			}
			log.Info("checked after the ring change", "n", step.N, "epoch", c.CurrentRing().Epoch, "problems", len(problems),
				"took", time.Since(start).Round(time.Millisecond))
			if len(rep.Problems) > 0 {
				break
			}
		}
		if err := hold(ctx, gap); err != nil {
			return rep, err
		}
	}
	rep.Steps = steps
	rep.Elapsed = time.Since(start)
	rep.Changes = nem.Changes

	// Everything healed: the clients go on for a while against the whole
	// cluster, then stop; every member must converge, and the final reads
	// join the history.
	if err := c.HealAll(ctx); err != nil {
		return rep, err
	}
	if len(rep.Problems) == 0 {
		if err := c.WaitHealthy(ctx, 90*time.Second); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("after the schedule: the cluster did not recover: %v", err))
		}
	}
	if err := hold(ctx, 3*time.Second); err != nil {
		return rep, err
	}
	stopWorkload()
	rep.Unexpected = wl.Unexpected()

	allKeys, err := KeyOwners(c.CurrentRing(), written)
	if err != nil {
		return rep, err
	}
	converged, problems := Converge(ctx, c, allKeys, 60*time.Second)
	rep.Problems = append(rep.Problems, problems...)
	final, problems := FinalReads(ctx, kv, h, allKeys)
	rep.Problems = append(rep.Problems, problems...)
	if converged != nil {
		rep.Problems = append(rep.Problems, CompareFinal(converged, final)...)
	}

	ops := h.Ops()
	// Which group served each operation: the key's owner, if the same
	// under every ring in effect while the call ran.
	tl := &Timeline{First: first, Changes: nem.Changes}
	for i := range ops {
		ops[i].Group = tl.StableOwner(ops[i].Key, ops[i].Call, ops[i].Return)
	}
	rep.count(ops)
	log.Info("checking the history", "ops", len(ops))
	rep.Keys, err = CheckLinearizable(ops, cfg.CheckTimeout, dir, rep.Events)
	if err != nil {
		return rep, err
	}
	for _, k := range rep.Keys {
		switch k.Result {
		case porcupine.Illegal:
			rep.Problems = append(rep.Problems, fmt.Sprintf("key %q (group %s): history NOT LINEARIZABLE; see %s", k.Key, k.Group, k.Visualization))
		case porcupine.Unknown:
			rep.Problems = append(rep.Problems, fmt.Sprintf("key %q (group %s): the linearizability check timed out after %v (inconclusive)", k.Key, k.Group, cfg.CheckTimeout))
		}
	}
	rep.Problems = append(rep.Problems, CheckVersionOrder(ops)...)
	rep.Problems = append(rep.Problems, CheckDurable(ops, final)...)
	rep.Problems = append(rep.Problems, CheckDeadlines(ops, time.Second)...)
	rep.summarize()
	return rep, nil
}

// standby is how many standby groups the run needs: those asked for, or
// none without ring changes.
func (c Config) standby() int {
	for _, k := range c.Kinds {
		if k.isRingChange() {
			return c.Standby
		}
	}
	return 0
}

// checkpoint pauses the clients and runs, under the committed ring, the
// checks that do not need the whole history: every member converged on
// the keys its group owns and holds no other (a group out of the ring
// holds none), linearizable reads of every key agree with the members,
// and every acknowledged write so far is there. The reads join the
// history.
func checkpoint(ctx context.Context, c *Cluster, kv KV, h *History, wl *Workload, keys []string) []string {
	wl.Pause()
	defer wl.Resume()
	owners, err := KeyOwners(c.CurrentRing(), keys)
	if err != nil {
		return []string{err.Error()}
	}
	converged, problems := Converge(ctx, c, owners, 60*time.Second)
	final, p := FinalReads(ctx, kv, h, owners)
	problems = append(problems, p...)
	if converged != nil {
		problems = append(problems, CompareFinal(converged, final)...)
	}
	return append(problems, CheckDurable(h.Ops(), final)...)
}

func needsFirewall(kinds []Kind) bool {
	for _, k := range kinds {
		if k.isPartition() {
			return true
		}
	}
	return false
}

// chooseKeys picks perGroup workload keys owned by each group of the ring
// (key -> group), and one probe key per group (group -> key).
func chooseKeys(r wire.Ring, perGroup int) (map[string]string, map[string]string, error) {
	members := make([]carp.Member, len(r.Groups))
	for i, g := range r.Groups {
		members[i] = carp.Member{ID: g.ID, Weight: g.Weight}
	}
	mode, err := carp.ParseMode(r.Mode)
	if err != nil {
		return nil, nil, err
	}
	ring, err := carp.New(members, carp.WithMode(mode), carp.WithEpoch(r.Epoch))
	if err != nil {
		return nil, nil, err
	}
	keys := map[string]string{}
	count := map[string]int{}
	probes := map[string]string{}
	for i := 0; len(keys) < perGroup*len(members) || len(probes) < len(members); i++ {
		if i > 100000 {
			return nil, nil, fmt.Errorf("could not find keys for every group of %+v", r.Groups)
		}
		k := fmt.Sprintf("key-%d", i)
		g := ring.Owner([]byte(k))
		if count[g] < perGroup {
			keys[k] = g
			count[g]++
		}
		p := fmt.Sprintf("probe-%d", i)
		if g := ring.Owner([]byte(p)); probes[g] == "" {
			probes[g] = p
		}
	}
	return keys, probes, nil
}
