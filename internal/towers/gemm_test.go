package towers

import (
	"math"
	"math/rand/v2"
	"testing"
)

// naiveGemm is C += A B by definition, in the order p = 0..k-1.
func naiveGemm(n, m, k int, a []float64, ars, acs int, b []float64, ldb int, c []float64, ldc int) {
	for i := 0; i < n; i++ {
		for j := 0; j < m; j++ {
			s := 0.0
			for p := 0; p < k; p++ {
				s += a[i*ars+p*acs] * b[p*ldb+j]
			}
			c[i*ldc+j] += s
		}
	}
}

// TestGemmAccMatchesDefinition holds gemmAcc (the assembly kernel where the
// CPU has it, and the Go kernel) to the definition on shapes with every
// kind of tail, for A as a matrix and as a transpose, with padded leading
// dimensions.
func TestGemmAccMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	kernels := []bool{false}
	if useFMA {
		kernels = append(kernels, true)
	}
	defer func(v bool) { useFMA = v }(useFMA)
	for _, fma := range kernels {
		useFMA = fma
		for _, s := range [][3]int{{1, 1, 1}, {4, 8, 1}, {5, 9, 3}, {7, 16, 0}, {13, 24, 79}, {256, 128, 47}, {3, 64, 256}, {8, 5, 2}} {
			n, m, k := s[0], s[1], s[2]
			for _, trans := range []bool{false, true} {
				ars, acs, alen := k+2, 1, n*(k+2)
				if trans { // A = X^T for X (k x n) with leading dimension n+1
					ars, acs, alen = 1, n+1, max(k, 1)*(n+1)
				}
				a := randSlice(rng, alen)
				b := randSlice(rng, max(k, 1)*(m+3))
				c := randSlice(rng, n*(m+1))
				want := append([]float64(nil), c...)
				naiveGemm(n, m, k, a, ars, acs, b, m+3, want, m+1)
				gemmAcc(n, m, k, a, ars, acs, b, m+3, c, m+1)
				for i := range c {
					if d := math.Abs(c[i] - want[i]); d > 1e-12*(1+math.Abs(want[i])) {
						t.Fatalf("fma %v, n %d m %d k %d trans %v: c[%d] = %v, want %v", fma, n, m, k, trans, i, c[i], want[i])
					}
				}
			}
		}
	}
}

// TestDenseFastMatchesGonum compares the fast Dense path with gonum's on the
// same layer and batch: forward outputs, parameter gradients and input
// gradients.
func TestDenseFastMatchesGonum(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range [][3]int{{256, 79, 128}, {255, 128, 64}, {3, 5, 7}} {
		n, in, out := s[0], s[1], s[2]
		var p params
		d := p.reserveDense("d", in, out)
		p.alloc()
		p.bindDense(d)
		copy(p.Data, randSlice(rng, len(p.Data)))
		x, dy := randSlice(rng, n*in), randSlice(rng, n*out)
		var ys, dxs, gs [2][]float64
		for v, ref := range []bool{true, false} {
			d.ref = ref
			ys[v], dxs[v], gs[v] = make([]float64, n*out), make([]float64, n*in), make([]float64, len(p.Data))
			d.Forward(ys[v], x, n)
			d.Backward(dxs[v], gs[v], x, dy, n)
		}
		for name, pair := range map[string][2][]float64{"y": {ys[0], ys[1]}, "dx": {dxs[0], dxs[1]}, "grad": {gs[0], gs[1]}} {
			for i := range pair[0] {
				if d := math.Abs(pair[0][i] - pair[1][i]); d > 1e-10*(1+math.Abs(pair[0][i])) {
					t.Fatalf("%v: %s[%d]: gonum %v, fast %v", s, name, i, pair[0][i], pair[1][i])
				}
			}
		}
	}
}

// TestReLUFastMatchesReLU compares the branch-free ReLU with ReLUForward and
// ReLUBackward on values of both signs, zeros of both signs and extremes.
func TestReLUFastMatchesReLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := append(randSlice(rng, 1000), 0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.MaxFloat64, -math.SmallestNonzeroFloat64)
	y1, y2 := make([]float64, len(x)), make([]float64, len(x))
	ReLUForward(y1, x)
	reluForwardFast(y2, x)
	dy := randSlice(rng, len(x))
	d1, d2 := make([]float64, len(x)), make([]float64, len(x))
	ReLUBackward(d1, y1, dy)
	reluBackwardFast(d2, y2, dy)
	for i := range x {
		// -0 maps to -0 or +0: equal as numbers.
		if y1[i] != y2[i] || d1[i] != d2[i] {
			t.Fatalf("x %v: forward %v / %v, backward %v / %v", x[i], y1[i], y2[i], d1[i], d2[i])
		}
	}
}
