//go:build amd64 && !noasm

#include "textflag.h"

// func scoreTilesFMA(out, q, tiles, bias *float32, dim, ntiles int)
//
// For each tile of 32 rows (layout in kernel.go): eight accumulators, Y0-Y3
// for the even steps j (a0 of rows 0-7, 8-15, 16-23, 24-31) and Y4-Y7 for
// the odd steps (a1); then out = (a0 + a1) [+ bias]. The same operations in
// the same order as scoreTilesGeneric.
TEXT ·scoreTilesFMA(SB), NOSPLIT, $0-48
	MOVQ out+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ tiles+16(FP), DX
	MOVQ bias+24(FP), BX
	MOVQ dim+32(FP), R8
	MOVQ ntiles+40(FP), R9
	TESTQ R9, R9
	JLE  done

tile:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ SI, R10
	MOVQ R8, R11
	SHRQ $1, R11
	JZ   odd

pair:
	VBROADCASTSS (R10), Y8
	VBROADCASTSS 4(R10), Y9
	VFMADD231PS (DX), Y8, Y0
	VFMADD231PS 32(DX), Y8, Y1
	VFMADD231PS 64(DX), Y8, Y2
	VFMADD231PS 96(DX), Y8, Y3
	VFMADD231PS 128(DX), Y9, Y4
	VFMADD231PS 160(DX), Y9, Y5
	VFMADD231PS 192(DX), Y9, Y6
	VFMADD231PS 224(DX), Y9, Y7
	ADDQ $8, R10
	ADDQ $256, DX
	DECQ R11
	JNZ  pair

odd:
	TESTQ $1, R8
	JZ    sum
	VBROADCASTSS (R10), Y8
	VFMADD231PS (DX), Y8, Y0
	VFMADD231PS 32(DX), Y8, Y1
	VFMADD231PS 64(DX), Y8, Y2
	VFMADD231PS 96(DX), Y8, Y3
	ADDQ $128, DX

sum:
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	TESTQ BX, BX
	JZ    store
	VADDPS (BX), Y0, Y0
	VADDPS 32(BX), Y1, Y1
	VADDPS 64(BX), Y2, Y2
	VADDPS 96(BX), Y3, Y3
	ADDQ $128, BX

store:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	DECQ R9
	JNZ  tile
	VZEROUPPER

done:
	RET

// func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL sub+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func prescanF16(out *float32, mask *uint32, q *float32, h *uint16, scale *float32, bias *float32, th float32, dim int, ntiles int)
//
// The float16 pre-scan (prescan.go): per tile, the kernel's two FMA chains
// over the halves converted by VCVTPH2PS, then out = ((a0 + a1) * scale)
// [+ bias], and mask bit c set when out[c] >= th (ordered: never for NaN).
TEXT ·prescanF16(SB), NOSPLIT, $0-72
	MOVQ out+0(FP), DI
	MOVQ mask+8(FP), R12
	MOVQ q+16(FP), SI
	MOVQ h+24(FP), DX
	MOVQ scale+32(FP), R13
	MOVQ bias+40(FP), BX
	VBROADCASTSS th+48(FP), Y15
	MOVQ dim+56(FP), R8
	MOVQ ntiles+64(FP), R9
	TESTQ R9, R9
	JLE  pdone

ptile:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ SI, R10
	MOVQ R8, R11
	SHRQ $1, R11
	JZ   podd

ppair:
	VBROADCASTSS (R10), Y8
	VBROADCASTSS 4(R10), Y9
	VCVTPH2PS (DX), Y10
	VCVTPH2PS 16(DX), Y11
	VCVTPH2PS 32(DX), Y12
	VCVTPH2PS 48(DX), Y13
	VFMADD231PS Y10, Y8, Y0
	VFMADD231PS Y11, Y8, Y1
	VFMADD231PS Y12, Y8, Y2
	VFMADD231PS Y13, Y8, Y3
	VCVTPH2PS 64(DX), Y10
	VCVTPH2PS 80(DX), Y11
	VCVTPH2PS 96(DX), Y12
	VCVTPH2PS 112(DX), Y13
	VFMADD231PS Y10, Y9, Y4
	VFMADD231PS Y11, Y9, Y5
	VFMADD231PS Y12, Y9, Y6
	VFMADD231PS Y13, Y9, Y7
	ADDQ $8, R10
	ADDQ $128, DX
	DECQ R11
	JNZ  ppair

podd:
	TESTQ $1, R8
	JZ    psum
	VBROADCASTSS (R10), Y8
	VCVTPH2PS (DX), Y10
	VCVTPH2PS 16(DX), Y11
	VCVTPH2PS 32(DX), Y12
	VCVTPH2PS 48(DX), Y13
	VFMADD231PS Y10, Y8, Y0
	VFMADD231PS Y11, Y8, Y1
	VFMADD231PS Y12, Y8, Y2
	VFMADD231PS Y13, Y8, Y3
	ADDQ $64, DX

psum:
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	VMULPS (R13), Y0, Y0
	VMULPS 32(R13), Y1, Y1
	VMULPS 64(R13), Y2, Y2
	VMULPS 96(R13), Y3, Y3
	ADDQ $128, R13
	TESTQ BX, BX
	JZ    pstore
	VADDPS (BX), Y0, Y0
	VADDPS 32(BX), Y1, Y1
	VADDPS 64(BX), Y2, Y2
	VADDPS 96(BX), Y3, Y3
	ADDQ $128, BX

pstore:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VCMPPS $0x1d, Y15, Y0, Y10
	VCMPPS $0x1d, Y15, Y1, Y11
	VCMPPS $0x1d, Y15, Y2, Y12
	VCMPPS $0x1d, Y15, Y3, Y13
	VMOVMSKPS Y10, AX
	VMOVMSKPS Y11, CX
	SHLL $8, CX
	ORL  CX, AX
	VMOVMSKPS Y12, CX
	SHLL $16, CX
	ORL  CX, AX
	VMOVMSKPS Y13, CX
	SHLL $24, CX
	ORL  CX, AX
	MOVL AX, (R12)
	ADDQ $4, R12
	ADDQ $128, DI
	DECQ R9
	JNZ  ptile
	VZEROUPPER

pdone:
	RET
