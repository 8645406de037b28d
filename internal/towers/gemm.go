package towers

import (
	"math"
	"math/rand/v2"
)

// The training kernels of the fast path (issue 17): a register-blocked
// matrix product in AVX2 + FMA assembly, serial (each training worker runs
// its own on one core), in place of gonum's blas64.Gemm, whose SSE2 axpy
// kernels and internal goroutines cost more than the arithmetic at the
// towers' sizes (n <= 256 rows per worker, widths 32-128). Dense.Ref keeps
// gonum's path, which TrainConfig.Reference selects to reproduce the trainer
// as it was.

// gemmAcc computes C += A B for an n x k matrix A whose element (i, p) is
// a[i*ars + p*acs] (so that A may be a matrix or the transpose of one), a
// row-major k x m matrix B with leading dimension ldb and a row-major n x m
// matrix C with leading dimension ldc. Blocks of 4 rows x 8 columns go to the
// assembly kernel when available; the rest to gemmAccGeneric. The sums of
// each element run over p in order, with one fused multiply-add per term in
// the kernel, so results are deterministic but not bit-identical to gonum.
func gemmAcc(n, m, k int, a []float64, ars, acs int, b []float64, ldb int, c []float64, ldc int) {
	if n == 0 || m == 0 {
		return
	}
	if k > 0 && (len(a) <= (n-1)*ars+(k-1)*acs || len(b) < (k-1)*ldb+m) || len(c) < (n-1)*ldc+m {
		panic("towers: gemmAcc: shape mismatch")
	}
	if k == 0 {
		return
	}
	m8 := 0
	if useFMA {
		m8 = m &^ 7
	}
	n4 := n &^ 3
	// Column panels of B outer, row blocks inner: the k x 8 panel stays in
	// L1 while the rows of A stream past it.
	for j := 0; j < m8; j += 8 {
		for i := 0; i < n4; i += 4 {
			gemm4x8FMA(k, &a[i*ars], ars, acs, &b[j], ldb, &c[i*ldc+j], ldc)
		}
		for i := n4; i < n; i++ {
			gemm1x8FMA(k, &a[i*ars], acs, &b[j], ldb, &c[i*ldc+j])
		}
	}
	if m8 < m {
		gemmAccGeneric(n, m8, m, k, a, ars, acs, b, ldb, c, ldc)
	}
}

// gemmAccGeneric is gemmAcc in Go for columns [j0, j1).
func gemmAccGeneric(n, j0, j1, k int, a []float64, ars, acs int, b []float64, ldb int, c []float64, ldc int) {
	for i := 0; i < n; i++ {
		crow := c[i*ldc+j0 : i*ldc+j1]
		for p := 0; p < k; p++ {
			av := a[i*ars+p*acs]
			brow := b[p*ldb+j0 : p*ldb+j1]
			for j, bv := range brow {
				crow[j] += av * bv
			}
		}
	}
}

// transposeInto writes the transpose of the rows x cols row-major matrix src
// into dst (cols x rows).
func transposeInto(dst, src []float64, rows, cols int) {
	for r := 0; r < rows; r++ {
		row := src[r*cols : (r+1)*cols]
		for c, v := range row {
			dst[c*rows+r] = v
		}
	}
}

// reluForwardFast is ReLUForward without branches (the sign decides by a
// mask; ReLU outputs on random data mispredict about half the branches):
// y = x, or +0 where x has its sign bit set (negative numbers, -0 and
// negative NaNs). y may alias x.
func reluForwardFast(y, x []float64) {
	if len(y) != len(x) {
		panic("towers: reluForwardFast: shape mismatch")
	}
	y = y[:len(x)]
	for i, v := range x {
		b := math.Float64bits(v)
		y[i] = math.Float64frombits(b &^ uint64(int64(b)>>63))
	}
}

// reluBackwardFast is ReLUBackward without branches for outputs y of
// reluForwardFast (never negative): dx = dy where y != +0, else 0. dx may
// alias dy.
func reluBackwardFast(dx, y, dy []float64) {
	if len(dx) != len(y) || len(dy) != len(y) {
		panic("towers: reluBackwardFast: shape mismatch")
	}
	dx, dy = dx[:len(y)], dy[:len(y)]
	for i, v := range y {
		b := math.Float64bits(v)
		nz := uint64(int64(b|-b) >> 63) // all ones when b != 0
		dx[i] = math.Float64frombits(math.Float64bits(dy[i]) & nz)
	}
}

// dropoutForwardFast is DropoutForward with one random 64-bit word per four
// entries (each entry dropped when its 16-bit lane is below rate*65536) and
// no branches; the drop probability is rate rounded down to a multiple of
// 1/65536 and the kept entries are scaled by the inverse of its complement.
// It draws a different random stream from DropoutForward.
func dropoutForwardFast(y, mask, x []float64, rate float64, rng *rand.Rand) {
	if len(y) != len(x) || len(mask) != len(x) {
		panic("towers: dropoutForwardFast: shape mismatch")
	}
	if rate <= 0 {
		DropoutForward(y, mask, x, rate, rng)
		return
	}
	thr := uint64(rate * 65536)
	keep := 1 / (1 - float64(thr)/65536)
	y, mask = y[:len(x)], mask[:len(x)]
	var r uint64
	for i, v := range x {
		if i&3 == 0 {
			r = rng.Uint64()
		}
		lane := r & 0xffff
		r >>= 16
		kept := 1 - (lane-thr)>>63 // 0 when lane < thr
		mask[i] = keep * float64(kept)
		y[i] = v * mask[i]
	}
}
