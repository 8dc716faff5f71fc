package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Alive reports whether the node's process runs. A PID is trusted only
// if that process's command line names the node's data directory, so a
// PID reused by another program after the agent died is not taken for it
// (and never signalled). A zombie (exited, not yet reaped) is not alive.
func (n *Node) Alive() bool {
	if n.PID <= 0 {
		return false
	}
	if err := syscall.Kill(n.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return true // no /proc: the signal check is all there is
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.PID))
	if err != nil {
		return false // gone (reaped) since the signal check
	}
	// pid (comm) state ...: the state follows the last ')'.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
		return false
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n.PID))
	return err == nil && bytes.Contains(cmd, []byte(n.DataDir))
}

// Start starts the node's agent with its recorded arguments, in a session
// of its own (it survives the end of carpkvctl and a Ctrl-C of the
// terminal or make that ran it), stdin from /dev/null, stdout and stderr
// appended to its log. It records the PID in n; the caller saves the
// state.
func Start(n *Node, agentBin string) error {
	if n.Alive() {
		return fmt.Errorf("%s is already running (pid %d)", n.ID, n.PID)
	}
	if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(n.Log), 0o755); err != nil {
		return err
	}
	log, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own descriptor
	fmt.Fprintf(log, "--- carpkvctl: starting %s at %s: %s %s\n", n.ID, time.Now().Format(time.RFC3339), agentBin, strings.Join(n.Args, " "))
	cmd := exec.Command(agentBin, n.Args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", n.ID, err)
	}
	n.PID = cmd.Process.Pid
	// Reap it if it exits while this process lives (tests, a long demo),
	// so it does not linger as a zombie that looks alive.
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	waitExeced(n.PID, exited)
	return nil
}

// waitExeced waits until the kernel shows pid's new command line. Start
// returns as soon as execve has begun, and for a moment after that
// /proc/PID/cmdline is still empty (the new image's arguments are not
// mapped yet), so Alive, which identifies the agent by its command line,
// would call a process that is starting dead. It gives up when the process
// exits or after a few seconds (the agent then shows as not alive and its
// log says why).
func waitExeced(pid int, exited <-chan struct{}) {
	path := fmt.Sprintf("/proc/%d/cmdline", pid)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err != nil || len(b) > 0 {
			return // no /proc, or the new command line is there
		}
		select {
		case <-exited:
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// Signal sends sig to the node's process if it is alive.
func (n *Node) Signal(sig syscall.Signal) error {
	if !n.Alive() {
		return nil
	}
	if err := syscall.Kill(n.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to %s (pid %d): %w", sig, n.ID, n.PID, err)
	}
	return nil
}

// Kill sends SIGKILL and waits (until ctx ends) for the process to be gone.
func Kill(ctx context.Context, n *Node) error {
	if err := n.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	return WaitExit(ctx, []*Node{n})
}

// StopResult says how Stop ended each node.
type StopResult struct {
	Stopped []string // exited after SIGTERM
	Killed  []string // still alive after the grace period: SIGKILLed
}

// Stop sends SIGTERM to every node that is alive, waits up to grace for
// them to exit (the agents hand leadership over and close their stores),
// then SIGKILLs the rest and waits for them (until ctx ends).
func Stop(ctx context.Context, nodes []*Node, grace time.Duration) (StopResult, error) {
	var res StopResult
	var alive []*Node
	for _, n := range nodes {
		if n.Alive() {
			alive = append(alive, n)
		}
	}
	for _, n := range alive {
		if err := n.Signal(syscall.SIGTERM); err != nil {
			return res, err
		}
	}
	gctx, cancel := context.WithTimeout(ctx, grace)
	_ = WaitExit(gctx, alive)
	cancel()
	var left []*Node
	for _, n := range alive {
		if n.Alive() {
			left = append(left, n)
			res.Killed = append(res.Killed, n.ID)
			if err := n.Signal(syscall.SIGKILL); err != nil {
				return res, err
			}
		} else {
			res.Stopped = append(res.Stopped, n.ID)
		}
	}
	return res, WaitExit(ctx, left)
}

// WaitExit polls until none of the nodes is alive, or ctx ends.
func WaitExit(ctx context.Context, nodes []*Node) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		var alive []string
		for _, n := range nodes {
			if n.Alive() {
				alive = append(alive, n.ID)
			}
		}
		if len(alive) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still running: %s: %w", strings.Join(alive, ", "), ctx.Err())
		case <-t.C:
		}
	}
}

// Tail returns the last n lines of the node's log (at most 1 MiB read).
func Tail(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	const maxRead = 1 << 20
	if st, err := f.Stat(); err == nil && st.Size() > maxRead {
		if _, err := f.Seek(-maxRead, io.SeekEnd); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "", err
	}
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, ""), nil
}

// FindAgent locates the carpkv-agent binary: bin if given, else next to
// the running executable, else in PATH.
func FindAgent(bin string) (string, error) {
	if bin != "" {
		p, err := exec.LookPath(bin)
		if err != nil {
			return "", fmt.Errorf("--agent-bin %s: %w", bin, err)
		}
		return filepath.Abs(p)
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "carpkv-agent")
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath("carpkv-agent")
	if err != nil {
		return "", fmt.Errorf("carpkv-agent not found next to carpkvctl nor in PATH (run make build, or pass --agent-bin)")
	}
	return filepath.Abs(p)
}
