package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// What the nemesis does to agents: signals, freezes, restarts and
// membership changes. Each records the agent's new state, which HealAll
// undoes.

// Kill sends SIGKILL to a's agent; the container stops.
func (c *Cluster) Kill(ctx context.Context, a *Agent) error {
	if _, err := docker(ctx, "kill", "--signal", "KILL", a.Name); err != nil {
		return err
	}
	a.setState(stateDown)
	return nil
}

// Stop stops a's agent gracefully (SIGTERM; SIGKILL after 20 s).
func (c *Cluster) Stop(ctx context.Context, a *Agent) error {
	if _, err := docker(ctx, "stop", "--time", "20", a.Name); err != nil {
		return err
	}
	a.setState(stateDown)
	return nil
}

// Start starts a's stopped container again: same address, same data dir.
func (c *Cluster) Start(ctx context.Context, a *Agent) error {
	if _, err := docker(ctx, "start", a.Name); err != nil {
		return err
	}
	a.setState(stateRunning)
	return nil
}

// SigStop freezes a's agent with SIGSTOP; SigCont thaws it.
func (c *Cluster) SigStop(ctx context.Context, a *Agent) error {
	if _, err := docker(ctx, "kill", "--signal", "STOP", a.Name); err != nil {
		return err
	}
	a.setState(stateSigStopped)
	return nil
}

// SigCont resumes an agent frozen by SigStop.
func (c *Cluster) SigCont(ctx context.Context, a *Agent) error {
	if _, err := docker(ctx, "kill", "--signal", "CONT", a.Name); err != nil {
		return err
	}
	a.setState(stateRunning)
	return nil
}

// Freeze pauses a's container with the cgroup freezer (docker pause).
func (c *Cluster) Freeze(ctx context.Context, a *Agent) error {
	if _, err := docker(ctx, "pause", a.Name); err != nil {
		return err
	}
	a.setState(stateFrozen)
	return nil
}

// Thaw unpauses a container paused by Freeze.
func (c *Cluster) Thaw(ctx context.Context, a *Agent) error {
	if _, err := docker(ctx, "unpause", a.Name); err != nil {
		return err
	}
	a.setState(stateRunning)
	return nil
}

// HealAll undoes every fault: it removes the network cuts, thaws frozen
// agents and starts stopped ones. It keeps going after errors.
func (c *Cluster) HealAll(ctx context.Context) error {
	errs := []error{c.fw.Heal(ctx)}
	for _, a := range c.Agents(false) {
		switch a.getState() {
		case stateSigStopped:
			errs = append(errs, c.SigCont(ctx, a))
		case stateFrozen:
			errs = append(errs, c.Thaw(ctx, a))
		case stateDown:
			errs = append(errs, c.Start(ctx, a))
		}
	}
	return errors.Join(errs...)
}

// TransferLeadership asks leader to hand over to member to ("" any).
func (c *Cluster) TransferLeadership(ctx context.Context, leader *Agent, to string) error {
	return c.api.transferLeadership(ctx, leader.HTTP(), to)
}

// RemoveMember takes a out of its group's configuration, asking whoever
// leads, until the leader's configuration no longer lists it. Once asked,
// a stops hearing from the group (it may even have been the leader), so
// only the others are asked who leads.
func (c *Cluster) RemoveMember(ctx context.Context, a *Agent, timeout time.Duration) error {
	var skip []*Agent
	return poll(ctx, timeout, func() error {
		l, err := c.Leader(ctx, a.Group, skip...)
		if err != nil {
			return err
		}
		conf, err := c.api.configuration(ctx, l.HTTP())
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(conf.Servers, func(s wire.Server) bool { return s.ID == a.ID }) {
			return nil
		}
		skip = []*Agent{a}
		if err := c.api.remove(ctx, l.HTTP(), a.ID); err != nil {
			return err
		}
		return errors.New("removed; confirming")
	})
}

// Destroy saves a's log and removes its container for good.
func (c *Cluster) Destroy(ctx context.Context, a *Agent) error {
	if a.getState() == stateFrozen {
		_, _ = docker(ctx, "unpause", a.Name)
	}
	lerr := c.saveLog(ctx, a)
	if _, err := docker(ctx, "rm", "--force", "--volumes", a.Name); err != nil {
		return err
	}
	a.setState(stateRemoved)
	return lerr
}

// AddFresh starts a new member of group: a new container, address and
// node ID, an empty data dir, joining through the current members.
func (c *Cluster) AddFresh(ctx context.Context, group string) (*Agent, error) {
	var args []string
	for _, m := range c.Members(group) {
		args = append(args, "--join", m.HTTP())
	}
	for _, o := range c.Agents(false) {
		args = append(args, "--retry-join", o.Gossip())
	}
	a := c.newAgent(group)
	return a, c.run(ctx, a, args)
}

// pidOf finds the host PID of a's agent process from /proc: the process
// whose command line has a's Raft address (unique to the run's network;
// agents of other runs and worktrees have other addresses). It takes
// milliseconds where docker inspect takes seconds on a busy machine.
func pidOf(a *Agent) (int, error) {
	want := []byte("\x00" + net.JoinHostPort(a.IP, raftPort) + "\x00")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte("carpkv-agent")) {
			continue
		}
		if bytes.Contains(append(cmd, 0), want) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("%s: no agent process with raft address %s", a.ID, net.JoinHostPort(a.IP, raftPort))
}

// SignalNow sends sig to a's agent process straight from the host, at
// once (docker kill goes through the engine, which can take seconds
// while a ring change takes a fraction of one): SIGKILL (the container
// stops; Start brings it back), SIGSTOP (SigCont thaws it).
func (c *Cluster) SignalNow(a *Agent, sig unix.Signal) error {
	pid, err := pidOf(a)
	if err != nil {
		return err
	}
	if err := unix.Kill(pid, sig); err != nil {
		return fmt.Errorf("%s: kill -%d %d: %w", a.ID, sig, pid, err)
	}
	switch sig {
	case unix.SIGKILL:
		a.setState(stateDown)
	case unix.SIGSTOP:
		a.setState(stateSigStopped)
	}
	return nil
}
