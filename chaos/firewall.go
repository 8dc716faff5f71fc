package chaos

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Firewall cuts traffic between containers, and between containers and
// the host, with iptables DROP rules in a chain of its own. The chain is
// jumped to from three places:
//   - DOCKER-USER (in FORWARD): traffic between containers on the bridge,
//     which br_netfilter hands to iptables
//     (net.bridge.bridge-nf-call-iptables=1);
//   - OUTPUT and INPUT: traffic between the host (the clients, which use
//     the bridge's gateway address) and the containers, which does not
//     cross FORWARD.
//
// Healing flushes the chain; Close removes it and the jumps. VerifyCuts
// proves the rules drop what they should before a run relies on them.
type Firewall struct {
	chain   string
	gateway string

	mu    sync.Mutex
	rules int
}

// hookChains are the built-in (or Docker's) chains that jump to ours.
var hookChains = []string{"DOCKER-USER", "OUTPUT", "INPUT"}

func iptables(ctx context.Context, args ...string) error {
	_, err := command(ctx, "iptables", append([]string{"-w", "10"}, args...)...)
	return err
}

// NewFirewall creates chain (at most 28 characters) and the jumps to it.
// gateway is the bridge's address on the host.
func NewFirewall(ctx context.Context, chain, gateway string) (*Firewall, error) {
	if err := iptables(ctx, "-N", chain); err != nil {
		return nil, err
	}
	f := &Firewall{chain: chain, gateway: gateway}
	for _, h := range hookChains {
		if err := iptables(ctx, "-I", h, "1", "-j", chain); err != nil {
			f.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("%w (is Docker's DOCKER-USER chain there?)", err)
		}
	}
	return f, nil
}

func (f *Firewall) drop(ctx context.Context, src, dst string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := iptables(ctx, "-A", f.chain, "-s", src, "-d", dst, "-j", "DROP"); err != nil {
		return err
	}
	f.rules++
	return nil
}

// CutBoth drops every packet between any address of a and any of b.
func (f *Firewall) CutBoth(ctx context.Context, a, b []string) error {
	for _, x := range a {
		for _, y := range b {
			if err := f.drop(ctx, x, y); err != nil {
				return err
			}
			if err := f.drop(ctx, y, x); err != nil {
				return err
			}
		}
	}
	return nil
}

// CutOneWay drops packets from any address of from to any of to; packets
// the other way still flow. (TCP needs both directions, so connections
// between them fail either way; UDP gossip flows one way.)
func (f *Firewall) CutOneWay(ctx context.Context, from, to []string) error {
	for _, x := range from {
		for _, y := range to {
			if err := f.drop(ctx, x, y); err != nil {
				return err
			}
		}
	}
	return nil
}

// CutFromHost drops every packet between the host and the addresses.
func (f *Firewall) CutFromHost(ctx context.Context, addrs []string) error {
	return f.CutBoth(ctx, []string{f.gateway}, addrs)
}

// Heal removes every cut.
func (f *Firewall) Heal(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rules == 0 {
		return nil
	}
	if err := iptables(ctx, "-F", f.chain); err != nil {
		return err
	}
	f.rules = 0
	return nil
}

// Close removes the jumps and the chain. It keeps going after errors and
// returns the first.
func (f *Firewall) Close(ctx context.Context) error {
	return removeChain(ctx, f.chain)
}

// removeChain removes every jump to chain, then the chain itself.
func removeChain(ctx context.Context, chain string) error {
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	for _, h := range hookChains {
		// A jump may have been inserted more than once; delete until gone.
		for i := 0; i < 8; i++ {
			if iptables(ctx, "-C", h, "-j", chain) != nil {
				break
			}
			if err := iptables(ctx, "-D", h, "-j", chain); err != nil {
				keep(err)
				break
			}
		}
	}
	if err := iptables(ctx, "-F", chain); err != nil && !strings.Contains(err.Error(), "No chain") {
		keep(err)
	}
	if err := iptables(ctx, "-X", chain); err != nil && !strings.Contains(err.Error(), "No chain") {
		keep(err)
	}
	return first
}

// ourChains lists the chains of the filter table whose names start with
// Prefix.
func ourChains(ctx context.Context) ([]string, error) {
	out, err := command(ctx, "iptables", "-w", "10", "-S")
	if err != nil {
		return nil, err
	}
	var chains []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "-N" && strings.HasPrefix(f[1], Prefix) {
			chains = append(chains, f[1])
		}
	}
	return chains, nil
}
