package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/carpkv/carpkv/ctl/localcluster"
	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

func (e *env) demoCommand() *cli.Command {
	return &cli.Command{
		Name:      "demo",
		Usage:     "show a local cluster at work: bulk writes, CARP balance, a leader killed and replaced",
		UsageText: "carpkvctl demo [--keys N] [--chunk N] [--concurrency N] [--dir DIR]",
		Description: `Runs against the local cluster ("carpkvctl local up"; "make run" does both):

  1. writes --keys keys through kvclient's MultiPut, --chunk keys per call
     (split by owner group, the groups in parallel), with a progress bar;
  2. prints how many keys each group stores (the agents' own counts) next
     to its CARP target share;
  3. kills one group's leader with SIGKILL, shows the other groups serving
     at once, and measures how long the client waits for the group's new
     leader; reads back a sample of keys of every group and writes new ones;
  4. restarts the killed agent and waits until it has caught up;
  5. starts a new group's agents (a standby group) and adds the group to
     the ring live while clients write and read back: shows the keys moved
     against CARP's ideal (the new group's share), the client calls that
     failed (none expected), and the new split (--grow=false skips it);
  6. prints how to use and stop the cluster.

Examples:
   carpkvctl demo
   carpkvctl demo --keys 10000`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "keys", Value: 100000, Usage: "how many keys to write"},
			&cli.IntFlag{Name: "chunk", Value: 10000, Usage: "keys per MultiPut call"},
			&cli.IntFlag{Name: "concurrency", Value: 32, Usage: "keys of one group in flight at once"},
			&cli.StringFlag{Name: "dir", EnvVars: []string{"CARPKV_LOCAL_DIR"}, Usage: "`DIR` of the local cluster (default: as \"local\")"},
			&cli.BoolFlag{Name: "grow", Value: true, Usage: "end by adding a group to the ring while clients write (--grow=false: skip)"},
		},
		Action: e.demo,
	}
}

func (e *env) demo(c *cli.Context) error {
	if err := wantArgs(c, 0, 0, "no arguments"); err != nil {
		return err
	}
	n, chunk := c.Int("keys"), c.Int("chunk")
	if n < 1 || chunk < 1 || c.Int("concurrency") < 1 {
		return &usageError{cmd: "demo", msg: "demo: --keys, --chunk and --concurrency must be at least 1"}
	}
	st, err := loadLocal(c)
	if err != nil {
		return err
	}
	var addrs []string
	for _, nd := range st.Alive() {
		addrs = append(addrs, nd.HTTPAddr)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("no agent of the local cluster in %s is running: 'carpkvctl local up' starts it", st.Dir)
	}
	kv, err := kvclient.New(kvclient.Config{
		Addrs:               addrs,
		BatchConcurrency:    c.Int("concurrency"),
		MaxIdleConnsPerHost: max(kvclient.DefaultMaxIdleConnsPerHost, c.Int("concurrency")),
		// Short backoffs: the failover time the demo measures is the
		// cluster's, not the client's waiting.
		BackoffMax: 100 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	defer kv.Close()
	d := &demo{e: e, c: c, st: st, kv: kv, ctx: c.Context, grows: c.Bool("grow")}
	return d.run(n, chunk)
}

type demo struct {
	e   *env
	c   *cli.Context
	st  *localcluster.State
	kv  *kvclient.Client
	ctx context.Context

	ring    *wire.Ring
	written map[string][][]byte // the keys written, by the group that took them
	grows   bool                // add a group live at the end (--grow)
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.e.stdout, format, args...) }

func (d *demo) step(format string, args ...any) {
	d.say("\n== "+format+"\n", args...)
}

func (d *demo) run(n, chunk int) error {
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	ring, err := d.kv.Ring(ctx)
	cancel()
	if err != nil {
		return err
	}
	d.ring = ring
	if ring.Epoch == 0 {
		d.step("the cluster has no ring yet (one standalone group); writing anyway")
	} else {
		d.step("the ring: epoch %d, CARP mode %s, %d groups", ring.Epoch, ring.Mode, len(ring.Groups))
	}
	if err := d.write(n, chunk); err != nil {
		return err
	}
	if err := d.distribution(); err != nil {
		return err
	}
	if err := d.failover(); err != nil {
		return err
	}
	if d.grows {
		if err := d.grow(); err != nil {
			return err
		}
	}
	d.usage()
	return nil
}

// write stores n keys with MultiPut, chunk keys per call.
func (d *demo) write(n, chunk int) error {
	d.step("writing %s keys with MultiPut, %s per call (split by owner group, groups in parallel)", commas(n), commas(chunk))
	d.written = map[string][][]byte{}
	p := newStatusLine(d.e.stderr)
	start, lastShown := time.Now(), time.Time{}
	failed, rewritten := 0, 0
	var firstErr error
	for off := 0; off < n; off += chunk {
		kvs := make([]kvclient.KV, 0, min(chunk, n-off))
		for i := off; i < min(off+chunk, n); i++ {
			kvs = append(kvs, kvclient.KV{Key: demoKey(i), Value: []byte("value-" + strconv.Itoa(i))})
		}
		ctx, cancel := context.WithTimeout(d.ctx, time.Minute)
		res, err := d.kv.MultiPut(ctx, kvs)
		if err != nil {
			// A key whose write timed out (outcome unknown, e.g. its
			// leader changed mid-write) or found no leader is written
			// again: the same value, so either way it ends the same.
			var again []kvclient.KV
			var at []int
			for i, r := range res {
				if errors.Is(r.Err, kvclient.ErrTimeout) || errors.Is(r.Err, kvclient.ErrUnavailable) {
					again, at = append(again, kvs[i]), append(at, i)
				}
			}
			if len(again) > 0 {
				rewritten += len(again)
				res2, _ := d.kv.MultiPut(ctx, again)
				for j, r := range res2 {
					res[at[j]] = r
				}
			}
		}
		cancel()
		if err := d.ctx.Err(); err != nil {
			p.done()
			return err
		}
		for _, r := range res {
			if r.Err != nil {
				failed++
				if firstErr == nil {
					firstErr = r.Err
				}
				continue
			}
			d.written[r.Group] = append(d.written[r.Group], r.Key)
		}
		done := off + len(kvs)
		if now := time.Now(); now.Sub(lastShown) > 200*time.Millisecond || done == n {
			lastShown = now
			el := now.Sub(start).Seconds()
			rate := float64(done) / max(el, 1e-9)
			eta := float64(n-done) / max(rate, 1e-9)
			if p.tty || done == n || done*10/n != (done-len(kvs))*10/n {
				p.show(fmt.Sprintf("[%s] %s/%s keys  %s keys/s  ETA %.0fs", drawBar(done, n, 30), commas(done), commas(n), commas(int(rate)), eta))
			}
		}
	}
	p.done()
	took := time.Since(start)
	d.say("wrote %s keys in %.1fs (%s keys/s)", commas(n-failed), took.Seconds(), commas(int(float64(n-failed)/took.Seconds())))
	if rewritten > 0 {
		d.say("; %s written twice after an unknown outcome (a timeout, e.g. during a leader change: same value, so harmless here)", commas(rewritten))
	}
	if failed > 0 {
		d.say("; %s FAILED, first: %v", commas(failed), firstErr)
	}
	d.say("\n")
	return nil
}

func demoKey(i int) []byte { return []byte("demo/" + strconv.Itoa(i)) }

// distribution prints each group's stored key count (the leader's own)
// next to its CARP target share.
func (d *demo) distribution() error {
	d.step("where the keys are: each group's own count (its leader's) next to its CARP target share")
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	counts := map[string]int{}
	total := 0
	cols := 6
	if d.written == nil {
		cols = 5 // after a ring change the keys are no longer where they were written
	}
	for _, g := range d.ring.Groups {
		info := d.leaderInfo(ctx, g.ID)
		if info == nil {
			counts[g.ID] = -1
			continue
		}
		counts[g.ID] = info.Keys
		total += info.Keys
	}
	var rows [][]string
	worst := 0.0
	for _, g := range d.ring.Groups {
		k := counts[g.ID]
		if k < 0 {
			rows = append(rows, []string{g.ID, "no leader answered", "", percent(g.Share), "", commas(len(d.written[g.ID]))}[:cols])
			continue
		}
		share := float64(k) / float64(max(total, 1))
		dev := share/g.Share - 1
		worst = max(worst, abs(dev))
		rows = append(rows, []string{g.ID, commas(k), percent(share), percent(g.Share), fmt.Sprintf("%+.2f%%", 100*dev), commas(len(d.written[g.ID]))}[:cols])
	}
	if err := writeTable(d.e.stdout, []string{"GROUP", "KEYS STORED", "SHARE", "TARGET", "VS TARGET", "WRITTEN NOW"}[:cols], rows); err != nil {
		return err
	}
	d.say("largest deviation from the target share: %.2f%% (CARP places each key by hash alone: no table, no virtual nodes)\n", 100*worst)
	return nil
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// leaderInfo asks the group's agents which one leads and returns what it
// says about itself.
func (d *demo) leaderInfo(ctx context.Context, group string) *wire.AgentInfo {
	for _, nd := range d.st.Nodes {
		if nd.Group != group || !nd.Alive() {
			continue
		}
		info, err := d.kv.Self(ctx, nd.HTTPAddr)
		if err == nil && info.State == "Leader" {
			return info
		}
	}
	return nil
}

// failover kills one group's leader and shows the cluster serving on.
func (d *demo) failover() error {
	if len(d.ring.Groups) == 0 {
		return nil
	}
	victim := d.ring.Groups[0].ID
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	info := d.leaderInfo(ctx, victim)
	cancel()
	if info == nil {
		d.say("\n(skipping the failover: group %s has no leader right now)\n", victim)
		return nil
	}
	node := d.st.Node(info.ID)
	if node == nil {
		d.say("\n(skipping the failover: %s's leader %s is not a node of the local cluster)\n", victim, info.ID)
		return nil
	}
	// A key of the victim group to write until its new leader takes it.
	probe := d.keyOf(victim, "demo/failover-")
	d.step("killing %s, the leader of %s (pid %d), with SIGKILL", node.ID, victim, node.PID)
	pid := node.PID
	kctx, kcancel := context.WithTimeout(d.ctx, 10*time.Second)
	err := localcluster.Kill(kctx, node)
	kcancel()
	if err != nil {
		return err
	}
	killed := time.Now()
	node.PID = 0
	if err := d.st.Save(); err != nil {
		return err
	}
	d.say("killed pid %d\n", pid)

	// The other groups do not notice.
	for _, g := range d.ring.Groups {
		if g.ID == victim {
			continue
		}
		if err := d.readSample(g.ID, 20); err != nil {
			return err
		}
	}
	// The victim group: the client retries until a new leader is elected.
	var ver uint64
	for {
		ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
		ver, err = d.kv.Put(ctx, probe, []byte("written during the failover"))
		cancel()
		// An unknown outcome (the write raced the kill) is harmless for
		// this key: write it again.
		if err == nil || !errors.Is(err, kvclient.ErrTimeout) || time.Since(killed) > time.Minute || d.ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("group %s did not accept a write after its leader was killed: %w", victim, err)
	}
	took := time.Since(killed)
	_, leader := d.kv.Owner(probe)
	newLeader := "?"
	if leader != nil {
		newLeader = leader.ID
	}
	d.say("%s: new leader %s; the client's first write there (version %d) was accepted %.2fs after the kill\n", victim, newLeader, ver, took.Seconds())
	if err := d.readSample(victim, 20); err != nil {
		return err
	}
	if err := d.writeFew(); err != nil {
		return err
	}

	// Bring the killed agent back.
	d.step("restarting %s: it rejoins %s as a follower and catches up from the log", node.ID, victim)
	if err := localcluster.Start(node, d.st.AgentBin); err != nil {
		return err
	}
	if err := d.st.Save(); err != nil {
		return err
	}
	restarted := time.Now()
	wctx, wcancel := context.WithTimeout(d.ctx, time.Minute)
	defer wcancel()
	applied, err := d.waitCaughtUp(wctx, node, victim)
	if err != nil {
		d.e.printLogTails(&localcluster.State{Nodes: []localcluster.Node{*node}})
		return err
	}
	d.say("%s is back as a follower (pid %d) with applied index %s, level with its leader, %.1fs after the restart\n",
		node.ID, node.PID, commas(int(applied)), time.Since(restarted).Seconds())
	return nil
}

// keyOf returns a key with prefix that group owns under the client's ring.
func (d *demo) keyOf(group, prefix string) []byte {
	for i := 0; ; i++ {
		k := []byte(prefix + strconv.Itoa(i))
		if g, _ := d.kv.Owner(k); g == group || i > 1_000_000 {
			return k
		}
	}
}

// readSample reads back up to n of the keys written to group and checks
// their values.
func (d *demo) readSample(group string, n int) error {
	keys := d.written[group]
	if len(keys) > n {
		step := len(keys) / n
		var s [][]byte
		for i := 0; i < len(keys) && len(s) < n; i += step {
			s = append(s, keys[i])
		}
		keys = s
	}
	if len(keys) == 0 {
		return nil
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	res, err := d.kv.MultiGet(ctx, keys)
	cancel()
	bad := 0
	for _, r := range res {
		i, _ := strconv.Atoi(strings.TrimPrefix(string(r.Key), "demo/"))
		if r.Err != nil || !bytes.Equal(r.Value, []byte("value-"+strconv.Itoa(i))) {
			bad++
		}
	}
	if err != nil || bad > 0 {
		return fmt.Errorf("%s: %d of %d sample keys wrong or unreadable: %v", group, bad, len(keys), err)
	}
	d.say("%s: read back %d sample keys, all correct, in %s\n", group, len(keys), roundDur(time.Since(start)))
	return nil
}

// writeFew writes a few new keys, to every group.
func (d *demo) writeFew() error {
	var kvs []kvclient.KV
	for _, g := range d.ring.Groups {
		for i := range 3 {
			kvs = append(kvs, kvclient.KV{Key: d.keyOf(g.ID, fmt.Sprintf("demo/after-%s-%d-", g.ID, i)), Value: []byte("new")})
		}
	}
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := d.kv.MultiPut(ctx, kvs); err != nil {
		return fmt.Errorf("writing new keys after the failover: %w", err)
	}
	d.say("wrote %d new keys, %d to each group, in %s\n", len(kvs), len(kvs)/max(len(d.ring.Groups), 1), roundDur(time.Since(start)))
	return nil
}

// waitCaughtUp polls the restarted node until it follows and has applied
// what its group's leader had committed when it came back.
func (d *demo) waitCaughtUp(ctx context.Context, node *localcluster.Node, group string) (uint64, error) {
	p := newStatusLine(d.e.stderr)
	defer p.done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var target uint64
	last := ""
	for {
		if !node.Alive() {
			return 0, fmt.Errorf("%s exited after the restart (see %s)", node.ID, node.Log)
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		if target == 0 {
			if li := d.leaderInfo(actx, group); li != nil && li.ID != node.ID {
				target = li.CommitIndex
			}
		}
		info, err := d.kv.Self(actx, node.HTTPAddr)
		cancel()
		line := fmt.Sprintf("%s: starting", node.ID)
		if err == nil {
			line = fmt.Sprintf("%s: %s, applied %s of %s", node.ID, strings.ToLower(info.State), commas(int(info.AppliedIndex)), commas(int(target)))
			if target > 0 && info.AppliedIndex >= target && info.State == "Follower" {
				return info.AppliedIndex, nil
			}
		}
		if line != last {
			p.show(line)
			last = line
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%s did not catch up: %s: %w", node.ID, line, ctx.Err())
		case <-tick.C:
		}
	}
}

func (d *demo) usage() {
	p := d.e.progName()
	d.step("the cluster keeps running; try")
	lines := [][2]string{
		{p + " put greeting hello", "write a key (prints its version)"},
		{p + " get greeting", "read it back"},
		{p + " ring owner greeting", "which group owns it, and its leader"},
		{p + " status", "groups, leaders, health, keys per group"},
		{p + " ring show", "epoch, weights, shares, members"},
		{p + " local kill g2-n1", "crash an agent (local start g2-n1 brings it back)"},
		{p + " ring status", "the last ring change: keys moved, how long it took"},
		{p + " local remove-group g1", "drain a group into the others, then stop its agents"},
		{p + " local down", "stop the cluster (keeps its data; --purge deletes it)"},
	}
	w := 0
	for _, l := range lines {
		w = max(w, len(l[0]))
	}
	for _, l := range lines {
		d.say("  %-*s   # %s\n", w, l[0], l[1])
	}
}

// commas formats n with thousands separators.
func commas(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func roundDur(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(10 * time.Millisecond)
	case d > time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d
}
