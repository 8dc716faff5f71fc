package ringstat

import "math"

// ChiSquareSurvival is P(X >= x) for X chi-square distributed with dof
// degrees of freedom: the regularised upper incomplete gamma function
// Q(dof/2, x/2). It is accurate to about 1e-12 absolute, which is all a
// p-value needs; tails below that come out as 0.
func ChiSquareSurvival(x float64, dof int) float64 {
	if dof < 1 || math.IsNaN(x) {
		return math.NaN()
	}
	if x <= 0 {
		return 1
	}
	return gammaQ(float64(dof)/2, x/2)
}

// gammaQ is Q(a, x) = Gamma(a, x)/Gamma(a) for a > 0, x > 0, by the power
// series of P below x = a+1 and by the continued fraction of Q above it
// (where each converges fast).
func gammaQ(a, x float64) float64 {
	lg, _ := math.Lgamma(a)
	logPrefix := a*math.Log(x) - x - lg
	if x < a+1 {
		// P(a,x) = e^-x x^a / Gamma(a+1) * sum_n x^n / ((a+1)...(a+n))
		term := 1 / a
		sum := term
		for n := 1; n < 10000; n++ {
			term *= x / (a + float64(n))
			sum += term
			if term < sum*1e-16 {
				break
			}
		}
		return max(0, 1-sum*math.Exp(logPrefix))
	}
	// Modified Lentz evaluation of the continued fraction for Q.
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 10000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		delta := d * c
		h *= delta
		if math.Abs(delta-1) < 1e-16 {
			break
		}
	}
	return math.Exp(logPrefix) * h
}
