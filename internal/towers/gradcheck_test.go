package towers

import (
	"math"
	"math/rand/v2"
	"testing"
)

// gradTol is the largest relative error accepted between an analytic gradient
// and its central finite difference (step gradStep) in float64.
const (
	gradTol  = 1e-6
	gradStep = 1e-6
	// gradFloor bounds the denominator of the relative error, so that entries
	// whose gradient is ~0 are judged by their absolute error.
	gradFloor = 1e-3
)

// checkGrad compares analytic (the gradient of f with respect to x) with
// central differences, perturbing x in place, and returns the largest relative
// error |a - n| / max(|a| + |n|, gradFloor).
func checkGrad(t *testing.T, name string, x, analytic []float64, f func() float64) float64 {
	t.Helper()
	if len(x) != len(analytic) {
		t.Fatalf("%s: %d params, %d gradients", name, len(x), len(analytic))
	}
	worst := 0.0
	for i := range x {
		orig := x[i]
		x[i] = orig + gradStep
		fp := f()
		x[i] = orig - gradStep
		fm := f()
		x[i] = orig
		num := (fp - fm) / (2 * gradStep)
		rel := math.Abs(num-analytic[i]) / max(math.Abs(num)+math.Abs(analytic[i]), gradFloor)
		if rel > worst {
			worst = rel
		}
		if rel > gradTol {
			t.Errorf("%s[%d]: analytic %.10g, numeric %.10g (rel %.2g)", name, i, analytic[i], num, rel)
		}
	}
	t.Logf("%s: max relative error %.2g over %d entries", name, worst, len(x))
	return worst
}

func randSlice(rng *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = rng.NormFloat64()
	}
	return s
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func TestDenseGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, in, out = 5, 4, 3
	var p params
	d := p.reserveDense("d", in, out)
	p.alloc()
	p.bindDense(d)
	copy(p.Data, randSlice(rng, len(p.Data)))
	x := randSlice(rng, n*in)
	c := randSlice(rng, n*out) // loss = <c, y>
	y := make([]float64, n*out)
	loss := func() float64 { d.Forward(y, x, n); return dot(c, y) }
	grad := make([]float64, len(p.Data))
	dx := make([]float64, n*in)
	loss()
	d.Backward(dx, grad, x, c, n)
	checkGrad(t, "Dense params", p.Data, grad, loss)
	checkGrad(t, "Dense input", x, dx, loss)
}

func TestActivationGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, d = 4, 6
	x := randSlice(rng, n*d)
	c := randSlice(rng, n*d)
	y := make([]float64, n*d)
	dx := make([]float64, n*d)

	relu := func() float64 { ReLUForward(y, x); return dot(c, y) }
	relu()
	ReLUBackward(dx, y, c)
	checkGrad(t, "ReLU", x, dx, relu)

	mask := make([]float64, n*d)
	drop := func() float64 {
		DropoutForward(y, mask, x, 0.3, rand.New(rand.NewPCG(9, 9)))
		return dot(c, y)
	}
	drop()
	DropoutBackward(dx, mask, c)
	checkGrad(t, "Dropout", x, dx, drop)

	norms := make([]float64, n)
	l2 := func() float64 { L2NormForward(y, norms, x, n, d); return dot(c, y) }
	l2()
	L2NormBackward(dx, y, norms, c, n, d)
	checkGrad(t, "L2Norm", x, dx, l2)
	for r := 0; r < n; r++ {
		if s := dot(y[r*d:(r+1)*d], y[r*d:(r+1)*d]); math.Abs(s-1) > 1e-12 {
			t.Errorf("row %d: squared norm %v after L2Norm", r, s)
		}
	}
}

func TestDropoutStatistics(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 100000
	x := make([]float64, n)
	for i := range x {
		x[i] = 1
	}
	for _, fast := range []bool{false, true} {
		checkDropoutStatistics(t, fast, x, rng)
	}
}

func checkDropoutStatistics(t *testing.T, fast bool, x []float64, rng *rand.Rand) {
	const n = 100000
	y, mask := make([]float64, n), make([]float64, n)
	if fast {
		dropoutForwardFast(y, mask, x, 0.3, rng)
	} else {
		DropoutForward(y, mask, x, 0.3, rng)
	}
	zeros, sum := 0, 0.0
	for _, v := range y {
		if v == 0 {
			zeros++
		}
		sum += v
	}
	if f := float64(zeros) / n; math.Abs(f-0.3) > 0.01 {
		t.Errorf("fast %v: dropped share %.3f, want 0.3", fast, f)
	}
	if m := sum / n; math.Abs(m-1) > 0.02 {
		t.Errorf("fast %v: mean after inverted dropout %.3f, want 1", fast, m)
	}
}

func TestMLPGradient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dropout float64
		l2      bool
		train   bool
	}{
		{"plain", 0, false, false},
		{"dropout+l2", 0.3, true, true},
		{"eval-mode", 0.3, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 8))
			const n, in = 6, 5
			var p params
			m := newMLP(&p, "m", in, []int{8, 7, 4}, tc.dropout, tc.l2)
			p.alloc()
			m.bind(&p)
			m.initHe(rng)
			for i := range p.Data {
				p.Data[i] += 0.1 * rng.NormFloat64() // non-zero biases
			}
			w := m.newWork(n)
			x := randSlice(rng, n*in)
			c := randSlice(rng, n*m.Out())
			loss := func() float64 {
				out := m.forward(w, x, n, tc.train, rand.New(rand.NewPCG(11, 12)))
				return dot(c, out)
			}
			loss()
			grad := make([]float64, len(p.Data))
			dx := make([]float64, n*in)
			m.backward(w, grad, x, c, dx, n, tc.train)
			checkGrad(t, "MLP params", p.Data, grad, loss)
			checkGrad(t, "MLP input", x, dx, loss)
		})
	}
}

func TestLossGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const n = 7
	pred := randSlice(rng, n)
	target := randSlice(rng, n)
	w := make([]float64, n)
	for i := range w {
		w[i] = ConfidenceFromWatchRatio(rng.Float64()*3, 5)
	}
	g := make([]float64, n)

	MSE(g, pred, target)
	checkGrad(t, "MSE", pred, g, func() float64 { return MSE(nil, pred, target) })
	WeightedMSE(g, pred, target, w)
	checkGrad(t, "WeightedMSE", pred, g, func() float64 { return WeightedMSE(nil, pred, target, w) })

	pos := []float64{rng.NormFloat64()}
	neg := randSlice(rng, 5)
	dNeg := make([]float64, len(neg))
	_, dPos := BPR(dNeg, pos[0], neg)
	bpr := func() float64 { l, _ := BPR(nil, pos[0], neg); return l }
	checkGrad(t, "BPR pos", pos, []float64{dPos}, bpr)
	checkGrad(t, "BPR neg", neg, dNeg, bpr)

	logits := randSlice(rng, 9)
	gl := make([]float64, len(logits))
	SampledSoftmax(gl, logits)
	checkGrad(t, "SampledSoftmax", logits, gl, func() float64 { return SampledSoftmax(nil, logits) })

	// Extreme logits stay finite.
	if l := SampledSoftmax(make([]float64, 3), []float64{1000, -1000, 999}); math.IsNaN(l) || math.IsInf(l, 0) {
		t.Errorf("SampledSoftmax on extreme logits: %v", l)
	}
	if l, _ := BPR(nil, -800, []float64{800}); math.IsInf(l, 0) || math.IsNaN(l) {
		t.Errorf("BPR on extreme scores: %v", l)
	}
}

func TestSeedConfidence(t *testing.T) {
	if got := SeedConfidence(0, 0, 0); got != 2 {
		t.Errorf("SeedConfidence(0,0,0) = %v, want 2", got)
	}
	want := 2 + 60*math.Log1p(1)*1.8*1
	if got := ConfidenceFromWatchRatio(1, 5); math.Abs(got-want) > 1e-12 {
		t.Errorf("ConfidenceFromWatchRatio(1) = %v, want %v", got, want)
	}
	if ConfidenceFromWatchRatio(100, 5) != ConfidenceFromWatchRatio(5, 5) {
		t.Error("confidence not capped")
	}
}

func TestOptimisersMinimiseQuadratic(t *testing.T) {
	target := []float64{1, -2, 3}
	grad := func(x []float64) []float64 {
		g := make([]float64, len(x))
		for i := range x {
			g[i] = 2 * (x[i] - target[i])
		}
		return g
	}
	x := make([]float64, 3)
	sgd := &SGD{LR: 0.1}
	for range 200 {
		sgd.Step(x, grad(x))
	}
	for i := range x {
		if math.Abs(x[i]-target[i]) > 1e-6 {
			t.Errorf("SGD x[%d] = %v, want %v", i, x[i], target[i])
		}
	}
	x = make([]float64, 3)
	adam := NewAdam(3, 0.05)
	for range 2000 {
		adam.Step(x, grad(x))
	}
	for i := range x {
		if math.Abs(x[i]-target[i]) > 1e-3 {
			t.Errorf("Adam x[%d] = %v, want %v", i, x[i], target[i])
		}
	}
	table := make([]float64, 2*3)
	la := NewLazyAdam(2, 3, 0.05, 0)
	for range 2000 {
		g := make([]float64, 6)
		copy(g[3:], grad(table[3:]))
		la.Step(table, g, []int32{1})
	}
	for i := range 3 {
		if table[i] != 0 {
			t.Errorf("LazyAdam touched row 0: %v", table[:3])
		}
		if math.Abs(table[3+i]-target[i]) > 1e-3 {
			t.Errorf("LazyAdam row 1 = %v, want %v", table[3:], target)
		}
	}
}
