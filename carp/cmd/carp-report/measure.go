package main

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/carpkv/carpkv/carp"
	"github.com/carpkv/carpkv/carp/internal/ringstat"
)

// Scheme names, in report order.
const (
	spec   = "spec"
	strong = "strong"
	ketama = "ketama160"
	jump   = "jump"
)

var (
	allSchemes      = []string{spec, strong, ketama, jump}
	weightedSchemes = []string{spec, strong, ketama} // jump has no weights
)

// Membership changes measured for every N.
const (
	add        = "add"         // member N joins
	removeMid  = "remove"      // member N/2 leaves
	removeLast = "remove last" // member N-1 leaves: the only removal jump supports
)

// Weight sets.
const (
	weights1234   = "1:2:3:4"
	weightsRandom = "random [1,4)"
)

type balKey struct {
	shape  ringstat.Shape
	n      int
	scheme string
}

type accKey struct {
	weights string
	n       int
	shape   ringstat.Shape
	scheme  string
}

type moveKey struct {
	n      int
	scheme string
	change string
	shape  ringstat.Shape
}

type wmoveKey struct {
	shape  ringstat.Shape
	scheme string
}

// results holds every measurement; the report is rendered from it alone.
type results struct {
	cfg          config
	balance      map[balKey]ringstat.Balance
	accuracy     map[accKey]ringstat.Accuracy
	movement     map[moveKey]ringstat.Movement
	weightedMove map[wmoveKey]ringstat.Movement
	// loads are the per-member counts at N = cfg.PlotN for sequential
	// keys, by scheme, in member order.
	loads map[string][]int
}

// memberID names member i. Zero padding keeps IDs sorting in creation order,
// so a ring of N+1 grows by the member with the largest ID, which is what
// jump hashing (over sorted IDs) requires.
func memberID(i int) string { return fmt.Sprintf("g%03d", i) }

func equalMembers(n int) []carp.Member {
	ms := make([]carp.Member, n)
	for i := range ms {
		ms[i] = carp.Member{ID: memberID(i), Weight: 1}
	}
	return ms
}

// randomWeights gives n members weights uniform in [1, 4), the same for
// every key shape.
func randomWeights(n int, seed uint64) []carp.Member {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	ms := make([]carp.Member, n)
	for i := range ms {
		ms[i] = carp.Member{ID: memberID(i), Weight: 1 + 3*rng.Float64()}
	}
	return ms
}

func members1234() []carp.Member {
	ms := make([]carp.Member, 4)
	for i := range ms {
		ms[i] = carp.Member{ID: memberID(i), Weight: float64(i + 1)}
	}
	return ms
}

// weightedJoiner joins the 1:2:3:4 ring in the weighted-movement run.
var weightedJoiner = carp.Member{ID: memberID(4), Weight: 2.5}

func ids(ms []carp.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func build(scheme string, ms []carp.Member) (ringstat.Assigner, error) {
	switch scheme {
	case spec, strong:
		mode := carp.ModeStrong
		if scheme == spec {
			mode = carp.ModeSpec
		}
		r, err := carp.New(ms, carp.WithMode(mode))
		if err != nil {
			return nil, err
		}
		return ringstat.Ring(scheme, r), nil
	case ketama:
		return ringstat.NewKetama(scheme, ms, 160)
	case jump:
		for _, m := range ms {
			if m.Weight != ms[0].Weight {
				return nil, fmt.Errorf("jump hashing has no weights")
			}
		}
		return ringstat.NewJump(scheme, ids(ms))
	}
	return nil, fmt.Errorf("unknown scheme %q", scheme)
}

func owners(scheme string, ms []carp.Member, keys [][]byte) ([]string, error) {
	a, err := build(scheme, ms)
	if err != nil {
		return nil, fmt.Errorf("%s over %d members: %w", scheme, len(ms), err)
	}
	return ringstat.Owners(a, keys), nil
}

func measure(cfg config) (*results, error) {
	res := &results{
		cfg:          cfg,
		balance:      map[balKey]ringstat.Balance{},
		accuracy:     map[accKey]ringstat.Accuracy{},
		movement:     map[moveKey]ringstat.Movement{},
		weightedMove: map[wmoveKey]ringstat.Movement{},
		loads:        map[string][]int{},
	}
	for _, shape := range ringstat.Shapes {
		keys := ringstat.Keys(shape, cfg.Keys, cfg.Seed)
		cfg.progress.printf("%v: %d keys generated", shape, len(keys))
		for _, n := range cfg.Members {
			if err := res.measureEqual(shape, n, keys); err != nil {
				return nil, err
			}
			if err := res.measureWeighted(weightsRandom, shape, randomWeights(n, cfg.Seed), keys); err != nil {
				return nil, err
			}
			cfg.progress.printf("%v: N=%d measured", shape, n)
		}
		if !slices.Contains(cfg.Members, 16) {
			// The report's per-member table of random weights is at N=16.
			if err := res.measureWeighted(weightsRandom, shape, randomWeights(16, cfg.Seed), keys); err != nil {
				return nil, err
			}
		}
		if err := res.measureWeighted(weights1234, shape, members1234(), keys); err != nil {
			return nil, err
		}
		if err := res.measureWeightedMove(shape, keys); err != nil {
			return nil, err
		}
		cfg.progress.printf("%v: weighted runs measured", shape)
	}
	return res, nil
}

// measureEqual runs balance and movement over n equal members.
func (res *results) measureEqual(shape ringstat.Shape, n int, keys [][]byte) error {
	base := equalMembers(n)
	grown := equalMembers(n + 1)
	withoutMid := slices.Delete(slices.Clone(base), n/2, n/2+1)
	withoutLast := base[:n-1]
	for _, scheme := range allSchemes {
		before, err := owners(scheme, base, keys)
		if err != nil {
			return err
		}
		counts, err := ringstat.Counts(before, ids(base))
		if err != nil {
			return err
		}
		res.balance[balKey{shape, n, scheme}] = ringstat.BalanceOf(counts)
		if shape == ringstat.Sequential && n == res.cfg.PlotN {
			res.loads[scheme] = counts
		}
		changes := []struct {
			name  string
			after []carp.Member
		}{{add, grown}, {removeMid, withoutMid}}
		if scheme == jump {
			changes = append(changes, struct {
				name  string
				after []carp.Member
			}{removeLast, withoutLast})
		}
		for _, c := range changes {
			after, err := owners(scheme, c.after, keys)
			if err != nil {
				return err
			}
			mv, err := ringstat.Move(base, c.after, before, after)
			if err != nil {
				return err
			}
			res.movement[moveKey{n, scheme, c.name, shape}] = mv
		}
	}
	return nil
}

func (res *results) measureWeighted(weights string, shape ringstat.Shape, ms []carp.Member, keys [][]byte) error {
	for _, scheme := range weightedSchemes {
		o, err := owners(scheme, ms, keys)
		if err != nil {
			return err
		}
		counts, err := ringstat.Counts(o, ids(ms))
		if err != nil {
			return err
		}
		acc, err := ringstat.AccuracyOf(ms, counts)
		if err != nil {
			return err
		}
		res.accuracy[accKey{weights, len(ms), shape, scheme}] = acc
	}
	return nil
}

// measureWeightedMove adds a member of weight 2.5 to the 1:2:3:4 ring.
func (res *results) measureWeightedMove(shape ringstat.Shape, keys [][]byte) error {
	before := members1234()
	after := append(slices.Clone(before), weightedJoiner)
	for _, scheme := range weightedSchemes {
		ob, err := owners(scheme, before, keys)
		if err != nil {
			return err
		}
		oa, err := owners(scheme, after, keys)
		if err != nil {
			return err
		}
		mv, err := ringstat.Move(before, after, ob, oa)
		if err != nil {
			return err
		}
		res.weightedMove[wmoveKey{shape, scheme}] = mv
	}
	return nil
}
