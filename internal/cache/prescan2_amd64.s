//go:build amd64 && !noasm

#include "textflag.h"

// The two helpers of the two-pass pre-scan (prescan2.go), AVX.

// func tileMax(out *float32, maxes *float32, ntiles int)
TEXT ·tileMax(SB), NOSPLIT, $0-24
	MOVQ out+0(FP), SI
	MOVQ maxes+8(FP), DI
	MOVQ ntiles+16(FP), CX
	TESTQ CX, CX
	JLE  tmdone

tmloop:
	VMOVUPS (SI), Y0
	VMAXPS  32(SI), Y0, Y0
	VMOVUPS 64(SI), Y1
	VMAXPS  96(SI), Y1, Y1
	VMAXPS  Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS  X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS  X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS  X1, X0, X0
	VMOVSS  X0, (DI)
	ADDQ $128, SI
	ADDQ $4, DI
	DECQ CX
	JNZ  tmloop
	VZEROUPPER

tmdone:
	RET

// func maskAbove(out *float32, masks *uint32, th float32, ntiles int)
TEXT ·maskAbove(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), SI
	MOVQ masks+8(FP), DI
	VBROADCASTSS th+16(FP), Y15
	MOVQ ntiles+24(FP), R9
	TESTQ R9, R9
	JLE  madone

maloop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
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
	MOVL AX, (DI)
	ADDQ $4, DI
	ADDQ $128, SI
	DECQ R9
	JNZ  maloop
	VZEROUPPER

madone:
	RET
