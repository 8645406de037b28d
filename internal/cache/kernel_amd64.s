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


// func prescanI16(out *float32, mask *uint32, z *uint32, h *int16, scale *float32, bias *float32, sq float32, th float32, pairs int, ntiles int)
//
// The int16 pre-scan (prescan.go): per tile of 32 rows, per coordinate pair
// p, VPMADDWD of the 32 rows' pairs (128 bytes) with the broadcast query
// pair, summed exactly in int32 accumulators (Y0-Y3 even pairs, Y4-Y7 odd
// pairs); then out = ((float32(S) * scale) * sq) [+ bias], and mask bit c
// set when out[c] >= th (ordered: never for NaN).
TEXT ·prescanI16(SB), NOSPLIT, $0-72
	MOVQ out+0(FP), DI
	MOVQ mask+8(FP), R12
	MOVQ z+16(FP), SI
	MOVQ h+24(FP), DX
	MOVQ scale+32(FP), R13
	MOVQ bias+40(FP), BX
	VBROADCASTSS sq+48(FP), Y14
	VBROADCASTSS th+52(FP), Y15
	MOVQ pairs+56(FP), R8
	MOVQ ntiles+64(FP), R9
	TESTQ R9, R9
	JLE  pdone

ptile:
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7
	MOVQ SI, R10
	MOVQ R8, R11
	SHRQ $1, R11
	JZ   pone

ptwo:
	VPBROADCASTD (R10), Y8
	VPBROADCASTD 4(R10), Y9
	VPMADDWD (DX), Y8, Y10
	VPMADDWD 32(DX), Y8, Y11
	VPMADDWD 64(DX), Y8, Y12
	VPMADDWD 96(DX), Y8, Y13
	VPADDD Y10, Y0, Y0
	VPADDD Y11, Y1, Y1
	VPADDD Y12, Y2, Y2
	VPADDD Y13, Y3, Y3
	VPMADDWD 128(DX), Y9, Y10
	VPMADDWD 160(DX), Y9, Y11
	VPMADDWD 192(DX), Y9, Y12
	VPMADDWD 224(DX), Y9, Y13
	VPADDD Y10, Y4, Y4
	VPADDD Y11, Y5, Y5
	VPADDD Y12, Y6, Y6
	VPADDD Y13, Y7, Y7
	ADDQ $8, R10
	ADDQ $256, DX
	DECQ R11
	JNZ  ptwo

pone:
	TESTQ $1, R8
	JZ    psum
	VPBROADCASTD (R10), Y8
	VPMADDWD (DX), Y8, Y10
	VPMADDWD 32(DX), Y8, Y11
	VPMADDWD 64(DX), Y8, Y12
	VPMADDWD 96(DX), Y8, Y13
	VPADDD Y10, Y0, Y0
	VPADDD Y11, Y1, Y1
	VPADDD Y12, Y2, Y2
	VPADDD Y13, Y3, Y3
	ADDQ $128, DX

psum:
	VPADDD Y4, Y0, Y0
	VPADDD Y5, Y1, Y1
	VPADDD Y6, Y2, Y2
	VPADDD Y7, Y3, Y3
	VCVTDQ2PS Y0, Y0
	VCVTDQ2PS Y1, Y1
	VCVTDQ2PS Y2, Y2
	VCVTDQ2PS Y3, Y3
	VMULPS (R13), Y0, Y0
	VMULPS 32(R13), Y1, Y1
	VMULPS 64(R13), Y2, Y2
	VMULPS 96(R13), Y3, Y3
	ADDQ $128, R13
	VMULPS Y14, Y0, Y0
	VMULPS Y14, Y1, Y1
	VMULPS Y14, Y2, Y2
	VMULPS Y14, Y3, Y3
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
