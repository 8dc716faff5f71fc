package gossip

import (
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is the conventional gossip port (memberlist's and Consul's).
const DefaultPort = 7946

// Profile selects memberlist's timing.
type Profile string

const (
	// ProfileLAN is memberlist.DefaultLANConfig: probe every 1 s with a
	// 500 ms timeout, gossip every 200 ms, push/pull every 30 s. A member
	// that fails to answer is suspected for 4 s (SuspicionMult 4 × probe
	// interval × max(1, log10 n)); in pools of four or more that timeout
	// starts six times longer and shrinks to 4 s as two other members
	// confirm the suspicion. A crashed agent is reported dead after about
	// 5-6 s (measured on loopback with 2, 3 and 5 agents: 5.8-6.0 s), up
	// to about 25 s when nobody can confirm.
	ProfileLAN Profile = "lan"
	// ProfileLocal is for tests and clusters on one host: probe every
	// 200 ms with a 100 ms timeout, suspicion of 0.6 s (1.2 s until one
	// other member confirms), gossip every 200 ms, push/pull every 5 s,
	// packets not compressed. A
	// crashed agent is reported dead after about 1 s (measured with 3
	// agents under the race detector: 0.95-1.15 s). Too eager for real
	// networks: a GC pause or a busy link would make agents flap between
	// suspect and alive.
	ProfileLocal Profile = "local"
)

// Config configures one gossip member. The zero value is not valid
// (BindAddr is required); DefaultConfig gives a valid one.
type Config struct {
	// BindAddr is the IP:port memberlist listens on, both TCP (push/pull,
	// joins, fallback probes) and UDP (probes, gossip) on the same port.
	// An empty IP means all interfaces; port 0 picks a free port (tests).
	BindAddr string
	// AdvertiseAddr is the IP:port other agents reach this one on, when
	// it differs from BindAddr (NAT, or BindAddr on all interfaces where
	// memberlist would otherwise pick a private address itself). Port 0
	// means the bound port; so does any port when BindAddr's port is 0
	// (memberlist advertises the port it picked). Optional.
	AdvertiseAddr string
	// RetryJoin lists host:port addresses (IPs or DNS names) of agents of
	// any group. Start contacts them in the background, retrying with
	// backoff until one join succeeds; then it stops (memberlist keeps the
	// pool together from there). This agent's own advertised address is
	// skipped. Empty: this agent waits to be joined by others.
	RetryJoin []string
	// RetryInterval caps the backoff between join attempts, which starts
	// at 100 ms (or RetryInterval if smaller) and doubles. Default 1 s.
	RetryInterval time.Duration
	// Profile picks the timing: ProfileLAN (default) or ProfileLocal.
	Profile Profile
	// Logger receives this package's logs and, at debug level,
	// memberlist's own. Default: discard.
	Logger *slog.Logger
}

// DefaultConfig listens on DefaultPort on all interfaces with LAN timing.
func DefaultConfig() Config {
	return Config{
		BindAddr:      net.JoinHostPort("", strconv.Itoa(DefaultPort)),
		RetryInterval: time.Second,
		Profile:       ProfileLAN,
	}
}

// Validate checks every field and names the first bad one.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("gossip: invalid Config.%s: %s", field, fmt.Sprintf(format, args...))
	}
	if _, _, err := parseIPPort(c.BindAddr, true); err != nil {
		return bad("BindAddr", "%q: %v", c.BindAddr, err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := parseIPPort(c.AdvertiseAddr, false); err != nil {
			return bad("AdvertiseAddr", "%q: %v", c.AdvertiseAddr, err)
		}
	}
	for _, a := range c.RetryJoin {
		// memberlist reads "name/host:port" as a node name and address;
		// our node names contain '/' themselves, so refuse the form.
		host, port, err := net.SplitHostPort(a)
		if err == nil && (host == "" || strings.Contains(host, "/")) {
			err = fmt.Errorf("want host:port")
		}
		if err == nil {
			err = checkPort(port, false)
		}
		if err != nil {
			return bad("RetryJoin", "%q: %v", a, err)
		}
	}
	if c.RetryInterval < 0 {
		return bad("RetryInterval", "%v is negative", c.RetryInterval)
	}
	switch c.Profile {
	case "", ProfileLAN, ProfileLocal:
	default:
		return bad("Profile", "%q: want %q or %q", c.Profile, ProfileLAN, ProfileLocal)
	}
	return nil
}

// withDefaults fills the zero fields that have a default.
func (c Config) withDefaults() Config {
	if c.RetryInterval == 0 {
		c.RetryInterval = time.Second
	}
	if c.Profile == "" {
		c.Profile = ProfileLAN
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// memberlistConfig translates a validated Config (defaults filled) into
// memberlist's, without delegates.
func (c Config) memberlistConfig(name string) *memberlist.Config {
	// DeadNodeReclaimTime (set below) lets an agent that crashed come back
	// under the same name at a new address after that long; without it the
	// pool would ignore it until memberlist forgets the dead entry
	// (GossipToTheDeadTime). Names are unique per agent, so a reclaimed
	// name is that same agent restarted, not an impostor.
	var mc *memberlist.Config
	switch c.Profile {
	case ProfileLocal:
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		// SuspicionMult 3 keeps one confirmation (k = mult-2) in play, so a
		// single prober's hiccup on a loaded host does not alone fix the
		// timeout at its minimum of 3 × ProbeInterval.
		mc.SuspicionMult = 3
		mc.SuspicionMaxTimeoutMult = 2
		// Every 50 ms was a fifth of an idle local cluster's CPU (issue
		// 14): a gossip round wakes every agent even with nothing to say.
		mc.GossipInterval = 200 * time.Millisecond
		// The local profile's RetransmitMult of 2 sends a broadcast in
		// only two rounds in pools of up to nine agents, and in tests an
		// agent regularly missed a peer's join until the next push-pull:
		// group formation then took 7-11 s instead of 1-3 s. The LAN
		// value of 4 costs a few more small UDP packets.
		mc.RetransmitMult = 4
		mc.PushPullInterval = 5 * time.Second
		mc.GossipToTheDeadTime = 10 * time.Second
		mc.DeadNodeReclaimTime = time.Second
		// On one host bandwidth is free and compressing every probe and
		// gossip packet (LZW) was 7% of an idle leader's CPU.
		mc.EnableCompression = false
	default:
		mc = memberlist.DefaultLANConfig()
		mc.DeadNodeReclaimTime = 10 * time.Second
	}
	mc.Name = name
	ip, port, _ := parseIPPort(c.BindAddr, true)
	mc.BindAddr, mc.BindPort = ip, port
	mc.AdvertiseAddr, mc.AdvertisePort = "", port
	if c.AdvertiseAddr != "" {
		aip, aport, _ := parseIPPort(c.AdvertiseAddr, false)
		if aport == 0 {
			aport = port
		}
		mc.AdvertiseAddr, mc.AdvertisePort = aip, aport
	}
	mc.Logger = log.New(logWriter{c.Logger}, "", 0)
	return mc
}

// parseIPPort splits an "IP:port" address. memberlist binds and advertises
// only IP literals; DNS names are for RetryJoin. An empty host is allowed
// (and becomes 0.0.0.0) only when emptyHost is set.
func parseIPPort(addr string, emptyHost bool) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	switch {
	case host == "" && emptyHost:
		host = "0.0.0.0"
	case net.ParseIP(host) == nil:
		return "", 0, fmt.Errorf("host %q is not an IP address", host)
	}
	if err := checkPort(port, true); err != nil {
		return "", 0, err
	}
	p, _ := strconv.Atoi(port)
	return host, p, nil
}

func checkPort(port string, zeroOK bool) error {
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (p == 0 && !zeroOK) {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}
