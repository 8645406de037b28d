//go:build amd64 && !noasm

#include "textflag.h"

// func gemm4x8FMA(k int, a *float64, ars, acs int, b *float64, ldb int, c *float64, ldc int)
//
// C[i][j] += sum_p A(i, p) B[p][j] for i < 4, j < 8, where A(i, p) is
// a[i*ars + p*acs] and B, C are row-major with leading dimensions ldb, ldc
// (all strides in elements). Eight accumulators Y0-Y7 (row i in Y(2i),
// Y(2i+1)); each step p loads B's row p once and broadcasts A's column p.
TEXT ·gemm4x8FMA(SB), NOSPLIT, $0-64
	MOVQ k+0(FP), R9
	MOVQ a+8(FP), AX
	MOVQ ars+16(FP), BX
	MOVQ acs+24(FP), CX
	MOVQ b+32(FP), DX
	MOVQ ldb+40(FP), SI
	MOVQ c+48(FP), DI
	MOVQ ldc+56(FP), R8
	SHLQ $3, BX
	SHLQ $3, CX
	SHLQ $3, SI
	SHLQ $3, R8
	LEAQ (BX)(BX*2), R10
	LEAQ (R8)(R8*2), R11
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	TESTQ R9, R9
	JLE   store

loop:
	VMOVUPD      (DX), Y8
	VMOVUPD      32(DX), Y9
	VBROADCASTSD (AX), Y10
	VFMADD231PD  Y8, Y10, Y0
	VFMADD231PD  Y9, Y10, Y1
	VBROADCASTSD (AX)(BX*1), Y11
	VFMADD231PD  Y8, Y11, Y2
	VFMADD231PD  Y9, Y11, Y3
	VBROADCASTSD (AX)(BX*2), Y12
	VFMADD231PD  Y8, Y12, Y4
	VFMADD231PD  Y9, Y12, Y5
	VBROADCASTSD (AX)(R10*1), Y13
	VFMADD231PD  Y8, Y13, Y6
	VFMADD231PD  Y9, Y13, Y7
	ADDQ         CX, AX
	ADDQ         SI, DX
	DECQ         R9
	JNZ          loop

store:
	VADDPD  (DI), Y0, Y0
	VADDPD  32(DI), Y1, Y1
	VMOVUPD Y0, (DI)
	VMOVUPD Y1, 32(DI)
	VADDPD  (DI)(R8*1), Y2, Y2
	VADDPD  32(DI)(R8*1), Y3, Y3
	VMOVUPD Y2, (DI)(R8*1)
	VMOVUPD Y3, 32(DI)(R8*1)
	VADDPD  (DI)(R8*2), Y4, Y4
	VADDPD  32(DI)(R8*2), Y5, Y5
	VMOVUPD Y4, (DI)(R8*2)
	VMOVUPD Y5, 32(DI)(R8*2)
	VADDPD  (DI)(R11*1), Y6, Y6
	VADDPD  32(DI)(R11*1), Y7, Y7
	VMOVUPD Y6, (DI)(R11*1)
	VMOVUPD Y7, 32(DI)(R11*1)
	VZEROUPPER
	RET

// func gemm1x8FMA(k int, a *float64, acs int, b *float64, ldb int, c *float64)
//
// gemm4x8FMA for one row: c[j] += sum_p a[p*acs] B[p][j], j < 8.
TEXT ·gemm1x8FMA(SB), NOSPLIT, $0-48
	MOVQ k+0(FP), R9
	MOVQ a+8(FP), AX
	MOVQ acs+16(FP), CX
	MOVQ b+24(FP), DX
	MOVQ ldb+32(FP), SI
	MOVQ c+40(FP), DI
	SHLQ $3, CX
	SHLQ $3, SI
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	TESTQ  R9, R9
	JLE    store1

loop1:
	VBROADCASTSD (AX), Y10
	VFMADD231PD  (DX), Y10, Y0
	VFMADD231PD  32(DX), Y10, Y1
	ADDQ         CX, AX
	ADDQ         SI, DX
	DECQ         R9
	JNZ          loop1

store1:
	VADDPD  (DI), Y0, Y0
	VADDPD  32(DI), Y1, Y1
	VMOVUPD Y0, (DI)
	VMOVUPD Y1, 32(DI)
	VZEROUPPER
	RET
