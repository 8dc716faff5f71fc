package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/carpkv/carpkv/agent/node"
	"github.com/carpkv/carpkv/agent/store"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// Export sizes: one chunk reads at most exportChunkBytes of records (so
// one import, one Raft entry, stays about a MiB) or exportChunkScan keys
// (so the read transaction stays short); one export call works for
// about its budget.
const (
	exportChunkBytes = 1 << 20
	exportChunkScan  = 50_000
	// exportInflight bounds the imports of one export call in flight at
	// once (each a Raft entry of about exportChunkBytes in its
	// destination).
	exportInflight = 4
	defaultBudget  = 2 * time.Second
	maxBudget      = 10 * time.Second
)

// Export runs one export call on this group's leader: it reads chunks of
// the keys that leave the group under req.To (newer than req.Since) and
// imports each into its new owner's group, until the round is complete or
// the budget is spent. A final call (after the freeze) first makes sure
// this leader has applied everything committed, so the freeze and every
// write before it are in what it reads, and seals every destination at
// the end. Whatever fails, a repeated call is harmless: imports merge by
// version.
func (r *Runner) Export(ctx context.Context, req wire.MoveExportRequest) (wire.MoveExportResult, error) {
	n := r.node
	if err := n.LeaderCheck(); err != nil {
		return wire.MoveExportResult{}, err
	}
	to := store.RingSpecFromWire(req.To)
	mv, ok := n.Store().Move()
	if !ok || mv.To.Epoch != to.Epoch {
		return wire.MoveExportResult{}, fmt.Errorf("%w: group %s has not prepared the change to epoch %d", store.ErrMoveNotReady, r.cfg.Group, to.Epoch)
	}
	if req.Final {
		// The read index orders this read after the freeze and every
		// write committed before it (invariant 1 for the hand-off).
		if _, err := n.ReadIndex(ctx); err != nil {
			return wire.MoveExportResult{}, err
		}
		if mv, _ = n.Store().Move(); !mv.Frozen {
			return wire.MoveExportResult{}, fmt.Errorf("%w: group %s is not frozen: no final round yet", store.ErrMoveNotReady, r.cfg.Group)
		}
	}
	budget := defaultBudget
	if req.Budget > 0 {
		budget = min(time.Duration(req.Budget)*time.Millisecond, maxBudget)
	}
	stopAt := time.Now().Add(budget)
	var cursor []byte
	if req.Cursor != "" {
		c, err := base64.StdEncoding.DecodeString(req.Cursor)
		if err != nil || len(c) == 0 {
			return wire.MoveExportResult{}, fmt.Errorf("%w: export cursor %q", node.ErrInvalid, req.Cursor)
		}
		cursor = c
	}
	var out wire.MoveExportResult
	pairs := map[string]*wire.PairProgress{}
	// The imports of a call overlap: the next chunk is read while the
	// last ones commit in their destinations, up to exportInflight at
	// once. Chunks hold disjoint keys and an import merges by version, so
	// their order does not matter; the call returns (with a cursor, or
	// seals) only once every import it started has committed.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		slots    = make(chan struct{}, exportInflight)
	)
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}
	send := func(dest string, recs []store.ImportRecord, body []byte) {
		defer wg.Done()
		defer func() { <-slots }()
		err := r.sendImport(ctx, req.Dests[dest], body)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("importing %d keys into group %s: %w", len(recs), dest, err)
			}
			return
		}
		p := pairs[dest]
		if p == nil {
			p = &wire.PairProgress{Source: r.cfg.Group, Dest: dest}
			pairs[dest] = p
		}
		for _, rec := range recs {
			p.Keys++
			p.Bytes += uint64(len(rec.Key) + len(rec.Value))
		}
	}
	scanErr := func() error {
		for first := true; ; first = false {
			ch, err := n.Store().ExportScan(to.Epoch, req.Since, cursor, exportChunkBytes, exportChunkScan)
			if err != nil {
				return err
			}
			if first {
				out.Watermark = ch.Clock
			}
			for _, dest := range slices.Sorted(maps.Keys(ch.Records)) {
				recs := ch.Records[dest]
				body := store.EncodeImport(store.Import{Epoch: to.Epoch, Source: r.cfg.Group, Clock: ch.Clock, Records: recs})
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return ctx.Err()
				}
				if err := failed(); err != nil {
					<-slots
					return err
				}
				wg.Add(1)
				go send(dest, recs, body)
			}
			cursor = ch.Next
			if cursor == nil {
				return nil
			}
			if time.Now().After(stopAt) {
				out.Cursor = base64.StdEncoding.EncodeToString(cursor)
				return nil
			}
		}
	}()
	wg.Wait()
	if err := errors.Join(scanErr, failed()); err != nil {
		// A retry starts again from req.Cursor: the imports that did
		// commit merge again harmlessly.
		out.Cursor = ""
		return out, err
	}
	for _, d := range slices.Sorted(maps.Keys(pairs)) {
		out.Pairs = append(out.Pairs, *pairs[d])
	}
	if req.Final && out.Cursor == "" {
		clock := n.Store().Stats().Clock
		for _, g := range to.Groups {
			if g.ID == r.cfg.Group {
				continue
			}
			seal := store.EncodeImport(store.Import{Epoch: to.Epoch, Source: r.cfg.Group, Clock: clock, Seal: true})
			if err := r.sendImport(ctx, req.Dests[g.ID], seal); err != nil {
				return out, fmt.Errorf("sealing group %s: %w", g.ID, err)
			}
		}
		out.Sealed = true
	}
	return out, nil
}

func (r *Runner) sendImport(ctx context.Context, addrs []string, body []byte) error {
	if len(addrs) == 0 {
		return fmt.Errorf("%w: no address for the group", node.ErrUnavailable)
	}
	return exchangeAny(ctx, r.moveClient(), http.MethodPost, addrs, wire.PathMoveImport, "application/octet-stream", body, nil)
}
