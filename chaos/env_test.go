package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The Docker-based tests share one agent image per test process, built on
// first use and removed when the process's tests are done (TestMain).

var (
	imageOnce sync.Once
	image     string
	imageErr  error
)

// needDocker skips t unless CARPKV_CHAOS=1, checks the tools, and returns
// the agent image and a context that ends before go test's timeout.
func needDocker(t *testing.T) (string, context.Context) {
	t.Helper()
	if os.Getenv("CARPKV_CHAOS") != "1" {
		t.Skip("fault-injection suite: needs root, Docker and iptables; run it with make chaos (CARPKV_CHAOS=1)")
	}
	for _, tool := range []string{"docker", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the chaos suite needs %s: %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatal("the chaos suite needs root (iptables, and entering containers' network namespaces)")
	}
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		// Leave time to clean up before go test's own timeout fires.
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-2*time.Minute))
		t.Cleanup(cancel)
	}
	imageOnce.Do(func() {
		if removed, err := Cleanup(ctx, DeadOwners); err != nil {
			t.Logf("removing leftovers of earlier runs: %v", err)
		} else if len(removed) > 0 {
			t.Logf("removed leftovers of earlier runs: %s", strings.Join(removed, ", "))
		}
		start := time.Now()
		image, imageErr = BuildImage(ctx)
		if imageErr == nil {
			t.Logf("agent image %s built (static binary, FROM scratch) in %v", image, time.Since(start).Round(time.Second))
		}
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return image, ctx
}

// TestMain removes what the Docker-based tests created when they end, and
// when the process is interrupted.
func TestMain(m *testing.M) {
	stop := func() {}
	if os.Getenv("CARPKV_CHAOS") == "1" {
		stop = CleanupOnSignal(func(f string, args ...any) { fmt.Fprintf(os.Stderr, f+"\n", args...) })
	}
	code := m.Run()
	stop()
	if image != "" {
		if removed, err := Cleanup(context.Background(), Owner(os.Getpid())); err != nil {
			os.Stderr.WriteString("chaos: cleanup: " + err.Error() + "\n")
			code = 1
		} else if len(removed) > 0 {
			os.Stderr.WriteString("chaos: cleanup removed " + strings.Join(removed, ", ") + "\n")
		}
	}
	os.Exit(code)
}
