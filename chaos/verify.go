package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// VerifyFirewall proves, before a run relies on them, that the firewall's
// rules do what the partition faults need, between two agents a and b of
// different groups and the host:
//   - a two-way cut stops TCP both ways between a and b, and leaves the
//     host's traffic to a alone;
//   - a one-way cut a -> b stops a's datagrams to b, and not b's to a;
//   - a host cut stops the host's TCP to a, and leaves a -> b alone;
//   - healing restores everything.
func VerifyFirewall(ctx context.Context, c *Cluster) error {
	agents := c.Agents(false)
	a, b := agents[0], agents[len(agents)-1]
	pa, err := containerPID(ctx, a.Name)
	if err != nil {
		return err
	}
	pb, err := containerPID(ctx, b.Name)
	if err != nil {
		return err
	}
	const short = 700 * time.Millisecond
	type expect struct {
		what string
		ok   func() (bool, error)
		want bool
	}
	tcp := func(pid int, to *Agent) func() (bool, error) {
		return func() (bool, error) { return probeTCP(pid, to.HTTP(), short) }
	}
	udp := func(from, to int, toAgent *Agent) func() (bool, error) {
		return func() (bool, error) { return probeUDP(ctx, from, to, toAgent.IP, 9999, short) }
	}
	checks := func(stage string, es ...expect) error {
		for _, e := range es {
			got, err := e.ok()
			if err != nil {
				return fmt.Errorf("%s: %s: %w", stage, e.what, err)
			}
			if got != e.want {
				return fmt.Errorf("%s: %s: passes=%t, want %t", stage, e.what, got, e.want)
			}
		}
		return nil
	}
	host := 0
	if err := checks("no cut",
		expect{"a->b TCP", tcp(pa, b), true},
		expect{"host->a TCP", tcp(host, a), true},
		expect{"b->a UDP", udp(pb, pa, a), true},
	); err != nil {
		return verifyErr(err)
	}
	steps := []struct {
		name  string
		cut   func() error
		tests []expect
	}{
		{"two-way cut a|b", func() error { return c.fw.CutBoth(ctx, []string{a.IP}, []string{b.IP}) }, []expect{
			{"a->b TCP", tcp(pa, b), false},
			{"b->a TCP", tcp(pb, a), false},
			{"host->a TCP", tcp(host, a), true},
		}},
		{"one-way cut a->b", func() error { return c.fw.CutOneWay(ctx, []string{a.IP}, []string{b.IP}) }, []expect{
			{"a->b UDP", udp(pa, pb, b), false},
			{"b->a UDP", udp(pb, pa, a), true},
		}},
		{"host cut of a", func() error { return c.fw.CutFromHost(ctx, []string{a.IP}) }, []expect{
			{"host->a TCP", tcp(host, a), false},
			{"a->b TCP", tcp(pa, b), true},
		}},
	}
	for _, s := range steps {
		if err := s.cut(); err != nil {
			return err
		}
		err := checks(s.name, s.tests...)
		if herr := c.fw.Heal(ctx); herr != nil {
			return errors.Join(err, herr)
		}
		if err != nil {
			return verifyErr(err)
		}
		if err := checks("healed after "+s.name,
			expect{"a->b TCP", tcp(pa, b), true},
			expect{"host->a TCP", tcp(host, a), true},
		); err != nil {
			return verifyErr(err)
		}
	}
	return nil
}

func verifyErr(err error) error {
	nf, _ := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
	return fmt.Errorf("the partition rules do not work here: %w (net.bridge.bridge-nf-call-iptables=%q; "+
		"load br_netfilter and set it to 1, or leave the partition faults out with FAULTS=...)", err, strings.TrimSpace(string(nf)))
}
