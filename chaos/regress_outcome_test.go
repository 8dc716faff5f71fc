package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// Outcomes of writes in flight when their leader loses leadership (issue
// 15, docs/design.md "Outcomes after a leadership loss").

// A leader cut off from its group appends a write it can never commit; the
// two others elect a leader, whose first entry takes the write's index. When
// the cut heals, the old leader learns the write was overwritten and
// answers not_leader (nothing applied, retry), not timeout. Long Raft
// timeouts give the test a wide window to send the write while the cut-off
// leader still believes it leads.
func TestChaosWriteOverwrittenAfterALeadershipLossIsAnsweredNotApplied(t *testing.T) {
	args := append(append([]string{}, DefaultAgentArgs...),
		"--raft-heartbeat-timeout=3s", "--raft-election-timeout=3s", "--raft-leader-lease-timeout=3s",
		"--request-timeout=60s")
	ctx, c, _ := newTestClusterWith(t, 0, args)
	ring, err := c.Ring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := chooseKeys(ring, 2)
	if err != nil {
		t.Fatal(err)
	}
	var mine, theirs string
	for k, g := range keys {
		if g != "g1" {
			continue
		}
		if mine == "" {
			mine = k
		} else {
			theirs = k
		}
	}
	leader, err := c.Leader(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	var peers []*Agent
	for _, a := range c.Members("g1") {
		if a != leader {
			peers = append(peers, a)
		}
	}
	if err := c.fw.CutBoth(ctx, []string{leader.IP}, IPs(peers)); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.HealAll(context.Background()) }()

	type answer struct {
		status int
		body   wire.ErrorBody
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		status, body, err := rawPut(ctx, leader.HTTP(), mine, "cut-off")
		answered <- answer{status, body, err}
	}()

	newLeader, err := c.WaitLeaderWithout(ctx, "g1", leader, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := kvclient.New(kvclient.Config{Addrs: []string{newLeader.HTTP()}})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = kv.Put(wctx, []byte(theirs), []byte("after the cut"))
	cancel()
	if err != nil {
		t.Fatalf("write through the new leader %s: %v", newLeader.ID, err)
	}
	select {
	case a := <-answered:
		t.Fatalf("the cut-off leader answered before the cut healed: HTTP %d %+v %v", a.status, a.body.Error, a.err)
	default:
	}
	if err := c.HealAll(ctx); err != nil {
		t.Fatal(err)
	}

	var a answer
	select {
	case a = <-answered:
	case <-time.After(50 * time.Second):
		t.Fatal("no answer from the old leader 50 s after the cut healed")
	}
	if a.err != nil {
		t.Fatalf("write to the cut-off leader: %v", a.err)
	}
	if a.body.Error == nil || a.body.Error.Code != wire.CodeNotLeader {
		t.Fatalf("write to the cut-off leader: HTTP %d %+v, want not_leader (nothing applied)", a.status, a.body.Error)
	}
	t.Logf("the cut-off leader answered HTTP %d %s: %s", a.status, a.body.Error.Code, a.body.Error.Message)
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if v, err := kv.Get(gctx, []byte(mine)); !errors.Is(err, kvclient.ErrNotFound) {
		t.Fatalf("key of the overwritten write: %q, %v; want not found", v.Data, err)
	}
	n, err := lostWrites(ctx, leader.HTTP(), "not_applied")
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 {
		t.Fatalf("%s counts %v overwritten writes, want at least 1", leader.ID, n)
	}
}

// Planned leader changes cost the clients nothing: 100 writers go on while
// each group's leadership is transferred three times and each group's
// leader is stopped gracefully (SIGTERM) and started again. Every write must
// be acknowledged (none failed, none with an unknown outcome), and every
// acknowledged write reads back.
func TestChaosPlannedLeaderChangesCostClientsNothing(t *testing.T) {
	ctx, c, _ := newTestCluster(t, 0)
	kv, err := kvclient.New(kvclient.Config{Addrs: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()

	const writers = 100
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		acked    = map[string]string{}
		failures []string
		ops      atomic.Int64
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				k, v := fmt.Sprintf("planned-%d-%d", w, i), fmt.Sprintf("v%d", i)
				wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				_, err := kv.Put(wctx, []byte(k), []byte(v))
				cancel()
				ops.Add(1)
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Sprintf("put %s: %v", k, err))
				} else {
					acked[k] = v
				}
				mu.Unlock()
			}
		}()
	}
	// Let the writers reach full speed, then change leaders.
	if err := poll(ctx, 30*time.Second, func() error {
		if n := ops.Load(); n < 2*writers {
			return fmt.Errorf("%d writes so far", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		for _, g := range []string{"g1", "g2"} {
			l := settledLeader(t, ctx, c, g)
			before := ops.Load()
			if err := c.TransferLeadership(ctx, l, ""); err != nil {
				t.Fatalf("round %d: transfer %s's leadership from %s: %v", round, g, l.ID, err)
			}
			waitOps(t, ctx, &ops, before+writers)
		}
	}
	for _, g := range []string{"g1", "g2"} {
		l := settledLeader(t, ctx, c, g)
		before := ops.Load()
		if err := c.Stop(ctx, l); err != nil {
			t.Fatalf("stop %s's leader %s: %v", g, l.ID, err)
		}
		waitOps(t, ctx, &ops, before+writers)
		if err := c.Start(ctx, l); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitHealthy(ctx, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()

	t.Logf("%d writes by %d writers over 6 transfers and 2 graceful leader stops: %d acknowledged, %d failed", ops.Load(), writers, len(acked), len(failures))
	checkWrites(t, ctx, kv, "not acknowledged", failures, acked)
}

// checkWrites fails t if any write failed (what says how), or if any
// acknowledged write does not read back.
func checkWrites(t *testing.T, ctx context.Context, kv *kvclient.Client, what string, failures []string, acked map[string]string) {
	t.Helper()
	if len(failures) > 0 {
		t.Fatalf("%d writes %s, the first: %s", len(failures), what, strings.Join(failures[:min(5, len(failures))], "; "))
	}
	for k, v := range acked {
		gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		got, err := kv.Get(gctx, []byte(k))
		cancel()
		if err != nil || string(got.Data) != v {
			t.Fatalf("acknowledged %s=%s reads back %q, %v", k, v, got.Data, err)
		}
	}
}

// settledLeader waits until group's members agree on a leader.
func settledLeader(t *testing.T, ctx context.Context, c *Cluster, group string) *Agent {
	t.Helper()
	var l *Agent
	if err := poll(ctx, 30*time.Second, func() (err error) {
		l, err = c.Leader(ctx, group)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return l
}

// waitOps waits until the writers have made n calls in all.
func waitOps(t *testing.T, ctx context.Context, ops *atomic.Int64, n int64) {
	t.Helper()
	if err := poll(ctx, 60*time.Second, func() error {
		if got := ops.Load(); got < n {
			return fmt.Errorf("%d of %d writes", got, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// rawPut writes key=value to one agent over HTTP, without a client's
// retries, and returns the HTTP status and the error body (if any).
func rawPut(ctx context.Context, addr, key, value string) (int, wire.ErrorBody, error) {
	u := url.URL{Scheme: "http", Host: addr, Path: wire.KVPrefix + key}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), strings.NewReader(value))
	if err != nil {
		return 0, wire.ErrorBody{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, wire.ErrorBody{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, wire.ErrorBody{}, err
	}
	var eb wire.ErrorBody
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(b, &eb); err != nil {
			return resp.StatusCode, eb, fmt.Errorf("HTTP %d: %.200q", resp.StatusCode, b)
		}
	}
	return resp.StatusCode, eb, nil
}

// lostWrites reads an agent's count of writes in flight at a leadership
// loss that ended with outcome.
func lostWrites(ctx context.Context, addr, outcome string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	prefix := fmt.Sprintf("carpkv_raft_lost_writes_total{outcome=%q} ", outcome)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, sc.Err()
}
