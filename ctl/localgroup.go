package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/carpkv/carpkv/ctl/localcluster"
	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// local add-group and remove-group: a ring change in the local cluster,
// with the processes that come and go with it.

func (e *env) localGroupCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:      "add-group",
			Usage:     "start a new group's agents and add the group to the ring",
			UsageText: "carpkvctl local add-group [--replicas R] [--weight W] [--no-wait] [--leader-wait 60s]",
			Description: `Starts R agents of a new group (the next unused ID: g4 after g1..g3) with the
same arguments as the cluster's other agents and new ports, adds them to
cluster.json, waits until the group has elected a leader (--leader-wait),
then asks for the ring change that adds it ("carpkvctl ring add-group") and
follows it until it is done, with a progress line (--no-wait: return once the
change is recorded). The wait is bounded by --timeout, 30m unless given; past
it the change goes on in the cluster.

Examples:
   carpkvctl local add-group
   carpkvctl local add-group --replicas 3 --weight 2
   carpkvctl local add-group --no-wait && carpkvctl ring status`,
			Flags: []cli.Flag{
				&cli.IntFlag{Name: "replicas", Aliases: []string{"r"}, Usage: "agents in the new group, 1..9 (default: the cluster's)"},
				&cli.Float64Flag{Name: "weight", Value: 1, Usage: "the new group's `WEIGHT` in the ring (finite, > 0)"},
				&cli.BoolFlag{Name: "wait", Value: true, Usage: "follow the ring change until it is done (default)"},
				&cli.BoolFlag{Name: "no-wait", Usage: "return once the ring change is recorded"},
				&cli.DurationFlag{Name: "leader-wait", Value: 60 * time.Second, Usage: "give up if the new group has no leader after this long"},
			},
			Action: e.localAddGroup,
		},
		{
			Name:      "remove-group",
			Usage:     "remove a group from the ring, then stop its agents",
			UsageText: "carpkvctl local remove-group GROUP [--grace 10s]",
			Description: `Asks for the ring change that removes GROUP ("carpkvctl ring remove-group"),
follows it until it is done (its keys moved to the other groups and
dropped), then stops GROUP's agents (SIGTERM, SIGKILL after --grace) and
marks them removed in cluster.json: "local up", "local start" and
"local status" leave them out. Their data and logs stay until
"local down --purge". The wait is bounded by --timeout, 30m unless given;
past it the agents keep running (the change goes on and needs them).

Examples:
   carpkvctl local remove-group g4`,
			Flags: []cli.Flag{
				&cli.DurationFlag{Name: "grace", Value: 10 * time.Second, Usage: "wait this long after SIGTERM before SIGKILL"},
			},
			Action: e.localRemoveGroup,
		},
	}
}

// loadRunning loads the local cluster and fails unless some agent runs.
func loadRunning(c *cli.Context) (*localcluster.State, error) {
	st, err := loadLocal(c)
	if err != nil {
		return nil, err
	}
	if len(st.Alive()) == 0 {
		return nil, fmt.Errorf("the local cluster in %s is not running: 'carpkvctl local up' starts it", st.Dir)
	}
	return st, nil
}

// localClient is a client of the running local cluster's agents.
func localClient(st *localcluster.State) (*kvclient.Client, error) {
	var addrs []string
	for _, n := range st.Alive() {
		addrs = append(addrs, n.HTTPAddr)
	}
	return kvclient.New(kvclient.Config{Addrs: addrs})
}

func (e *env) localAddGroup(c *cli.Context) error {
	if err := wantArgs(c, 0, 0, "no arguments"); err != nil {
		return err
	}
	weight := c.Float64("weight")
	if math.IsNaN(weight) || math.IsInf(weight, 0) || weight <= 0 {
		return &usageError{cmd: "add-group", msg: fmt.Sprintf("add-group: --weight must be a finite number above 0, not %v", weight)}
	}
	st, err := loadRunning(c)
	if err != nil {
		return err
	}
	replicas := st.Replicas
	if c.IsSet("replicas") {
		replicas = c.Int("replicas")
	}
	group, err := e.startLocalGroup(c.Context, st, replicas, weight, c.Duration("leader-wait"))
	if err != nil {
		return err
	}

	kv, err := localClient(st)
	if err != nil {
		return err
	}
	defer kv.Close()
	rctx, rcancel := context.WithTimeout(c.Context, 30*time.Second)
	defer rcancel()
	rc, err := kv.RingChange(rctx, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: group, Weight: weight})
	if err != nil {
		return fmt.Errorf("%w\ngroup %s runs as a standby; 'carpkvctl ring add-group %s' adds it later", err, group, group)
	}
	if !c.Bool("wait") || c.Bool("no-wait") {
		if e.json {
			return writeJSON(e.stdout, rc)
		}
		printRecorded(e.stdout, rc)
		fmt.Fprintf(e.stdout, "the change runs in the cluster: '%s ring status' follows it\n", e.progName())
		return nil
	}
	if !e.json {
		printRecorded(e.stdout, rc)
	}
	final, err := e.waitChange(c, kv, rc)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, final)
	}
	printFinished(e.stdout, final)
	return nil
}

// startLocalGroup starts the agents of a new group in the local cluster
// st (recorded in cluster.json first, so "local down" stops a failed
// start) and waits until the group has a leader. The group stays a
// standby until a ring change adds it.
func (e *env) startLocalGroup(ctx context.Context, st *localcluster.State, replicas int, weight float64, leaderWait time.Duration) (string, error) {
	nodes, err := st.PlanGroup(replicas, weight)
	if err != nil {
		return "", &usageError{cmd: "add-group", msg: "add-group: " + err.Error()}
	}
	bin, err := localcluster.FindAgent(st.AgentBin)
	if err != nil {
		return "", err
	}
	group := nodes[0].Group
	first := len(st.Nodes)
	st.Nodes = append(st.Nodes, nodes...)
	if err := st.Save(); err != nil { // before starting: "local down" can stop a failed start
		return "", err
	}
	fmt.Fprintf(e.stderr, "starting group %s: %d agents\n", group, len(nodes))
	var started []*localcluster.Node
	for i := first; i < len(st.Nodes); i++ {
		if err := localcluster.Start(&st.Nodes[i], bin); err != nil {
			_ = st.Save()
			return "", fmt.Errorf("%w (the agents started so far keep running: 'carpkvctl local down' stops them)", err)
		}
		started = append(started, &st.Nodes[i])
	}
	if err := st.Save(); err != nil {
		return "", err
	}
	lctx, cancel := context.WithTimeout(ctx, leaderWait)
	defer cancel()
	leader, err := e.waitGroupLeader(lctx, started)
	if err != nil {
		e.printLogTails(&localcluster.State{Nodes: nodesOf(started)})
		return "", fmt.Errorf("group %s: %w; its agents keep running (not in the ring): 'carpkvctl local status'", group, err)
	}
	fmt.Fprintf(e.stderr, "group %s has a leader: %s\n", group, leader)
	return group, nil
}

func nodesOf(ns []*localcluster.Node) []localcluster.Node {
	out := make([]localcluster.Node, len(ns))
	for i, n := range ns {
		out[i] = *n
	}
	return out
}

// waitGroupLeader polls the nodes until one of them says it leads their
// group and every one answers; it fails at once if a process exits.
func (e *env) waitGroupLeader(ctx context.Context, nodes []*localcluster.Node) (string, error) {
	kv, err := kvclient.New(kvclient.Config{Addrs: []string{nodes[0].HTTPAddr}, RequestTimeout: time.Second, DialTimeout: 300 * time.Millisecond})
	if err != nil {
		return "", err
	}
	defer kv.Close()
	line := newStatusLine(e.stderr)
	defer line.done()
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		for _, n := range nodes {
			if !n.Alive() {
				return "", fmt.Errorf("agent %s exited (see %s)", n.ID, n.Log)
			}
		}
		infos := make([]*wire.AgentInfo, len(nodes))
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				actx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				infos[i], _ = kv.Self(actx, n.HTTPAddr)
			}()
		}
		wg.Wait()
		up, leader := 0, ""
		for _, info := range infos {
			if info == nil {
				continue
			}
			up++
			if info.State == "Leader" {
				leader = info.ID
			}
		}
		text := fmt.Sprintf("new group: agents answering %d/%d · leader %s", up, len(nodes), orNone(leader))
		if text != last {
			line.show(text)
			last = text
		}
		if leader != "" && up == len(nodes) {
			return leader, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for a leader: %s: %w", text, ctx.Err())
		case <-tick.C:
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none yet"
	}
	return s
}

func (e *env) localRemoveGroup(c *cli.Context) error {
	if err := wantArgs(c, 1, 1, "GROUP"); err != nil {
		return err
	}
	st, err := loadRunning(c)
	if err != nil {
		return err
	}
	group := c.Args().First()
	nodes := st.GroupNodes(group)
	if len(nodes) == 0 {
		return &usageError{cmd: "remove-group", msg: fmt.Sprintf("remove-group: no group %q in the local cluster (groups: %s)",
			group, strings.Join(st.ActiveGroups(), " "))}
	}
	kv, err := localClient(st)
	if err != nil {
		return err
	}
	defer kv.Close()
	rctx, rcancel := context.WithTimeout(c.Context, 30*time.Second)
	defer rcancel()
	rc, err := kv.RingChange(rctx, wire.RingChangeRequest{Kind: wire.ChangeRemoveGroup, Group: group})
	if err != nil {
		return err
	}
	if !e.json {
		printRecorded(e.stdout, rc)
	}
	final, err := e.waitChange(c, kv, rc)
	if err != nil {
		// Its agents must keep running: the change still hands their keys off.
		return fmt.Errorf("%w; group %s's agents keep running until the change is done ('carpkvctl local remove-group %s' again, or stop them once 'ring status' says done)",
			err, group, group)
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("grace")+10*time.Second)
	defer cancel()
	res, err := localcluster.Stop(ctx, nodes, c.Duration("grace"))
	if err != nil {
		return err
	}
	for _, n := range nodes {
		n.Removed = true
		if !n.Alive() {
			n.PID = 0
		}
	}
	if err := st.Save(); err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, struct {
			Change  *wire.RingChangeStatus `json:"change"`
			Stopped []string               `json:"stopped"`
			Killed  []string               `json:"killed,omitempty"`
		}{final, res.Stopped, res.Killed})
	}
	printFinished(e.stdout, final)
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	fmt.Fprintf(e.stdout, "stopped group %s (%s) and marked it removed in %s; its data stays until 'local down --purge'\n",
		group, strings.Join(ids, ", "), localcluster.StateFile)
	if len(res.Killed) > 0 {
		fmt.Fprintf(e.stdout, "SIGKILLed after %v: %s\n", c.Duration("grace"), strings.Join(res.Killed, ", "))
	}
	return nil
}

// errRemoved refuses to start a node of a removed group.
var errRemoved = errors.New("its group was removed from the ring ('local remove-group'); it is not started again")
