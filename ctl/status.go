package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

func (e *env) statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show every group and member of the cluster: leaders, health, indexes, ring epoch, gossip, keys",
		UsageText: "carpkvctl status",
		Description: `Asks the agents for the ring (groups, weights, target shares), the gossip
pool (every agent, alive or not), each group's Raft configuration, and every
member about itself, then prints:

  - the ring: epoch, mode, number of groups and of ready agents;
  - a ring change in progress, if any (kind, epochs, phase);
  - one row per group: its leader, the keys it holds (the leader's count),
    their share of all keys next to the CARP target share, and how many of
    its members are ready. A group gossip shows but the ring does not list
    is "standby" (its agents run, "carpkvctl ring add-group" adds it),
    "leaving" (a ring change is taking its keys: keep it running) or
    "removed" (a ring change removed it: it serves no keys and can be
    stopped); -o json says the same in each group's "standing";
  - one row per member: group, ID, HTTP address, role (leader, follower,
    candidate), health (/v1/ready), term, applied index, the ring epoch it
    acts under, its gossip state (alive, suspect, dead, left), keys and
    storage size.

A member that cannot be reached is shown as unreachable; the command still
succeeds unless no agent at all answers (exit 4).

Examples:
   carpkvctl status
   carpkvctl --addr 10.0.0.1:7101 status -o json`,
		Action: e.status,
	}
}

// memberStatus is one member as status shows it.
type memberStatus struct {
	Group     string          `json:"group"`
	ID        string          `json:"id"`
	HTTPAddr  string          `json:"http_addr"`
	RaftAddr  string          `json:"raft_addr,omitempty"`
	Suffrage  string          `json:"suffrage,omitempty"` // from the Raft configuration
	Gossip    string          `json:"gossip,omitempty"`   // alive, suspect, dead, left; "" if gossip does not know it
	Reachable bool            `json:"reachable"`
	Error     string          `json:"error,omitempty"` // why it is unreachable
	Ready     bool            `json:"ready"`
	NotReady  string          `json:"not_ready,omitempty"` // why it is not ready
	Agent     *wire.AgentInfo `json:"agent,omitempty"`     // what it says about itself
	hintLead  bool            // the configuration or gossip says it leads
	probed    bool
	// gossipEpoch is the ring epoch gossip says it acts under.
	gossipEpoch uint64
}

// groupStatus is one group.
type groupStatus struct {
	Group  string `json:"group"`
	InRing bool   `json:"in_ring"` // listed by the committed ring
	// Standing is the group's place in the ring: in_ring, standby (its
	// agents run but no ring change added it yet), leaving (a ring change
	// removes it), removed (a ring change removed it: it serves no keys
	// and can be stopped); "" when the ring is unknown.
	Standing string  `json:"standing,omitempty"`
	Weight   float64 `json:"weight,omitempty"`
	// TargetShare is the CARP target fraction of keys (the ring's);
	// Share the group's fraction of the keys all groups hold.
	TargetShare        float64        `json:"target_share,omitempty"`
	Keys               *int           `json:"keys,omitempty"` // the leader's count; absent if no leader answered
	Share              float64        `json:"share"`
	Leader             string         `json:"leader,omitempty"`
	ConfigurationIndex uint64         `json:"configuration_index,omitempty"`
	ConfigurationError string         `json:"configuration_error,omitempty"`
	Members            []memberStatus `json:"members"`
}

// clusterStatus is the whole of `status`.
type clusterStatus struct {
	Ring      *ringSummary `json:"ring,omitempty"`
	RingError string       `json:"ring_error,omitempty"`
	// RingChange is the ring change in progress, if the coordinator
	// group answered that one runs.
	RingChange *wire.RingChangeStatus `json:"ring_change,omitempty"`
	Groups     []groupStatus          `json:"groups"`
}

type ringSummary struct {
	Epoch uint64 `json:"epoch"`
	Mode  string `json:"mode"`
	From  string `json:"from"` // the group of the agent that answered
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
	st, err := collectStatus(s.ctx, s.kv)
	if e.json {
		if werr := writeJSON(e.stdout, st); werr != nil {
			return werr
		}
	} else if werr := printStatus(e.stdout, st); werr != nil {
		return werr
	}
	return err
}

// collectStatus probes the seed agents, asks one that answers for the ring
// and the gossip pool, asks each group for its Raft configuration, and
// probes every member found. The error is set only if no agent answered.
func collectStatus(ctx context.Context, kv *kvclient.Client) (*clusterStatus, error) {
	seeds := probeAll(ctx, kv, kv.Addrs())
	var answered []string
	for _, m := range seeds {
		if m.Reachable {
			answered = append(answered, m.HTTPAddr)
		}
	}
	st := &clusterStatus{}
	if len(answered) == 0 {
		st.Groups = []groupStatus{{Group: "?", Members: seeds}}
		return st, fmt.Errorf("%w: no agent answered (%s)", kvclient.ErrUnavailable, strings.Join(kv.Addrs(), ", "))
	}

	b := newStatusBuilder()
	var ring *wire.Ring
	for _, a := range answered {
		r, err := kv.RingAt(ctx, a)
		if err == nil {
			ring = r
			break
		}
		st.RingError = strings.TrimPrefix(err.Error(), "kvclient: ")
	}
	if ring != nil {
		st.RingError = ""
		st.Ring = &ringSummary{Epoch: ring.Epoch, Mode: ring.Mode, From: ring.From}
		for _, g := range ring.Groups {
			gs := b.group(g.ID)
			gs.InRing, gs.Weight, gs.TargetShare = true, g.Weight, g.Share
			for _, m := range g.Members {
				b.member(g.ID, m.ID, m.HTTPAddr, func(ms *memberStatus) {
					ms.RaftAddr = m.RaftAddr
					ms.Gossip = gossipState(m.State)
					ms.gossipEpoch = m.RingEpoch
					ms.hintLead = ms.hintLead || m.Leader && m.State != "dead" && m.State != "left"
				})
			}
		}
	}
	for _, a := range answered {
		ms, err := kv.GossipMembers(ctx, a)
		if err != nil {
			continue // an agent without gossip: the ring and configurations suffice
		}
		for _, m := range ms {
			b.member(m.Group, m.ID, m.HTTPAddr, func(x *memberStatus) {
				x.RaftAddr = m.RaftAddr
				x.Gossip = gossipState(m.State)
				x.gossipEpoch = m.RingEpoch
			})
		}
		break
	}
	// Seeds are members too, whatever the ring says.
	for _, sd := range seeds {
		if sd.Agent != nil {
			p := sd
			b.member(sd.Agent.Group, sd.Agent.ID, sd.HTTPAddr, func(x *memberStatus) { b.setProbe(x, p) })
		}
	}
	b.probeMissing(ctx, kv)

	// Each group's Raft configuration, from a member that answers: it
	// lists members gossip may not know (or no longer knows).
	var wg sync.WaitGroup
	confs := make([]*wire.Configuration, len(b.groups))
	confErrs := make([]error, len(b.groups))
	for i, g := range b.groups {
		var from string
		for _, m := range g.Members {
			if m.Reachable && (from == "" || m.Agent.State == "Leader") {
				from = m.HTTPAddr
			}
		}
		if from == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			confs[i], confErrs[i] = kv.ConfigurationAt(ctx, from)
		}()
	}
	wg.Wait()
	for i := range b.groups {
		g := b.groups[i]
		if confErrs[i] != nil {
			g.ConfigurationError = strings.TrimPrefix(confErrs[i].Error(), "kvclient: ")
		}
		if confs[i] == nil {
			continue
		}
		g.ConfigurationIndex = confs[i].Index
		for _, srv := range confs[i].Servers {
			b.member(g.Group, srv.ID, srv.HTTPAddr, func(x *memberStatus) {
				x.Suffrage = srv.Suffrage
				if x.RaftAddr == "" {
					x.RaftAddr = srv.RaftAddr
				}
				x.hintLead = x.hintLead || srv.Leader
				if srv.HTTPAddr == "" && x.HTTPAddr == "" && !x.probed {
					x.Error, x.probed = errNoHTTPAddr, true
				}
			})
		}
	}
	b.probeMissing(ctx, kv)

	// Seeds that answered as nobody's member, or did not answer: a group "?".
	for _, sd := range seeds {
		if sd.Agent == nil && !b.knows(sd.HTTPAddr) {
			gs := b.group("?")
			gs.Members = append(gs.Members, sd)
		}
	}
	st.Groups = b.finish()
	if ring != nil && ring.Epoch > 0 {
		// Best effort: agents that predate ring changes answer not_found,
		// and the status is worth showing without it.
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if ans, err := kv.RingChangeStatus(cctx); err == nil {
			st.RingChange = ans.Active
		}
		cancel()
		for i := range st.Groups {
			g := &st.Groups[i]
			g.Standing = standing(g.InRing, ring.Epoch, groupEpoch(g), st.RingChange, g.Group)
		}
	}
	return st, nil
}

// groupEpoch is the newest ring epoch a member of g acts under, as it
// says itself or gossip says.
func groupEpoch(g *groupStatus) uint64 {
	var e uint64
	for _, m := range g.Members {
		e = max(e, m.gossipEpoch)
		if m.Agent != nil {
			e = max(e, m.Agent.RingEpoch)
		}
	}
	return e
}

// Standings of a group (groupStatus.Standing).
const (
	standingInRing  = "in_ring"
	standingStandby = "standby"
	standingLeaving = "leaving"
	standingRemoved = "removed"
)

// standing places a group from what the ring (at epoch ringEpoch) and its
// members say. A group that is not in the ring and never acted under a
// ring (epoch 0) waits to be added. One that acts under a ring without
// being in the current one was removed; it can be stopped only once it
// acts under the current ring and no change is still taking keys from it
// (the change's cleanup needs it).
func standing(inRing bool, ringEpoch, epoch uint64, active *wire.RingChangeStatus, group string) string {
	switch {
	case inRing:
		if active != nil && active.Kind == wire.ChangeRemoveGroup && active.Group == group {
			return standingLeaving
		}
		return standingInRing
	case epoch == 0:
		return standingStandby
	case epoch < ringEpoch:
		return standingLeaving
	case active != nil && active.Group == group:
		return standingLeaving
	}
	return standingRemoved
}

const errNoHTTPAddr = "no HTTP address registered"

func gossipState(s string) string {
	if s == "unknown" {
		return "" // listed from the Raft configuration, not seen by gossip
	}
	return s
}

// statusBuilder merges what the ring, gossip, configurations and the
// members themselves say, one memberStatus per (group, node ID).
type statusBuilder struct {
	groups []*groupStatus
}

func newStatusBuilder() *statusBuilder { return &statusBuilder{} }

func (b *statusBuilder) group(id string) *groupStatus {
	for _, g := range b.groups {
		if g.Group == id {
			return g
		}
	}
	g := &groupStatus{Group: id}
	b.groups = append(b.groups, g)
	return g
}

// member finds or adds member id of group and lets set update it.
func (b *statusBuilder) member(group, id, httpAddr string, set func(*memberStatus)) {
	if group == "" {
		group = "?"
	}
	g := b.group(group)
	for i := range g.Members {
		m := &g.Members[i]
		if m.ID == id || id == "" && httpAddr != "" && m.HTTPAddr == httpAddr {
			if m.HTTPAddr == "" {
				m.HTTPAddr = httpAddr
			}
			set(m)
			return
		}
	}
	g.Members = append(g.Members, memberStatus{Group: group, ID: id, HTTPAddr: httpAddr})
	set(&g.Members[len(g.Members)-1])
}

func (b *statusBuilder) knows(httpAddr string) bool {
	for _, g := range b.groups {
		for _, m := range g.Members {
			if m.HTTPAddr == httpAddr {
				return true
			}
		}
	}
	return false
}

// setProbe copies what a probe found into x, keeping what others said.
func (b *statusBuilder) setProbe(x *memberStatus, p memberStatus) {
	if p.Agent != nil && x.ID != "" && x.ID != "?" && p.Agent.ID != x.ID {
		// The address was reused (a replaced VM): what answers is another
		// agent, and says nothing about this one.
		x.probed, x.Reachable, x.Ready = true, false, false
		x.Error = fmt.Sprintf("its address now serves agent %s", p.Agent.ID)
		return
	}
	x.probed, x.Reachable, x.Error, x.Ready, x.NotReady, x.Agent = true, p.Reachable, p.Error, p.Ready, p.NotReady, p.Agent
	if p.Agent != nil && x.RaftAddr == "" {
		x.RaftAddr = p.Agent.RaftAddr
	}
}

// probeMissing probes, in parallel, every member not probed yet.
func (b *statusBuilder) probeMissing(ctx context.Context, kv *kvclient.Client) {
	var todo []*memberStatus
	var addrs []string
	for _, g := range b.groups {
		for i := range g.Members {
			m := &g.Members[i]
			if m.probed {
				continue
			}
			if m.HTTPAddr == "" {
				m.probed, m.Error = true, errNoHTTPAddr
				continue
			}
			todo, addrs = append(todo, m), append(addrs, m.HTTPAddr)
		}
	}
	for i, p := range probeAll(ctx, kv, addrs) {
		b.setProbe(todo[i], p)
	}
}

// finish sorts groups (ring groups in ring order, then the others by ID)
// and members, and fills each group's leader, keys and share.
func (b *statusBuilder) finish() []groupStatus {
	out := make([]groupStatus, 0, len(b.groups))
	total := 0
	for _, g := range b.groups {
		sort.Slice(g.Members, func(i, j int) bool { return g.Members[i].ID < g.Members[j].ID })
		var hinted string
		for _, m := range g.Members {
			if m.Agent != nil && m.Agent.State == "Leader" {
				g.Leader = m.ID
				keys := m.Agent.Keys
				g.Keys = &keys
			}
			if m.hintLead && m.Agent == nil {
				hinted = m.ID
			}
		}
		if g.Leader == "" {
			g.Leader = hinted
		}
		if g.Keys != nil {
			total += *g.Keys
		}
		out = append(out, *g)
	}
	for i := range out {
		if out[i].Keys != nil && total > 0 {
			out[i].Share = float64(*out[i].Keys) / float64(total)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].InRing != out[j].InRing {
			return out[i].InRing
		}
		if !out[i].InRing {
			return out[i].Group < out[j].Group
		}
		return false
	})
	return out
}

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
	m := memberStatus{ID: "?", HTTPAddr: addr, probed: true}
	info, err := kv.Self(ctx, addr)
	if err != nil {
		m.Error = strings.TrimPrefix(err.Error(), "kvclient: ")
		return m
	}
	m.Reachable, m.Agent, m.ID, m.RaftAddr, m.Group = true, info, info.ID, info.RaftAddr, info.Group
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

func printStatus(w io.Writer, st *clusterStatus) error {
	agents, ready := 0, 0
	for _, g := range st.Groups {
		for _, m := range g.Members {
			agents++
			if m.Ready {
				ready++
			}
		}
	}
	switch {
	case st.Ring != nil && st.Ring.Epoch == 0:
		fmt.Fprintf(w, "ring: none committed (standalone group %s serves every key)", st.Ring.From)
	case st.Ring != nil:
		fmt.Fprintf(w, "ring: epoch %d, mode %s, %d groups", st.Ring.Epoch, st.Ring.Mode, countInRing(st.Groups))
	default:
		fmt.Fprintf(w, "ring: unknown (%s)", st.RingError)
	}
	fmt.Fprintf(w, "; %d/%d agents ready\n", ready, agents)
	if a := st.RingChange; a != nil {
		fmt.Fprintf(w, "ring change in progress: %s, ring epoch %d → %d, phase %s ('carpkvctl ring status' for details)\n",
			changeWhat(a), a.From.Epoch, a.To.Epoch, phaseOf(a.Phase))
	}
	fmt.Fprintln(w)

	var rows [][]string
	for _, g := range st.Groups {
		up := 0
		for _, m := range g.Members {
			if m.Ready {
				up++
			}
		}
		leader := g.Leader
		if leader == "" {
			leader = "no leader known"
		}
		keys, share, target := "", "", ""
		if g.Keys != nil {
			keys = fmt.Sprint(*g.Keys)
			if g.Share > 0 || *g.Keys == 0 && anyKeys(st.Groups) {
				share = percent(g.Share)
			}
		}
		var notes []string
		switch {
		case g.InRing:
			target = percent(g.TargetShare)
		case g.Standing != "":
			target = g.Standing
		case st.Ring != nil:
			target = "not in ring"
		}
		switch g.Standing {
		case standingStandby:
			notes = append(notes, fmt.Sprintf("standby (not in the ring): 'carpkvctl ring add-group %s' adds it", g.Group))
		case standingLeaving:
			notes = append(notes, "leaving the ring: a ring change takes its keys; keep it running until the change is done")
		case standingRemoved:
			notes = append(notes, "removed: serves no keys, can be stopped")
		}
		if g.ConfigurationError != "" {
			notes = append(notes, "configuration: "+g.ConfigurationError)
		}
		extra := strings.Join(notes, "; ")
		rows = append(rows, []string{g.Group, leader, keys, share, target, fmt.Sprintf("%d/%d ready", up, len(g.Members)), extra})
	}
	header := []string{"GROUP", "LEADER", "KEYS", "SHARE", "TARGET", "MEMBERS", "NOTE"}
	if !slices.ContainsFunc(rows, func(r []string) bool { return r[len(r)-1] != "" }) {
		header = header[:len(header)-1]
		for i := range rows {
			rows[i] = rows[i][:len(rows[i])-1]
		}
	}
	if err := writeTable(w, header, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	rows = rows[:0]
	for _, g := range st.Groups {
		for _, m := range g.Members {
			rows = append(rows, statusRow(g.Group, m))
		}
	}
	return writeTable(w, []string{"GROUP", "ID", "HTTP ADDR", "ROLE", "HEALTH", "TERM", "APPLIED", "EPOCH", "GOSSIP", "KEYS", "STORAGE"}, rows)
}

func anyKeys(gs []groupStatus) bool {
	for _, g := range gs {
		if g.Keys != nil && *g.Keys > 0 {
			return true
		}
	}
	return false
}

func countInRing(gs []groupStatus) int {
	n := 0
	for _, g := range gs {
		if g.InRing {
			n++
		}
	}
	return n
}

func statusRow(group string, m memberStatus) []string {
	if m.Agent == nil {
		role := ""
		if m.hintLead {
			role = "leader?"
		}
		health := "unreachable"
		if m.Error == errNoHTTPAddr {
			health = "unknown: " + m.Error
		}
		return []string{group, m.ID, m.HTTPAddr, role, health, "", "", "", m.Gossip, "", ""}
	}
	a := m.Agent
	health := "ready"
	if !m.Ready {
		health = "not ready: " + m.NotReady
	}
	u := wire.FormatUint
	return []string{group, m.ID, m.HTTPAddr, strings.ToLower(a.State), health, u(a.Term), u(a.AppliedIndex),
		u(a.RingEpoch), m.Gossip, fmt.Sprint(a.Keys), humanBytes(a.StorageBytes)}
}

// percent renders a fraction as a percentage.
func percent(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }
