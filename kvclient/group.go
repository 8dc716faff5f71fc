package kvclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// groupClient sends calls to one Raft group: it owns the group's addresses,
// the cached leader, and the retry loop. The Client routes each key to the
// groupClient of its owner group (ring.go); management calls use the one
// built from Config.Addrs. A groupClient's addresses never change: a ring
// refresh that finds another address set builds a new one.
type groupClient struct {
	c     *Client
	id    string   // the group's ID as the ring names it; "" for the seeds
	addrs []string // HTTP addresses; may be empty for a group gossip has not shown yet

	mu     sync.Mutex
	leader string // HTTP address of the leader as last seen; "" unknown

	rr atomic.Uint32 // round robin over addrs, to spread stale reads and discovery
}

func newGroupClient(c *Client, id string, addrs []string) *groupClient {
	return &groupClient{c: c, id: id, addrs: addrs}
}

func (g *groupClient) cachedLeader() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.leader
}

func (g *groupClient) setLeader(addr string) {
	g.mu.Lock()
	old := g.leader
	g.leader = addr
	g.mu.Unlock()
	if old != addr {
		g.c.log.Debug("kvclient: leader changed", "from", old, "to", addr)
	}
}

// forgetLeader drops the cached leader if it is addr, which just failed.
func (g *groupClient) forgetLeader(addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.leader == addr {
		g.leader = ""
	}
}

// cursor walks the addresses for one call.
type cursor struct {
	g   *groupClient
	pos int
}

func (g *groupClient) cursor() *cursor {
	if len(g.addrs) == 0 {
		return &cursor{g: g}
	}
	return &cursor{g: g, pos: int(g.rr.Add(1) % uint32(len(g.addrs)))}
}

// first is the address of the first attempt; "" if the group has no known
// address at all.
func (cu *cursor) first(r route) string {
	if r == routeLeader {
		if l := cu.g.cachedLeader(); l != "" && !cu.g.c.unresponsive(l) {
			return l
		}
	}
	if len(cu.g.addrs) == 0 {
		return cu.g.cachedLeader()
	}
	a, _ := cu.turn(0, "", true)
	return a
}

// next is the address to try after the one that failed: the cached leader if it
// is another address (someone else may have learned it meanwhile), else the
// next address in turn (turn), else failed again.
func (cu *cursor) next(r route, failed string) string {
	if r == routeLeader {
		if l := cu.g.cachedLeader(); l != "" && l != failed && !cu.g.c.unresponsive(l) {
			return l
		}
	}
	// Not to an agent that went silent just now: dialling a frozen or
	// dead one costs a whole DialTimeout, while the member that just
	// failed will name the new leader once its group has one.
	if a, ok := cu.turn(1, failed, false); ok {
		return a
	}
	return failed // a single address, or none but those just gone
}

// turn moves the cursor to the first address from from places on (cyclic)
// that is not skip and has not recently left a request unanswered; if every
// other address has, to the one of them that went silent longest ago (the
// likeliest to be back: a frozen leader resumes as a follower, and nothing
// tells the client), unless it went silent so recently (freshlySilent)
// that it is surely still gone and fresh is false. ok is false if there is
// no such address.
func (cu *cursor) turn(from int, skip string, fresh bool) (addr string, ok bool) {
	n := len(cu.g.addrs)
	best, bestUntil := -1, time.Time{}
	for i := from; i < from+n; i++ {
		p := (cu.pos + i) % n
		a := cu.g.addrs[p]
		if a == skip {
			continue
		}
		until, silent := cu.g.c.silentUntil(a)
		if !silent {
			cu.pos = p
			return a, true
		}
		if !fresh && cu.g.c.freshlySilent(a) {
			continue
		}
		if best < 0 || until.Before(bestUntil) {
			best, bestUntil = p, until
		}
	}
	if best < 0 {
		return "", false
	}
	cu.pos = best
	return cu.g.addrs[best], true
}

// verdict is what to do after a failed attempt.
type verdict int

const (
	stop       verdict = iota // return the error
	retryNow                  // try another agent right away
	retryLater                // try another agent after a backoff
	// reroute returns the error to the Client's routing loop (ring.go),
	// which refreshes the ring and sends the call again, to the same or
	// another group. Only for calls routed by key (call.routed), and only
	// when nothing was applied: wrong_group, stale_ring, or no member of
	// the group accepted a connection.
	reroute
)

// do sends cl, retrying as the package documentation says, until it gets a
// 2xx answer, a final error, MaxAttempts attempts (if set, counted over the
// whole call), or ctx ends (given Config.CallTimeout when it has no
// deadline). For a call routed by key it also returns when the ring may be
// wrong (see reroute): errors.As(err, *rerouteError) then says so.
func (g *groupClient) do(ctx context.Context, cl *call) (*reply, error) {
	if g.c.closed.Load() {
		return nil, ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.c.cfg.CallTimeout)
		defer cancel()
	}
	var (
		cu      = g.cursor()
		addr    = cu.first(cl.route)
		lastErr error
		waits   int // backoffs so far: the exponent of the next one
		quick   int // retries without a wait since the last backoff
		// fruitless: attempts in a row that got nowhere: no connection,
		// or an answer that no leader is known (not_leader without a
		// hint to follow, unavailable)
		fruitless int
	)
	if addr == "" {
		err := fmt.Errorf("kvclient: %s: %w: no address known for group %s", cl.op, ErrUnavailable, g.id)
		if cl.routed {
			return nil, &rerouteError{err: err}
		}
		return nil, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, giveUp(cl, lastErr, err)
		}
		cl.attempts++
		rep, err := g.c.attempt(ctx, addr, cl)
		if err == nil {
			g.c.answered(addr)
			if cl.route == routeLeader {
				g.setLeader(addr)
			}
			return rep, nil
		}
		if ctx.Err() != nil && cl.idempotent && lastErr != nil {
			// The caller's deadline cut a read short: what the agents said
			// before explains the failure better than the cut exchange
			// (for a write the cut decides: its outcome is unknown).
			return nil, giveUp(cl, lastErr, ctx.Err())
		}
		lastErr = err
		v, next := g.decide(ctx, cl, cu, addr, err)
		var te *transportError
		var ae *Error
		switch {
		case errors.As(err, &te) && !te.sent,
			errors.As(err, &ae) && (ae.Code == wire.CodeUnavailable || ae.Code == wire.CodeNotLeader && v == retryLater):
			fruitless++
		default:
			fruitless = 0
		}
		switch {
		case ae != nil:
			g.c.answered(addr)
		case te != nil && te.attemptTimedOut && ctx.Err() == nil:
			// The agent took the request and said nothing for a whole
			// attempt: frozen, overloaded, or cut off one way. The next
			// calls start elsewhere for a while (finding 4 of
			// docs/testing.md), and the ring is fetched again in case the
			// group's members changed.
			g.c.unanswered(addr)
			if cl.routed {
				g.c.refreshInBackground()
			}
		}
		if cl.routed && te != nil && !te.sent {
			// A member the ring lists does not take connections: it may
			// be gone for good (replaced), and members may have come
			// since. Fetch the ring again in the background, so that the
			// next calls know the current members even if this one ends
			// before a round of fruitless attempts (a write that reaches a
			// frozen member ends with an unknown outcome).
			g.c.refreshInBackground()
		}
		if v != stop && cl.routed && fruitless >= max(len(g.addrs), 1) {
			// No member we know of takes connections or knows a leader:
			// the members may have changed since the ring was fetched
			// (replaced, or down when it was), and gossip may know the
			// current ones.
			v = reroute
		}
		switch v {
		case stop:
			return nil, err
		case reroute:
			return nil, &rerouteError{err: err}
		}
		if max := g.c.cfg.MaxAttempts; max > 0 && cl.attempts >= max {
			return nil, fmt.Errorf("%w (gave up after %d attempts)", err, cl.attempts)
		}
		// Quick retries are for moving on from one bad agent; once every
		// address failed in a row, or hints go round in circles, wait.
		if v == retryNow {
			quick++
			if quick > len(g.addrs) {
				v = retryLater
			}
		}
		if v == retryLater {
			quick = 0
			d := g.backoff(waits)
			waits++
			var ae *Error
			if errors.As(err, &ae) && ae.Code == wire.CodeKeyMoving {
				// A hand-off lasts a fraction of a second: ask often.
				d = min(d, keyMovingWait)
			}
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
				// Invariant 5: fail within the deadline rather than sleep past it.
				return nil, giveUp(cl, lastErr, context.DeadlineExceeded)
			}
			g.c.log.Debug("kvclient: retrying", "op", cl.op, "group", g.id, "attempt", cl.attempts, "failed", addr, "next", next, "backoff", d, "err", err)
			if err := g.c.sleep(ctx, d); err != nil {
				return nil, giveUp(cl, lastErr, err)
			}
		} else {
			g.c.log.Debug("kvclient: retrying", "op", cl.op, "group", g.id, "attempt", cl.attempts, "failed", addr, "next", next, "err", err)
		}
		addr = next
	}
}

// rerouteError carries a failed attempt back to the routing loop: the
// ring may be wrong, and nothing was applied.
type rerouteError struct{ err error }

func (e *rerouteError) Error() string { return e.err.Error() }
func (e *rerouteError) Unwrap() error { return e.err }

// keyMovingWait caps the wait before asking again about a key in hand-off.
const keyMovingWait = 25 * time.Millisecond

// decide says whether and where a failed attempt is retried. Only answers
// that promise nothing was applied, requests that were never sent, and
// idempotent calls are retried (docs/api.md, DESIGN invariant 5).
func (g *groupClient) decide(ctx context.Context, cl *call, cu *cursor, addr string, err error) (verdict, string) {
	var ae *Error
	var te *transportError
	switch {
	case errors.As(err, &ae):
		switch ae.Code {
		case wire.CodeNotLeader:
			if h := ae.Wire.Leader; h != nil && h.HTTP != "" && normalizeAddr(h.HTTP) != addr {
				hint := normalizeAddr(h.HTTP)
				// A member that has not noticed yet that its leader froze
				// still names it: while that leader is freshly silent, ask
				// around (after a backoff) rather than dial it.
				if !g.c.freshlySilent(hint) {
					g.setLeader(hint)
					return retryNow, hint
				}
			}
			g.forgetLeader(addr)
			return retryLater, cu.next(cl.route, addr)
		case wire.CodeWrongGroup, wire.CodeStaleRing:
			// Nothing was applied; the routing loop refreshes the ring
			// and retries, at the owner or after a backoff.
			if cl.routed {
				return reroute, ""
			}
			if ae.Code == wire.CodeStaleRing {
				return retryLater, cu.next(cl.route, addr)
			}
		case wire.CodeKeyMoving:
			// A ring change is handing the key over: nothing was
			// applied, and the same leader answers differently once the
			// hand-off is done (served, or wrong_group to the new owner).
			return retryLater, addr
		case wire.CodeUnavailable:
			g.forgetLeader(addr)
			return retryLater, cu.next(cl.route, addr)
		case wire.CodeTimeout:
			if cl.idempotent {
				return retryLater, cu.next(cl.route, addr)
			}
		}
		return stop, ""
	case errors.As(err, &te):
		if ctx.Err() == nil {
			// The agent may be gone; the next call asks around instead of
			// waiting on it again. (Not when the caller's deadline cut the
			// exchange short: that says nothing about the agent.)
			g.forgetLeader(addr)
			if !te.sent {
				g.c.gone(addr, time.Now()) // refused or timed out a connection
			}
		}
		if !te.sent {
			return retryNow, cu.next(cl.route, addr)
		}
		if !cl.idempotent || ctx.Err() != nil {
			return stop, ""
		}
		return retryLater, cu.next(cl.route, addr)
	}
	return stop, ""
}

// backoff is the jittered wait before retry n (0-based).
func (g *groupClient) backoff(n int) time.Duration { return g.c.backoff(n) }

// silence is what the Client knows of an agent that went silent.
type silence struct {
	until time.Time // kept out of first place until then
	fresh time.Time // leader hints naming it are not followed until then
}

// unanswered keeps addr out of first place for a few attempts' time: it
// left a request unanswered for a whole attempt.
func (c *Client) unanswered(addr string) {
	c.silent.Store(addr, silence{until: time.Now().Add(3 * c.cfg.RequestTimeout)})
}

// gone records that addr stopped serving, last heard from at last: it
// left a liveness ping unanswered (stream.go, watch), closed a stream
// connection, or refused or timed out a dial. Besides keeping it out of
// first place as unanswered does, until 2 × LivenessTimeout after last
// (about when its peers will have noticed and elected another leader if
// it led) their leader hints naming it are not followed: they are likely
// stale, and dialling a frozen or dead agent costs a whole DialTimeout.
// Nothing with the liveness pings off.
func (c *Client) gone(addr string, last time.Time) {
	if c.cfg.LivenessTimeout <= 0 {
		return
	}
	c.silent.Store(addr, silence{until: time.Now().Add(3 * c.cfg.RequestTimeout), fresh: last.Add(2 * c.cfg.LivenessTimeout)})
}

// freshlySilent reports whether addr went silent so recently that a
// leader hint naming it is more likely stale than news.
func (c *Client) freshlySilent(addr string) bool {
	v, ok := c.silent.Load(addr)
	return ok && time.Now().Before(v.(silence).fresh)
}

// answered clears what unanswered recorded: addr answers again.
func (c *Client) answered(addr string) {
	if _, ok := c.silent.Load(addr); ok {
		c.silent.Delete(addr)
	}
}

// unresponsive reports whether addr recently left a request unanswered.
func (c *Client) unresponsive(addr string) bool {
	_, silent := c.silentUntil(addr)
	return silent
}

// silentUntil says whether addr is kept out of first place, and until when.
func (c *Client) silentUntil(addr string) (time.Time, bool) {
	v, ok := c.silent.Load(addr)
	if !ok {
		return time.Time{}, false
	}
	until := v.(silence).until
	return until, time.Now().Before(until)
}

// backoff is the jittered wait before retry n (0-based).
func (c *Client) backoff(n int) time.Duration {
	lo, hi := c.cfg.BackoffMin, c.cfg.BackoffMax
	d := lo
	for range n {
		if d >= hi/2 {
			d = hi
			break
		}
		d *= 2
	}
	d = min(d, hi)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// giveUp is the error of a call cut short by its context: the last error
// seen (nothing applied, else the call would have stopped at it) joined
// with the context's reason.
func giveUp(cl *call, last, cause error) error {
	if last == nil {
		return fmt.Errorf("kvclient: %s: nothing sent: %w", cl.op, cause)
	}
	return fmt.Errorf("%w (gave up: %w)", last, cause)
}

// refreshInBackground fetches the ring again without making the caller
// wait, at most once a second.
func (c *Client) refreshInBackground() {
	now := time.Now().UnixNano()
	last := c.lastBgRefresh.Load()
	if now-last < int64(time.Second) || !c.lastBgRefresh.CompareAndSwap(last, now) {
		return
	}
	go func() {
		rt := c.rt.Load()
		if rt == nil || c.closed.Load() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
		defer cancel()
		_, _ = c.refresh(ctx, rt, rt.epoch, "")
	}()
}
