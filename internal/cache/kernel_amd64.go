//go:build amd64 && !noasm

package cache

import "golang.org/x/sys/cpu"

// useFMA selects the assembly kernels (AVX2 + FMA; the int16 pre-scan is
// AVX2 alone), detected once at start; x/sys/cpu also checks that the OS
// saves the YMM state. Tests switch it off to run the pure-Go kernels on the
// same data.
var useFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// useVNNI selects prescanI4VNNI for the 4-bit copy (VPDPBUSD on YMM:
// AVX512-VNNI and AVX512VL, which x/sys/cpu reports only when the OS saves
// the AVX-512 state); tests switch it off to run prescanI4 on the same data.
var useVNNI = useFMA && cpu.X86.HasAVX512VNNI && cpu.X86.HasAVX512VL

// useZMM selects prescanZ for the int16 and int8 copies
// (VPDPWSSD on ZMM: AVX512F, AVX512BW and AVX512-VNNI); tests switch it off
// to run prescanI16 and prescanI8 on the same data.
var useZMM = useVNNI && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW

// kernelName names the kernel in use (for benchmarks and logs).
func kernelName() string {
	if useFMA {
		return "avx2-fma"
	}
	return "generic"
}

// scoreTilesFMA is scoreTilesGeneric in AVX2 + FMA assembly. bias may be nil.
//
//go:noescape
func scoreTilesFMA(out, q, tiles, bias *float32, dim, ntiles int)

// prescanI16 is the int16 pre-scan (prescan.go) over ntiles tiles. bias may
// be nil.
//
//go:noescape
func prescanI16(out *float32, mask *uint32, z *uint32, h *int16, scale *float32, bias *float32, sq float32, th float32, pairs int, ntiles int)

// prescanI8 is prescanI16 over the int8 copy (each 16 bytes sign-extended
// to 16 int16 by VPMOVSXBW before the same VPMADDWD). bias may be nil.
//
//go:noescape
func prescanI8(out *float32, mask *uint32, z *uint32, h *int8, scale *float32, bias *float32, sq float32, th float32, pairs int, ntiles int)

// prescanI4 is the 4-bit pre-scan (prescan4.go) over ntiles tiles: z is the
// int8 query, 4 to a word, off = 8 sum_j z_j; scale and bias are float16
// (VCVTPH2PS); the mask bit is set when
// approx + (evq sigma cb + ca) >= th (scan4). bias may be nil.
//
//go:noescape
func prescanI4(out *float32, mask *uint32, z *uint32, h *byte, scale *uint16, bias *uint16, evq *uint8, sq, th, cb, ca float32, blocks int, ntiles int, off int)

// prefetchRows prefetches (PREFETCHT0) the rowBytes bytes of each of the n
// rows listed in rows of the row-major array at base.
//
//go:noescape
func prefetchRows(base *float32, rows *int32, n int, rowBytes int)

// prescanI4VNNI is prescanI4 with VPDPBUSD: the same integers, the same
// results bit for bit.
//
//go:noescape
func prescanI4VNNI(out *float32, mask *uint32, z *uint32, h *byte, scale *uint16, bias *uint16, evq *uint8, sq, th, cb, ca float32, blocks int, ntiles int, off int)

// tileMax writes the largest of each tile's 32 values of out into maxes
// (prescan2.go; out holds no NaN).
//
//go:noescape
func tileMax(out *float32, maxes *float32, ntiles int)

// maskAbove sets bit c of masks[t] when out[t*32+c] >= th (prescan2.go).
//
//go:noescape
func maskAbove(out *float32, masks *uint32, th float32, ntiles int)

// prescanZ is prescanI16 (bits 16, h the int16 copy) or prescanI8 (bits 8,
// h the int8 copy) on ZMM with VPDPWSSD: the same integers, the same
// results bit for bit.
//
//go:noescape
func prescanZ(out *float32, mask *uint32, z *uint32, h *byte, scale *float32, bias *float32, sq float32, th float32, pairs int, ntiles int, bits int)
