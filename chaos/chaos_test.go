package chaos

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestChaos runs the fault-injection suite: for each seed, a fresh
// cluster in containers, concurrent clients, the nemesis, and the checks.
// It needs root, Docker and iptables, and minutes, so it runs only when
// CARPKV_CHAOS=1 (make chaos sets it); make test skips it.
//
// Settings (make chaos passes them through):
//
//	CARPKV_CHAOS_SEEDS     seeds, space or comma separated (default CISeeds)
//	CARPKV_CHAOS_DURATION  fault schedule per seed, a Go duration; empty
//	                       or 0: one round, every fault kind once
//	CARPKV_CHAOS_FAULTS    fault kinds, comma separated (default all)
//	CARPKV_CHAOS_GROUPS, CARPKV_CHAOS_REPLICAS, CARPKV_CHAOS_WORKERS,
//	CARPKV_CHAOS_KEYS      cluster and workload shape (2, 3, 8, 8)
//	CARPKV_CHAOS_RESULTS   results root (default $TMPDIR/carpkv-chaos-results)
//	CARPKV_CHAOS_KEEP=1    keep history, logs and data of passing runs
//	CARPKV_CHAOS_RAPID=1   do not wait for the cluster to recover between
//	                       faults (only at the end)
//	CARPKV_CHAOS_STALE_READS=1  the checker's self-test: clients read
//	                       with ?stale=true, so the run must FAIL
func TestChaos(t *testing.T) {
	image, ctx := needDocker(t)
	seeds, base := settings(t)

	all := map[Kind][]time.Duration{}
	for _, seed := range seeds {
		t.Run("seed="+strconv.FormatUint(seed, 10), func(t *testing.T) {
			cfg := base
			cfg.Seed = seed
			cfg.Image = image
			cfg.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			rep, err := Run(ctx, cfg)
			if rep != nil {
				t.Log("\n" + rep.String())
				for k, ds := range rep.Durations() {
					all[k] = append(all[k], ds...)
				}
			}
			if err != nil {
				t.Fatalf("seed %d: the harness failed: %v", seed, err)
			}
			if !rep.Passed() {
				t.Fatalf("seed %d: %d problems (see above and %s); reproduce with: make chaos SEED=%d", seed, len(rep.Problems), rep.Dir, seed)
			}
		})
	}
	for k, s := range MergeStats(all) {
		t.Logf("over all seeds: time to an acknowledged write after %s: %s", k, s)
	}
}

// settings reads the environment (see TestChaos).
func settings(t *testing.T) ([]uint64, Config) {
	t.Helper()
	cfg := DefaultConfig(0)
	var seeds []uint64
	for _, f := range strings.FieldsFunc(os.Getenv("CARPKV_CHAOS_SEEDS"), func(r rune) bool { return r == ',' || r == ' ' }) {
		s, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			t.Fatalf("CARPKV_CHAOS_SEEDS: %q is not a seed", f)
		}
		seeds = append(seeds, s)
	}
	if len(seeds) == 0 {
		seeds = CISeeds
	}
	if d := os.Getenv("CARPKV_CHAOS_DURATION"); d != "" && d != "0" {
		v, err := time.ParseDuration(d)
		if err != nil {
			t.Fatalf("CARPKV_CHAOS_DURATION: %v", err)
		}
		cfg.Duration = v
	}
	kinds, err := ParseKinds(os.Getenv("CARPKV_CHAOS_FAULTS"))
	if err != nil {
		t.Fatalf("CARPKV_CHAOS_FAULTS: %v", err)
	}
	cfg.Kinds = kinds
	for _, s := range []struct {
		env string
		v   *int
	}{
		{"CARPKV_CHAOS_GROUPS", &cfg.Groups}, {"CARPKV_CHAOS_REPLICAS", &cfg.Replicas},
		{"CARPKV_CHAOS_WORKERS", &cfg.Workers}, {"CARPKV_CHAOS_KEYS", &cfg.KeysPerGroup},
	} {
		if v := os.Getenv(s.env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				t.Fatalf("%s: %q is not a positive number", s.env, v)
			}
			*s.v = n
		}
	}
	if cfg.Groups < 2 || cfg.Replicas < 3 {
		t.Fatalf("the suite needs at least 2 groups of 3 (got %d × %d)", cfg.Groups, cfg.Replicas)
	}
	if v := os.Getenv("CARPKV_CHAOS_RESULTS"); v != "" {
		cfg.ResultsDir = v
	}
	cfg.Keep = os.Getenv("CARPKV_CHAOS_KEEP") == "1"
	cfg.StaleReads = os.Getenv("CARPKV_CHAOS_STALE_READS") == "1"
	cfg.Rapid = os.Getenv("CARPKV_CHAOS_RAPID") == "1"
	return seeds, cfg
}
