//go:build !amd64 || noasm

package cache

// useFMA is false without the amd64 assembly: the pure-Go kernels run.
var useFMA = false

func kernelName() string { return "generic" }

func scoreTilesFMA(out, q, tiles, bias *float32, dim, ntiles int) {
	panic("cache: no assembly kernel on this platform")
}

func prescanF16(out *float32, mask *uint32, q *float32, h *uint16, scale *float32, bias *float32, th float32, dim int, ntiles int) {
	panic("cache: no assembly kernel on this platform")
}
