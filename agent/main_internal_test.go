package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/carpkv/carpkv/agent/config"
)

// parse runs the command line with env set and returns the settings the
// agent would start with.
func parse(t *testing.T, env map[string]string, args ...string) (config.Config, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var got config.Config
	app := newApp(func(_ *cli.Context, cfg config.Config) error { got = cfg; return nil })
	err := app.Run(append([]string{"carpkv-agent"}, args...))
	return got, err
}

func TestSettingsPrecedenceIsFlagThenEnvThenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(file, []byte("group: from-file\ndata-dir: /tmp/file\nraft-heartbeat-timeout: 400ms\nmax-key-bytes: 100\njoin: [\"127.0.0.1:9\"]\ngroup-weight: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CARPKV_GROUP": "from-env", "CARPKV_MAX_KEY_BYTES": "200"}

	cfg, err := parse(t, env, "--config", file, "--group", "from-flag")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Group != "from-flag" {
		t.Errorf("group %q: a flag must win over env and file", cfg.Group)
	}
	if cfg.Limits.MaxKeyBytes != 200 {
		t.Errorf("max-key-bytes %d: env must win over the file", cfg.Limits.MaxKeyBytes)
	}
	if cfg.DataDir != "/tmp/file" || cfg.Raft.HeartbeatTimeout != 400*time.Millisecond || len(cfg.Join) != 1 || cfg.GroupWeight != 2 {
		t.Errorf("file settings not applied: %+v", cfg)
	}
	if cfg.Raft.ElectionTimeout != config.Default().Raft.ElectionTimeout {
		t.Errorf("unset setting lost its default: %v", cfg.Raft.ElectionTimeout)
	}
}

func TestBadSettingsAreNamed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--data-dir", "/tmp/x"}, "--group"},
		{[]string{"--group", "g"}, "--data-dir"},
		{[]string{"--group", "g", "--data-dir", "/x", "--raft-addr", "nonsense"}, "--raft-addr"},
		{[]string{"--group", "g", "--data-dir", "/x", "--http-addr", "0.0.0.0:80"}, "--http-advertise"},
		{[]string{"--group", "g", "--data-dir", "/x", "--log-level", "loud"}, "--log-level"},
		{[]string{"--group", "g", "--data-dir", "/x", "--bootstrap", "--join", "127.0.0.1:1"}, "--bootstrap"},
		{[]string{"--group", "g", "--data-dir", "/x", "--raft-leader-lease-timeout", "2s"}, "--raft-leader-lease-timeout"},
		{[]string{"--group", "g", "--data-dir", "/x", "--max-value-bytes", "2000000"}, "--max-body-bytes"},
		{[]string{"--group", "g", "--data-dir", "/x", "--config", "/nonexistent.yaml"}, "--config"},
		{[]string{"--group", "g", "--data-dir", "/x", "stray"}, "unexpected argument"},
	} {
		_, err := parse(t, nil, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}
