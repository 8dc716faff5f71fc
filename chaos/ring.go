package chaos

import (
	"fmt"
	"slices"

	"github.com/carpkv/carpkv/carp"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// Ring changes in the history: which group owned a key when. The pure
// parts live here (tested without a cluster); ringchange.go injects the
// changes.

// buildRing turns a committed ring spec into a carp ring, to compute
// owners the way the agents and kvclient do.
func buildRing(spec wire.RingSpec) (*carp.Ring, error) {
	members := make([]carp.Member, len(spec.Groups))
	for i, g := range spec.Groups {
		members[i] = carp.Member{ID: g.ID, Weight: g.Weight}
	}
	mode, err := carp.ParseMode(spec.Mode)
	if err != nil {
		return nil, err
	}
	return carp.New(members, carp.WithMode(mode), carp.WithEpoch(spec.Epoch))
}

// specOf is the spec of a ring as GET /v1/ring answers it.
func specOf(r wire.Ring) wire.RingSpec {
	s := wire.RingSpec{Epoch: r.Epoch, Mode: r.Mode}
	for _, g := range r.Groups {
		s.Groups = append(s.Groups, wire.RingGroupSpec{ID: g.ID, Weight: g.Weight})
	}
	return s
}

// ringGroups lists the group IDs of spec, sorted.
func ringGroups(spec wire.RingSpec) []string {
	out := make([]string, len(spec.Groups))
	for i, g := range spec.Groups {
		out[i] = g.ID
	}
	slices.Sort(out)
	return out
}

// KeyOwners maps every key to its owner under spec.
func KeyOwners(spec wire.RingSpec, keys []string) (map[string]string, error) {
	r, err := buildRing(spec)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k] = r.Owner([]byte(k))
	}
	return out, nil
}

// Moved lists the keys whose owner differs between from and to.
func Moved(from, to wire.RingSpec, keys []string) ([]string, error) {
	a, err := KeyOwners(from, keys)
	if err != nil {
		return nil, err
	}
	b, err := KeyOwners(to, keys)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range keys {
		if a[k] != b[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out, nil
}

// RingChangeRecord is one ring change of a run, as the harness saw it:
// Start is before it was requested, Done after the coordinator recorded
// it complete (history clock), so the change lies within [Start, Done].
type RingChangeRecord struct {
	N     int           `json:"n"` // the step
	Kind  string        `json:"kind"`
	Group string        `json:"group"`
	From  wire.RingSpec `json:"from"`
	To    wire.RingSpec `json:"to"`
	Start int64         `json:"start_ns"`
	Done  int64         `json:"done_ns"` // 0: never seen complete
	// Took is the change's duration as the coordinator recorded it
	// (started_at to finished_at).
	Took int64 `json:"took_ms"`
	// Pairs are the records each source sent each destination.
	Pairs []wire.PairProgress `json:"pairs,omitempty"`
	// MovedKeys are the workload and probe keys whose owner changed.
	MovedKeys []string `json:"moved_keys,omitempty"`
	// Errors are the distinct last errors the coordinator reported while
	// the harness followed the change (the first few): why a change took
	// long.
	Errors []string `json:"coordinator_errors,omitempty"`
}

// noteError keeps the first few distinct coordinator errors.
func (r *RingChangeRecord) noteError(e string) {
	if e != "" && len(r.Errors) < 8 && !slices.Contains(r.Errors, e) {
		r.Errors = append(r.Errors, e)
	}
}

// Timeline is the rings of a run over time: the first ring, then each
// change in order.
type Timeline struct {
	First   wire.RingSpec
	Changes []RingChangeRecord

	rings map[uint64]*carp.Ring
}

func (t *Timeline) ring(spec wire.RingSpec) *carp.Ring {
	if t.rings == nil {
		t.rings = map[uint64]*carp.Ring{}
	}
	r, ok := t.rings[spec.Epoch]
	if !ok {
		var err error
		if r, err = buildRing(spec); err != nil {
			panic(fmt.Sprintf("ring %+v: %v", spec, err)) // specs come from committed rings
		}
		t.rings[spec.Epoch] = r
	}
	return r
}

// StableOwner is the group that served key throughout [call, ret]: the
// owner under every ring that may have been in effect at some point of
// that interval (during a change, both its rings). It is "" when those
// rings disagree: the key was handed over, and which group served the
// operation is not known.
func (t *Timeline) StableOwner(key string, call, ret int64) string {
	var rings []wire.RingSpec
	cur := t.First
	end := int64(-1 << 63)
	for _, ch := range t.Changes {
		// cur is in effect from end to ch.Start, both rings in
		// [ch.Start, ch.Done] (or forever if it never completed).
		if call <= ch.Start && ret >= end {
			rings = append(rings, cur)
		}
		done := ch.Done
		if done == 0 {
			done = 1<<63 - 1
		}
		if call <= done && ret >= ch.Start {
			rings = append(rings, ch.From, ch.To)
		}
		cur, end = ch.To, done
	}
	if ret >= end {
		rings = append(rings, cur)
	}
	owner := ""
	for i, spec := range rings {
		if len(spec.Groups) == 0 {
			return "" // a change whose target the harness never learnt
		}
		o := t.ring(spec).Owner([]byte(key))
		if i > 0 && o != owner {
			return ""
		}
		owner = o
	}
	return owner
}

// chooseRingKeys picks workload keys that spread over every group in each
// of rings: at least perGroup keys owned by each group of each ring, so
// that every group serves keys and every change moves some.
func chooseRingKeys(rings []wire.RingSpec, perGroup int) ([]string, error) {
	built := make([]*carp.Ring, len(rings))
	counts := make([]map[string]int, len(rings))
	for i, s := range rings {
		r, err := buildRing(s)
		if err != nil {
			return nil, err
		}
		built[i], counts[i] = r, map[string]int{}
	}
	need := func() bool {
		for i, s := range rings {
			for _, g := range s.Groups {
				if counts[i][g.ID] < perGroup {
					return true
				}
			}
		}
		return false
	}
	var keys []string
	for i := 0; need(); i++ {
		if i > 100000 {
			return nil, fmt.Errorf("could not find %d keys for every group of %+v", perGroup, rings)
		}
		k := fmt.Sprintf("key-%d", i)
		useful := false
		for j, r := range built {
			if counts[j][r.Owner([]byte(k))] < perGroup {
				useful = true
			}
		}
		if !useful {
			continue
		}
		keys = append(keys, k)
		for j, r := range built {
			counts[j][r.Owner([]byte(k))]++
		}
	}
	return keys, nil
}

// probeKeysFor picks one probe key per group of spec, named after the
// epoch so that each ring's probe keys are fresh (a probe key must be
// owned by the group it measures; older ones stay in the history and move
// like any key).
func probeKeysFor(spec wire.RingSpec) (map[string]string, error) {
	r, err := buildRing(spec)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i := 0; len(out) < len(spec.Groups); i++ {
		if i > 100000 {
			return nil, fmt.Errorf("no probe key for every group of %+v", spec)
		}
		k := fmt.Sprintf("probe-e%d-%d", spec.Epoch, i)
		if g := r.Owner([]byte(k)); out[g] == "" {
			out[g] = k
		}
	}
	return out, nil
}

// nextWeight picks a new weight for group g of spec among candidates (in
// the order given) such that at least one of keys changes owner; the
// first candidate that differs from g's weight if none moves a key.
func nextWeight(spec wire.RingSpec, g string, candidates []float64, keys []string) float64 {
	cur := 0.0
	for _, x := range spec.Groups {
		if x.ID == g {
			cur = x.Weight
		}
	}
	fallback := 0.0
	for _, w := range candidates {
		if w == cur {
			continue
		}
		if fallback == 0 {
			fallback = w
		}
		next := withWeight(spec, g, w)
		if moved, err := Moved(spec, next, keys); err == nil && len(moved) > 0 {
			return w
		}
	}
	return fallback
}

// withWeight is spec at the next epoch with g's weight set to w.
func withWeight(spec wire.RingSpec, g string, w float64) wire.RingSpec {
	next := wire.RingSpec{Epoch: spec.Epoch + 1, Mode: spec.Mode}
	for _, x := range spec.Groups {
		if x.ID == g {
			x.Weight = w
		}
		next.Groups = append(next.Groups, x)
	}
	return next
}
