package main_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/carpkv/carpkv/internal/testcluster"
)

// The Raft log stores (--raft-log-store, docs/design.md "The Raft log
// store") under real kill -9.

func TestEachLogStoreKeepsAllDataOverAWholeGroupKill(t *testing.T) {
	for _, kind := range []string{"wal", "bolt"} {
		t.Run(kind, func(t *testing.T) {
			c := testcluster.Start(t, "g1", 3, "--raft-log-store="+kind)
			c.DumpLogsOnFailure()
			cl := client(t, c)
			l := startLoad(t, cl, 8)
			l.waitFor(t, 300)
			for _, n := range c.Nodes {
				n.Kill() // mid-append: the writers are running
			}
			acked := l.finish()
			for _, n := range c.Nodes {
				n.Start()
			}
			c.WaitMembers(3, 30*time.Second)
			checkAll(t, cl, acked)
			t.Logf("%s: %d acknowledged writes survived a kill -9 of every member", kind, len(acked))
		})
	}
}

// TestWALSurvivesKillsMidAppendAndTornTails kills members of a wal group
// mid-append, round after round, and in two rounds of three damages the
// tail of the killed member's newest segment file as a torn write would
// (its last written bytes zeroed: the file is preallocated, and an append
// that did not reach the disk reads back as zeros): the member must start
// again and catch up, and no acknowledged write may be lost. CARPKV_CRASH_ROUNDS sets the rounds (6
// in make test; a soak runs hundreds).
func TestWALSurvivesKillsMidAppendAndTornTails(t *testing.T) {
	rounds := 6
	if s := os.Getenv("CARPKV_CRASH_ROUNDS"); s != "" {
		var err error
		if rounds, err = strconv.Atoi(s); err != nil {
			t.Fatalf("CARPKV_CRASH_ROUNDS: %v", err)
		}
	}
	c := testcluster.Start(t, "g1", 3, "--raft-log-store=wal")
	c.DumpLogsOnFailure()
	cl := client(t, c)
	l := startLoad(t, cl, 8)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	damaged := map[string]int{}
	for round := range rounds {
		l.waitFor(t, 100)
		victim := c.Nodes[rng.IntN(len(c.Nodes))]
		victim.Kill()
		how := []string{"none", "cut", "cut"}[round%3]
		if how != "none" {
			seg := newestSegment(t, victim.DataDir)
			damageTail(t, seg, how, rng)
			damaged[how]++
		}
		victim.Start()
		c.WaitMembers(3, 30*time.Second)
		// The victim holds everything again before the next round: two
		// members that each lost the same acknowledged entries would be
		// two faults at once, more than Raft tolerates in a group of 3.
		marker := fmt.Sprintf("marker-%d", round)
		if _, err := cl.Put(testcluster.Context(t, 20*time.Second), []byte(marker), []byte("x")); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		// Generous: with a long log the victim may take several seconds
		// to open its wal (the tail segment is read back in full) on a
		// machine busy with the writers.
		for _, n := range c.Running() {
			testcluster.Eventually(t, 90*time.Second, fmt.Sprintf("%s holds %s", n.ID, marker), func() error {
				v, found, err := n.StaleGet(marker)
				if err != nil || !found || v != "x" {
					return fmt.Errorf("value %q (found %v), %v", v, found, err)
				}
				return nil
			})
		}
		t.Logf("round %d: killed %s, tail %s; %d writes acknowledged so far", round, victim.ID, how, l.count.Load())
	}
	l.waitFor(t, 100)
	acked := l.finish()
	checkAll(t, cl, acked)
	// The damaged members hold every acknowledged write again (caught up
	// from the others), in their own state machines.
	last := slices.Sorted(func(yield func(string) bool) {
		for k := range acked {
			if !yield(k) {
				return
			}
		}
	})[len(acked)-1]
	waitReplicated(t, c, last, acked[last])
	t.Logf("%d rounds (%v damaged tails), %d acknowledged writes, none lost; %d failed or unknown", rounds, damaged, len(acked), l.errs.Load())
}

// TestWALGarbledTailStartsOrRefusesClearly garbles the last bytes of a
// killed member's newest segment (not a torn write: media or software
// corruption, which raft-wal does not promise to detect). The member must
// either start and catch up, or refuse to start with an error that names
// its log and says what to do; never panic. The group keeps every
// acknowledged write either way.
func TestWALGarbledTailStartsOrRefusesClearly(t *testing.T) {
	c := testcluster.Start(t, "g1", 3, "--raft-log-store=wal")
	c.DumpLogsOnFailure()
	cl := client(t, c)
	l := startLoad(t, cl, 8)
	l.waitFor(t, 500)
	victim := c.Follower(c.Leader(10 * time.Second))
	victim.Kill()
	damageTail(t, newestSegment(t, victim.DataDir), "garble", rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2)))
	victim.Start()
	outcome := ""
	testcluster.Eventually(t, 60*time.Second, "the damaged member starts or refuses", func() error {
		log := victim.Log()
		switch {
		case strings.Contains(log, "panic:"):
			t.Fatalf("the damaged member panicked:\n%s", log)
		case strings.Contains(log, "raft log damaged"):
			outcome = "refused"
			return nil
		case victim.Ready():
			outcome = "started"
			return nil
		}
		return fmt.Errorf("neither yet")
	})
	if outcome == "refused" {
		want := filepath.Join(victim.DataDir, "raft", "wal")
		if log := victim.Log(); !strings.Contains(log, want) || !strings.Contains(log, "move this data directory away") {
			t.Fatalf("the refusal does not name %s and what to do:\n%s", want, log)
		}
		victim.Kill() // reaps the exited process
	}
	l.waitFor(t, 200) // the group serves on
	acked := l.finish()
	checkAll(t, cl, acked)
	if outcome == "started" {
		last := "after-garble"
		if _, err := cl.Put(testcluster.Context(t, 20*time.Second), []byte(last), []byte("x")); err != nil {
			t.Fatal(err)
		}
		waitReplicated(t, c, last, "x")
	}
	t.Logf("garbled tail: the member %s; %d acknowledged writes, none lost", outcome, len(acked))
}

// newestSegment is the wal segment file a member appended to last.
func newestSegment(t *testing.T, dataDir string) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dataDir, "raft", "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no wal segment under %s (%v)", dataDir, err)
	}
	slices.Sort(segs) // named by base index: the last sorts last
	return segs[len(segs)-1]
}

// damageTail cuts the file's written part short by up to 4 KiB, or
// garbles up to 64 of its last written bytes. Segment files are
// preallocated: the written part ends at the last non-zero byte.
func damageTail(t *testing.T, path, how string, rng *rand.Rand) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	if end < 64 {
		return
	}
	switch how {
	case "cut":
		n := 1 + rng.IntN(min(4096, end-64))
		clear(b[end-n : end])
	case "garble":
		n := 1 + rng.IntN(64)
		for i := end - n; i < end; i++ {
			b[i] ^= byte(1 + rng.IntN(255))
		}
	default:
		panic(fmt.Sprintf("damageTail: %q", how))
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDataDirKeepsItsLogStore(t *testing.T) {
	for _, tc := range []struct{ made, asked, file string }{
		{"bolt", "wal", "raft.db"},
		{"wal", "bolt", "wal"},
	} {
		t.Run(tc.made+"-then-"+tc.asked, func(t *testing.T) {
			c := testcluster.Start(t, "g1", 1, "--raft-log-store="+tc.made)
			c.DumpLogsOnFailure()
			n := c.Nodes[0]
			c.Leader(10 * time.Second)
			n.Stop()
			n.Args = append(n.Args, "--raft-log-store="+tc.asked)
			n.Start()
			testcluster.Eventually(t, 20*time.Second, "agent refuses the other store", func() error {
				if !strings.Contains(n.Log(), "raft log store mismatch") {
					return fmt.Errorf("no refusal in its log yet")
				}
				return nil
			})
			n.Kill() // reaps the exited process
			want := filepath.Join(n.DataDir, "raft", tc.file)
			if log := n.Log(); !strings.Contains(log, want) || !strings.Contains(log, "--raft-log-store "+tc.made) {
				t.Fatalf("refusal does not name %s and the flag to use; log:\n%s", want, log)
			}
			// Nothing of the other kind was created beside the old log.
			other := map[string]string{"wal": "raft.db", "bolt": "wal"}[tc.made]
			if _, err := os.Stat(filepath.Join(n.DataDir, "raft", other)); err == nil {
				t.Fatalf("%s was created beside the %s log", other, tc.made)
			}
		})
	}
}

func TestDefaultLogStoreIsWhatTheDataDirHoldsOrWAL(t *testing.T) {
	c := testcluster.Start(t, "g1", 1, "--raft-log-store=bolt")
	c.DumpLogsOnFailure()
	n := c.Nodes[0]
	cl := client(t, c)
	ctx := testcluster.Context(t, 30*time.Second)
	if _, err := cl.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	n.Stop()
	n.Args = slices.DeleteFunc(n.Args, func(a string) bool { return strings.HasPrefix(a, "--raft-log-store") })
	n.Start() // no --raft-log-store: keeps bolt
	c.Leader(20 * time.Second)
	if v, err := cl.Get(ctx, []byte("k")); err != nil || string(v.Data) != "v" {
		t.Fatalf("after the restart with the default store: %q, %v", v.Data, err)
	}
	raftDir := filepath.Join(n.DataDir, "raft")
	if _, err := os.Stat(filepath.Join(raftDir, "wal")); err == nil {
		t.Fatal("the default made a wal log beside the bolt one")
	}
	if got := strings.Count(n.Log(), "kind=bolt"); got != 2 {
		t.Fatalf("the agent said kind=bolt %d times over two starts, want 2:\n%s", got, n.Log())
	}
	// A new data directory gets wal.
	fresh := testcluster.Start(t, "g2", 1)
	fresh.DumpLogsOnFailure()
	fresh.Leader(10 * time.Second)
	if _, err := os.Stat(filepath.Join(fresh.Nodes[0].DataDir, "raft", "wal")); err != nil {
		t.Fatalf("a new data directory has no wal log: %v", err)
	}
}
