package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/carpkv/carpkv/internal/testcluster"
)

// TestSingleClusterScriptRuns keeps scripts/test-single-cluster.sh, the
// README's shell demo of one group, working: it runs the script against
// freshly built binaries and checks its verdict lines.
func TestSingleClusterScriptRuns(t *testing.T) {
	bin := t.TempDir()
	agent := testcluster.AgentBinary(t)
	if err := os.Symlink(agent, filepath.Join(bin, "carpkv-agent")); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "carpkvctl"), "github.com/carpkv/carpkv/ctl")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build ctl: %v\n%s", err, out)
	}
	base := testcluster.FreePortRange(t, 25) - 1 // the script uses base+1..base+24
	cmd := exec.Command("../scripts/test-single-cluster.sh")
	cmd.Env = append(os.Environ(), "BIN_DIR="+bin, "BASE_PORT="+strconv.Itoa(base))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("script failed: %v\n%s", err, out)
	}
	for _, want := range []string{"all 100 acknowledged writes readable after the failover: yes", "serves after-failover=yes"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("script output lacks %q:\n%s", want, out)
		}
	}
}
