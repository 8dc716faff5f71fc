package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Everything a run creates outside its own process (Docker images,
// networks, containers, iptables chains) is named with Prefix followed by
// the PID of the process that created it, and containers, networks and
// images also carry the label OwnerLabel=<pid>. That is how cleanup finds
// them, and how a later run tells leftovers of a dead process (removed)
// from the resources of a run still in progress (left alone).
const (
	Prefix     = "carpkv-chaos-"
	OwnerLabel = "carpkv-chaos.owner"
)

// docker runs the docker CLI and returns its trimmed standard output. The
// error carries the command and its standard error.
func docker(ctx context.Context, args ...string) (string, error) {
	return command(ctx, "docker", args...)
}

func command(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(out.String()), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// buildAgentImage builds a static carpkv-agent from the module at modDir
// and an image FROM scratch holding only that binary, tagged tag.
func buildAgentImage(ctx context.Context, modDir, tag string) error {
	dir, err := os.MkdirTemp("", Prefix+"image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	build := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X main.version=chaos",
		"-o", filepath.Join(dir, "carpkv-agent"), "./agent")
	build.Dir = modDir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building a static carpkv-agent: %v\n%s", err, out)
	}
	dockerfile := "FROM scratch\nCOPY carpkv-agent /carpkv-agent\nENTRYPOINT [\"/carpkv-agent\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	owner := strconv.Itoa(os.Getpid())
	_, err = docker(ctx, "build", "--quiet", "--label", OwnerLabel+"="+owner, "-t", tag, dir)
	return err
}

// moduleRoot finds the directory of go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// createNetwork creates a bridge network named name on a free /24 of
// 10.213.0.0/16 (so that containers can have fixed addresses, which they
// keep across restarts) and returns the subnet's first three octets.
func createNetwork(ctx context.Context, name string) (string, error) {
	owner := strconv.Itoa(os.Getpid())
	start := os.Getpid() % 250
	var lastErr error
	for i := 0; i < 250; i++ {
		base := fmt.Sprintf("10.213.%d", (start+i)%250+1)
		_, err := docker(ctx, "network", "create", "--driver", "bridge", "--subnet", base+".0/24",
			"--gateway", base+".1", "--label", OwnerLabel+"="+owner, name)
		if err == nil {
			return base, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "overlap") {
			return "", err
		}
	}
	return "", lastErr
}

// containerPID is the host PID of a running container's first process.
func containerPID(ctx context.Context, name string) (int, error) {
	out, err := docker(ctx, "inspect", "-f", "{{.State.Pid}}", name)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(out)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("container %s is not running (pid %q)", name, out)
	}
	return pid, nil
}

// dockerCmd is a docker command for the caller to wire up and run.
func dockerCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "docker", args...)
}

// containerLogs returns everything a container wrote, stdout and stderr
// (the agent logs to stderr), over all its restarts.
func containerLogs(ctx context.Context, name string) (string, error) {
	out, err := dockerCmd(ctx, "logs", name).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker logs %s: %v: %s", name, err, out)
	}
	return string(out), nil
}
