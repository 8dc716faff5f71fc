package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/carpkv/carpkv/agent/store"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// changeRun is the coordinator's side of a ring change: while this agent
// leads a group whose log holds an active change, one goroutine drives it
// with NextAction. Everything it knows that matters is in the log (the
// phase, each source's watermark and flags); what it keeps in memory (the
// live counters of a round in flight, the last error) is for status only
// and is rebuilt by the next leader.
type changeRun struct {
	mu      sync.Mutex
	running bool
	live    *wire.RingChangeStatus // the record with in-flight progress, while running
	lastErr string
	client  *http.Client
	// rounds keeps where each source's interrupted copy round stopped, so
	// a retry by this leader goes on from there rather than from the first
	// key (a new leader starts the round again from the recorded
	// watermark, which is as correct and only slower).
	rounds map[string]roundPos
}

// roundPos is where a copy round of one source stands.
type roundPos struct {
	since, watermark uint64
	final            bool
	cursor           string
}

// stepTimeout bounds one group's step.
const stepTimeout = 10 * time.Second

// Cleanup drops at most this many keys per entry: one entry is one bbolt
// transaction on the source's apply path, and 10,000 deletions stalled a
// loaded source's writes for seconds (docs/benchmarks.md, "Ring changes").
const cleanupLimit = 1000

// cleanupBudget is how long one cleanup step goes on, entry after entry,
// before the coordinator records the sources' progress.
const cleanupBudget = 2 * time.Second

func (r *Runner) moveClient() *http.Client {
	r.change.mu.Lock()
	defer r.change.mu.Unlock()
	if r.change.client == nil {
		r.change.client = &http.Client{Timeout: maxBudget + 20*time.Second}
	}
	return r.change.client
}

// superviseChange starts the driver when this agent leads a group that
// coordinates a change and none runs here. Called on every step.
func (r *Runner) superviseChange() {
	if r.node.Raft().State() != raft.Leader {
		return
	}
	active, _, err := r.node.Store().Change()
	if err != nil || active == nil {
		return
	}
	r.change.mu.Lock()
	defer r.change.mu.Unlock()
	if r.change.running {
		return
	}
	r.change.running = true
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		r.driveChange()
		r.change.mu.Lock()
		r.change.running = false
		r.change.live = nil
		r.change.mu.Unlock()
	}()
}

// driveChange acts on NextAction until the change is done, this agent
// stops leading, or the runner stops.
func (r *Runner) driveChange() {
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-r.stop:
			return
		default:
		}
		if r.node.Raft().State() != raft.Leader {
			r.log.Info("ring change: no longer the leader; the next leader goes on")
			return
		}
		active, _, err := r.node.Store().Change()
		if err != nil || active == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), maxBudget+30*time.Second)
		go func() {
			select {
			case <-r.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err = r.changeStep(ctx, *active)
		cancel()
		if err == nil {
			backoff = 50 * time.Millisecond
			r.setLastErr("")
			continue
		}
		r.setLastErr(err.Error())
		r.log.Info("ring change: will retry", "epoch", active.To.Epoch, "phase", active.Phase, "err", err)
		select {
		case <-r.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (r *Runner) setLastErr(s string) {
	r.change.mu.Lock()
	r.change.lastErr = s
	r.change.mu.Unlock()
}

func (r *Runner) setLive(ch *wire.RingChangeStatus) {
	r.change.mu.Lock()
	r.change.live = ch
	r.change.mu.Unlock()
}

// errWaiting is a wait the plan asked for: retried after a backoff.
var errWaiting = errors.New("waiting")

// changeStep observes the groups, takes one action and records its result.
func (r *Runner) changeStep(ctx context.Context, ch wire.RingChangeStatus) error {
	from, to := store.RingSpecFromWire(ch.From), store.RingSpecFromWire(ch.To)
	states := r.observe(ctx, Involved(from, to))
	live := ch
	r.setLive(&live)
	a := NextAction(ch, states)
	switch a.Kind {
	case ActWait:
		return fmt.Errorf("%w: %s", errWaiting, a.Reason)
	case ActAdvance:
		now := time.Now().UnixMilli()
		ch.Phase, ch.PhaseAt = a.Phase, now
		if a.Phase == wire.PhaseDone {
			ch.FinishedAt = now
		}
		if next := Coordinator(to, nil); a.Phase == wire.PhaseFinish && next != r.cfg.Group {
			// This group leaves the ring: before the groups forget the
			// change (after which they no longer point status requests
			// here), the next coordinator keeps the record, as done: the
			// keys have moved and the sources are clean.
			rec := ch
			rec.Phase, rec.FinishedAt = wire.PhaseDone, now
			req := wire.MoveStepRequest{Step: wire.StepHandover, From: ch.From, To: ch.To, Record: &rec}
			if err := exchangeAny(ctx, r.moveClient(), http.MethodPost, r.groupAddrs(next, states), wire.PathMoveStep, "application/json", mustJSON(req), nil); err != nil {
				return fmt.Errorf("handing the change record over to group %s: %w", next, err)
			}
		}
		if err := r.node.ChangeLog(ctx, ch); err != nil {
			return err
		}
		r.log.Info("ring change: phase", "epoch", ch.To.Epoch, "phase", ch.Phase)
		return nil
	case ActStep:
		return r.steps(ctx, &ch, a.Step, a.Groups, states)
	case ActCopy:
		return r.copyRounds(ctx, &ch, a.Groups, a.Final, states)
	}
	return fmt.Errorf("ring change: unknown action %q", a.Kind)
}

// steps commits step in every group of groups, side by side; a cleanup
// records each source's progress.
func (r *Runner) steps(ctx context.Context, ch *wire.RingChangeStatus, step string, groups []string, states map[string]wire.MoveState) error {
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	// A cleanup goes on entry after entry in each source for up to
	// cleanupBudget, and its progress is recorded once at the end: the
	// record is where a new coordinator resumes, and resuming from an
	// older cursor only walks some keys again (dropping is idempotent).
	// progress[i] stays nil until a step in groups[i] succeeded.
	progress := make([]*wire.MoveStepResult, len(groups))
	for i, g := range groups {
		req := wire.MoveStepRequest{Step: step, From: ch.From, To: ch.To, Coordinator: ch.Coordinator}
		if step == wire.StepCleanup {
			req.Cursor, req.Limit = ch.Sources[sourceIndex(ch, g)].Cursor, cleanupLimit
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			stopAt := time.Now().Add(cleanupBudget)
			for {
				// A step is one Raft commit: a leader that does not
				// answer in stepTimeout is frozen or cut off, and the next
				// observation finds the group's new one.
				sctx, cancel := context.WithTimeout(ctx, stepTimeout)
				var res wire.MoveStepResult
				err := exchangeAny(sctx, r.moveClient(), http.MethodPost, r.groupAddrs(g, states), wire.PathMoveStep, "application/json", mustJSON(req), &res)
				cancel()
				if err != nil {
					errs[i] = fmt.Errorf("%s in group %s: %w", step, g, err)
					return
				}
				if step != wire.StepCleanup {
					return
				}
				if progress[i] == nil {
					progress[i] = &wire.MoveStepResult{}
				}
				progress[i].Dropped += res.Dropped
				progress[i].Cursor, progress[i].Done = res.Cursor, res.Done
				if res.Done || time.Now().After(stopAt) {
					return
				}
				req.Cursor = res.Cursor
			}
		}()
	}
	wg.Wait()
	if step == wire.StepCleanup {
		moved := false
		for i, g := range groups {
			if p := progress[i]; p != nil {
				s := &ch.Sources[sourceIndex(ch, g)]
				s.Dropped += p.Dropped
				s.Cursor, s.Cleaned = p.Cursor, p.Done
				moved = true
			}
		}
		if moved {
			if err := r.node.ChangeLog(ctx, *ch); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// roundResult is what one source's copy round did.
type roundResult struct {
	group     string
	watermark uint64 // the source's clock when the round began
	sent      uint64
	sealed    bool
	pairs     []wire.PairProgress
	err       error
}

// copyRounds runs one copy round of each source in groups side by side
// (each chunk by chunk, the counters shown live) and records what the
// rounds that completed did, in one entry.
func (r *Runner) copyRounds(ctx context.Context, ch *wire.RingChangeStatus, groups []string, final bool, states map[string]wire.MoveState) error {
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		results = make([]roundResult, len(groups))
	)
	live := *ch
	live.Pairs = slices.Clone(ch.Pairs)
	r.setLive(&live)
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = r.copyRound(ctx, ch, g, final, states, func(p wire.PairProgress) {
				mu.Lock()
				defer mu.Unlock()
				addPair(&live, p)
				cp := live
				cp.Pairs = slices.Clone(live.Pairs)
				r.setLive(&cp)
			})
		}()
	}
	wg.Wait()
	var errs []error
	for _, res := range results {
		for _, p := range res.pairs {
			addPair(ch, p)
		}
		if res.err != nil {
			errs = append(errs, res.err)
			continue
		}
		s := &ch.Sources[sourceIndex(ch, res.group)]
		s.Rounds++
		s.LastRound = res.sent
		if final {
			s.Sealed = res.sealed
		} else {
			s.Watermark = res.watermark
		}
	}
	if err := r.node.ChangeLog(ctx, *ch); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// copyRound runs one copy round of source g: export calls until the round
// is complete, each call's counters passed to progress.
func (r *Runner) copyRound(ctx context.Context, ch *wire.RingChangeStatus, g string, final bool, states map[string]wire.MoveState, progress func(wire.PairProgress)) roundResult {
	out := roundResult{group: g}
	since := uint64(0)
	for _, s := range ch.Sources {
		if s.Group == g {
			since = s.Watermark
		}
	}
	req := wire.MoveExportRequest{From: ch.From, To: ch.To, Since: since, Final: final, Dests: map[string][]string{}}
	for _, d := range ch.To.Groups {
		if d.ID != g {
			req.Dests[d.ID] = r.groupAddrs(d.ID, states)
		}
	}
	key := fmt.Sprintf("%d/%s", ch.To.Epoch, g)
	first := true
	r.change.mu.Lock()
	if pos, ok := r.change.rounds[key]; ok && pos.since == since && pos.final == final {
		req.Cursor, out.watermark, first = pos.cursor, pos.watermark, false
	}
	r.change.mu.Unlock()
	save := func(cursor string) {
		r.change.mu.Lock()
		defer r.change.mu.Unlock()
		if r.change.rounds == nil {
			r.change.rounds = map[string]roundPos{}
		}
		if cursor == "" {
			delete(r.change.rounds, key)
			return
		}
		r.change.rounds[key] = roundPos{since: since, watermark: out.watermark, final: final, cursor: cursor}
	}
	for ; ; first = false {
		var res wire.MoveExportResult
		if err := exchangeAny(ctx, r.moveClient(), http.MethodPost, r.groupAddrs(g, states), wire.PathMoveExport, "application/json", mustJSON(req), &res); err != nil {
			out.err = fmt.Errorf("copying from group %s: %w", g, err)
			return out
		}
		if first {
			out.watermark = res.Watermark
		}
		for _, p := range res.Pairs {
			out.pairs = append(out.pairs, p)
			out.sent += p.Keys
			progress(p)
		}
		save(res.Cursor)
		if res.Cursor == "" {
			out.sealed = res.Sealed
			return out
		}
		req.Cursor = res.Cursor
	}
}

func addPair(ch *wire.RingChangeStatus, p wire.PairProgress) {
	for i := range ch.Pairs {
		if ch.Pairs[i].Source == p.Source && ch.Pairs[i].Dest == p.Dest {
			ch.Pairs[i].Keys += p.Keys
			ch.Pairs[i].Bytes += p.Bytes
			return
		}
	}
	ch.Pairs = append(ch.Pairs, p)
}

// sourceIndex returns the index of g's progress, adding it if missing.
func sourceIndex(ch *wire.RingChangeStatus, g string) int {
	for i, s := range ch.Sources {
		if s.Group == g {
			return i
		}
	}
	ch.Sources = append(ch.Sources, wire.SourceProgress{Group: g})
	return len(ch.Sources) - 1
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // wire types always encode
	}
	return b
}

// groupAddrs lists where to reach group g's leader: the leader that
// answered the last observation, then every alive member gossip shows.
func (r *Runner) groupAddrs(g string, states map[string]wire.MoveState) []string {
	var out []string
	if st, ok := states[g]; ok && st.Leader != nil && st.Leader.HTTP != "" {
		out = append(out, st.Leader.HTTP)
	}
	view := r.view()
	for _, gl := range LeadGroups(view) {
		if gl.ID == g && !slices.Contains(out, gl.Leader.HTTP) {
			out = append(out, gl.Leader.HTTP)
		}
	}
	for _, a := range groupOf(view, g) {
		if a.HTTP != "" && !slices.Contains(out, a.HTTP) {
			out = append(out, a.HTTP)
		}
	}
	if g == r.cfg.Group && !slices.Contains(out, r.cfg.HTTPAdvertise) {
		out = append(out, r.cfg.HTTPAdvertise)
	}
	return out
}

// observe asks each group's leader for its part in the change; a group
// whose leader does not answer is left out.
func (r *Runner) observe(ctx context.Context, groups []string) map[string]wire.MoveState {
	out := map[string]wire.MoveState{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			octx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			var st wire.MoveState
			if err := exchangeAny(octx, r.moveClient(), http.MethodGet, r.groupAddrs(g, nil), wire.PathMoveState, "", nil, &st); err != nil {
				return
			}
			if st.Group != g {
				return // an address reused by another agent
			}
			mu.Lock()
			out[g] = st
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// StartChange records the change req asks for, on the coordinator's
// leader, after checking it against the ring and every group involved;
// the driver starts at once. Nothing starts if it is refused.
func (r *Runner) StartChange(ctx context.Context, req wire.RingChangeRequest) (wire.RingChangeStatus, error) {
	if err := r.node.LeaderCheck(); err != nil {
		return wire.RingChangeStatus{}, err
	}
	cur := r.node.Store().Ring()
	view := r.view()
	if coord := Coordinator(cur, view); coord != r.cfg.Group {
		return wire.RingChangeStatus{}, refuse(wire.CodeInvalidArgument, "ring changes are coordinated by group %s (the smallest group of the ring), not %s: ask its leader", coord, r.cfg.Group)
	}
	if active, _, err := r.node.Store().Change(); err != nil {
		return wire.RingChangeStatus{}, err
	} else if active != nil {
		return wire.RingChangeStatus{}, &store.ChangeError{Active: *active}
	}
	involved := Involved(cur, cur)
	if req.Group != "" && !slices.Contains(involved, req.Group) {
		involved = append(involved, req.Group)
	}
	states := r.observe(ctx, involved)
	weights := map[string]float64{}
	for _, a := range view {
		if a.Alive && a.Weight > 0 {
			weights[a.Group] = a.Weight
		}
	}
	next, err := NextRing(cur, req, weights, states)
	if err != nil {
		return wire.RingChangeStatus{}, err
	}
	keys := map[string]int{}
	for g, st := range states {
		keys[g] = st.Keys
	}
	now := time.Now().UnixMilli()
	st := wire.RingChangeStatus{
		Kind: req.Kind, Group: req.Group, From: cur.Wire(), To: next.Wire(), Phase: wire.PhasePrepare,
		StartedAt: now, PhaseAt: now, Coordinator: r.cfg.Group, Pairs: []wire.PairProgress{},
	}
	est := Estimates(cur, next, keys)
	for _, g := range cur.Groups {
		st.Sources = append(st.Sources, wire.SourceProgress{Group: g.ID, Estimate: est[g.ID]})
	}
	if err := r.node.ChangeLog(ctx, st); err != nil {
		return wire.RingChangeStatus{}, err
	}
	r.log.Info("ring change started", "kind", req.Kind, "group", req.Group, "from_epoch", cur.Epoch, "to_epoch", next.Epoch)
	r.superviseChange()
	return st, nil
}

// ChangeStatus answers GET /v1/ring/change: the change this group
// coordinates, with live progress when this agent drives it, and the last
// one completed.
func (r *Runner) ChangeStatus(ctx context.Context) (wire.RingChangeAnswer, error) {
	active, last, err := r.node.Store().Change()
	if err != nil {
		return wire.RingChangeAnswer{}, err
	}
	if mv, ok := r.node.Store().Move(); ok && active == nil && mv.Coordinator != "" && mv.Coordinator != r.cfg.Group {
		// This group is in a change another group drives (one the change
		// removes from the ring): ask there.
		var ans wire.RingChangeAnswer
		err := exchangeAny(ctx, r.moveClient(), http.MethodGet, r.groupAddrs(mv.Coordinator, nil), wire.PathRingChange, "", nil, &ans)
		if err == nil && ans.Active != nil {
			if ans.Last == nil {
				ans.Last = last
			}
			return ans, nil
		}
	}
	r.change.mu.Lock()
	defer r.change.mu.Unlock()
	if active != nil && r.change.running {
		if l := r.change.live; l != nil && l.To.Epoch == active.To.Epoch && l.Phase == active.Phase {
			// The record is the truth for what it holds; the live copy
			// adds the counters of a round in flight.
			live := *l
			live.Sources = active.Sources
			active = &live
		}
		active.Live = true
		active.LastError = r.change.lastErr
	}
	return wire.RingChangeAnswer{Active: active, Last: last}, nil
}
