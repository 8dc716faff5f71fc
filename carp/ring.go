package carp

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Member is one participant of a ring: a shard group in carpkv.
type Member struct {
	// ID names the member. It is hashed, so it must be stable; it must be
	// non-empty and unique within a ring.
	ID string
	// Weight is the member's relative load: a member of weight 2 receives
	// twice the keys of a member of weight 1. Positive and finite.
	Weight float64
}

// Mode selects how scores are computed.
type Mode int

const (
	// ModeStrong is the default: CARP's structure with 64-bit hashes and a
	// full finaliser on the combined value. It balances at the statistical
	// limit (docs/carp.md).
	ModeStrong Mode = iota
	// ModeSpec scores exactly as draft-vinod-carp-v1-03: KeyHash,
	// MemberHash, Combine, and the load-factor multipliers. Use it for
	// interoperability with other CARP implementations.
	ModeSpec
)

func (m Mode) String() string {
	switch m {
	case ModeStrong:
		return "strong"
	case ModeSpec:
		return "spec"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode is the inverse of Mode.String.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "strong":
		return ModeStrong, nil
	case "spec":
		return ModeSpec, nil
	}
	return 0, fmt.Errorf("carp: unknown mode %q (want strong or spec)", s)
}

// Option configures New.
type Option func(*options)

type options struct {
	mode  Mode
	epoch uint64
}

// WithMode selects the scoring mode; the default is ModeStrong.
func WithMode(m Mode) Option { return func(o *options) { o.mode = m } }

// WithEpoch stamps the ring with an epoch. The ring does not interpret it;
// carpkv uses it to order ring versions.
func WithEpoch(e uint64) Option { return func(o *options) { o.epoch = e } }

// ErrInvalidRing is wrapped by every error New returns.
var ErrInvalidRing = errors.New("carp: invalid ring")

// Ring is an immutable set of weighted members. Its methods are safe for
// concurrent use.
type Ring struct {
	mode    Mode
	epoch   uint64
	members []member // sorted by ID, which is also the tie-break order
}

type member struct {
	Member
	share  float64 // Weight / sum of weights
	mult   float64 // load-factor multiplier
	hash32 uint32  // MemberHash, ModeSpec
	hash64 uint64  // StrongMemberHash, ModeStrong
}

// New builds a ring. It rejects an empty list, empty or duplicate IDs, and
// weights that are zero, negative, infinite or NaN; the error names the
// culprit and wraps ErrInvalidRing. The order of members does not matter.
func New(members []Member, opts ...Option) (*Ring, error) {
	o := options{mode: ModeStrong}
	for _, opt := range opts {
		opt(&o)
	}
	if o.mode != ModeStrong && o.mode != ModeSpec {
		return nil, fmt.Errorf("%w: unknown mode %d", ErrInvalidRing, int(o.mode))
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("%w: no members", ErrInvalidRing)
	}
	seen := make(map[string]int, len(members))
	var sum float64
	for i, m := range members {
		if m.ID == "" {
			return nil, fmt.Errorf("%w: member %d has an empty ID", ErrInvalidRing, i)
		}
		if j, dup := seen[m.ID]; dup {
			return nil, fmt.Errorf("%w: member ID %q appears twice (members %d and %d)", ErrInvalidRing, m.ID, j, i)
		}
		seen[m.ID] = i
		if !(m.Weight > 0) || math.IsInf(m.Weight, 0) {
			return nil, fmt.Errorf("%w: member %q has weight %v; weights must be positive and finite", ErrInvalidRing, m.ID, m.Weight)
		}
		sum += m.Weight
	}
	if math.IsInf(sum, 0) {
		return nil, fmt.Errorf("%w: weights sum to infinity", ErrInvalidRing)
	}

	r := &Ring{mode: o.mode, epoch: o.epoch, members: make([]member, len(members))}
	uniform := true
	for i, m := range members {
		r.members[i] = member{Member: m, hash32: MemberHash(m.ID), hash64: StrongMemberHash(m.ID)}
		if m.Weight != members[0].Weight {
			uniform = false
		}
	}
	sort.Slice(r.members, func(a, b int) bool { return r.members[a].ID < r.members[b].ID })

	loads := make([]float64, len(r.members))
	for i, m := range r.members {
		loads[i] = m.Weight
	}
	mults := LoadFactors(loads)
	for i := range r.members {
		r.members[i].share = r.members[i].Weight / sum
		// Equal weights give multipliers that are 1 in exact arithmetic;
		// using exactly 1 keeps rings that differ by one member ranking
		// the others identically, so movement stays exactly minimal.
		if uniform {
			mults[i] = 1
		}
		if !(mults[i] > 0) || math.IsInf(mults[i], 0) {
			return nil, fmt.Errorf("%w: member %q: weights too far apart for float64 multipliers", ErrInvalidRing, r.members[i].ID)
		}
		r.members[i].mult = mults[i]
	}
	return r, nil
}

// Mode reports the scoring mode.
func (r *Ring) Mode() Mode { return r.mode }

// Epoch reports the epoch set with WithEpoch (zero if none).
func (r *Ring) Epoch() uint64 { return r.epoch }

// Len is the number of members.
func (r *Ring) Len() int { return len(r.members) }

// Members returns a copy of the members, sorted by ID.
func (r *Ring) Members() []Member {
	out := make([]Member, len(r.members))
	for i, m := range r.members {
		out[i] = m.Member
	}
	return out
}

// Share is the fraction of keys the member should own (its weight over the
// sum of weights), or 0 for an unknown ID.
func (r *Ring) Share(id string) float64 {
	i := sort.Search(len(r.members), func(i int) bool { return r.members[i].ID >= id })
	if i < len(r.members) && r.members[i].ID == id {
		return r.members[i].share
	}
	return 0
}

// Multiplier is the member's load-factor multiplier, or 0 for an unknown ID.
func (r *Ring) Multiplier(id string) float64 {
	i := sort.Search(len(r.members), func(i int) bool { return r.members[i].ID >= id })
	if i < len(r.members) && r.members[i].ID == id {
		return r.members[i].mult
	}
	return 0
}

// Owner returns the ID of the member with the highest score for key. Ties
// go to the smallest ID. It does not allocate.
func (r *Ring) Owner(key []byte) string {
	return r.members[r.ownerIndex(key)].ID
}

func (r *Ring) ownerIndex(key []byte) int {
	best := 0
	switch r.mode {
	case ModeSpec:
		kh := KeyHash(key)
		bestScore := -1.0
		for i := range r.members {
			m := &r.members[i]
			if s := float64(Combine(m.hash32, kh)) * m.mult; s > bestScore {
				best, bestScore = i, s
			}
		}
	default:
		kh := StrongKeyHash(key)
		bestScore := -1.0
		for i := range r.members {
			m := &r.members[i]
			if s := strongScore(m, kh); s > bestScore {
				best, bestScore = i, s
			}
		}
	}
	return best
}

// strongScore maps the 64-bit combined hash to a uniform float64 in [0, 2^53)
// (the top 53 bits, exactly representable) and applies the multiplier.
func strongScore(m *member, kh uint64) float64 {
	return float64(StrongCombine(m.hash64, kh)>>11) * m.mult
}

func (r *Ring) score(i int, key []byte) float64 {
	m := &r.members[i]
	if r.mode == ModeSpec {
		return float64(Combine(m.hash32, KeyHash(key))) * m.mult
	}
	return strongScore(m, StrongKeyHash(key))
}

// Rank returns the IDs of the n highest-scoring members for key, best first
// (Rank(key, 1)[0] == Owner(key)). n larger than the ring returns every
// member; n <= 0 returns nil.
func (r *Ring) Rank(key []byte, n int) []string {
	if n <= 0 {
		return nil
	}
	if n > len(r.members) {
		n = len(r.members)
	}
	if n == 1 {
		return []string{r.Owner(key)}
	}
	type scored struct {
		i int
		s float64
	}
	all := make([]scored, len(r.members))
	for i := range r.members {
		all[i] = scored{i, r.score(i, key)}
	}
	// Same order as Owner: higher score first, then smaller ID.
	sort.Slice(all, func(a, b int) bool {
		if all[a].s != all[b].s {
			return all[a].s > all[b].s
		}
		return all[a].i < all[b].i
	})
	out := make([]string, n)
	for j := range out {
		out[j] = r.members[all[j].i].ID
	}
	return out
}
