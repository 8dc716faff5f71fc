package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func valid() Config {
	c := Default()
	c.Group = "g1"
	c.DataDir = "/tmp/x"
	return c
}

func TestDefaultsAreValidAndAdvertiseDefaultsToBind(t *testing.T) {
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.RaftAdvertise != c.RaftBind || c.HTTPAdvertise != c.HTTPBind {
		t.Errorf("advertise %s %s, bind %s %s", c.RaftAdvertise, c.HTTPAdvertise, c.RaftBind, c.HTTPBind)
	}
}

func TestValidateNamesTheBadSetting(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.Group = "" }, "--group"},
		{func(c *Config) { c.Group = "bad group" }, "--group"},
		{func(c *Config) { c.NodeID = "-x" }, "--node-id"},
		{func(c *Config) { c.DataDir = "" }, "--data-dir"},
		{func(c *Config) { c.RaftBind = "7000" }, "--raft-addr"},
		{func(c *Config) { c.RaftBind = "0.0.0.0:7000" }, "--raft-advertise"},
		{func(c *Config) { c.HTTPBind = ":8000" }, "--http-advertise"},
		{func(c *Config) { c.HTTPAdvertise = "host:0" }, "--http-advertise"},
		{func(c *Config) { c.Join = []string{"nope"} }, "--join"},
		{func(c *Config) { c.LogFormat = "xml" }, "--log-format"},
		{func(c *Config) { c.Limits.MaxKeyBytes = 0 }, "--max-key-bytes"},
		{func(c *Config) { c.Limits.MaxBodyBytes = 10 }, "--max-body-bytes"},
		{func(c *Config) { c.Limits.RequestTimeout = 0 }, "--request-timeout"},
		{func(c *Config) { c.Limits.MaxInFlight = 0 }, "--max-in-flight"},
		{func(c *Config) { c.Raft.HeartbeatTimeout = 1 }, "--raft-heartbeat-timeout"},
		{func(c *Config) { c.Raft.ElectionTimeout = c.Raft.HeartbeatTimeout / 2 }, "--raft-election-timeout"},
		{func(c *Config) { c.Raft.MaxAppendEntries = 5000 }, "--raft-max-append-entries"},
		{func(c *Config) { c.Raft.SnapshotThreshold = 0 }, "--raft-snapshot-threshold"},
		{func(c *Config) { c.Raft.SnapshotRetain = 0 }, "--raft-snapshot-retain"},
		{func(c *Config) { c.GossipBind = "0.0.0.0:7946" }, "--gossip-advertise"},
		{func(c *Config) { c.GossipProfile = "wan" }, "--gossip-profile"},
		{func(c *Config) { c.RetryJoin = []string{"host"} }, "--retry-join"},
		{func(c *Config) { c.BootstrapExpect = -1 }, "--bootstrap-expect"},
		{func(c *Config) { c.Bootstrap, c.BootstrapExpect = true, 3 }, "--bootstrap"},
		{func(c *Config) { c.ExpectGroups = -2 }, "--expect-groups"},
		{func(c *Config) { c.GroupWeight = 0 }, "--group-weight"},
		{func(c *Config) { c.RingMode = "weak" }, "--ring-mode"},
	} {
		c := valid()
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one naming %s", err, tc.want)
		}
	}
}

func TestNodeIDIsGeneratedOnceAndKept(t *testing.T) {
	c := valid()
	c.DataDir = t.TempDir()
	id, err := c.EnsureNodeID()
	if err != nil || !strings.HasPrefix(id, "n-") {
		t.Fatalf("generated %q, %v", id, err)
	}
	again := valid()
	again.DataDir = c.DataDir
	if id2, err := again.EnsureNodeID(); err != nil || id2 != id {
		t.Fatalf("second start got %q (%v), want %q", id2, err, id)
	}
	other := valid()
	other.DataDir = c.DataDir
	other.NodeID = "someone-else"
	if _, err := other.EnsureNodeID(); err == nil || !strings.Contains(err.Error(), "--node-id") {
		t.Fatalf("a conflicting --node-id was accepted: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(c.DataDir, "node-id")); strings.TrimSpace(string(b)) != id {
		t.Fatalf("node-id file holds %q", b)
	}
}
