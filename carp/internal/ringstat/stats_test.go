package ringstat

import (
	"math"
	"testing"

	"github.com/carpkv/carpkv/carp"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestBalanceOfHandComputedCounts(t *testing.T) {
	// K=60, mean 20, deviations -10,0,10: population variance 200/3.
	b := BalanceOf([]int{10, 20, 30})
	checks := []struct {
		name      string
		got, want float64
	}{
		{"Keys", float64(b.Keys), 60},
		{"Min", float64(b.Min), 10},
		{"Max", float64(b.Max), 30},
		{"Mean", b.Mean, 20},
		{"MaxOverMean", b.MaxOverMean, 1.5},
		{"CV", b.CV, math.Sqrt(200.0/3) / 20},
		{"IdealCV", b.IdealCV, math.Sqrt(2.0 / 60)},
		{"CVRatio", b.CVRatio, math.Sqrt(5)},
		{"ChiSquare", b.ChiSquare, 10},
		// chi-square with 2 degrees of freedom has survival exp(-x/2).
		{"PValue", b.PValue, math.Exp(-5)},
	}
	for _, c := range checks {
		if !near(c.got, c.want, 1e-12) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestBalanceOfPerfectSpread(t *testing.T) {
	b := BalanceOf([]int{5, 5, 5, 5})
	if b.CV != 0 || b.MaxOverMean != 1 || b.PValue != 1 {
		t.Errorf("perfect spread: CV %v, max/mean %v, p %v", b.CV, b.MaxOverMean, b.PValue)
	}
}

func TestIdealCVIsMultinomial(t *testing.T) {
	if got := IdealCV(16, 1_000_000); !near(got, math.Sqrt(15e-6), 1e-15) {
		t.Errorf("IdealCV(16, 1e6) = %v", got)
	}
	if got := IdealCV(1, 10); got != 0 {
		t.Errorf("IdealCV(1, 10) = %v, want 0", got)
	}
}

func TestChiSquareSurvivalMatchesClosedForms(t *testing.T) {
	// For even dof = 2m, the survival is exp(-x/2) * sum_{j<m} (x/2)^j / j!.
	closed := func(x float64, dof int) float64 {
		y := x / 2
		var sum float64
		for j := 0; j < dof/2; j++ {
			lg, _ := math.Lgamma(float64(j + 1))
			sum += math.Exp(float64(j)*math.Log(y) - y - lg)
		}
		return sum
	}
	for _, dof := range []int{2, 4, 10, 30, 62, 254} {
		for _, f := range []float64{0.2, 0.8, 1, 1.3, 2} {
			x := f * float64(dof)
			if got, want := ChiSquareSurvival(x, dof), closed(x, dof); !near(got, want, 1e-10) {
				t.Errorf("dof %d, x %v: %v, want %v", dof, x, got, want)
			}
		}
	}
	// Odd dof against tables: the 5% critical values.
	for _, tc := range []struct {
		x   float64
		dof int
	}{{3.841458820694124, 1}, {11.070497693516351, 5}} {
		if got := ChiSquareSurvival(tc.x, tc.dof); !near(got, 0.05, 1e-9) {
			t.Errorf("survival at the 5%% point of dof %d = %v", tc.dof, got)
		}
	}
	if got := ChiSquareSurvival(0, 3); got != 1 {
		t.Errorf("survival at 0 = %v, want 1", got)
	}
}

func TestAccuracyOfHandComputedShares(t *testing.T) {
	ms := []carp.Member{{ID: "a", Weight: 1}, {ID: "b", Weight: 3}}
	a, err := AccuracyOf(ms, []int{30, 70})
	if err != nil {
		t.Fatal(err)
	}
	// p = 0.25, achieved 0.3, sd sqrt(0.25*0.75/100).
	sigma := 0.05 / math.Sqrt(0.25*0.75/100)
	if !near(a.Shares[0].Sigma, sigma, 1e-12) || !near(a.Shares[1].Sigma, -sigma, 1e-12) {
		t.Errorf("sigmas %v, %v, want ±%v", a.Shares[0].Sigma, a.Shares[1].Sigma, sigma)
	}
	if !near(a.MaxAbsSigma, sigma, 1e-12) {
		t.Errorf("MaxAbsSigma %v, want %v", a.MaxAbsSigma, sigma)
	}
	// 25/25 + 25/75; chi-square(1) survival is erfc(sqrt(x/2)).
	if !near(a.ChiSquare, 4.0/3, 1e-12) || !near(a.PValue, math.Erfc(math.Sqrt(2.0/3)), 1e-10) {
		t.Errorf("chi-square %v p %v", a.ChiSquare, a.PValue)
	}
	if _, err := AccuracyOf(ms, []int{1}); err == nil {
		t.Error("mismatched lengths accepted")
	}
}

func TestMoveCountsViolationsBetweenSurvivors(t *testing.T) {
	two := []carp.Member{{ID: "a", Weight: 1}, {ID: "b", Weight: 1}}
	three := append(two[:2:2], carp.Member{ID: "c", Weight: 1})
	before := []string{"a", "b", "a", "b", "a", "b"}
	after := []string{"a", "c", "a", "b", "c", "a"} // b->c, a->c fine; b->a is a violation
	m, err := Move(two, three, before, after)
	if err != nil {
		t.Fatal(err)
	}
	if m.Moved != 3 || m.Violations != 1 || !near(m.Fraction, 0.5, 0) || !near(m.Ideal, 1.0/3, 1e-15) || !near(m.Ratio, 1.5, 1e-12) {
		t.Errorf("add: %+v", m)
	}

	// Removal: keys leaving c are fine, a->b is not.
	m, err = Move(three, two, []string{"c", "c", "a", "b"}, []string{"a", "b", "b", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Moved != 3 || m.Violations != 1 || !near(m.Ideal, 1.0/3, 1e-15) {
		t.Errorf("remove: %+v", m)
	}
}

func TestMoveIdealForWeightedAddIsNewShare(t *testing.T) {
	before := []carp.Member{{ID: "a", Weight: 1}, {ID: "b", Weight: 3}}
	after := append(before[:2:2], carp.Member{ID: "c", Weight: 1})
	m, err := Move(before, after, []string{"a"}, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if !near(m.Ideal, 0.2, 1e-15) || m.Ratio != 0 {
		t.Errorf("weighted add: %+v", m)
	}
}
