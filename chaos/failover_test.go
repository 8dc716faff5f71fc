package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient"
)

// How long a group's clients go without an acknowledged write when its
// leader freezes, dies or is cut off (issue 15). The gaps are measured and
// reported, not asserted (they depend on the machine's load); what is
// asserted is that every write is acknowledged or has an unknown outcome,
// that every acknowledged one reads back, and that writes resume after
// each fault. CHAOS_GAP_ROUNDS sets the rounds per fault kind (default 3),
// CHAOS_GAP_LIVENESS the client's LivenessTimeout ("off" to compare
// without it), CHAOS_GAP_JSON a file for the figures, CHAOS_GAP_KINDS the
// faults (frozen,killed,partitioned), CHAOS_GAP_CLIENT_LOG a file for the
// client's debug log. make bench-failover
// runs it.
func TestChaosLeaderFaultGaps(t *testing.T) {
	rounds := 3
	if s := os.Getenv("CHAOS_GAP_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CHAOS_GAP_ROUNDS=%q: want a positive number", s)
		}
		rounds = n
	}
	cfgLiveness := time.Duration(0) // the default
	switch s := os.Getenv("CHAOS_GAP_LIVENESS"); s {
	case "":
	case "off":
		cfgLiveness = -1
	default:
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("CHAOS_GAP_LIVENESS=%q: want a duration or off", s)
		}
		cfgLiveness = d
	}
	ctx, c, _ := newTestCluster(t, 0)
	kcfg := kvclient.Config{Addrs: c.Addrs(), LivenessTimeout: cfgLiveness}
	if p := os.Getenv("CHAOS_GAP_CLIENT_LOG"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		kcfg.Logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	kv, err := kvclient.New(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	ring, err := c.Ring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	owners, err := buildRing(specOf(ring))
	if err != nil {
		t.Fatal(err)
	}

	// Writers of keys that g1 owns, each of its own keys, closed loop.
	const writers = 32
	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		mu      sync.Mutex
		ackedAt []time.Time // completion time of every acknowledged write
		acked   = map[string]string{}
		unknown []time.Time // completion time of every write with an unknown outcome
		failed  []string    // anything else
	)
	for w := range writers {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				k := fmt.Sprintf("gap-%d-%d", w, i)
				if owners.Owner([]byte(k)) != "g1" {
					continue
				}
				v := "v" + strconv.Itoa(i)
				wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				_, err := kv.Put(wctx, []byte(k), []byte(v))
				cancel()
				mu.Lock()
				now := time.Now() // under mu: ackedAt stays sorted
				switch {
				case err == nil:
					ackedAt = append(ackedAt, now)
					acked[k] = v
				case errors.Is(err, kvclient.ErrTimeout):
					unknown = append(unknown, now)
				default:
					failed = append(failed, fmt.Sprintf("put %s: %v", k, err))
				}
				mu.Unlock()
			}
		})
	}
	ackCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ackedAt)
	}
	// acksAfter waits until n writes completed after t.
	acksAfter := func(t0 time.Time, n int) error {
		return poll(ctx, 60*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			i, _ := slices.BinarySearchFunc(ackedAt, t0, func(a, b time.Time) int { return a.Compare(b) })
			if got := len(ackedAt) - i; got < n {
				return fmt.Errorf("%d of %d writes acknowledged since %s", got, n, t0.Format(time.StampMilli))
			}
			return nil
		})
	}
	if err := acksAfter(time.Time{}, 4*writers); err != nil {
		t.Fatal(err)
	}

	type fault struct {
		name  string
		apply func(l *Agent) error
		heal  func(l *Agent) error
	}
	faults := []fault{
		{"frozen (SIGSTOP)", func(l *Agent) error { return c.SigStop(ctx, l) }, func(l *Agent) error { return c.SigCont(ctx, l) }},
		{"killed (SIGKILL)", func(l *Agent) error { return c.Kill(ctx, l) }, func(l *Agent) error { return c.Start(ctx, l) }},
		{"partitioned (from its peers and the clients)", func(l *Agent) error {
			var peers []string
			for _, m := range c.Members(l.Group) {
				if m != l {
					peers = append(peers, m.IP)
				}
			}
			// The clients first: they lose the leader when it can no
			// longer answer them, as in a frozen leader's case.
			if err := c.fw.CutFromHost(ctx, []string{l.IP}); err != nil {
				return err
			}
			return c.fw.CutBoth(ctx, []string{l.IP}, peers)
		}, func(*Agent) error { return c.fw.Heal(ctx) }},
	}
	if only := os.Getenv("CHAOS_GAP_KINDS"); only != "" {
		faults = slices.DeleteFunc(faults, func(f fault) bool {
			return !slices.ContainsFunc(strings.Split(only, ","), func(k string) bool { return strings.HasPrefix(f.name, k) })
		})
	}
	type result struct {
		Fault   string          `json:"fault"`
		Gaps    []time.Duration `json:"gaps_ns"`
		Unknown int             `json:"unknown_outcomes"`
	}
	var results []result
	for _, f := range faults {
		r := result{Fault: f.name}
		for round := range rounds {
			l := settledLeader(t, ctx, c, "g1")
			if err := acksAfter(time.Now(), 2*writers); err != nil {
				t.Fatalf("%s, round %d, before: %v", f.name, round, err)
			}
			t0 := time.Now()
			mu.Lock()
			unknownBefore := len(unknown)
			mu.Unlock()
			if err := f.apply(l); err != nil {
				t.Fatalf("%s %s: %v", f.name, l.ID, err)
			}
			// Writes resume (the first acks after the fault landed may
			// come from writes sent before it: wait for plenty).
			if err := acksAfter(time.Now(), 8*writers); err != nil {
				t.Fatalf("%s, round %d: writes did not resume: %v", f.name, round, err)
			}
			end := time.Now()
			mu.Lock()
			gap := longestGap(ackedAt, t0, end)
			// Writes with an unknown outcome end within the call deadline.
			r.Unknown += len(unknown) - unknownBefore
			mu.Unlock()
			r.Gaps = append(r.Gaps, gap)
			t.Logf("%s %s at %s, round %d: no acknowledged write for %v", f.name, l.ID, t0.Format("15:04:05.000"), round+1, gap.Round(time.Millisecond))
			if err := f.heal(l); err != nil {
				t.Fatal(err)
			}
			if err := c.WaitHealthy(ctx, 60*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		results = append(results, r)
	}
	stop.Store(true)
	wg.Wait()

	liveness := "default " + kvclient.DefaultLivenessTimeout.String()
	if cfgLiveness < 0 {
		liveness = "off"
	} else if cfgLiveness > 0 {
		liveness = cfgLiveness.String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "g1's leader faulted, %d writers on g1, kvclient LivenessTimeout %s, %d acknowledged writes in all:\n", writers, liveness, ackCount())
	fmt.Fprintf(&b, "%-46s %8s %8s %6s  %s\n", "leader", "median", "worst", "unknown", "gaps")
	for _, r := range results {
		s := slices.Clone(r.Gaps)
		slices.Sort(s)
		var all []string
		for _, g := range r.Gaps {
			all = append(all, g.Round(time.Millisecond).String())
		}
		fmt.Fprintf(&b, "%-46s %8v %8v %6d  %s\n", r.Fault, s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), r.Unknown, strings.Join(all, " "))
	}
	t.Log("\n" + b.String())
	if out := os.Getenv("CHAOS_GAP_JSON"); out != "" {
		j, _ := json.MarshalIndent(map[string]any{"liveness": liveness, "writers": writers, "results": results}, "", "  ")
		if err := os.WriteFile(out, j, 0o644); err != nil {
			t.Error(err)
		}
	}

	checkWrites(t, ctx, kv, "failed other than with an unknown outcome", failed, acked)
}

// longestGap is the longest time in [from, to] without an acknowledged
// write: between from and the first ack, between two acks, or between the
// last ack and to. acks is sorted.
func longestGap(acks []time.Time, from, to time.Time) time.Duration {
	prev, gap := from, time.Duration(0)
	i, _ := slices.BinarySearchFunc(acks, from, func(a, b time.Time) int { return a.Compare(b) })
	for ; i < len(acks) && !acks[i].After(to); i++ {
		gap = max(gap, acks[i].Sub(prev))
		prev = acks[i]
	}
	return max(gap, to.Sub(prev))
}
