package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/carpkv/carpkv/ctl/localcluster"
)

// system is one cluster under test and how to drive it.
type system struct {
	Key  string // results key: carpkv-1g, carpkv-3g, etcd
	Name string // for people
	pids func() []int
	// load returns the client command for a workload; it prints a
	// loadgen report as JSON on stdout.
	load func(args []string) *exec.Cmd
	// tool, set only on etcd driven by etcd's benchmark tool (toolKey)
	// instead of load, returns the tool's command for w, sized to run
	// about d at expect operations per second; it prints the tool's text
	// summary (parseToolReport).
	tool func(w workload, keys, keySize, valueSize int, expect float64, d time.Duration) *exec.Cmd
	stop func()
	// ctl, on carpkv only, runs carpkvctl on the cluster; dir is its
	// carpkvctl local directory.
	ctl func(args ...string) *exec.Cmd
	dir string
}

// agentRaftDefaults are carpkv-agent's own Raft timings (agent/config).
// carpkvctl local up shortens them for quick failover in demos; on two
// cores shared by nine agents and a thousand clients those let a starved
// leader step down mid-run (seen in the first runs), so the comparison
// runs the agents as deployed.
var agentRaftDefaults = []string{
	"--agent-arg=--raft-heartbeat-timeout=500ms",
	"--agent-arg=--raft-election-timeout=500ms",
	"--agent-arg=--raft-leader-lease-timeout=250ms",
}

// startCarpkv starts a local carpkv cluster of groups × 3 agents with
// carpkvctl local up, with the agents' default Raft timings.
func startCarpkv(binDir, dir string, groups int, agentArgs ...string) (*system, error) {
	ctl := filepath.Join(binDir, "carpkvctl")
	env := append(os.Environ(), "CARPKV_LOCAL_DIR="+dir)
	args := append([]string{"local", "up", "--groups", fmt.Sprint(groups), "--replicas", "3", "--fresh"}, agentRaftDefaults...)
	for _, a := range agentArgs {
		args = append(args, "--agent-arg="+a)
	}
	up := exec.Command(ctl, args...)
	up.Env = env
	var out bytes.Buffer
	up.Stdout, up.Stderr = &out, &out
	if err := up.Run(); err != nil {
		return nil, fmt.Errorf("carpkvctl local up: %v\n%s", err, out.String())
	}
	st, err := localcluster.Load(dir)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, n := range st.Nodes {
		pids = append(pids, n.PID)
	}
	addrs := strings.Join(st.HTTPAddrs(), ",")
	name := "carpkv, 1 group"
	if groups > 1 {
		name = fmt.Sprintf("carpkv, %d groups", groups)
	}
	return &system{
		Key: fmt.Sprintf("carpkv-%dg", groups), Name: name,
		pids: func() []int { return pids },
		ctl: func(args ...string) *exec.Cmd {
			cmd := exec.Command(ctl, args...)
			cmd.Env = env
			return cmd
		},
		dir: dir,
		load: func(args []string) *exec.Cmd {
			return exec.Command(ctl, append([]string{"bench", "-o", "json", "--addr", addrs}, args...)...)
		},
		stop: func() {
			down := exec.Command(ctl, "local", "down")
			down.Env = env
			_ = down.Run()
		},
	}, nil
}

// etcdSystems starts a 3-member etcd and returns it twice: driven by
// bench-compare etcd-load (our driver), and by etcd's own benchmark tool
// at toolBin, on the same cluster. stop is on the first.
func etcdSystems(self, etcdBin, toolBin, dir string) (driver, tool *system, err error) {
	c, err := startEtcd(etcdBin, dir)
	if err != nil {
		return nil, nil, err
	}
	eps := strings.Join(c.endpoints, ",")
	name := "etcd " + etcdVersion(etcdBin)
	driver = &system{
		Key: "etcd", Name: name,
		pids: c.pids,
		load: func(args []string) *exec.Cmd {
			return exec.Command(self, append([]string{"etcd-load", "-endpoints", eps}, args...)...)
		},
		stop: c.stop,
	}
	return driver, toolSystem(toolBin, c, name+" under etcd's benchmark tool ("+toolVersion(toolBin)+")"), nil
}

func etcdVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "etcd Version: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
