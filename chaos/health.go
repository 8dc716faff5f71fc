package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// What the harness asks the agents about the cluster's health; every wait
// polls with a deadline.

// Leader asks every running member of group (but skip) for its view and
// returns the member that leads, if all that answer agree on it.
func (c *Cluster) Leader(ctx context.Context, group string, skip ...*Agent) (*Agent, error) {
	var leader *Agent
	leaderID := ""
	for _, a := range without(c.Members(group), skip...) {
		if a.getState() != stateRunning {
			continue
		}
		info, err := c.api.self(ctx, a.HTTP())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.ID, err)
		}
		if info.Leader == nil {
			return nil, fmt.Errorf("%s knows no leader", a.ID)
		}
		if leaderID != "" && info.Leader.ID != leaderID {
			return nil, fmt.Errorf("%s says %s leads, another says %s", a.ID, info.Leader.ID, leaderID)
		}
		leaderID = info.Leader.ID
		if info.State == "Leader" {
			leader = a
		}
	}
	if leader == nil || leader.ID != leaderID {
		return nil, fmt.Errorf("group %s: leader %q is not a running member claiming leadership", group, leaderID)
	}
	return leader, nil
}

// describe is how the members of group (every group if "") see
// themselves, in one line, for the record of a fault.
func (c *Cluster) describe(ctx context.Context, group string) string {
	var parts []string
	for _, a := range c.Agents(false) {
		if group != "" && a.Group != group {
			continue
		}
		if st := a.getState(); st != stateRunning {
			parts = append(parts, fmt.Sprintf("%s: down(%d)", a.ID, st))
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		info, err := c.api.self(qctx, a.HTTP())
		cancel()
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", a.ID, err))
			continue
		}
		leader := "none"
		if info.Leader != nil {
			leader = info.Leader.ID
		}
		parts = append(parts, fmt.Sprintf("%s: %s term %d leader %s applied %d", a.ID, info.State, info.Term, leader, info.AppliedIndex))
	}
	return strings.Join(parts, "; ")
}

// WaitLeader polls Leader until it answers or timeout passes.
func (c *Cluster) WaitLeader(ctx context.Context, group string, timeout time.Duration) (*Agent, error) {
	var l *Agent
	err := poll(ctx, timeout, func() error {
		var err error
		l, err = c.Leader(ctx, group)
		return err
	})
	return l, err
}

// WaitLeaderWithout polls until the members of group but skip agree on a
// leader among them.
func (c *Cluster) WaitLeaderWithout(ctx context.Context, group string, skip *Agent, timeout time.Duration) (*Agent, error) {
	var l *Agent
	err := poll(ctx, timeout, func() error {
		var err error
		l, err = c.Leader(ctx, group, skip)
		return err
	})
	return l, err
}

// healthy returns nil when every group (standby ones too) has one leader
// all members agree on, whose configuration has exactly the current
// members as voters, every member is ready, and every member of a group
// of the ring has applied the committed ring.
func (c *Cluster) healthy(ctx context.Context) error {
	for _, g := range c.Groups() {
		if len(c.Members(g)) == 0 {
			continue // a standby group not started yet
		}
		l, err := c.Leader(ctx, g)
		if err != nil {
			return err
		}
		conf, err := c.api.configuration(ctx, l.HTTP())
		if err != nil {
			return err
		}
		var voters, want []string
		for _, s := range conf.Servers {
			if s.Suffrage == "Voter" {
				voters = append(voters, s.ID)
			}
		}
		for _, a := range c.Members(g) {
			want = append(want, a.ID)
			if st := a.getState(); st != stateRunning {
				return fmt.Errorf("%s is not running (state %d)", a.ID, st)
			}
			if err := c.api.ready(ctx, a.HTTP()); err != nil {
				return fmt.Errorf("%s not ready: %w", a.ID, err)
			}
			info, err := c.api.self(ctx, a.HTTP())
			if err != nil {
				return err
			}
			if in, epoch := c.inRing(g); in && info.RingEpoch < epoch {
				return fmt.Errorf("%s has applied ring epoch %d, not %d", a.ID, info.RingEpoch, epoch)
			}
		}
		slices.Sort(voters)
		slices.Sort(want)
		if !slices.Equal(voters, want) {
			return fmt.Errorf("group %s: voters %v, members %v", g, voters, want)
		}
	}
	return nil
}

// WaitHealthy polls until the cluster is healthy (see healthy) or timeout
// passes, then returns the last reason it was not.
func (c *Cluster) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	return poll(ctx, timeout, func() error { return c.healthy(ctx) })
}

// Ring returns the committed ring as any running agent answers it.
func (c *Cluster) Ring(ctx context.Context) (wire.Ring, error) {
	var last error
	for _, a := range c.Agents(false) {
		if a.getState() != stateRunning {
			continue
		}
		r, err := c.api.ring(ctx, a.HTTP())
		if err == nil && r.Epoch > 0 {
			return r, nil
		}
		last = fmt.Errorf("%s: epoch %d: %v", a.ID, r.Epoch, err)
	}
	return wire.Ring{}, fmt.Errorf("no ring: %w", last)
}

// StaleRead reads key from a's local state.
func (c *Cluster) StaleRead(ctx context.Context, a *Agent, key string) (FinalValue, error) {
	return c.api.staleGet(ctx, a.HTTP(), key)
}

// Self returns a's view of itself.
func (c *Cluster) Self(ctx context.Context, a *Agent) (wire.AgentInfo, error) {
	return c.api.self(ctx, a.HTTP())
}

// poll calls cond every 50 ms until it returns nil, timeout passes or ctx
// ends, and then returns cond's last error.
func poll(ctx context.Context, timeout time.Duration, cond func() error) error {
	return pollEvery(ctx, timeout, 50*time.Millisecond, cond)
}

// pollEvery is poll with another interval.
func pollEvery(ctx context.Context, timeout, every time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not true after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}
