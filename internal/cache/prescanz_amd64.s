//go:build amd64 && !noasm

#include "textflag.h"

// func prescanZ(out *float32, mask *uint32, z *uint32, h *byte, scale *float32, bias *float32, sq float32, th float32, pairs int, ntiles int, bits int)
//
// prescanI16 (bits 16) and prescanI8 (bits 8) on ZMM with VPDPWSSD
// (AVX512F, AVX512BW, AVX512-VNNI): per tile of 32 rows and coordinate pair
// p, one VPDPWSSD per 16 rows multiplies the rows' int16 pairs by the
// broadcast query pair and adds the two products to the row's int32
// accumulator in one instruction (VPMADDWD then VPADDD on YMM); the int8
// rows are sign-extended to int16 by VPMOVSXBW on the way (32 bytes, 16
// rows x one pair, into one ZMM), so a tile's pair step is 128 bytes in
// int16 and 64 in int8. Four chains (pairs mod 4: Z0/Z1, Z2/Z3, Z4/Z5,
// Z6/Z7, rows 0-15 / 16-31) hide the instruction's latency and are added
// at the end: integer sums, exact in int32 (prescan.go), so S_r and every
// float operation after it are those of the YMM kernels, bit for bit.
TEXT ·prescanZ(SB), NOSPLIT, $0-80
	MOVQ out+0(FP), DI
	MOVQ mask+8(FP), R12
	MOVQ z+16(FP), SI
	MOVQ h+24(FP), DX
	MOVQ scale+32(FP), R13
	MOVQ bias+40(FP), BX
	VBROADCASTSS sq+48(FP), Z14
	VBROADCASTSS th+52(FP), Z15
	MOVQ pairs+56(FP), R8
	MOVQ ntiles+64(FP), R9
	MOVQ bits+72(FP), R14
	TESTQ R9, R9
	JLE  zdone

ztile:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	MOVQ SI, R10
	MOVQ R8, R11
	SHRQ $2, R11
	CMPQ R14, $8
	JEQ  etiles
	TESTQ R11, R11
	JZ   zrest

zfour:
	VPBROADCASTD (R10), Z8
	VPBROADCASTD 4(R10), Z9
	VPBROADCASTD 8(R10), Z10
	VPBROADCASTD 12(R10), Z11
	VPDPWSSD (DX), Z8, Z0
	VPDPWSSD 64(DX), Z8, Z1
	VPDPWSSD 128(DX), Z9, Z2
	VPDPWSSD 192(DX), Z9, Z3
	VPDPWSSD 256(DX), Z10, Z4
	VPDPWSSD 320(DX), Z10, Z5
	VPDPWSSD 384(DX), Z11, Z6
	VPDPWSSD 448(DX), Z11, Z7
	ADDQ $16, R10
	ADDQ $512, DX
	DECQ R11
	JNZ  zfour

zrest:
	MOVQ R8, R11
	ANDQ $3, R11
	JZ   zsum

zone:
	VPBROADCASTD (R10), Z8
	VPDPWSSD (DX), Z8, Z0
	VPDPWSSD 64(DX), Z8, Z1
	ADDQ $4, R10
	ADDQ $128, DX
	DECQ R11
	JNZ  zone
	JMP  zsum

etiles:
	TESTQ R11, R11
	JZ   erest

efour:
	VPBROADCASTD (R10), Z8
	VPBROADCASTD 4(R10), Z9
	VPBROADCASTD 8(R10), Z10
	VPBROADCASTD 12(R10), Z11
	VPMOVSXBW (DX), Z16
	VPMOVSXBW 32(DX), Z17
	VPMOVSXBW 64(DX), Z18
	VPMOVSXBW 96(DX), Z19
	VPMOVSXBW 128(DX), Z20
	VPMOVSXBW 160(DX), Z21
	VPMOVSXBW 192(DX), Z22
	VPMOVSXBW 224(DX), Z23
	VPDPWSSD Z16, Z8, Z0
	VPDPWSSD Z17, Z8, Z1
	VPDPWSSD Z18, Z9, Z2
	VPDPWSSD Z19, Z9, Z3
	VPDPWSSD Z20, Z10, Z4
	VPDPWSSD Z21, Z10, Z5
	VPDPWSSD Z22, Z11, Z6
	VPDPWSSD Z23, Z11, Z7
	ADDQ $16, R10
	ADDQ $256, DX
	DECQ R11
	JNZ  efour

erest:
	MOVQ R8, R11
	ANDQ $3, R11
	JZ   zsum

eone:
	VPBROADCASTD (R10), Z8
	VPMOVSXBW (DX), Z16
	VPMOVSXBW 32(DX), Z17
	VPDPWSSD Z16, Z8, Z0
	VPDPWSSD Z17, Z8, Z1
	ADDQ $4, R10
	ADDQ $64, DX
	DECQ R11
	JNZ  eone

zsum:
	VPADDD Z2, Z0, Z0
	VPADDD Z3, Z1, Z1
	VPADDD Z6, Z4, Z4
	VPADDD Z7, Z5, Z5
	VPADDD Z4, Z0, Z0
	VPADDD Z5, Z1, Z1
	VCVTDQ2PS Z0, Z0
	VCVTDQ2PS Z1, Z1
	VMULPS (R13), Z0, Z0
	VMULPS 64(R13), Z1, Z1
	ADDQ $128, R13
	VMULPS Z14, Z0, Z0
	VMULPS Z14, Z1, Z1
	TESTQ BX, BX
	JZ    zstore
	VADDPS (BX), Z0, Z0
	VADDPS 64(BX), Z1, Z1
	ADDQ $128, BX

zstore:
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VCMPPS $0x1d, Z15, Z0, K1
	VCMPPS $0x1d, Z15, Z1, K2
	KMOVW K1, AX
	KMOVW K2, CX
	SHLL $16, CX
	ORL  CX, AX
	MOVL AX, (R12)
	ADDQ $4, R12
	ADDQ $128, DI
	DECQ R9
	JNZ  ztile
	VZEROUPPER

zdone:
	RET
