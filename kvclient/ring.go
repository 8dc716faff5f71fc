package kvclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/carpkv/carpkv/carp"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// routing is one ring as the Client routes by. It is immutable once
// installed; a refresh installs a new one (Client.rt), reusing the
// groupClients whose address sets did not change so their leader caches
// survive.
type routing struct {
	gen   uint64     // grows with every install
	wire  *wire.Ring // the answer it was built from; never modified
	epoch uint64
	// ring is the CARP ring of a sharded cluster; nil at epoch 0, where
	// single serves every key (a standalone group).
	ring   *carp.Ring
	single *groupClient
	groups map[string]*groupClient // by group ID
	group  map[string]string       // member HTTP address -> group ID
}

// groupFor is the groupClient of key's owner group.
func (r *routing) groupFor(key []byte) *groupClient {
	if r.ring == nil {
		return r.single
	}
	return r.groups[r.ring.Owner(key)]
}

// ringFetch is a ring fetch in flight; concurrent callers that need a
// ring wait for it instead of asking the agents again.
type ringFetch struct{ done chan struct{} }

// route sends a call for key to the leader (or, for stale reads, any
// member) of key's owner group under the Client's ring, and returns the
// answer and the group that gave it.
//
// The first call fetches the ring (GET /v1/ring) from the seeds; every
// concurrent caller shares that one fetch. Afterwards the ring is refreshed
// only when an answer says it may be wrong, and all three cases promise
// that nothing was applied, so any call may be resent:
//   - wrong_group: the group does not own the key under its ring, which is
//     newer than ours or differs; fetch a ring at least as new as the
//     group's (from agents of other groups first), retry at the new owner
//     at once, or after a backoff if the owner did not change;
//   - stale_ring: our ring is newer than the group's; back off (the group
//     catches up) and refresh in case ours is the wrong one;
//   - no member of the group accepted a connection: gossip may list members
//     our ring does not; refresh, and back off unless the addresses changed.
//
// Everything is bounded by ctx (Config.CallTimeout when it has no deadline)
// and Config.MaxAttempts.
func (c *Client) route(ctx context.Context, key []byte, cl *call) (*reply, string, error) {
	if c.closed.Load() {
		return nil, "", ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.CallTimeout)
		defer cancel()
	}
	cl.routed = true
	rt, err := c.routing(ctx, cl)
	if err != nil {
		return nil, "", err
	}
	var lastErr error
	waits, quick := 0, 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, "", giveUp(cl, lastErr, err)
		}
		g := rt.groupFor(key)
		cl.epoch = rt.epoch
		rep, err := g.do(ctx, cl)
		var re *rerouteError
		if !errors.As(err, &re) {
			var te *transportError
			if err != nil && ctx.Err() != nil && cl.idempotent && lastErr != nil && errors.As(err, &te) {
				// The deadline cut a read short: the answers before it
				// explain the failure (as in groupClient.do).
				return nil, g.id, giveUp(cl, lastErr, ctx.Err())
			}
			return rep, g.id, err
		}
		var te *transportError
		if !(lastErr != nil && ctx.Err() != nil && errors.As(re.err, &te) && !te.sent) {
			// Unless the deadline cut a connection attempt short (nothing
			// sent): then the answers before it explain the failure, as
			// for a cut read above.
			lastErr = re.err
		}
		if max := c.cfg.MaxAttempts; max > 0 && cl.attempts >= max {
			return nil, g.id, fmt.Errorf("%w (gave up after %d attempts)", lastErr, cl.attempts)
		}
		want := rt.epoch
		var ae *Error
		if errors.As(lastErr, &ae) && ae.Code == wire.CodeWrongGroup && ae.Wire.Epoch > want {
			want = ae.Wire.Epoch
		}
		nrt, rerr := c.refresh(ctx, rt, want, g.id)
		moved := false
		if rerr == nil {
			moved = nrt.groupFor(key) != g
			rt = nrt
		}
		c.log.Debug("kvclient: rerouting", "op", cl.op, "group", g.id, "epoch", cl.epoch, "new_epoch", rt.epoch,
			"moved", moved, "err", lastErr, "refresh_err", rerr)
		// Retry at once where the new ring sends the key, but not over and
		// over: rings that keep changing (flapping gossip) get a backoff.
		if moved && quick < maxQuickReroutes {
			quick++
			continue
		}
		quick = 0
		d := c.backoff(waits)
		waits++
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return nil, g.id, giveUp(cl, lastErr, context.DeadlineExceeded)
		}
		if err := c.sleep(ctx, d); err != nil {
			return nil, g.id, giveUp(cl, lastErr, err)
		}
	}
}

// maxQuickReroutes bounds the reroutes without a backoff in a row.
const maxQuickReroutes = 2

// routing returns the ring to route by: the cached one, or the first one,
// fetched from the seeds and retried with backoff until ctx ends.
func (c *Client) routing(ctx context.Context, cl *call) (*routing, error) {
	if rt := c.rt.Load(); rt != nil {
		return rt, nil
	}
	var lastErr error
	for waits := 0; ; waits++ {
		rt, err := c.refresh(ctx, nil, 0, "")
		if err == nil {
			return rt, nil
		}
		if errors.Is(err, ErrClosed) {
			return nil, err
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
		d := c.backoff(waits)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			break
		}
		c.log.Debug("kvclient: no ring yet", "op", cl.op, "backoff", d, "err", err)
		if err := c.sleep(ctx, d); err != nil {
			if errors.Is(err, ErrClosed) {
				return nil, err
			}
			break
		}
	}
	cause := ctx.Err()
	if cause == nil {
		cause = context.DeadlineExceeded
	}
	return nil, fmt.Errorf("kvclient: %s: no ring from any agent (%s): %w (gave up: %w)",
		cl.op, joinAddrs(c.cfg.Addrs), lastErr, cause)
}

// refresh returns a ring newer than seen (the one the caller routed by)
// with epoch at least want, fetching one if no concurrent caller already
// did. It asks each candidate agent once (see candidates) and installs the
// newest answer that is not older than the ring in use; the result may
// still be below want if no agent knew better. It fails if no agent
// answered.
func (c *Client) refresh(ctx context.Context, seen *routing, want uint64, avoid string) (*routing, error) {
	for {
		c.rmu.Lock()
		cur := c.rt.Load()
		if cur != nil && cur != seen && cur.epoch >= want {
			c.rmu.Unlock()
			return cur, nil
		}
		f := c.fetching
		if f == nil {
			f = &ringFetch{done: make(chan struct{})}
			c.fetching = f
			c.rmu.Unlock()
			rt, err := c.fetchOnce(ctx, c.candidates(cur, avoid), cur, want)
			c.rmu.Lock()
			c.fetching = nil
			c.rmu.Unlock()
			close(f.done)
			return rt, err
		}
		c.rmu.Unlock()
		// Share the fetch in flight; if it installs nothing that fits,
		// the next round fetches (or joins the next fetch).
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, ErrClosed
		}
	}
}

// fetchOnce asks each address once, in order, until one answers with a
// ring at least want; it installs the newest answer not older than cur.
func (c *Client) fetchOnce(ctx context.Context, addrs []string, cur *routing, want uint64) (*routing, error) {
	var (
		best    *wire.Ring
		lastErr error
	)
	for _, a := range addrs {
		w, err := c.fetchRing(ctx, a)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if cur != nil && w.Epoch < cur.epoch {
			lastErr = fmt.Errorf("kvclient: ring: %w: agent %s is at ring epoch %d, behind ours (%d)", ErrStaleRing, a, w.Epoch, cur.epoch)
			continue
		}
		if best == nil || w.Epoch > best.Epoch {
			best = w
		}
		if w.Epoch >= want {
			break
		}
	}
	if best == nil {
		if lastErr == nil {
			lastErr = fmt.Errorf("kvclient: ring: %w: no agent address to ask", ErrUnavailable)
		}
		return nil, lastErr
	}
	return c.install(best)
}

// install makes w the Client's ring unless a newer one was installed
// meanwhile (then that one is returned).
func (c *Client) install(w *wire.Ring) (*routing, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	prev := c.rt.Load()
	if prev != nil && w.Epoch < prev.epoch {
		return prev, nil
	}
	rt, err := c.buildRouting(w, prev)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		rt.gen = prev.gen + 1
		if prev.epoch != rt.epoch {
			c.log.Debug("kvclient: ring changed", "from", prev.epoch, "to", rt.epoch, "groups", len(rt.groups))
		}
	}
	c.rt.Store(rt)
	return rt, nil
}

// buildRouting turns a ring answer into a routing, reusing prev's
// groupClients where the group's address set is unchanged.
func (c *Client) buildRouting(w *wire.Ring, prev *routing) (*routing, error) {
	rt := &routing{wire: w, epoch: w.Epoch, groups: map[string]*groupClient{}, group: map[string]string{}}
	for _, g := range w.Groups {
		for _, m := range g.Members {
			if m.HTTPAddr != "" {
				rt.group[normalizeAddr(m.HTTPAddr)] = g.ID
			}
		}
	}
	if w.Epoch == 0 {
		// A standalone group serves every key. The seeds are its members
		// too: in the single-group case they are what the user gave.
		i := slices.IndexFunc(w.Groups, func(g wire.RingGroup) bool { return g.ID == w.From })
		if i < 0 {
			i = 0
		}
		if len(w.Groups) == 0 {
			return nil, fmt.Errorf("kvclient: ring: %w: epoch 0 answer lists no group", ErrInternal)
		}
		g := w.Groups[i]
		addrs := appendNew(memberAddrs(g), c.cfg.Addrs...)
		rt.single = c.groupClientFor(prev, g, addrs)
		rt.groups[g.ID] = rt.single
		return rt, nil
	}
	mode := carp.ModeStrong
	if w.Mode != "" {
		m, err := carp.ParseMode(w.Mode)
		if err != nil {
			return nil, fmt.Errorf("kvclient: ring epoch %d: %w: %v", w.Epoch, ErrInternal, err)
		}
		mode = m
	}
	members := make([]carp.Member, 0, len(w.Groups))
	for _, g := range w.Groups {
		members = append(members, carp.Member{ID: g.ID, Weight: g.Weight})
	}
	ring, err := carp.New(members, carp.WithMode(mode), carp.WithEpoch(w.Epoch))
	if err != nil {
		return nil, fmt.Errorf("kvclient: ring epoch %d: %w: %v", w.Epoch, ErrInternal, err)
	}
	rt.ring = ring
	for _, g := range w.Groups {
		rt.groups[g.ID] = c.groupClientFor(prev, g, memberAddrs(g))
	}
	return rt, nil
}

// groupClientFor returns prev's groupClient of g if it has the same
// addresses (keeping its leader cache), else a new one that starts from
// the old cached leader if it is still a member, or the ring's hint.
func (c *Client) groupClientFor(prev *routing, g wire.RingGroup, addrs []string) *groupClient {
	hint := ""
	if g.Leader != nil && g.Leader.HTTP != "" {
		hint = normalizeAddr(g.Leader.HTTP)
	} else {
		for _, m := range g.Members {
			if m.Leader && m.HTTPAddr != "" && m.State != "dead" && m.State != "left" {
				hint = normalizeAddr(m.HTTPAddr)
			}
		}
	}
	if prev != nil {
		if old := prev.groups[g.ID]; old != nil {
			if sameSet(old.addrs, addrs) {
				if hint != "" && old.cachedLeader() == "" {
					old.setLeader(hint)
				}
				return old
			}
			if l := old.cachedLeader(); l != "" && slices.Contains(addrs, l) {
				hint = l
			}
		}
	}
	gc := newGroupClient(c, g.ID, addrs)
	if hint != "" {
		gc.leader = hint
	}
	return gc
}

// memberAddrs are the HTTP addresses of g's members that gossip does not
// report dead or gone, or of all of them if it reports none alive (gossip
// is advisory: a wrong state costs a retry, not correctness).
func memberAddrs(g wire.RingGroup) []string {
	var live, all []string
	for _, m := range g.Members {
		if m.HTTPAddr == "" {
			continue
		}
		a := normalizeAddr(m.HTTPAddr)
		all = appendNew(all, a)
		if m.State != "dead" && m.State != "left" {
			live = appendNew(live, a)
		}
	}
	if len(live) > 0 {
		return live
	}
	return all
}

// candidates orders the agents a refresh asks: a few live members of
// other groups than avoid (they are not the ones that just refused or
// failed), then the seeds, then avoid's own members.
func (c *Client) candidates(cur *routing, avoid string) []string {
	const maxOthers = 4
	var others, own []string
	if cur != nil {
		for _, g := range cur.wire.Groups {
			for _, m := range g.Members {
				if m.HTTPAddr == "" || m.State == "dead" || m.State == "left" {
					continue
				}
				if g.ID == avoid {
					own = append(own, normalizeAddr(m.HTTPAddr))
				} else {
					others = append(others, normalizeAddr(m.HTTPAddr))
				}
			}
		}
	}
	rotate(others, int(c.rr.Add(1)))
	if len(others) > maxOthers {
		others = others[:maxOthers]
	}
	seeds := slices.Clone(c.cfg.Addrs)
	rotate(seeds, int(c.rr.Add(1)))
	var out []string
	out = appendNew(out, others...)
	var later []string
	for _, s := range seeds {
		if cur != nil && avoid != "" && cur.group[s] == avoid {
			later = append(later, s)
			continue
		}
		out = appendNew(out, s)
	}
	out = appendNew(out, own...)
	return appendNew(out, later...)
}

// fetchRing asks one agent for its ring, once. An agent that predates the
// ring API (not_found) is taken for a standalone group.
func (c *Client) fetchRing(ctx context.Context, addr string) (*wire.Ring, error) {
	cl := &call{op: "ring", method: http.MethodGet, path: wire.PathRing, route: routeAny, idempotent: true}
	rep, err := c.attempt(ctx, addr, cl)
	var ae *Error
	if errors.As(err, &ae) && ae.Code == wire.CodeNotFound {
		return &wire.Ring{Groups: []wire.RingGroup{{}}}, nil
	}
	if err != nil {
		return nil, err
	}
	var w wire.Ring
	if err := decodeJSON(cl, rep, &w); err != nil {
		return nil, err
	}
	if _, err := c.buildRouting(&w, nil); err != nil {
		return nil, protocolError(cl, addr, "%v", err)
	}
	return &w, nil
}

// Ring fetches the ring from the agents (the seeds first, then members of
// the ring the Client knows), once each, retried with backoff until one
// answers or ctx ends. The answer is the agent's committed ring with
// gossip's view of each group's members and leader. The Client routes by
// it from then on unless it already routes by a newer epoch.
func (c *Client) Ring(ctx context.Context) (*wire.Ring, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.CallTimeout)
		defer cancel()
	}
	cl := &call{op: "ring"}
	var lastErr error
	for waits := 0; ; waits++ {
		cur := c.rt.Load()
		addrs := appendNew(slices.Clone(c.cfg.Addrs), c.candidates(cur, "")...)
		var got *wire.Ring
		for _, a := range addrs {
			w, err := c.fetchRing(ctx, a)
			if err != nil {
				lastErr = err
				if ctx.Err() != nil {
					break
				}
				continue
			}
			got = w
			break
		}
		if got != nil {
			if _, err := c.install(got); err != nil {
				return nil, err
			}
			return got, nil
		}
		d := c.backoff(waits)
		if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && time.Until(dl) < d {
			return nil, giveUp(cl, lastErr, context.DeadlineExceeded)
		}
		if err := c.sleep(ctx, d); err != nil {
			return nil, giveUp(cl, lastErr, err)
		}
	}
}

// Owner returns the group that owns key under the ring the Client routes
// by, and the leader the Client knows for it (nil if none). It does not
// fetch: before the first call (or Ring) it returns "", nil.
func (c *Client) Owner(key []byte) (group string, leader *wire.Leader) {
	rt := c.rt.Load()
	if rt == nil {
		return "", nil
	}
	g := rt.groupFor(key)
	if g == nil {
		return "", nil
	}
	l := g.cachedLeader()
	if l == "" {
		return g.id, nil
	}
	out := &wire.Leader{HTTP: l}
	for _, rg := range rt.wire.Groups {
		for _, m := range rg.Members {
			if normalizeAddr(m.HTTPAddr) == l {
				out.ID = m.ID
			}
		}
	}
	return g.id, out
}

// RingEpoch is the epoch of the ring the Client routes by (0: none yet, or
// a standalone group).
func (c *Client) RingEpoch() uint64 {
	if rt := c.rt.Load(); rt != nil {
		return rt.epoch
	}
	return 0
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// appendNew appends the elements of add not already in dst.
func appendNew(dst []string, add ...string) []string {
	for _, a := range add {
		if !slices.Contains(dst, a) {
			dst = append(dst, a)
		}
	}
	return dst
}

func rotate(s []string, by int) {
	if len(s) < 2 {
		return
	}
	by %= len(s)
	slices.Reverse(s[:by])
	slices.Reverse(s[by:])
	slices.Reverse(s)
}

func joinAddrs(addrs []string) string { return strings.Join(addrs, ", ") }
