//go:build !amd64 || noasm

package cache

// useFMA is false without the amd64 assembly: the pure-Go kernels run.
var useFMA = false

func kernelName() string { return "generic" }

func scoreTilesFMA(out, q, tiles, bias *float32, dim, ntiles int) {
	panic("cache: no assembly kernel on this platform")
}
