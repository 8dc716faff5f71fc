package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// grow is the demo's resharding step: it starts a new group's agents
// (standby), adds the group to the ring while clients keep writing and
// reading back, and shows how many keys moved against CARP's ideal (the
// new group's share of the keys, 1/4 for a fourth group of equal weight)
// and that no client call failed.
func (d *demo) grow() error {
	if len(d.ring.Groups) == 0 {
		return nil
	}
	d.step("adding a group while clients write: its agents start as a standby group, then a ring change moves its share of the keys to it")
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Minute)
	defer cancel()
	total := d.countKeys(ctx)
	group, err := d.e.startLocalGroup(ctx, d.st, d.st.Replicas, 1, time.Minute)
	if err != nil {
		return err
	}

	// Clients: each writes its own keys and reads each back at once, so a
	// lost or stale write shows as a mismatch, not only as an error.
	var (
		ops, failed, unknown atomic.Int64
		firstErr             atomic.Value
		wg                   sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := []byte("demo/live/" + strconv.Itoa(w) + "/" + strconv.Itoa(i%500))
				val := []byte(strconv.Itoa(i))
				err := d.putAndCheck(ctx, key, val)
				ops.Add(1)
				switch {
				case errors.Is(err, kvclient.ErrTimeout):
					unknown.Add(1)
				case err != nil:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	rc, err := d.kv.RingChange(ctx, wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: group, Weight: 1})
	if err != nil {
		close(stop)
		wg.Wait()
		return fmt.Errorf("adding %s: %w (its agents keep running as a standby group)", group, err)
	}
	printRecorded(d.e.stdout, rc)
	final, err := d.e.waitChange(d.c, d.kv, rc)
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	printFinished(d.e.stdout, final)

	moved, _ := pairTotals(final)
	ideal := 0.0
	if r, err := d.kv.Ring(ctx); err == nil {
		d.ring = r
		for _, g := range r.Groups {
			if g.ID == group {
				ideal = g.Share
			}
		}
	}
	d.say("keys moved: %s of the %s stored before (%.2f%%); CARP's ideal is the new group's share, %.2f%%; every key moved came from an old group to %s\n",
		commas(int(moved)), commas(total), 100*float64(moved)/float64(max(total, 1)), 100*ideal, group)
	for _, p := range final.Pairs {
		if p.Dest != group {
			d.say("  unexpected: %d keys moved from %s to %s\n", p.Keys, p.Source, p.Dest)
		}
	}
	d.say("clients during the change: %s calls (each a write and a read-back), %d failed, %d with an unknown outcome\n",
		commas(int(ops.Load())), failed.Load(), unknown.Load())
	if f := failed.Load(); f > 0 {
		d.say("  first failure: %v\n", firstErr.Load())
	}
	d.written = nil // placed by the old ring: the table shows the stored counts only
	return d.distribution()
}

// putAndCheck writes key and reads it back (linearizable).
func (d *demo) putAndCheck(ctx context.Context, key, val []byte) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := d.kv.Put(cctx, key, val); err != nil {
		return err
	}
	got, err := d.kv.Get(cctx, key)
	if err != nil {
		return err
	}
	if string(got.Data) != string(val) {
		return fmt.Errorf("read %s back as %q, wrote %q", key, got.Data, val)
	}
	return nil
}

// countKeys returns the keys stored in the ring's groups (their leaders'
// counts).
func (d *demo) countKeys(ctx context.Context) int {
	total := 0
	for _, g := range d.ring.Groups {
		if info := d.leaderInfo(ctx, g.ID); info != nil {
			total += info.Keys
		}
	}
	return total
}
