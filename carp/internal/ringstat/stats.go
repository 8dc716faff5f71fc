package ringstat

import (
	"fmt"
	"math"

	"github.com/carpkv/carpkv/carp"
)

// Counts returns how many owners name each of ids, in the order of ids. An
// owner outside ids is an error: it means the assigner and the member list
// disagree.
func Counts(owners []string, ids []string) ([]int, error) {
	index := make(map[string]int, len(ids))
	for i, id := range ids {
		index[id] = i
	}
	counts := make([]int, len(ids))
	for _, o := range owners {
		i, ok := index[o]
		if !ok {
			return nil, fmt.Errorf("ringstat: owner %q is not a member", o)
		}
		counts[i]++
	}
	return counts, nil
}

// Balance summarises how evenly keys spread over equally weighted members.
type Balance struct {
	Members int     // N
	Keys    int     // K, the sum of the counts
	Min     int     // smallest count
	Max     int     // largest count
	Mean    float64 // K/N
	// MaxOverMean is the load of the busiest member relative to the mean:
	// the capacity a deployment must provision per unit of average load.
	MaxOverMean float64
	// CV is the coefficient of variation of the counts: population
	// standard deviation over the mean.
	CV float64
	// IdealCV is the CV expected when every key picks a member uniformly
	// and independently (a multinomial): sqrt((N-1)/K).
	IdealCV float64
	// CVRatio is CV/IdealCV: about 1 for an ideal scheme, larger when the
	// scheme spreads keys worse than chance.
	CVRatio float64
	// ChiSquare is Pearson's statistic sum((c-mean)^2/mean), which equals
	// K*CV^2; for an ideal scheme it follows chi-square with N-1 degrees of
	// freedom, so CVRatio^2 = ChiSquare/(N-1) has mean 1 and standard
	// deviation sqrt(2/(N-1)).
	ChiSquare float64
	// PValue is the chance that an ideal scheme balances this badly or
	// worse: the upper tail of chi-square(N-1) at ChiSquare. Values below
	// about 0.001 mean the scheme is measurably worse than chance.
	PValue float64
}

// IdealCV is the expected coefficient of variation of K keys placed
// independently and uniformly on N members: sqrt((N-1)/K).
func IdealCV(n, k int) float64 {
	if n < 1 || k < 1 {
		return math.NaN()
	}
	return math.Sqrt(float64(n-1) / float64(k))
}

// BalanceOf computes the balance of per-member counts.
func BalanceOf(counts []int) Balance {
	b := Balance{Members: len(counts)}
	if len(counts) == 0 {
		return b
	}
	b.Min = counts[0]
	for _, c := range counts {
		b.Keys += c
		b.Min = min(b.Min, c)
		b.Max = max(b.Max, c)
	}
	n := float64(len(counts))
	b.Mean = float64(b.Keys) / n
	var ss float64
	for _, c := range counts {
		d := float64(c) - b.Mean
		ss += d * d
	}
	if b.Keys == 0 {
		return b
	}
	b.MaxOverMean = float64(b.Max) / b.Mean
	b.CV = math.Sqrt(ss/n) / b.Mean
	b.IdealCV = IdealCV(len(counts), b.Keys)
	b.ChiSquare = ss / b.Mean
	if len(counts) > 1 {
		b.CVRatio = b.CV / b.IdealCV
		b.PValue = ChiSquareSurvival(b.ChiSquare, len(counts)-1)
	}
	return b
}

// Share is one member's target and achieved fraction of the keys.
type Share struct {
	ID       string
	Weight   float64
	Target   float64 // p = weight / sum of weights
	Count    int
	Achieved float64 // count / K
	// Sigma is the error in standard deviations of a binomial share:
	// (achieved - p) / sqrt(p(1-p)/K).
	Sigma float64
}

// Accuracy compares the keys each member won with its weighted share.
type Accuracy struct {
	Keys        int
	Shares      []Share // in the order of the members given
	MaxAbsSigma float64
	// ChiSquare is Pearson's sum((c - K p)^2 / (K p)); for an exact scheme
	// it follows chi-square with N-1 degrees of freedom.
	ChiSquare float64
	// PValue is the upper tail of chi-square(N-1) at ChiSquare: the chance
	// that an exact scheme misses the targets by this much or more.
	PValue float64
}

// AccuracyOf compares counts (in the order of members) with the members'
// weighted shares.
func AccuracyOf(members []carp.Member, counts []int) (Accuracy, error) {
	if len(members) != len(counts) {
		return Accuracy{}, fmt.Errorf("ringstat: %d members but %d counts", len(members), len(counts))
	}
	var a Accuracy
	var total float64
	for i, m := range members {
		total += m.Weight
		a.Keys += counts[i]
	}
	if a.Keys == 0 || !(total > 0) {
		return Accuracy{}, fmt.Errorf("ringstat: no keys or no weight")
	}
	k := float64(a.Keys)
	for i, m := range members {
		p := m.Weight / total
		s := Share{ID: m.ID, Weight: m.Weight, Target: p, Count: counts[i], Achieved: float64(counts[i]) / k}
		if p < 1 {
			s.Sigma = (s.Achieved - p) / math.Sqrt(p*(1-p)/k)
		}
		a.MaxAbsSigma = max(a.MaxAbsSigma, math.Abs(s.Sigma))
		d := float64(counts[i]) - k*p
		a.ChiSquare += d * d / (k * p)
		a.Shares = append(a.Shares, s)
	}
	if len(members) > 1 {
		a.PValue = ChiSquareSurvival(a.ChiSquare, len(members)-1)
	}
	return a, nil
}

// Movement measures a change of member set over the same keys.
type Movement struct {
	Keys  int
	Moved int // keys whose owner differs
	// Fraction is Moved/Keys.
	Fraction float64
	// Ideal is the least fraction any scheme exact to its weights must
	// move: the total variation distance between the target shares before
	// and after, sum over members of max(0, after share - before share).
	// That is 1/(N+1) for adding one member to N equal ones, and the
	// removed member's share for a removal.
	Ideal float64
	// Ratio is Fraction/Ideal (NaN when Ideal is 0).
	Ratio float64
	// Violations counts moved keys that went from a member present in both
	// rings to another member present in both: movement that a minimal
	// scheme never makes. When a member is added, every moved key should go
	// to it; when one is removed, every moved key should come from it.
	Violations int
}

// Move compares the owners of the same keys under two member sets.
func Move(before, after []carp.Member, ownersBefore, ownersAfter []string) (Movement, error) {
	if len(ownersBefore) != len(ownersAfter) {
		return Movement{}, fmt.Errorf("ringstat: %d owners before, %d after", len(ownersBefore), len(ownersAfter))
	}
	shareBefore, err := shares(before)
	if err != nil {
		return Movement{}, err
	}
	shareAfter, err := shares(after)
	if err != nil {
		return Movement{}, err
	}
	m := Movement{Keys: len(ownersBefore)}
	// Over the slice, not the map, so the float sum is deterministic.
	for _, a := range after {
		m.Ideal += max(0, shareAfter[a.ID]-shareBefore[a.ID])
	}
	for i, ob := range ownersBefore {
		oa := ownersAfter[i]
		if ob == oa {
			continue
		}
		m.Moved++
		_, oldStays := shareAfter[ob]
		_, newExisted := shareBefore[oa]
		if oldStays && newExisted {
			m.Violations++
		}
	}
	if m.Keys > 0 {
		m.Fraction = float64(m.Moved) / float64(m.Keys)
	}
	m.Ratio = math.NaN()
	if m.Ideal > 0 {
		m.Ratio = m.Fraction / m.Ideal
	}
	return m, nil
}

func shares(members []carp.Member) (map[string]float64, error) {
	var total float64
	for _, m := range members {
		total += m.Weight
	}
	if !(total > 0) {
		return nil, fmt.Errorf("ringstat: members have no weight")
	}
	out := make(map[string]float64, len(members))
	for _, m := range members {
		if _, dup := out[m.ID]; dup {
			return nil, fmt.Errorf("ringstat: member %q appears twice", m.ID)
		}
		out[m.ID] = m.Weight / total
	}
	return out, nil
}
