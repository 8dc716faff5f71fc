package gossip

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidateNamesTheBadField(t *testing.T) {
	ok := Config{BindAddr: "127.0.0.1:0"}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // "" if valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"default", func(c *Config) { *c = DefaultConfig() }, ""},
		{"all interfaces", func(c *Config) { c.BindAddr = ":7946" }, ""},
		{"ipv6", func(c *Config) { c.BindAddr = "[::1]:7946" }, ""},
		{"everything", func(c *Config) {
			c.AdvertiseAddr = "10.0.0.1:7946"
			c.RetryJoin = []string{"10.0.0.2:7946", "agent-3.example:7946", "[fe80::1]:1"}
			c.RetryInterval = 5 * time.Second
			c.Profile = ProfileLocal
		}, ""},
		{"advertise port 0", func(c *Config) { c.AdvertiseAddr = "10.0.0.1:0" }, ""},
		{"no bind", func(c *Config) { c.BindAddr = "" }, "BindAddr"},
		{"bind without port", func(c *Config) { c.BindAddr = "127.0.0.1" }, "BindAddr"},
		{"bind hostname", func(c *Config) { c.BindAddr = "localhost:7946" }, "BindAddr"},
		{"bind port too big", func(c *Config) { c.BindAddr = "127.0.0.1:65536" }, "BindAddr"},
		{"advertise empty host", func(c *Config) { c.AdvertiseAddr = ":7946" }, "AdvertiseAddr"},
		{"advertise hostname", func(c *Config) { c.AdvertiseAddr = "me:7946" }, "AdvertiseAddr"},
		{"seed without port", func(c *Config) { c.RetryJoin = []string{"10.0.0.2"} }, "RetryJoin"},
		{"seed port 0", func(c *Config) { c.RetryJoin = []string{"10.0.0.2:0"} }, "RetryJoin"},
		{"seed empty host", func(c *Config) { c.RetryJoin = []string{":7946"} }, "RetryJoin"},
		{"seed with node name", func(c *Config) { c.RetryJoin = []string{"g1/n1/10.0.0.2:7946"} }, "RetryJoin"},
		{"negative retry", func(c *Config) { c.RetryInterval = -time.Second }, "RetryInterval"},
		{"unknown profile", func(c *Config) { c.Profile = "wan" }, "Profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.field != "" && (err == nil || !strings.Contains(err.Error(), "Config."+tt.field+":")):
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.field)
			}
		})
	}
}

func TestMemberlistConfigFollowsProfile(t *testing.T) {
	local := Config{BindAddr: "127.0.0.1:7000", Profile: ProfileLocal}.withDefaults().memberlistConfig("g1/a")
	if local.ProbeInterval != 200*time.Millisecond || local.GossipInterval != 200*time.Millisecond || local.EnableCompression {
		t.Errorf("local profile: probe %v gossip %v compression %v", local.ProbeInterval, local.GossipInterval, local.EnableCompression)
	}
	lan := Config{BindAddr: ":7946", AdvertiseAddr: "10.0.0.1:0"}.withDefaults().memberlistConfig("g1/a")
	if lan.ProbeInterval != time.Second || lan.SuspicionMult != 4 {
		t.Errorf("lan profile: probe %v suspicion mult %d", lan.ProbeInterval, lan.SuspicionMult)
	}
	if lan.Name != "g1/a" || lan.BindAddr != "0.0.0.0" || lan.BindPort != 7946 ||
		lan.AdvertiseAddr != "10.0.0.1" || lan.AdvertisePort != 7946 {
		t.Errorf("lan addresses: name %q bind %s:%d advertise %s:%d",
			lan.Name, lan.BindAddr, lan.BindPort, lan.AdvertiseAddr, lan.AdvertisePort)
	}
}
