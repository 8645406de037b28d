//go:build !amd64 || noasm

package towers

var useFMA = false

func gemm4x8FMA(k int, a *float64, ars, acs int, b *float64, ldb int, c *float64, ldc int) {
	panic("towers: no FMA kernel on this platform")
}

func gemm1x8FMA(k int, a *float64, acs int, b *float64, ldb int, c *float64) {
	panic("towers: no FMA kernel on this platform")
}
