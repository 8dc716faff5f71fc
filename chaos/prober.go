package chaos

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Prober measures how long a group takes to acknowledge a write after a
// fault: it puts its own key of the group (one writer per key, so the
// writes never contend) with short attempts until one is acknowledged.
// Its writes are part of the history and checked like any other.
type Prober struct {
	kv    KV
	h     *History
	limit time.Duration // give up after this long
	seq   atomic.Int64

	mu   sync.Mutex
	keys map[string]string // group -> its probe key under the committed ring
}

// SetKeys gives the prober the probe keys of a new ring (group -> key).
func (p *Prober) SetKeys(keys map[string]string) {
	p.mu.Lock()
	p.keys = keys
	p.mu.Unlock()
}

func (p *Prober) key(group string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[group]
}

// NewProber returns a prober writing keys (group -> key) through kv, a
// client with short per-attempt timeouts so that it notices a new leader
// quickly.
func NewProber(kv KV, h *History, keys map[string]string, limit time.Duration) *Prober {
	return &Prober{kv: kv, h: h, keys: keys, limit: limit}
}

// Write puts the group's probe key once and records it.
func (p *Prober) Write(ctx context.Context, group string, timeout time.Duration) Op {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	value := fmt.Sprintf("probe-%s-%d", group, p.seq.Add(1))
	o, _ := Invoke(ctx, p.kv, p.h, OpPut, p.key(group), value, 0)
	o.Client, o.Worker, o.Group = p.h.NewClient(), "probe", group
	p.h.Add(o)
	return o
}

// Measure starts writing to group at once and sends, when a write is
// acknowledged, the time from since to that acknowledgement; -1 if none
// is within the prober's limit.
func (p *Prober) Measure(ctx context.Context, group string, since time.Time) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		deadline := since.Add(p.limit)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			o := p.Write(ctx, group, time.Second)
			if o.Outcome == OutcomeOK {
				out <- p.h.startTime().Add(time.Duration(o.Return)).Sub(since)
				return
			}
		}
		out <- -1
	}()
	return out
}
