package cluster

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/carpkv/carpkv/agent/config"
	"github.com/carpkv/carpkv/agent/gossip"
	"github.com/carpkv/carpkv/agent/node"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// Runner drives one agent's part in forming the cluster: it keeps the
// agent's gossip metadata current, bootstraps or joins its group, and, on
// the coordinating group's leader, commits and distributes the ring. Each
// step re-reads the state (gossip view, Raft, store) and acts on the plan
// functions, so a missed or repeated step is harmless.
type Runner struct {
	cfg    config.Config
	node   *node.Node
	gossip *gossip.Gossip
	log    *slog.Logger
	client *http.Client

	lastJoin time.Time
	joinWait time.Duration
	// refused is the group's answer when it refused this agent for good
	// (invalid_argument: a removed node ID, a malformed request); the
	// agent then stops asking and stays out until it is restarted.
	refused error

	change changeRun // the ring change this agent coordinates (changerun.go)

	stop chan struct{}
	done sync.WaitGroup
}

// Interval bounds the time between two steps when gossip is quiet.
const Interval = 500 * time.Millisecond

// Start starts the runner's loop.
func Start(cfg config.Config, n *node.Node, g *gossip.Gossip, log *slog.Logger) *Runner {
	r := &Runner{
		cfg: cfg, node: n, gossip: g, log: log.With("component", "cluster"),
		client:   &http.Client{Timeout: 5 * time.Second},
		joinWait: 100 * time.Millisecond,
		stop:     make(chan struct{}),
	}
	r.done.Add(1)
	go r.loop()
	return r
}

// Stop ends the loop and waits for it.
func (r *Runner) Stop() {
	close(r.stop)
	r.done.Wait()
}

func (r *Runner) loop() {
	defer r.done.Done()
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		// Take the change channel before the step: a change during the
		// step then wakes the next one at once.
		changed := r.gossip.Changes()
		r.step()
		select {
		case <-r.stop:
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

func (r *Runner) step() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	raftNode := r.node.Raft()
	_, leaderID := raftNode.LeaderWithID()
	hasState := r.node.HasState()
	if err := r.gossip.UpdateMeta(func(m *gossip.Meta) {
		m.Leader = string(leaderID)
		m.RingEpoch = r.node.Store().Epoch()
		m.HasState = hasState
	}); err != nil {
		r.log.Warn("updating gossip metadata", "err", err)
	}
	view := r.view()
	self := r.self(hasState, string(leaderID))

	switch {
	case !hasState:
		if servers, ok := BootstrapPlan(self, view, r.cfg.BootstrapExpect); ok {
			peers := make([]node.Peer, len(servers))
			for i, s := range servers {
				peers[i] = node.Peer{ID: s.ID, RaftAddr: s.Raft}
			}
			if err := r.node.BootstrapGroup(peers); err != nil {
				r.log.Error("bootstrap failed", "err", err)
			}
			return
		}
		r.join(ctx, self, view)
	case !r.node.Registered() && raftNode.State() != raft.Leader:
		// A member of a bootstrap-expect group, or one whose join was cut
		// short, still has to record its HTTP address with the leader.
		r.join(ctx, self, view)
	}
	if raftNode.State() == raft.Leader {
		r.coordinate(ctx, view)
		r.superviseChange()
	}
}

// join asks the group to add (or register) this agent, at most once per
// backoff period: static --join addresses first, then members gossip shows.
func (r *Runner) join(ctx context.Context, self Agent, view []Agent) {
	if r.refused != nil || time.Since(r.lastJoin) < r.joinWait {
		return
	}
	r.lastJoin = time.Now()
	targets := append(append([]string{}, r.cfg.Join...), JoinTargets(self, view)...)
	if len(targets) == 0 {
		return
	}
	req := wire.JoinRequest{ID: r.cfg.NodeID, RaftAddr: r.cfg.RaftAdvertise, HTTPAddr: r.cfg.HTTPAdvertise}
	for _, t := range targets {
		err := post(ctx, r.client, t, wire.PathRaftJoin, req, nil)
		if err == nil {
			r.log.Info("joined group", "via", t)
			r.joinWait = 100 * time.Millisecond
			return
		}
		var we *wire.Error
		if errors.As(err, &we) && we.Code == wire.CodeInvalidArgument {
			// Retrying cannot help (a removed member asked every 3 s
			// forever, and logged each refusal).
			r.refused = err
			r.log.Error("the group refuses this agent; not asking again until restarted", "via", t, "err", err)
			return
		}
		r.log.Info("join attempt failed; will retry", "via", t, "err", err)
	}
	r.joinWait = min(2*r.joinWait, 3*time.Second)
}

// coordinate runs on group leaders; only the coordinating group's leader
// proposes the first ring (committing it in its own group first) and then
// pushes the committed ring to every group whose leader is behind.
func (r *Runner) coordinate(ctx context.Context, view []Agent) {
	ring := r.node.Store().Ring()
	if Coordinator(ring, view) != r.cfg.Group {
		return
	}
	if ring.Epoch == 0 {
		spec, ok := FirstRing(view, r.cfg.ExpectGroups, r.cfg.RingMode)
		if !ok {
			return
		}
		if _, err := r.node.SetRing(ctx, spec); err != nil {
			r.log.Warn("committing the first ring", "err", err)
			return
		}
		ring = spec
	}
	if active, _, err := r.node.Store().Change(); err != nil || active != nil {
		// A ring change brings every group to its ring itself; a push
		// would only be refused until each group is ready.
		return
	}
	body := ring.Wire()
	for _, g := range Behind(ring, view) {
		if g.ID == r.cfg.Group {
			continue // committed above; gossip has not caught up yet
		}
		if err := post(ctx, r.client, g.Leader.HTTP, wire.PathRing, body, nil); err != nil {
			r.log.Info("pushing the ring; will retry", "group", g.ID, "epoch", ring.Epoch, "err", err)
		}
	}
}

func (r *Runner) self(hasState bool, leader string) Agent {
	return Agent{
		ID: r.cfg.NodeID, Group: r.cfg.Group, HTTP: r.cfg.HTTPAdvertise, Raft: r.cfg.RaftAdvertise,
		Weight: r.cfg.GroupWeight, Alive: true, HasState: hasState, Leader: leader,
		RingEpoch: r.node.Store().Epoch(),
	}
}

func (r *Runner) view() []Agent {
	ms := r.gossip.Members()
	out := make([]Agent, 0, len(ms))
	for _, m := range ms {
		if m.Meta.NodeID == "" {
			continue // metadata we could not read: no basis for a decision
		}
		out = append(out, Agent{
			ID: m.Meta.NodeID, Group: m.Meta.Group, HTTP: m.Meta.HTTPAddr, Raft: m.Meta.RaftAddr,
			Weight: m.Meta.Weight, Alive: m.State == gossip.StateAlive, HasState: m.Meta.HasState,
			Leader: m.Meta.Leader, RingEpoch: m.Meta.RingEpoch,
		})
	}
	return out
}

// Members is the gossip view in wire form, for the HTTP API.
func (r *Runner) Members() []wire.Member {
	ms := r.gossip.Members()
	out := make([]wire.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, wire.Member{
			ID: m.Meta.NodeID, Group: m.Meta.Group, HTTPAddr: m.Meta.HTTPAddr, RaftAddr: m.Meta.RaftAddr,
			State: m.State, Leader: m.Meta.Leader != "" && m.Meta.Leader == m.Meta.NodeID, RingEpoch: m.Meta.RingEpoch,
		})
	}
	return out
}
