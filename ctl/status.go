package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

func (e *env) statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show every member of the group: state, indexes, keys, health",
		UsageText: "carpkvctl status",
		Description: `Asks every member of the group (the agents given with --addr and every member
of the Raft configuration) about itself, and prints one table per group:
node ID, HTTP address, Raft state, leader mark, term, commit and applied
index, key count, storage size and health (from /v1/ready). A member that
cannot be reached is shown as unreachable; the command still succeeds
unless no agent at all answers (exit 4).

Examples:
   carpkvctl status
   carpkvctl --addr 10.0.0.1:7101 status -o json`,
		Action: e.status,
	}
}

// memberStatus is one member as status shows it.
type memberStatus struct {
	ID        string          `json:"id"`
	HTTPAddr  string          `json:"http_addr"`
	RaftAddr  string          `json:"raft_addr,omitempty"`
	Suffrage  string          `json:"suffrage,omitempty"`
	Reachable bool            `json:"reachable"`
	Error     string          `json:"error,omitempty"` // why it is unreachable
	Ready     bool            `json:"ready"`
	NotReady  string          `json:"not_ready,omitempty"` // why it is not ready
	Agent     *wire.AgentInfo `json:"agent,omitempty"`     // what it says about itself
	confLead  bool            // the configuration marks it leader
}

// groupStatus is one group's table.
type groupStatus struct {
	Group              string         `json:"group"`
	Leader             string         `json:"leader,omitempty"`
	ConfigurationIndex uint64         `json:"configuration_index,omitempty"`
	ConfigurationError string         `json:"configuration_error,omitempty"`
	Members            []memberStatus `json:"members"`
}

func (e *env) status(c *cli.Context) error {
	if err := wantArgs(c, 0, 0, "no arguments"); err != nil {
		return err
	}
	s, err := e.connect(c)
	if err != nil {
		return err
	}
	defer s.close()
	groups, err := collectStatus(s.ctx, s.kv)
	if e.json {
		if werr := writeJSON(e.stdout, struct {
			Groups []groupStatus `json:"groups"`
		}{groups}); werr != nil {
			return werr
		}
	} else if werr := printStatus(e.stdout, groups); werr != nil {
		return werr
	}
	return err
}

// collectStatus probes the seed agents, then every member of the
// configuration they report. The error is set only if no agent answered.
func collectStatus(ctx context.Context, kv *kvclient.Client) ([]groupStatus, error) {
	seeds := probeAll(ctx, kv, kv.Addrs())
	up := false
	for _, m := range seeds {
		up = up || m.Reachable
	}
	if !up {
		return []groupStatus{{Group: "?", Members: seeds}},
			fmt.Errorf("%w: no agent answered (%s)", kvclient.ErrUnavailable, strings.Join(kv.Addrs(), ", "))
	}

	grp := groupStatus{}
	used := make([]bool, len(seeds)) // seed i is shown as a configuration member
	conf, err := kv.Configuration(ctx)
	if err != nil {
		grp.ConfigurationError = strings.TrimPrefix(err.Error(), "kvclient: ")
		grp.Members = seeds
		for i := range used {
			used[i] = true
		}
	} else {
		grp.ConfigurationIndex = conf.Index
		grp.Members = make([]memberStatus, len(conf.Servers))
		var toProbe []string
		var at []int
		for i, srv := range conf.Servers {
			m := memberStatus{ID: srv.ID, HTTPAddr: srv.HTTPAddr, Error: errNoHTTPAddr}
			// The same node may be known by another spelling of its address.
			for j, sd := range seeds {
				if !used[j] && (sd.HTTPAddr == srv.HTTPAddr || sd.Agent != nil && sd.Agent.ID == srv.ID) {
					m, used[j] = sd, true
					break
				}
			}
			if m.Error == errNoHTTPAddr && srv.HTTPAddr != "" {
				toProbe, at = append(toProbe, srv.HTTPAddr), append(at, i)
			}
			m.ID, m.RaftAddr, m.Suffrage, m.confLead = srv.ID, srv.RaftAddr, srv.Suffrage, srv.Leader
			grp.Members[i] = m
		}
		for k, p := range probeAll(ctx, kv, toProbe) {
			m := &grp.Members[at[k]]
			p.ID, p.RaftAddr, p.Suffrage, p.confLead = m.ID, m.RaftAddr, m.Suffrage, m.confLead
			*m = p
		}
	}
	for _, m := range grp.Members {
		if grp.Group == "" && m.Agent != nil {
			grp.Group = m.Agent.Group
		}
		if m.Agent != nil && m.Agent.State == "Leader" || m.Agent == nil && m.confLead {
			grp.Leader = m.ID
		}
	}
	if grp.Group == "" {
		grp.Group = "?"
	}

	// Seeds outside the configuration: with the group they name, or in a
	// table of their own (another group, or unreachable: "?").
	groups := []groupStatus{grp}
	for i, m := range seeds {
		if used[i] {
			continue
		}
		name := "?"
		if m.Agent != nil {
			name = m.Agent.Group
		}
		k := slices.IndexFunc(groups, func(g groupStatus) bool { return g.Group == name })
		if k < 0 {
			groups = append(groups, groupStatus{Group: name})
			k = len(groups) - 1
		}
		groups[k].Members = append(groups[k].Members, m)
	}
	return groups, nil
}

const errNoHTTPAddr = "no HTTP address registered"

// probeAll asks each agent about itself and whether it is ready, in
// parallel, each once.
func probeAll(ctx context.Context, kv *kvclient.Client, addrs []string) []memberStatus {
	out := make([]memberStatus, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = probe(ctx, kv, a)
		}()
	}
	wg.Wait()
	return out
}

func probe(ctx context.Context, kv *kvclient.Client, addr string) memberStatus {
	m := memberStatus{ID: "?", HTTPAddr: addr}
	info, err := kv.Self(ctx, addr)
	if err != nil {
		m.Error = strings.TrimPrefix(err.Error(), "kvclient: ")
		return m
	}
	m.Reachable, m.Agent, m.ID, m.RaftAddr = true, info, info.ID, info.RaftAddr
	if err := kv.Ready(ctx, addr); err != nil {
		var ae *kvclient.Error
		if errors.As(err, &ae) {
			m.NotReady = ae.Wire.Message
		} else {
			m.NotReady = strings.TrimPrefix(err.Error(), "kvclient: ")
		}
		if m.NotReady == "" {
			m.NotReady = "not ready"
		}
	} else {
		m.Ready = true
	}
	return m
}

func printStatus(w io.Writer, groups []groupStatus) error {
	for i, g := range groups {
		if i > 0 {
			fmt.Fprintln(w)
		}
		head := "GROUP " + g.Group
		if g.Leader != "" {
			head += "  leader " + g.Leader
		} else {
			head += "  no leader known"
		}
		if g.ConfigurationIndex != 0 {
			head += fmt.Sprintf("  configuration index %d", g.ConfigurationIndex)
		}
		if g.ConfigurationError != "" {
			head += "  (configuration unavailable: " + g.ConfigurationError + ")"
		}
		fmt.Fprintln(w, head)
		var rows [][]string
		for _, m := range g.Members {
			rows = append(rows, statusRow(m))
		}
		if err := writeTable(w, []string{"ID", "HTTP ADDR", "STATE", "LEADER", "TERM", "COMMIT", "APPLIED", "KEYS", "STORAGE", "HEALTH"}, rows); err != nil {
			return err
		}
	}
	return nil
}

func statusRow(m memberStatus) []string {
	if m.Agent == nil {
		lead := ""
		if m.confLead {
			lead = "*"
		}
		health := "unreachable"
		if m.Error == errNoHTTPAddr {
			health = "unknown: " + m.Error
		}
		return []string{m.ID, m.HTTPAddr, "", lead, "", "", "", "", "", health}
	}
	a := m.Agent
	lead := ""
	if a.State == "Leader" {
		lead = "*"
	}
	health := "ready"
	if !m.Ready {
		health = "not ready: " + m.NotReady
	}
	u := wire.FormatUint
	return []string{m.ID, m.HTTPAddr, a.State, lead, u(a.Term), u(a.CommitIndex), u(a.AppliedIndex),
		fmt.Sprint(a.Keys), humanBytes(a.StorageBytes), health}
}
