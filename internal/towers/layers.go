package towers

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// Dense is a fully connected layer y = x W + b over a batch of row vectors.
// W is In x Out, row-major; B has Out entries. W and B usually alias a slice
// of a model's flat parameter vector (see params), so that optimisers,
// snapshots and the model file see every parameter in one place.
type Dense struct {
	In, Out int
	W, B    []float64
	// offW and offB locate W and B in the owning flat parameter vector, so
	// that Backward can write into a flat gradient vector of the same layout.
	offW, offB int
	// ref selects gonum's blas64.Gemm (the trainer before issue 17) instead
	// of gemmAcc.
	ref bool
}

func general(rows, cols int, data []float64) blas64.General {
	return blas64.General{Rows: rows, Cols: cols, Stride: cols, Data: data[:rows*cols]}
}

// Forward writes y = x W + b for the n rows of x (n x In) into y (n x Out).
func (d *Dense) Forward(y, x []float64, n int) {
	if len(x) < n*d.In || len(y) < n*d.Out {
		panic("towers: Dense.Forward: shape mismatch")
	}
	y = y[:n*d.Out]
	for r := 0; r < n; r++ {
		copy(y[r*d.Out:(r+1)*d.Out], d.B)
	}
	if !d.ref {
		gemmAcc(n, d.Out, d.In, x, d.In, 1, d.W, d.Out, y, d.Out)
		return
	}
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, general(n, d.In, x), general(d.In, d.Out, d.W), 1, general(n, d.Out, y))
}

// Backward accumulates the parameter gradients of the batch into grad (a flat
// gradient vector with the layout of the owning parameter vector):
// dW += x^T dy, dB += column sums of dy. If dx is not nil it is overwritten
// with dy W^T (n x In).
func (d *Dense) Backward(dx, grad, x, dy []float64, n int) {
	d.backward(dx, grad, x, dy, n, nil)
}

// backward is Backward with scratch memory for W's transpose (In*Out
// entries; allocated when shorter).
func (d *Dense) backward(dx, grad, x, dy []float64, n int, scratch []float64) {
	if len(x) < n*d.In || len(dy) < n*d.Out || (dx != nil && len(dx) < n*d.In) {
		panic("towers: Dense.Backward: shape mismatch")
	}
	gW := grad[d.offW : d.offW+d.In*d.Out]
	gB := grad[d.offB : d.offB+d.Out]
	if !d.ref {
		gemmAcc(d.In, d.Out, n, x, 1, d.In, dy, d.Out, gW, d.Out)
		for r := 0; r < n; r++ {
			row := dy[r*d.Out : (r+1)*d.Out]
			for j, v := range row {
				gB[j] += v
			}
		}
		if dx != nil {
			if len(scratch) < d.In*d.Out {
				scratch = make([]float64, d.In*d.Out)
			}
			wt := scratch[:d.In*d.Out]
			transposeInto(wt, d.W, d.In, d.Out)
			dx = dx[:n*d.In]
			clear(dx)
			gemmAcc(n, d.In, d.Out, dy, d.Out, 1, wt, d.In, dx, d.In)
		}
		return
	}
	blas64.Gemm(blas.Trans, blas.NoTrans, 1, general(n, d.In, x), general(n, d.Out, dy), 1, general(d.In, d.Out, gW))
	for r := 0; r < n; r++ {
		row := dy[r*d.Out : (r+1)*d.Out]
		for j, v := range row {
			gB[j] += v
		}
	}
	if dx != nil {
		blas64.Gemm(blas.NoTrans, blas.Trans, 1, general(n, d.Out, dy), general(d.In, d.Out, d.W), 0, general(n, d.In, dx))
	}
}

// ReLUForward writes y = max(x, 0) elementwise; y may alias x.
func ReLUForward(y, x []float64) {
	if len(y) != len(x) {
		panic("towers: ReLUForward: shape mismatch")
	}
	for i, v := range x {
		if v < 0 {
			v = 0
		}
		y[i] = v
	}
}

// ReLUBackward writes dx = dy where the forward output y was positive, else 0;
// dx may alias dy.
func ReLUBackward(dx, y, dy []float64) {
	if len(dx) != len(y) || len(dy) != len(y) {
		panic("towers: ReLUBackward: shape mismatch")
	}
	for i, v := range y {
		if v > 0 {
			dx[i] = dy[i]
		} else {
			dx[i] = 0
		}
	}
}

// DropoutForward applies inverted dropout with drop probability rate: each
// entry is kept with probability 1-rate and scaled by 1/(1-rate). The scale
// factors (0 or 1/(1-rate)) are written into mask for DropoutBackward. y may
// alias x. rate 0 copies x and fills mask with ones.
func DropoutForward(y, mask, x []float64, rate float64, rng *rand.Rand) {
	if len(y) != len(x) || len(mask) != len(x) {
		panic("towers: DropoutForward: shape mismatch")
	}
	if rate <= 0 {
		copy(y, x)
		for i := range mask {
			mask[i] = 1
		}
		return
	}
	keep := 1 / (1 - rate)
	for i, v := range x {
		if rng.Float64() < rate {
			mask[i] = 0
		} else {
			mask[i] = keep
		}
		y[i] = v * mask[i]
	}
}

// DropoutBackward writes dx = dy * mask; dx may alias dy.
func DropoutBackward(dx, mask, dy []float64) {
	if len(dx) != len(dy) || len(mask) != len(dy) {
		panic("towers: DropoutBackward: shape mismatch")
	}
	for i, m := range mask {
		dx[i] = dy[i] * m
	}
}

// l2Eps keeps L2 normalisation finite at the origin.
const l2Eps = 1e-12

// L2NormForward normalises each of the n rows of x (n x d) to unit Euclidean
// length: y = x / sqrt(|x|^2 + eps). The row norms are written into norms (n)
// for L2NormBackward. y may alias x.
func L2NormForward(y, norms, x []float64, n, d int) {
	if len(x) < n*d || len(y) < n*d || len(norms) < n {
		panic("towers: L2NormForward: shape mismatch")
	}
	for r := 0; r < n; r++ {
		xr := x[r*d : (r+1)*d]
		s := l2Eps
		for _, v := range xr {
			s += v * v
		}
		nr := math.Sqrt(s)
		norms[r] = nr
		yr := y[r*d : (r+1)*d]
		for j, v := range xr {
			yr[j] = v / nr
		}
	}
}

// L2NormBackward writes dx = (dy - y <y, dy>) / norm for each row, given the
// forward output y and norms. dx may alias dy.
func L2NormBackward(dx, y, norms, dy []float64, n, d int) {
	if len(dx) < n*d || len(y) < n*d || len(dy) < n*d || len(norms) < n {
		panic("towers: L2NormBackward: shape mismatch")
	}
	for r := 0; r < n; r++ {
		yr, dyr, dxr := y[r*d:(r+1)*d], dy[r*d:(r+1)*d], dx[r*d:(r+1)*d]
		dot := 0.0
		for j, v := range yr {
			dot += v * dyr[j]
		}
		inv := 1 / norms[r]
		for j, v := range yr {
			dxr[j] = (dyr[j] - v*dot) * inv
		}
	}
}
