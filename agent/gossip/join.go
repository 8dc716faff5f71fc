package gossip

import (
	"errors"
	"time"
)

// errOnlySelf: every seed answered as this agent itself.
var errOnlySelf = errors.New("reached no agent but this one")

// joinLoop contacts the seeds until one join reaches another agent, then
// stops: from there memberlist keeps the pool together, and an agent that
// restarts joins again through its own seeds. Start order does not matter:
// a seed that is not up yet is retried with backoff, from 100 ms (at most
// retryInterval) doubling up to retryInterval, until Leave or Shutdown.
func (g *Gossip) joinLoop(seeds []string, retryInterval time.Duration) {
	defer g.wg.Done()
	wait := min(100*time.Millisecond, retryInterval)
	for attempt := 1; ; attempt++ {
		if g.left.Load() || g.closed.Load() {
			return
		}
		// Join resolves DNS names and tries every address; it succeeds if
		// any push/pull exchange did. Only more than one alive member
		// proves that exchange was not with ourselves.
		n, err := g.ml.Join(seeds)
		if err == nil && g.ml.NumMembers() <= 1 {
			err = errOnlySelf
		}
		if err == nil {
			g.joined.Store(true)
			g.mu.Lock()
			g.notifyLocked()
			g.mu.Unlock()
			g.log.Info("gossip: joined the pool", "contacted", n, "attempts", attempt, "alive", g.NumAlive())
			return
		}
		g.log.Info("gossip: join failed, will retry", "seeds", seeds, "attempt", attempt, "retry_in", wait, "err", err)
		timer := time.NewTimer(wait)
		select {
		case <-g.done:
			timer.Stop()
			return
		case <-timer.C:
		}
		wait = min(2*wait, retryInterval)
	}
}
