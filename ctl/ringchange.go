package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// Ring changes (issue 11): ask the coordinator for a change, and follow
// it. The change runs in the cluster, recorded in Raft; carpkvctl only
// asks and watches, so interrupting it changes nothing.

// defaultChangeWait bounds --wait when --timeout is not given: a change
// moves data, minutes are normal.
const defaultChangeWait = 30 * time.Minute

const changeWaitHelp = `With --wait it follows the change until it is done, showing its progress on
stderr (one line rewritten in place on a terminal, a line every few seconds
otherwise): keys and bytes sent per source → destination, the total against
the estimate, the rate, an ETA and the phase. The wait is bounded by
--timeout, 30m unless given; past it carpkvctl exits 6 and the change goes
on in the cluster ("carpkvctl ring status" follows it). Interrupting the
wait does not stop the change either.`

func (e *env) ringChangeCommands() []*cli.Command {
	wait := &cli.BoolFlag{Name: "wait", Aliases: []string{"w"}, Usage: "follow the change until it is done, with a progress line"}
	cmds := []*cli.Command{
		{
			Name:      "add-group",
			Usage:     "add a standby group to the ring (moves its share of the keys to it)",
			UsageText: "carpkvctl ring add-group GROUP [--weight W] [--wait]",
			Description: `Asks the coordinator (the leader of the ring's smallest group) to add GROUP,
whose agents run and have elected a leader but are not in the ring yet
("carpkvctl status" shows it as standby), at ring epoch E+1. Only the keys
whose CARP owner becomes GROUP move, from every other group; the others stay
available throughout. --weight is GROUP's weight (default: the weight its
leader was started with).

Without --wait it prints the change as recorded (from and to epoch, the
weights before and after) and returns; the change runs on its own.
` + "\n" + changeWaitHelp + `

Examples:
   carpkvctl ring add-group g4
   carpkvctl ring add-group g4 --weight 2 --wait
   carpkvctl ring add-group g4 -o json`,
			Flags:  []cli.Flag{&cli.Float64Flag{Name: "weight", Usage: "the group's `WEIGHT` (finite, > 0; default: its leader's --group-weight)"}, wait},
			Action: e.ringAddGroup,
		},
		{
			Name:      "remove-group",
			Usage:     "remove a group from the ring (moves all its keys to the others)",
			UsageText: "carpkvctl ring remove-group GROUP [--wait]",
			Description: `Asks the coordinator to remove GROUP from the ring at epoch E+1: its keys move
to their CARP owners among the other groups, then it drops them. Once the
change is done its agents serve no keys ("carpkvctl status" shows the group
as removed) and can be stopped. The last group cannot be removed.
` + "\n" + changeWaitHelp + `

Examples:
   carpkvctl ring remove-group g3 --wait
   carpkvctl ring remove-group g3 -o json`,
			Flags:  []cli.Flag{wait},
			Action: e.ringRemoveGroup,
		},
		{
			Name:      "set-weight",
			Usage:     "change a group's weight in the ring (moves keys to or from it)",
			UsageText: "carpkvctl ring set-weight GROUP WEIGHT [--wait]",
			Description: `Asks the coordinator to give GROUP the weight WEIGHT (finite, > 0) at ring
epoch E+1. A higher weight moves keys to GROUP from the others, a lower one
moves keys from it; no other key moves.
` + "\n" + changeWaitHelp + `

Examples:
   carpkvctl ring set-weight g2 2 --wait
   carpkvctl ring set-weight g2 0.5`,
			Flags:  []cli.Flag{wait},
			Action: e.ringSetWeight,
		},
		{
			Name:      "status",
			Usage:     "show the ring change in progress, or the last one completed",
			UsageText: "carpkvctl ring status",
			Description: `Asks the coordinator group for its ring changes. A change in progress shows
its kind and group, the epochs (from → to), its phase (prepare, copy,
freeze, final, activate, cleanup, finish, done), when it started and how
long it has run, each source group's progress (estimate of keys to move
out, copy rounds, frozen, sealed, cleaned, keys dropped), the keys and
bytes sent per source → destination, and the last error the coordinator
met (it retries). Otherwise it shows the last change completed: its
duration and the keys it moved. The leader's answer is live; a follower's
(when the leader is unreachable) is the recorded state.

Examples:
   carpkvctl ring status
   carpkvctl ring status -o json`,
			Action: e.ringChangeStatus,
		},
	}
	for _, c := range cmds {
		c.OnUsageError = onUsageError // a bad flag or a negative weight ("-3") is a usage error: exit 3
	}
	return cmds
}

// parseWeight parses a weight argument: a finite number above 0.
func parseWeight(cmd, s string) (float64, error) {
	w, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, &usageError{cmd: "ring " + cmd, msg: fmt.Sprintf("%s: weight %q is not a number", cmd, s)}
	}
	return w, checkWeight(cmd, w)
}

// checkWeight refuses a weight the coordinator would refuse, before asking.
func checkWeight(cmd string, w float64) error {
	if math.IsNaN(w) || math.IsInf(w, 0) || w <= 0 {
		return &usageError{cmd: "ring " + cmd, msg: fmt.Sprintf("%s: weight must be a finite number above 0, not %v", cmd, w)}
	}
	return nil
}

func (e *env) ringAddGroup(c *cli.Context) error {
	if err := wantArgs(c, 1, 1, "GROUP"); err != nil {
		return err
	}
	req := wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: c.Args().First()}
	if c.IsSet("weight") {
		if err := checkWeight("add-group", c.Float64("weight")); err != nil {
			return err
		}
		req.Weight = c.Float64("weight")
	}
	return e.ringChange(c, req)
}

func (e *env) ringRemoveGroup(c *cli.Context) error {
	if err := wantArgs(c, 1, 1, "GROUP"); err != nil {
		return err
	}
	return e.ringChange(c, wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: c.Args().First()})
}

func (e *env) ringSetWeight(c *cli.Context) error {
	if err := wantArgs(c, 2, 2, "GROUP WEIGHT"); err != nil {
		return err
	}
	w, err := parseWeight("set-weight", c.Args().Get(1))
	if err != nil {
		return err
	}
	return e.ringChange(c, wire.RingChangeRequest{Kind: wire.ChangeSetWeight, Group: c.Args().First(), Weight: w})
}

// ringChange asks for the change, prints it, and with --wait follows it.
func (e *env) ringChange(c *cli.Context, req wire.RingChangeRequest) error {
	if req.Group == "" {
		return &usageError{cmd: "ring " + c.Command.Name, msg: c.Command.Name + ": empty group"}
	}
	s, err := e.connect(c)
	if err != nil {
		return err
	}
	defer s.close()
	st, err := s.kv.RingChange(s.ctx, req)
	if err != nil {
		if errors.Is(err, kvclient.ErrRingChangeInProgress) {
			return fmt.Errorf("%w\n'%s ring status' follows the running change; ask again once it is done", err, e.progName())
		}
		return err
	}
	if !c.Bool("wait") {
		if e.json {
			return writeJSON(e.stdout, st)
		}
		printRecorded(e.stdout, st)
		fmt.Fprintf(e.stdout, "the change runs in the cluster: '%s ring status' follows it\n", e.progName())
		return nil
	}
	if !e.json {
		printRecorded(e.stdout, st)
	}
	final, err := e.waitChange(c, s.kv, st)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, final)
	}
	printFinished(e.stdout, final)
	return nil
}

// changeWait is how long --wait follows a change: --timeout when given,
// else defaultChangeWait.
func changeWait(c *cli.Context) time.Duration {
	if c.IsSet("timeout") {
		return c.Duration("timeout")
	}
	return defaultChangeWait
}

// waitChange polls the coordinator until the change to started.To.Epoch
// is done, showing progress on stderr. The change goes on whatever
// happens here.
func (e *env) waitChange(c *cli.Context, kv *kvclient.Client, started *wire.RingChangeStatus) (*wire.RingChangeStatus, error) {
	wait := changeWait(c)
	ctx, cancel := context.WithTimeout(c.Context, wait)
	defer cancel()
	target := started.To.Epoch
	line := newStatusLine(e.stderr)
	defer line.done()
	meter := &rateMeter{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := started
	var lastShown time.Time
	lastPhase := ""
	for {
		ans, err := pollChange(ctx, kv)
		now := time.Now()
		var text string
		if errors.Is(err, kvclient.ErrNotFound) || errors.Is(err, kvclient.ErrInvalidArgument) {
			// Asking again cannot help (an agent without ring changes).
			return nil, fmt.Errorf("following the ring change to epoch %d: %w", target, err)
		}
		if err != nil {
			text = fmt.Sprintf("ring change to epoch %d: no status (%s); retrying", target, strings.TrimPrefix(err.Error(), "kvclient: "))
		} else {
			st, done := changeOutcome(ans, target)
			if st == nil && ans.Active == nil {
				// The coordinator group may have changed with the ring (its
				// smallest group was removed or a smaller one added): the
				// ring's epoch then says whether the change is over.
				rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
				r, rerr := kv.Ring(rctx)
				rcancel()
				if rerr == nil && r.Epoch >= target {
					cp := *last
					cp.Phase = wire.PhaseDone
					st, done = &cp, true
				}
			}
			if done {
				return st, nil
			}
			if st != nil {
				last = st
			}
			text = progressLine(last, meter.sample(now, last), now)
		}
		phase := last.Phase
		if line.tty || phase != lastPhase || now.Sub(lastShown) >= plainEvery {
			line.show(text)
			lastShown, lastPhase = now, phase
		}
		select {
		case <-ctx.Done():
			line.done()
			if c.Context.Err() != nil {
				return nil, fmt.Errorf("interrupted; the ring change to epoch %d goes on in the cluster ('%s ring status' follows it): %w",
					target, e.progName(), c.Context.Err())
			}
			return nil, fmt.Errorf("waited %v: the ring change to epoch %d is in phase %s and goes on in the cluster ('%s ring status' follows it): %w",
				wait, target, last.Phase, e.progName(), kvclient.ErrTimeout)
		case <-tick.C:
		}
	}
}

// plainEvery spaces progress lines when stderr is not a terminal.
const plainEvery = 5 * time.Second

// pollChange asks for the change status once, within a few seconds.
func pollChange(ctx context.Context, kv *kvclient.Client) (*wire.RingChangeAnswer, error) {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return kv.RingChangeStatus(pctx)
}

// changeOutcome finds the change to epoch target in an answer: the status
// to show (nil if the answer does not mention it) and whether it is done.
func changeOutcome(ans *wire.RingChangeAnswer, target uint64) (st *wire.RingChangeStatus, done bool) {
	if a := ans.Active; a != nil {
		switch {
		case a.To.Epoch == target:
			return a, a.Phase == wire.PhaseDone
		case a.To.Epoch > target:
			// A later change runs: ours is over.
			if l := ans.Last; l != nil && l.To.Epoch == target {
				return l, true
			}
			return nil, true
		}
	}
	if l := ans.Last; l != nil && l.To.Epoch >= target {
		if l.To.Epoch == target {
			return l, true
		}
		return nil, true
	}
	return nil, false
}

func (e *env) ringChangeStatus(c *cli.Context) error {
	if err := wantArgs(c, 0, 0, "no arguments"); err != nil {
		return err
	}
	s, err := e.connect(c)
	if err != nil {
		return err
	}
	defer s.close()
	ans, err := s.kv.RingChangeStatus(s.ctx)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, ans)
	}
	return printChangeStatus(e.stdout, ans, time.Now())
}
