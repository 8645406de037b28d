package towers

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func f32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

func TestOnlineStepGradientAndConsistency(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	const D = 8
	vec64, dense64, item64 := randSlice(rng, D), randSlice(rng, D), randSlice(rng, D)
	p := OnlineParams{LR: 1e-3, L2: 0.05, GlobalMean: 0.9, Scale: 1.3}
	const y, w = 1.4, 0.7
	loss := func() float64 {
		s := 0.0
		for j := 0; j < D-1; j++ {
			s += (dense64[j] + vec64[j]) * item64[j]
		}
		pred := float64(p.GlobalMean) + dense64[D-1] + vec64[D-1] + float64(p.Scale)*s + item64[D-1]
		return w*(pred-y)*(pred-y) + float64(p.L2)*dot(vec64, vec64)
	}
	// The step is vec -= LR * grad, so grad = (vec_before - vec_after) / LR.
	vec := f32(vec64)
	before := append([]float32(nil), vec...)
	OnlineStep(vec, f32(dense64), f32(item64), y, w, p)
	grad := make([]float64, D)
	for j := range grad {
		grad[j] = (float64(before[j]) - float64(vec[j])) / float64(p.LR)
	}
	// float32 arithmetic: compare at float32 precision.
	for j := range grad {
		orig := vec64[j]
		vec64[j] = orig + 1e-6
		fp := loss()
		vec64[j] = orig - 1e-6
		fm := loss()
		vec64[j] = orig
		num := (fp - fm) / 2e-6
		if rel := math.Abs(num-grad[j]) / max(math.Abs(num)+math.Abs(grad[j]), 1e-3); rel > 1e-3 {
			t.Errorf("OnlineStep gradient[%d]: step implies %.6g, numeric %.6g (rel %.2g)", j, grad[j], num, rel)
		}
	}

	// The prediction matches the embedding form: mu + bias + <e_u, e_i>.
	dense, item := f32(dense64), f32(item64)
	eu := make([]float32, D)
	bias := UserEmbedding(eu, dense, vec, p.Scale)
	var s float32
	for j := range eu {
		s += eu[j] * item[j]
	}
	if got, want := OnlinePredict(vec, dense, item, p), p.GlobalMean+bias+s; math.Abs(float64(got-want)) > 1e-5 {
		t.Errorf("OnlinePredict %v, embedding form %v", got, want)
	}

	// Repeated steps drive the prediction to the target.
	q := p
	q.LR, q.L2 = 0.05, 0
	for range 200 {
		OnlineStep(vec, dense, item, y, 1, q)
	}
	if got := OnlinePredict(vec, dense, item, q); math.Abs(float64(got)-y) > 1e-3 {
		t.Errorf("after 200 steps pred %v, want %v", got, y)
	}
}

func TestOnlineStepDoesNotAllocate(t *testing.T) {
	vec, dense, item := make([]float32, 64), make([]float32, 64), make([]float32, 64)
	p := OnlineParams{LR: 0.01, GlobalMean: 0.9, Scale: 1}
	if a := testing.AllocsPerRun(100, func() { OnlineStep(vec, dense, item, 1, 1, p) }); a != 0 {
		t.Errorf("OnlineStep allocates %v times per call", a)
	}
}

func BenchmarkOnlineStep(b *testing.B) {
	for _, D := range []int{16, 64, 128} {
		b.Run("dim="+strconv.Itoa(D), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			vec, dense, item := f32(randSlice(rng, D)), f32(randSlice(rng, D)), f32(randSlice(rng, D))
			p := OnlineParams{LR: 1e-4, L2: 1e-3, GlobalMean: 0.9, Scale: 1}
			b.ReportAllocs()
			for b.Loop() {
				OnlineStep(vec, dense, item, 1.2, 1, p)
			}
		})
	}
}
