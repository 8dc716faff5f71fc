package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/carpkv/carpkv/ctl/localcluster"
	"github.com/carpkv/carpkv/kvclient"
)

func (e *env) localCommand() *cli.Command {
	dirFlag := &cli.StringFlag{
		Name:    "dir",
		EnvVars: []string{"CARPKV_LOCAL_DIR"},
		Usage:   "`DIR` of the local cluster: state file, data, logs (default: <user cache dir>/carpkv/local)",
	}
	nodeArg := func(name, usage, text, desc string, action cli.ActionFunc, flags ...cli.Flag) *cli.Command {
		return &cli.Command{Name: name, Usage: usage, UsageText: text, Description: desc, Action: action, Flags: flags}
	}
	return &cli.Command{
		Name:  "local",
		Usage: "run a cluster of many groups as local processes (up, status, down, kill, start, logs, add-group, remove-group)",
		UsageText: `carpkvctl local up [--groups G] [--replicas R] [--fresh]
   carpkvctl local status | down [--purge] | kill NODE | start [NODE] | logs NODE
   carpkvctl local add-group [--replicas R] [--weight W] [--no-wait] | remove-group GROUP`,
		Description: `Runs carpkv-agent processes on 127.0.0.1: G groups of R agents each (nodes
g1-n1 .. gG-nR), with free ports picked at start, in sessions of their own so
they keep running after carpkvctl (and a Ctrl-C of make) exits. Everything
lives in one directory: cluster.json (the nodes, their PIDs, ports and
arguments), data/<node>/ and logs/<node>.log.

While a local cluster runs, the other commands use it when no --addr or
CARPKV_ADDR is given: "carpkvctl put k v" just works.

Examples:
   carpkvctl local up --groups 3 --replicas 3
   carpkvctl local status
   carpkvctl local kill g1-n1 && carpkvctl local start g1-n1
   carpkvctl local logs g2-n3
   carpkvctl local add-group --weight 2      # start g4 and move its share of the keys to it
   carpkvctl local remove-group g4           # move its keys back, then stop it
   carpkvctl local down --purge`,
		Flags: []cli.Flag{dirFlag},
		Subcommands: append([]*cli.Command{
			{
				Name:      "up",
				Usage:     "start a local cluster and wait until its ring is committed",
				UsageText: "carpkvctl local up [--groups G] [--replicas R] [--fresh] [--dir DIR] [--agent-bin PATH] [--wait 60s]",
				Description: `Starts G×R agents (carpkv-agent next to carpkvctl, else in PATH, or
--agent-bin), each with a Raft, an HTTP and a gossip port on 127.0.0.1. The
agents find each other by gossip, every group forms itself once its R agents
are visible (--bootstrap-expect), and the first ring is committed once all G
groups have a leader (--expect-groups). Progress goes to stderr; when every
group has a leader acting under the ring, prints the status and the time it
took. Past --wait it prints the end of the logs and fails.

A cluster already running in DIR is left alone (the command fails) unless
--fresh, which stops it and deletes its data first. A stopped cluster in DIR
(after "local down") is started again with its data and ports.`,
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "groups", Aliases: []string{"g"}, Value: 3, Usage: "number of shard `GROUPS`"},
					&cli.IntFlag{Name: "replicas", Aliases: []string{"r"}, Value: 3, Usage: "agents per group (1..9)"},
					&cli.BoolFlag{Name: "fresh", Usage: "stop any cluster in DIR and delete its data first"},
					&cli.StringFlag{Name: "agent-bin", Usage: "`PATH` of carpkv-agent (default: next to carpkvctl, else PATH)"},
					&cli.DurationFlag{Name: "wait", Value: 60 * time.Second, Usage: "give up if the cluster is not serving after this long"},
					&cli.StringSliceFlag{Name: "agent-arg", Usage: "extra carpkv-agent `FLAG` for every agent of a new cluster, e.g. --agent-arg=--raft-heartbeat-timeout=500ms (repeatable; later flags win over the local defaults)"},
				},
				Action: e.localUp,
			},
			nodeArg("status", "show the local cluster's processes and its status", "carpkvctl local status",
				"Lists the nodes of the local cluster (PID, running or not, addresses, log)\nand, if any runs, the cluster status as \"carpkvctl status\" shows it.",
				e.localStatus),
			nodeArg("down", "stop every agent of the local cluster", "carpkvctl local down [--purge] [--grace 10s]",
				"Sends SIGTERM to every agent (they hand leadership over and close their\nstores), waits up to --grace, then SIGKILLs the stragglers. Data and logs are\nkept (\"local up\" starts the same cluster again) unless --purge.",
				e.localDown,
				&cli.BoolFlag{Name: "purge", Usage: "delete the cluster's data, logs and state file too"},
				&cli.DurationFlag{Name: "grace", Value: 10 * time.Second, Usage: "wait this long after SIGTERM before SIGKILL"}),
			nodeArg("kill", "SIGKILL one agent (a crash, for demos and tests)", "carpkvctl local kill NODE",
				"Kills NODE (e.g. g1-n1) with SIGKILL and waits until it is gone. Its data\nstays; \"local start NODE\" brings it back.",
				e.localKill),
			nodeArg("start", "start a stopped or killed agent again", "carpkvctl local start [NODE]",
				"Starts NODE (every stopped node if none is named) with the arguments it\nwas first started with, and waits until its HTTP API answers.",
				e.localStart,
				&cli.DurationFlag{Name: "wait", Value: 20 * time.Second, Usage: "give up if the agent does not answer after this long"}),
			nodeArg("logs", "print the end of an agent's log", "carpkvctl local logs NODE [--lines N] [--path]",
				"Prints the last --lines lines of NODE's log (its stdout and stderr), or with\n--path only the log's path (to follow it: tail -f \"$(carpkvctl local logs g1-n1 --path)\").",
				e.localLogs,
				&cli.IntFlag{Name: "lines", Aliases: []string{"n"}, Value: 50, Usage: "how many `LINES`"},
				&cli.BoolFlag{Name: "path", Usage: "print the log's path only"}),
		}, e.localGroupCommands()...),
	}
}

// localDir is --dir, CARPKV_LOCAL_DIR or the default directory.
func localDir(c *cli.Context) (string, error) {
	if d := c.String("dir"); d != "" {
		return filepath.Abs(d)
	}
	return localcluster.DefaultDir()
}

// localAddrs are the HTTP addresses of the running local cluster in the
// default directory, for resolveAddrs; why says why there are none, when
// that is worth telling.
func localAddrs() (addrs []string, why string) {
	dir, err := localcluster.DefaultDir()
	if err != nil {
		return nil, ""
	}
	st, err := localcluster.Load(dir)
	switch {
	case errors.Is(err, localcluster.ErrNoCluster):
		return nil, ""
	case err != nil:
		return nil, err.Error()
	}
	for _, n := range st.Alive() {
		addrs = append(addrs, n.HTTPAddr)
	}
	if len(addrs) == 0 {
		return nil, fmt.Sprintf("the local cluster in %s is stopped; 'carpkvctl local up' starts it again", dir)
	}
	return addrs, ""
}

// loadLocal loads the cluster in the command's directory, with a message
// that says what to do if there is none.
func loadLocal(c *cli.Context) (*localcluster.State, error) {
	dir, err := localDir(c)
	if err != nil {
		return nil, err
	}
	st, err := localcluster.Load(dir)
	if errors.Is(err, localcluster.ErrNoCluster) {
		return nil, fmt.Errorf("%w; start one with 'carpkvctl local up'", err)
	}
	return st, err
}

func (e *env) localUp(c *cli.Context) error {
	if err := wantArgs(c, 0, 0, "no arguments"); err != nil {
		return err
	}
	dir, err := localDir(c)
	if err != nil {
		return err
	}
	groups, replicas := c.Int("groups"), c.Int("replicas")
	st, err := localcluster.Load(dir)
	restart := false
	switch {
	case err == nil:
		if alive := st.Alive(); len(alive) > 0 {
			if !c.Bool("fresh") {
				return fmt.Errorf("a local cluster is already running in %s (%d of %d agents up): use it, stop it with 'carpkvctl local down', or pass --fresh to replace it",
					dir, len(alive), len(st.Nodes))
			}
			fmt.Fprintf(e.stderr, "stopping the running cluster in %s (--fresh)\n", dir)
			if _, err := localcluster.Stop(c.Context, alive, 10*time.Second); err != nil {
				return err
			}
		}
		if c.Bool("fresh") {
			if err := wipeLocal(dir); err != nil {
				return err
			}
			break
		}
		if (c.IsSet("groups") && groups != st.Groups) || (c.IsSet("replicas") && replicas != st.Replicas) {
			return &usageError{cmd: "up", msg: fmt.Sprintf("the stopped cluster in %s is %d×%d, not %d×%d: pass --fresh to replace it (its data is deleted)",
				dir, st.Groups, st.Replicas, groups, replicas)}
		}
		restart = true
	case errors.Is(err, localcluster.ErrNoCluster):
		if _, serr := os.Stat(filepath.Join(dir, "data")); serr == nil && !c.Bool("fresh") {
			return fmt.Errorf("%s holds agent data but no %s: pass --fresh to delete it and start a new cluster", dir, localcluster.StateFile)
		}
		if err := wipeLocal(dir); err != nil {
			return err
		}
	default:
		if !c.Bool("fresh") {
			return fmt.Errorf("%w (pass --fresh to delete the directory's cluster and start a new one)", err)
		}
		if err := wipeLocal(dir); err != nil {
			return err
		}
	}

	bin, err := localcluster.FindAgent(c.String("agent-bin"))
	if err != nil {
		return err
	}
	if restart {
		st.AgentBin = bin
		fmt.Fprintf(e.stderr, "starting the stopped %d×%d cluster in %s again (its data is kept; --fresh starts a new one)\n", st.Groups, st.Replicas, dir)
	} else {
		st, err = localcluster.Plan(localcluster.Options{Dir: dir, AgentBin: bin, Groups: groups, Replicas: replicas, ExtraArgs: c.StringSlice("agent-arg")})
		if err != nil {
			return &usageError{cmd: "up", msg: err.Error()}
		}
		if err := st.Save(); err != nil { // before starting: "local down" can clean up a failed start
			return err
		}
		fmt.Fprintf(e.stderr, "starting %d groups × %d replicas = %d agents in %s\n", st.Groups, st.Replicas, len(st.Nodes), dir)
	}
	start := time.Now()
	for _, n := range st.Active() {
		if err := localcluster.Start(n, bin); err != nil {
			_ = st.Save()
			return fmt.Errorf("%w (the agents started so far keep running: 'carpkvctl local down' stops them)", err)
		}
	}
	if err := st.Save(); err != nil {
		return err
	}

	wctx, cancel := context.WithTimeout(c.Context, c.Duration("wait"))
	defer cancel()
	if err := e.waitServing(wctx, st, nil); err != nil {
		e.printLogTails(st)
		if c.Context.Err() != nil {
			return fmt.Errorf("interrupted: %w; the agents keep running ('carpkvctl local status', 'carpkvctl local down')", c.Context.Err())
		}
		return fmt.Errorf("%w\nthe cluster did not come up within %v; logs are in %s (the tails are above); the agents keep running: 'carpkvctl local down' stops them",
			err, c.Duration("wait"), filepath.Join(dir, "logs"))
	}
	took := time.Since(start)

	kv, err := kvclient.New(kvclient.Config{Addrs: st.HTTPAddrs()})
	if err != nil {
		return err
	}
	defer kv.Close()
	sctx, scancel := context.WithTimeout(c.Context, 10*time.Second)
	defer scancel()
	cs, _ := collectStatus(sctx, kv)
	if e.json {
		return writeJSON(e.stdout, struct {
			Dir     string         `json:"dir"`
			Seconds float64        `json:"seconds"`
			Nodes   []localNode    `json:"nodes"`
			Status  *clusterStatus `json:"status"`
		}{dir, took.Seconds(), localNodes(st), cs})
	}
	if err := printStatus(e.stdout, cs); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\nring committed in %.1fs: %d groups × %d replicas serving on 127.0.0.1 (state in %s)\n",
		took.Seconds(), st.Groups, st.Replicas, filepath.Join(dir, localcluster.StateFile))
	fmt.Fprintf(e.stdout, "try: %[1]s put greeting hello; %[1]s get greeting; %[1]s ring owner greeting; %[1]s local down\n", e.progName())
	return nil
}

// wipeLocal deletes what a local cluster keeps in dir, and only that: dir
// may be a directory the user also keeps other things in.
func wipeLocal(dir string) error {
	for _, p := range []string{"data", "logs", localcluster.StateFile} {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			return err
		}
	}
	return nil
}

// waitServing polls the agents until every group has a leader that acts
// under a committed ring (epoch ≥ 1) and every agent of want (all nodes if
// nil) answers, showing progress on stderr. It fails at once if an agent
// process exits.
func (e *env) waitServing(ctx context.Context, st *localcluster.State, want []*localcluster.Node) error {
	if want == nil {
		want = st.Active()
	}
	// Removed groups' agents are stopped for good: not waited for.
	st = &localcluster.State{Nodes: nodesOf(st.Active())}
	kv, err := kvclient.New(kvclient.Config{Addrs: st.HTTPAddrs(), RequestTimeout: time.Second, DialTimeout: 300 * time.Millisecond})
	if err != nil {
		return err
	}
	defer kv.Close()
	p := newStatusLine(e.stderr)
	defer p.done()
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	groups := map[string]bool{}
	for _, n := range st.Nodes {
		groups[n.Group] = true
	}
	last := ""
	for {
		for _, n := range want {
			if !n.Alive() {
				return fmt.Errorf("agent %s exited (see %s)", n.ID, n.Log)
			}
		}
		infos := make([]*kvAgent, len(st.Nodes))
		var wg sync.WaitGroup
		for i := range st.Nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				actx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				if info, err := kv.Self(actx, st.Nodes[i].HTTPAddr); err == nil {
					infos[i] = &kvAgent{state: info.State, epoch: info.RingEpoch, group: info.Group}
				}
			}()
		}
		wg.Wait()
		up, wantUp := 0, 0
		led, ringed := map[string]bool{}, map[string]bool{}
		var epoch uint64
		for i, info := range infos {
			isWanted := false
			for _, n := range want {
				isWanted = isWanted || n.ID == st.Nodes[i].ID
			}
			if info == nil {
				continue
			}
			up++
			if isWanted {
				wantUp++
			}
			if info.state == "Leader" {
				led[info.group] = true
				if info.epoch >= 1 {
					ringed[info.group] = true
					epoch = max(epoch, info.epoch)
				}
			}
		}
		line := fmt.Sprintf("agents answering %d/%d · groups with a leader %d/%d · groups serving ring epoch %d: %d/%d",
			up, len(st.Nodes), len(led), len(groups), max(epoch, 1), len(ringed), len(groups))
		if line != last {
			p.show(line)
			last = line
		}
		if wantUp == len(want) && len(ringed) == len(groups) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the cluster: %s: %w", line, ctx.Err())
		case <-tick.C:
		}
	}
}

type kvAgent struct {
	state, group string
	epoch        uint64
}

// printLogTails shows the end of each agent's log on stderr: more of those
// whose process is gone.
func (e *env) printLogTails(st *localcluster.State) {
	for _, n := range st.Nodes {
		lines := 5
		status := "running"
		if !n.Alive() {
			lines, status = 20, "NOT RUNNING"
		}
		t, err := localcluster.Tail(n.Log, lines)
		if err != nil {
			t = err.Error() + "\n"
		}
		fmt.Fprintf(e.stderr, "--- %s (%s), last lines of %s:\n%s", n.ID, status, n.Log, t)
	}
}

// localNode is a node as `local status` shows it.
type localNode struct {
	localcluster.Node
	Running bool `json:"running"`
}

func localNodes(st *localcluster.State) []localNode {
	out := make([]localNode, len(st.Nodes))
	for i, n := range st.Nodes {
		out[i] = localNode{Node: n, Running: n.Alive()}
	}
	return out
}

func (e *env) localStatus(c *cli.Context) error {
	if err := wantArgs(c, 0, 0, "no arguments"); err != nil {
		return err
	}
	st, err := loadLocal(c)
	if err != nil {
		return err
	}
	nodes := localNodes(st)
	var cs *clusterStatus
	var addrs []string
	for _, n := range st.Alive() {
		addrs = append(addrs, n.HTTPAddr)
	}
	if len(addrs) > 0 {
		kv, err := kvclient.New(kvclient.Config{Addrs: addrs})
		if err != nil {
			return err
		}
		defer kv.Close()
		ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
		defer cancel()
		cs, _ = collectStatus(ctx, kv)
	}
	if e.json {
		return writeJSON(e.stdout, struct {
			Dir    string         `json:"dir"`
			Nodes  []localNode    `json:"nodes"`
			Status *clusterStatus `json:"status,omitempty"`
		}{st.Dir, nodes, cs})
	}
	active := st.Active()
	fmt.Fprintf(e.stdout, "local cluster in %s: %d groups, %d of %d agents running",
		st.Dir, len(st.ActiveGroups()), len(addrs), len(active))
	if removed := len(st.Nodes) - len(active); removed > 0 {
		fmt.Fprintf(e.stdout, " (and %d of removed groups)", removed)
	}
	fmt.Fprint(e.stdout, "\n\n")
	rows := make([][]string, len(nodes))
	for i, n := range nodes {
		proc := "stopped"
		pid := ""
		switch {
		case n.Running:
			proc, pid = "running", fmt.Sprint(n.PID)
		case n.Removed:
			proc = "removed"
		}
		rows[i] = []string{n.ID, n.Group, proc, pid, n.HTTPAddr, n.RaftAddr, n.GossipAddr, n.Log}
	}
	if err := writeTable(e.stdout, []string{"NODE", "GROUP", "PROCESS", "PID", "HTTP ADDR", "RAFT ADDR", "GOSSIP ADDR", "LOG"}, rows); err != nil {
		return err
	}
	if cs == nil {
		fmt.Fprintf(e.stdout, "\nno agent is running: 'carpkvctl local up' starts them again\n")
		return nil
	}
	fmt.Fprintln(e.stdout)
	return printStatus(e.stdout, cs)
}

func (e *env) localDown(c *cli.Context) error {
	if err := wantArgs(c, 0, 0, "no arguments"); err != nil {
		return err
	}
	dir, err := localDir(c)
	if err != nil {
		return err
	}
	st, err := localcluster.Load(dir)
	if errors.Is(err, localcluster.ErrNoCluster) {
		fmt.Fprintf(e.stdout, "no local cluster in %s\n", dir)
		return nil
	}
	if err != nil && !c.Bool("purge") {
		return err
	}
	var res localcluster.StopResult
	if st != nil {
		nodes := make([]*localcluster.Node, len(st.Nodes))
		for i := range st.Nodes {
			nodes[i] = &st.Nodes[i]
		}
		ctx, cancel := context.WithTimeout(c.Context, c.Duration("grace")+10*time.Second)
		defer cancel()
		start := time.Now()
		res, err = localcluster.Stop(ctx, nodes, c.Duration("grace"))
		if err != nil {
			return err
		}
		for i := range st.Nodes {
			if !st.Nodes[i].Alive() {
				st.Nodes[i].PID = 0
			}
		}
		if !c.Bool("purge") {
			if err := st.Save(); err != nil {
				return err
			}
		}
		n := len(res.Stopped) + len(res.Killed)
		fmt.Fprintf(e.stdout, "stopped %d agent%s in %.1fs", n, plural(n), time.Since(start).Seconds())
		if len(res.Killed) > 0 {
			fmt.Fprintf(e.stdout, " (SIGKILLed after %v: %s)", c.Duration("grace"), strings.Join(res.Killed, ", "))
		}
		fmt.Fprintln(e.stdout)
	}
	if c.Bool("purge") {
		if err := wipeLocal(dir); err != nil {
			return err
		}
		_ = os.Remove(dir) // only if it is now empty
		fmt.Fprintf(e.stdout, "deleted the cluster's data and logs in %s\n", dir)
	} else {
		fmt.Fprintf(e.stdout, "data and logs kept in %s ('carpkvctl local up' starts it again; 'local down --purge' deletes them)\n", dir)
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// localNodeArg loads the cluster and finds the node named by the first
// argument.
func localNodeArg(c *cli.Context) (*localcluster.State, *localcluster.Node, error) {
	if err := wantArgs(c, 1, 1, "NODE"); err != nil {
		return nil, nil, err
	}
	st, err := loadLocal(c)
	if err != nil {
		return nil, nil, err
	}
	n := st.Node(c.Args().First())
	if n == nil {
		return nil, nil, &usageError{cmd: c.Command.Name, msg: fmt.Sprintf("%s: no node %q in the local cluster (nodes: %s)",
			c.Command.Name, c.Args().First(), strings.Join(st.NodeIDs(), " "))}
	}
	return st, n, nil
}

func (e *env) localKill(c *cli.Context) error {
	st, n, err := localNodeArg(c)
	if err != nil {
		return err
	}
	if !n.Alive() {
		return fmt.Errorf("%s is not running", n.ID)
	}
	pid := n.PID
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	defer cancel()
	if err := localcluster.Kill(ctx, n); err != nil {
		return err
	}
	n.PID = 0
	if err := st.Save(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "killed %s (pid %d) with SIGKILL; 'carpkvctl local start %s' restarts it\n", n.ID, pid, n.ID)
	return nil
}

func (e *env) localStart(c *cli.Context) error {
	if err := wantArgs(c, 0, 1, "[NODE]"); err != nil {
		return err
	}
	st, err := loadLocal(c)
	if err != nil {
		return err
	}
	var todo []*localcluster.Node
	if c.NArg() == 1 {
		_, n, err := localNodeArg(c)
		if err != nil {
			return err
		}
		n = st.Node(n.ID)
		if n.Removed {
			return fmt.Errorf("%s: %w", n.ID, errRemoved)
		}
		if n.Alive() {
			return fmt.Errorf("%s is already running (pid %d)", n.ID, n.PID)
		}
		todo = append(todo, n)
	} else {
		for _, n := range st.Active() {
			if !n.Alive() {
				todo = append(todo, n)
			}
		}
		if len(todo) == 0 {
			fmt.Fprintln(e.stdout, "every node is running")
			return nil
		}
	}
	bin := st.AgentBin
	if _, serr := os.Stat(bin); bin == "" || serr != nil {
		if bin, err = localcluster.FindAgent(""); err != nil {
			return err
		}
	}
	for _, n := range todo {
		if err := localcluster.Start(n, bin); err != nil {
			_ = st.Save()
			return err
		}
	}
	if err := st.Save(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("wait"))
	defer cancel()
	if err := waitHealthy(ctx, todo); err != nil {
		e.printLogTails(st)
		return err
	}
	for _, n := range todo {
		fmt.Fprintf(e.stdout, "started %s (pid %d), HTTP %s\n", n.ID, n.PID, n.HTTPAddr)
	}
	return nil
}

// waitHealthy polls until every node's HTTP API answers /v1/health.
func waitHealthy(ctx context.Context, nodes []*localcluster.Node) error {
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.HTTPAddr
	}
	kv, err := kvclient.New(kvclient.Config{Addrs: addrs, RequestTimeout: time.Second, DialTimeout: 300 * time.Millisecond})
	if err != nil {
		return err
	}
	defer kv.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var missing []string
		for _, n := range nodes {
			if !n.Alive() {
				return fmt.Errorf("agent %s exited (see %s)", n.ID, n.Log)
			}
			if kv.Health(ctx, n.HTTPAddr) != nil {
				missing = append(missing, n.ID)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no answer from %s: %w", strings.Join(missing, ", "), ctx.Err())
		case <-tick.C:
		}
	}
}

func (e *env) localLogs(c *cli.Context) error {
	_, n, err := localNodeArg(c)
	if err != nil {
		return err
	}
	if c.Bool("path") {
		_, err := fmt.Fprintln(e.stdout, n.Log)
		return err
	}
	if c.Int("lines") < 1 {
		return &usageError{cmd: "logs", msg: "logs: --lines must be at least 1"}
	}
	t, err := localcluster.Tail(n.Log, c.Int("lines"))
	if err != nil {
		return err
	}
	_, err = io.WriteString(e.stdout, t)
	return err
}
