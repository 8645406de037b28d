//go:build amd64 && !noasm

package cache

import "golang.org/x/sys/cpu"

// useFMA selects the assembly kernels: AVX2 + FMA, and F16C (the float16
// pre-scan's conversions), detected once at start. x/sys/cpu checks that the
// OS saves the YMM state; it has no F16C flag, so that one is read from
// CPUID leaf 1 (ECX bit 29). Tests switch useFMA off to run the pure-Go
// kernels on the same data.
var useFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA && hasF16C()

func hasF16C() bool {
	_, _, c, _ := cpuid(1, 0)
	return c&(1<<29) != 0
}

// cpuid executes CPUID with EAX=leaf, ECX=sub.
//
//go:noescape
func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

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

// prescanF16 is the float16 pre-scan (prescan.go) over ntiles tiles. bias
// may be nil.
//
//go:noescape
func prescanF16(out *float32, mask *uint32, q *float32, h *uint16, scale *float32, bias *float32, th float32, dim int, ntiles int)
