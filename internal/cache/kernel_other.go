//go:build !amd64 || noasm

package cache

// useFMA is false without the amd64 assembly: the pure-Go kernels run.
var useFMA = false

// useVNNI is false without the amd64 assembly.
var useVNNI = false

// useZMM is false without the amd64 assembly.
var useZMM = false

func kernelName() string { return "generic" }

func scoreTilesFMA(out, q, tiles, bias *float32, dim, ntiles int) {
	panic("cache: no assembly kernel on this platform")
}

func prescanI16(out *float32, mask *uint32, z *uint32, h *int16, scale *float32, bias *float32, sq float32, th float32, pairs int, ntiles int) {
	panic("cache: no assembly kernel on this platform")
}

func prescanI8(out *float32, mask *uint32, z *uint32, h *int8, scale *float32, bias *float32, sq float32, th float32, pairs int, ntiles int) {
	panic("cache: no assembly kernel on this platform")
}

func prescanI4(out *float32, mask *uint32, z *uint32, h *byte, scale *uint16, bias *uint16, evq *uint8, sq, th, cb, ca float32, blocks int, ntiles int, off int) {
	panic("cache: no assembly kernel on this platform")
}

func prefetchRows(base *float32, rows *int32, n int, rowBytes int) {}

func prescanI4VNNI(out *float32, mask *uint32, z *uint32, h *byte, scale *uint16, bias *uint16, evq *uint8, sq, th, cb, ca float32, blocks int, ntiles int, off int) {
	panic("cache: no assembly kernel on this platform")
}

func tileMax(out *float32, maxes *float32, ntiles int) {
	panic("cache: no assembly kernel on this platform")
}

func maskAbove(out *float32, masks *uint32, th float32, ntiles int) {
	panic("cache: no assembly kernel on this platform")
}

func prescanZ(out *float32, mask *uint32, z *uint32, h *byte, scale *float32, bias *float32, sq float32, th float32, pairs int, ntiles int, bits int) {
	panic("cache: no assembly kernel on this platform")
}
