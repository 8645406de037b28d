package cache

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// scoreBlock sets out[i] = dot(q, rows[i*dim:(i+1)*dim]) for i < len(out),
// with gonum's float32 GEMV (SSE assembly on amd64, a Go loop elsewhere).
// Measured on 64-dim rows it is about 3.5x faster than an unrolled Go loop
// (BenchmarkDotKernels). Every score in the package goes through this one
// kernel, so TopK and Score agree bit for bit.
func scoreBlock(out, q, rows []float32, dim int) {
	blas32.Gemv(blas.NoTrans, 1,
		blas32.General{Rows: len(out), Cols: dim, Stride: dim, Data: rows[:len(out)*dim]},
		blas32.Vector{N: dim, Inc: 1, Data: q},
		0, blas32.Vector{N: len(out), Inc: 1, Data: out})
}
