package chaos

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// Owners selects whose resources Cleanup removes, by the PID that created
// them.
type Owners func(pid int) bool

// Owner selects the resources of one process.
func Owner(pid int) Owners { return func(p int) bool { return p == pid } }

// DeadOwners selects the leftovers of processes that are gone, and leaves
// runs in progress alone.
func DeadOwners(pid int) bool { return !processAlive(pid) }

// AllOwners selects every resource named with Prefix.
func AllOwners(int) bool { return true }

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ownerOf parses the PID out of a name Prefix<pid>[-...][:tag].
func ownerOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return 0, false
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	pid, err := strconv.Atoi(rest[:end])
	return pid, err == nil
}

// Cleanup removes the containers, networks, iptables chains and images
// named with Prefix whose owner is selected. It keeps going after errors
// and returns what it removed.
func Cleanup(ctx context.Context, owners Owners) ([]string, error) {
	var removed []string
	var errs []error
	list := func(args ...string) []string {
		out, err := docker(ctx, args...)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if out == "" {
			return nil
		}
		return strings.Split(out, "\n")
	}
	selected := func(name string) bool {
		pid, ok := ownerOf(name)
		return ok && owners(pid)
	}
	// Containers first (they hold the networks), then the firewall, the
	// networks and the images.
	for _, name := range list("ps", "--all", "--filter", "name="+Prefix, "--format", "{{.Names}}") {
		if !selected(name) {
			continue
		}
		_, _ = docker(ctx, "unpause", name) // a paused container cannot always be removed
		if _, err := docker(ctx, "rm", "--force", "--volumes", name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "container "+name)
	}
	chains, err := ourChains(ctx)
	errs = append(errs, err)
	for _, ch := range chains {
		if !selected(ch) {
			continue
		}
		if err := removeChain(ctx, ch); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "iptables chain "+ch)
	}
	for _, name := range list("network", "ls", "--filter", "name="+Prefix, "--format", "{{.Name}}") {
		if !selected(name) {
			continue
		}
		if _, err := docker(ctx, "network", "rm", name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "network "+name)
	}
	for _, image := range list("images", "--format", "{{.Repository}}:{{.Tag}}") {
		if !selected(image) {
			continue
		}
		if _, err := docker(ctx, "rmi", "--force", image); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "image "+image)
	}
	return removed, errors.Join(errs...)
}

// CleanupOnSignal removes this process's resources and exits when it gets
// SIGINT, SIGTERM or SIGHUP (go test's own timeout panics instead, and
// make chaos-clean or the next run's DeadOwners sweep handles that). It
// returns a function that stops watching.
func CleanupOnSignal(logf func(string, ...any)) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			logf("chaos: %v: removing this run's containers, networks, iptables rules and image", sig)
			removed, err := Cleanup(context.Background(), Owner(os.Getpid()))
			for _, r := range removed {
				logf("chaos: removed %s", r)
			}
			if err != nil {
				logf("chaos: cleanup: %v", err)
			}
			os.Exit(2)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}
