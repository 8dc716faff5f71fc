// Package gossip makes every carpkv agent a member of one cluster-wide
// memberlist pool (all agents of all shard groups) and keeps a view of the
// others: their group, addresses, the leader they believe in and the ring
// epoch they have applied.
//
// Everything here is advisory (DESIGN.md, "Who knows what"): it serves
// discovery and hints. Raft alone decides membership, data and the ring
// epoch a group acts under; a wrong or stale gossip value must only ever
// cost a retry.
//
// Each agent is named Group + "/" + NodeID in the pool, so node IDs need to
// be unique only inside their group. The gossip port carries TCP and UDP.
package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrClosed is returned by UpdateMeta and Leave once the member has left or
// shut down.
var ErrClosed = errors.New("gossip: member has left or shut down")

// Gossip is one agent's membership in the pool. Its methods are safe for
// concurrent use.
type Gossip struct {
	log  *slog.Logger
	name string
	ml   *memberlist.Memberlist
	// updateTimeout bounds the wait for a metadata broadcast to go out.
	updateTimeout time.Duration

	// mu guards the fields below. Lock order: memberlist calls the
	// delegates with its node lock held, and they take mu; so mu is never
	// held while calling into memberlist.
	mu      sync.Mutex
	self    Meta
	selfEnc []byte // encodeMeta(self), what NodeMeta hands memberlist
	view    *view
	changes chan struct{}

	updateMu sync.Mutex    // serialises UpdateMeta's read-modify-write
	push     chan struct{} // capacity 1: "self meta changed, broadcast it"

	joined atomic.Bool
	left   atomic.Bool // Leave was called: no more joins or broadcasts

	lifeMu sync.Mutex // orders Leave and Shutdown: memberlist panics on Leave after Shutdown
	closed atomic.Bool
	done   chan struct{}
	wg     sync.WaitGroup
}

// Start binds the gossip port, enters the pool as self, and starts joining
// cfg.RetryJoin in the background (see Joined). self.NodeID and self.Group
// must be non-empty without '/', and self must encode within MaxMetaBytes.
func Start(cfg Config, self Meta) (*Gossip, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := self.validateIdentity(); err != nil {
		return nil, err
	}
	enc, err := encodeMeta(self, false)
	if err != nil {
		return nil, err
	}
	g := &Gossip{
		log:     cfg.Logger,
		name:    self.name(),
		self:    self,
		selfEnc: enc,
		view:    newView(),
		changes: make(chan struct{}),
		push:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	mc := cfg.memberlistConfig(g.name)
	// A broadcast goes out in RetransmitMult × log(n) gossip rounds (4 in
	// pools under ten); past ten rounds something is wrong.
	g.updateTimeout = 10 * mc.GossipInterval
	d := delegate{g}
	mc.Delegate, mc.Events, mc.Conflict = d, d, d
	// Create announces this node to itself: NotifyJoin(self) has run, and
	// g.view holds our own entry, before it returns.
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: start on %s: %w", cfg.BindAddr, err)
	}
	g.ml = ml

	seeds := g.otherSeeds(cfg.RetryJoin)
	g.log.Info("gossip: started", "name", g.name, "addr", g.Addr(), "profile", cfg.Profile, "retry_join", seeds)
	if len(seeds) == 0 {
		g.joined.Store(true)
	} else {
		g.wg.Add(1)
		go g.joinLoop(seeds, cfg.RetryInterval)
	}
	g.wg.Add(1)
	go g.pushLoop()
	return g, nil
}

// Addr is the gossip address (IP:port) this agent advertises; with port 0
// in Config.BindAddr, the port it got.
func (g *Gossip) Addr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m, ok := g.view.members[g.name]; ok {
		return m.Addr
	}
	return ""
}

// Self returns this agent's current metadata.
func (g *Gossip) Self() Meta {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.self
}

// UpdateMeta applies f to a copy of this agent's metadata. If the result
// differs, it becomes the agent's metadata at once (Self, Members) and is
// broadcast in the background, reaching the pool within a few gossip rounds
// (push/pull repairs what a lost broadcast misses). An unchanged result
// costs nothing.
//
// f must not call UpdateMeta, and must not change NodeID or Group (the
// agent's name in the pool). UpdateMeta returns an error, and keeps the
// previous metadata, if f does, or if the result is over MaxMetaBytes
// (ErrMetaTooLarge); it returns ErrClosed after Leave or Shutdown.
func (g *Gossip) UpdateMeta(f func(*Meta)) error {
	g.updateMu.Lock()
	defer g.updateMu.Unlock()
	if g.left.Load() || g.closed.Load() {
		return ErrClosed
	}
	cur := g.Self()
	next := cur
	f(&next)
	if next == cur {
		return nil
	}
	if next.NodeID != cur.NodeID || next.Group != cur.Group {
		return fmt.Errorf("gossip: UpdateMeta may not change NodeID or Group (%s to %s)", cur.name(), next.name())
	}
	enc, err := encodeMeta(next, false)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.self, g.selfEnc = next, enc
	g.notifyLocked()
	g.mu.Unlock()
	select {
	case g.push <- struct{}{}:
	default: // a broadcast is already due; it will read the newest meta
	}
	return nil
}

// pushLoop broadcasts this agent's metadata after UpdateMeta, off the
// caller's path. Updates that arrive while one is in flight coalesce.
func (g *Gossip) pushLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.done:
			return
		case <-g.push:
		}
		if g.left.Load() {
			continue // memberlist ignores our alive messages once we left
		}
		// UpdateNode asks NodeMeta for the newest encoding and waits until
		// the broadcast has gone out; the wait only informs this log line.
		if err := g.ml.UpdateNode(g.updateTimeout); err != nil {
			g.log.Debug("gossip: metadata broadcast unconfirmed", "err", err)
		}
	}
}

// Members returns every member seen, this agent included, dead and left
// ones for Retention, sorted by (group, node ID). The result is a copy.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := g.view.list()
	// Our own entry may lag until the broadcast loops back; Self is current.
	if i := slices.IndexFunc(ms, func(m Member) bool { return m.Name == g.name }); i >= 0 {
		ms[i].Meta = g.self
	}
	return ms
}

// NumAlive counts the members in StateAlive, this agent included.
func (g *Gossip) NumAlive() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.view.numAlive()
}

// Joined reports whether a join through Config.RetryJoin has succeeded
// (reached an agent other than this one), or there was nothing to join.
// It never turns false again.
func (g *Gossip) Joined() bool { return g.joined.Load() }

// Changes returns a channel that is closed at the next change of what
// Members, NumAlive or Joined report: a member joined, failed, left or
// changed its metadata, UpdateMeta changed ours, or the join succeeded.
// Each change closes the current channel and replaces it. To wait for a
// condition without missing a change, take the channel first:
//
//	for {
//		ch := g.Changes()
//		if cond(g.Members()) {
//			break
//		}
//		select { case <-ch: case <-ctx.Done(): ... }
//	}
func (g *Gossip) Changes() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.changes
}

// notifyLocked wakes the waiters on Changes. Never blocks; mu must be held.
func (g *Gossip) notifyLocked() {
	close(g.changes)
	g.changes = make(chan struct{})
}

// Leave announces that this agent leaves on purpose, so the others report
// it as StateLeft rather than StateDead, and stops joining and metadata
// updates. memberlist itself does not tell the others a leave from a
// failure, so the intent goes out first, twice over: in this agent's
// metadata (a broadcast, which reaches members this agent does not know)
// and as a message sent straight to every member it knows (which corrects
// a member whose memberlist's leave overtook the broadcast intent: gossip
// keeps no order). Then memberlist's leave. It waits up to timeout in all
// (0: no limit) and returns an error if the leave did not go out; a member
// that saw the leave but neither word of the intent reports it dead. The
// agent keeps answering gossip until Shutdown. Calling it again does
// nothing.
func (g *Gossip) Leave(timeout time.Duration) error {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	if g.closed.Load() {
		return ErrClosed
	}
	if !g.left.Load() {
		started := time.Now()
		if err := g.announceLeaving(); err != nil {
			return err
		}
		wait := g.updateTimeout
		if timeout > 0 {
			wait = min(wait, timeout/2)
		}
		// Best effort: on timeout the leave still goes out, at worst
		// reported as a failure by whoever missed the intent.
		told := time.NewTimer(wait)
		defer told.Stop()
		sent := g.tellLeaving()
		if err := g.ml.UpdateNode(wait); err != nil {
			g.log.Debug("gossip: leave intent broadcast unconfirmed", "err", err)
		}
		select {
		case <-sent:
		case <-told.C:
		}
		if timeout > 0 {
			timeout = max(timeout-time.Since(started), time.Millisecond)
		}
	}
	if err := g.ml.Leave(timeout); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// tellLeaving sends this agent's leaving message to every other member
// memberlist lists alive, each over its own TCP connection, all at once.
// The returned channel closes when all were sent; a send to a peer that is
// down ends on its own within memberlist's TCPTimeout.
func (g *Gossip) tellLeaving() <-chan struct{} {
	msg := encodeLeaving(g.name)
	var wg sync.WaitGroup
	for _, n := range g.ml.Members() {
		if n.Name == g.name {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.ml.SendReliable(n, msg); err != nil {
				g.log.Debug("gossip: leave intent not sent", "to", n.Name, "err", err)
			}
		}()
	}
	sent := make(chan struct{})
	go func() { wg.Wait(); close(sent) }()
	return sent
}

// announceLeaving puts the leave intent into the metadata memberlist
// broadcasts, and stops UpdateMeta (under updateMu, so that no update can
// overwrite the intent afterwards).
func (g *Gossip) announceLeaving() error {
	g.updateMu.Lock()
	defer g.updateMu.Unlock()
	g.left.Store(true)
	g.mu.Lock()
	defer g.mu.Unlock()
	enc, err := encodeMeta(g.self, true)
	if err != nil { // cannot happen: MaxMetaBytes keeps room for the intent
		return err
	}
	g.selfEnc = enc
	return nil
}

// Shutdown stops gossip at once. Without a Leave before, the others detect
// the silence and report this agent dead after the profile's detection
// time. It waits for its background work, at most a join attempt in
// progress or a metadata broadcast's timeout (10 gossip intervals). The
// view stays readable, frozen. Calling it again does nothing.
func (g *Gossip) Shutdown() error {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	if g.closed.Swap(true) {
		return nil
	}
	close(g.done)
	err := g.ml.Shutdown()
	g.wg.Wait()
	if err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	return nil
}

// otherSeeds drops this agent's own advertised address from the seeds:
// joining ourselves would "succeed" without reaching anyone. (A DNS name
// for ourselves is caught later: see joinLoop.)
func (g *Gossip) otherSeeds(seeds []string) []string {
	own := g.Addr()
	var out []string
	for _, s := range seeds {
		if host, port, err := net.SplitHostPort(s); err == nil {
			if ip := net.ParseIP(host); ip != nil && net.JoinHostPort(ip.String(), port) == own {
				continue
			}
		}
		out = append(out, s)
	}
	return out
}
