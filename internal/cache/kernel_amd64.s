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


// func prescanI8(out *float32, mask *uint32, z *uint32, h *int8, scale *float32, bias *float32, sq float32, th float32, pairs int, ntiles int)
//
// prescanI16 over the int8 copy: each 16 bytes (8 rows x one coordinate
// pair) are sign-extended to 16 int16 (VPMOVSXBW) and multiplied by the
// broadcast query pair as there; a tile's pair step is 64 bytes.
TEXT ·prescanI8(SB), NOSPLIT, $0-72
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
	JLE  qdone

qtile:
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
	JZ   qone

qtwo:
	VPBROADCASTD (R10), Y8
	VPBROADCASTD 4(R10), Y9
	VPMOVSXBW (DX), Y10
	VPMADDWD Y10, Y8, Y10
	VPMOVSXBW 16(DX), Y11
	VPMADDWD Y11, Y8, Y11
	VPMOVSXBW 32(DX), Y12
	VPMADDWD Y12, Y8, Y12
	VPMOVSXBW 48(DX), Y13
	VPMADDWD Y13, Y8, Y13
	VPADDD Y10, Y0, Y0
	VPADDD Y11, Y1, Y1
	VPADDD Y12, Y2, Y2
	VPADDD Y13, Y3, Y3
	VPMOVSXBW 64(DX), Y10
	VPMADDWD Y10, Y9, Y10
	VPMOVSXBW 80(DX), Y11
	VPMADDWD Y11, Y9, Y11
	VPMOVSXBW 96(DX), Y12
	VPMADDWD Y12, Y9, Y12
	VPMOVSXBW 112(DX), Y13
	VPMADDWD Y13, Y9, Y13
	VPADDD Y10, Y4, Y4
	VPADDD Y11, Y5, Y5
	VPADDD Y12, Y6, Y6
	VPADDD Y13, Y7, Y7
	ADDQ $8, R10
	ADDQ $128, DX
	DECQ R11
	JNZ  qtwo

qone:
	TESTQ $1, R8
	JZ    qsum
	VPBROADCASTD (R10), Y8
	VPMOVSXBW (DX), Y10
	VPMADDWD Y10, Y8, Y10
	VPMOVSXBW 16(DX), Y11
	VPMADDWD Y11, Y8, Y11
	VPMOVSXBW 32(DX), Y12
	VPMADDWD Y12, Y8, Y12
	VPMOVSXBW 48(DX), Y13
	VPMADDWD Y13, Y8, Y13
	VPADDD Y10, Y0, Y0
	VPADDD Y11, Y1, Y1
	VPADDD Y12, Y2, Y2
	VPADDD Y13, Y3, Y3
	ADDQ $64, DX

qsum:
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
	JZ    qstore
	VADDPS (BX), Y0, Y0
	VADDPS 32(BX), Y1, Y1
	VADDPS 64(BX), Y2, Y2
	VADDPS 96(BX), Y3, Y3
	ADDQ $128, BX

qstore:
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
	JNZ  qtile
	VZEROUPPER

qdone:
	RET


DATA nibbleMask<>+0(SB)/4, $0x0f0f0f0f
GLOBL nibbleMask<>(SB), RODATA|NOPTR, $4
DATA wordOnes<>+0(SB)/4, $0x00010001
GLOBL wordOnes<>(SB), RODATA|NOPTR, $4

// func prescanI4(out *float32, mask *uint32, z *uint32, h *byte, scale *float32, bias *float32, evq *uint8, sq, th, cb, ca float32, blocks int, ntiles int, off int)
//
// The 4-bit pre-scan (prescan4.go): per tile of 32 rows, per block of 8
// coordinates, one 32-byte load per group of 8 rows; its low and high
// nibbles (VPSRLW + VPAND) times the broadcast query quads by VPMADDUBSW,
// summed into int16 accumulators Y4-Y7 for up to 4 blocks, then widened by
// VPMADDWD with ones into the int32 accumulators Y0-Y3; then S = U - off,
// out = ((float32(S) * scale) * sq) [+ bias] as in prescanI16, and mask
// bit c set when out[c] + fl(fl(evq[c] * scale[c]) * cb + ca) >= th (one
// FMA; ordered, never for NaN).
TEXT ·prescanI4(SB), NOSPLIT, $0-96
	MOVQ out+0(FP), DI
	MOVQ mask+8(FP), R12
	MOVQ z+16(FP), SI
	MOVQ h+24(FP), DX
	MOVQ scale+32(FP), R13
	MOVQ bias+40(FP), BX
	MOVQ evq+48(FP), R14
	VBROADCASTSS sq+56(FP), Y14
	VBROADCASTSS th+60(FP), Y15
	MOVQ blocks+72(FP), R8
	MOVQ ntiles+80(FP), R9
	TESTQ R9, R9
	JLE  fdone

ftile:
	// The constants from memory, per tile (the epilogue reuses Y10, Y11):
	// a legacy-SSE MOVD into an X register here cost more than the rest of
	// a chunk (an SSE instruction with the upper YMM halves dirty: perf
	// showed 60% of the kernel's samples on it).
	VPBROADCASTD nibbleMask<>(SB), Y10
	VPBROADCASTD wordOnes<>(SB), Y11
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	MOVQ SI, R10
	MOVQ R8, R11

fsuper:
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7
	MOVQ $4, CX
	CMPQ R11, $4
	CMOVQLT R11, CX
	SUBQ CX, R11

fblock:
	VPBROADCASTD (R10), Y8
	VPBROADCASTD 4(R10), Y9
	VMOVDQU (DX), Y12
	VPSRLW $4, Y12, Y13
	VPAND Y10, Y12, Y12
	VPAND Y10, Y13, Y13
	VPMADDUBSW Y8, Y12, Y12
	VPMADDUBSW Y9, Y13, Y13
	VPADDW Y12, Y4, Y4
	VPADDW Y13, Y4, Y4
	VMOVDQU 32(DX), Y12
	VPSRLW $4, Y12, Y13
	VPAND Y10, Y12, Y12
	VPAND Y10, Y13, Y13
	VPMADDUBSW Y8, Y12, Y12
	VPMADDUBSW Y9, Y13, Y13
	VPADDW Y12, Y5, Y5
	VPADDW Y13, Y5, Y5
	VMOVDQU 64(DX), Y12
	VPSRLW $4, Y12, Y13
	VPAND Y10, Y12, Y12
	VPAND Y10, Y13, Y13
	VPMADDUBSW Y8, Y12, Y12
	VPMADDUBSW Y9, Y13, Y13
	VPADDW Y12, Y6, Y6
	VPADDW Y13, Y6, Y6
	VMOVDQU 96(DX), Y12
	VPSRLW $4, Y12, Y13
	VPAND Y10, Y12, Y12
	VPAND Y10, Y13, Y13
	VPMADDUBSW Y8, Y12, Y12
	VPMADDUBSW Y9, Y13, Y13
	VPADDW Y12, Y7, Y7
	VPADDW Y13, Y7, Y7
	ADDQ $8, R10
	ADDQ $128, DX
	DECQ CX
	JNZ  fblock
	VPMADDWD Y11, Y4, Y4
	VPMADDWD Y11, Y5, Y5
	VPMADDWD Y11, Y6, Y6
	VPMADDWD Y11, Y7, Y7
	VPADDD Y4, Y0, Y0
	VPADDD Y5, Y1, Y1
	VPADDD Y6, Y2, Y2
	VPADDD Y7, Y3, Y3
	TESTQ R11, R11
	JNZ  fsuper

	VPBROADCASTD off+88(FP), Y12
	VPSUBD Y12, Y0, Y0
	VPSUBD Y12, Y1, Y1
	VPSUBD Y12, Y2, Y2
	VPSUBD Y12, Y3, Y3
	VCVTDQ2PS Y0, Y0
	VCVTDQ2PS Y1, Y1
	VCVTDQ2PS Y2, Y2
	VCVTDQ2PS Y3, Y3
	VMULPS (R13), Y0, Y0
	VMULPS 32(R13), Y1, Y1
	VMULPS 64(R13), Y2, Y2
	VMULPS 96(R13), Y3, Y3
	VMULPS Y14, Y0, Y0
	VMULPS Y14, Y1, Y1
	VMULPS Y14, Y2, Y2
	VMULPS Y14, Y3, Y3
	TESTQ BX, BX
	JZ    fstore
	VADDPS (BX), Y0, Y0
	VADDPS 32(BX), Y1, Y1
	VADDPS 64(BX), Y2, Y2
	VADDPS 96(BX), Y3, Y3
	ADDQ $128, BX

fstore:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	// E' = fl(fl(evq * scale) * cb + ca) per row; the mask of out + E' >= th.
	VBROADCASTSS cb+64(FP), Y10
	VBROADCASTSS ca+68(FP), Y11
	VPMOVZXBD (R14), Y4
	VPMOVZXBD 8(R14), Y5
	VPMOVZXBD 16(R14), Y6
	VPMOVZXBD 24(R14), Y7
	ADDQ $32, R14
	VCVTDQ2PS Y4, Y4
	VCVTDQ2PS Y5, Y5
	VCVTDQ2PS Y6, Y6
	VCVTDQ2PS Y7, Y7
	VMULPS (R13), Y4, Y4
	VMULPS 32(R13), Y5, Y5
	VMULPS 64(R13), Y6, Y6
	VMULPS 96(R13), Y7, Y7
	ADDQ $128, R13
	VFMADD213PS Y11, Y10, Y4
	VFMADD213PS Y11, Y10, Y5
	VFMADD213PS Y11, Y10, Y6
	VFMADD213PS Y11, Y10, Y7
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	VCMPPS $0x1d, Y15, Y0, Y12
	VCMPPS $0x1d, Y15, Y1, Y13
	VCMPPS $0x1d, Y15, Y2, Y8
	VCMPPS $0x1d, Y15, Y3, Y9
	VMOVMSKPS Y12, AX
	VMOVMSKPS Y13, CX
	SHLL $8, CX
	ORL  CX, AX
	VMOVMSKPS Y8, CX
	SHLL $16, CX
	ORL  CX, AX
	VMOVMSKPS Y9, CX
	SHLL $24, CX
	ORL  CX, AX
	MOVL AX, (R12)
	ADDQ $4, R12
	ADDQ $128, DI
	DECQ R9
	JNZ  ftile
	VZEROUPPER

fdone:
	RET


// func prefetchRows(base *float32, rows *int32, n int, rowBytes int)
TEXT ·prefetchRows(SB), NOSPLIT, $0-32
	MOVQ base+0(FP), SI
	MOVQ rows+8(FP), DI
	MOVQ n+16(FP), CX
	MOVQ rowBytes+24(FP), R8
	TESTQ CX, CX
	JLE  pfdone

pfrow:
	MOVLQSX (DI), AX
	IMULQ R8, AX
	ADDQ SI, AX
	MOVQ R8, DX

pfline:
	PREFETCHT0 (AX)
	ADDQ $64, AX
	SUBQ $64, DX
	JG   pfline
	PREFETCHT0 -1(AX)(DX*1)
	ADDQ $4, DI
	DECQ CX
	JNZ  pfrow

pfdone:
	RET
