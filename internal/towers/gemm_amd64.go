//go:build amd64 && !noasm

package towers

import "golang.org/x/sys/cpu"

// useFMA selects the AVX2 + FMA kernels of gemmAcc, detected once at start
// (x/sys/cpu also checks that the OS saves the YMM state). Tests switch it
// off to compare with the pure-Go kernel on the same data.
var useFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// gemm4x8FMA: C[0:4][0:8] += A(0:4, 0:k) B[0:k][0:8]; see gemm_amd64.s.
//
//go:noescape
func gemm4x8FMA(k int, a *float64, ars, acs int, b *float64, ldb int, c *float64, ldc int)

// gemm1x8FMA: c[0:8] += A(0, 0:k) B[0:k][0:8]; see gemm_amd64.s.
//
//go:noescape
func gemm1x8FMA(k int, a *float64, acs int, b *float64, ldb int, c *float64)
