package cache

// dot returns the inner product of a and b[:len(a)], in float32 with four
// independent accumulators (unrolled by 8) so that the adds pipeline.
func dot(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i <= n-8; i += 8 {
		x := a[i : i+8 : i+8]
		y := b[i : i+8 : i+8]
		s0 += x[0]*y[0] + x[4]*y[4]
		s1 += x[1]*y[1] + x[5]*y[5]
		s2 += x[2]*y[2] + x[6]*y[6]
		s3 += x[3]*y[3] + x[7]*y[7]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// dot4 returns the inner products of q with four rows of len(q) each, sharing
// the loads of q. Each result is computed exactly as dot would compute it
// (same association order), so dot4 and dot agree bit for bit.
func dot4(q, r0, r1, r2, r3 []float32) (d0, d1, d2, d3 float32) {
	n := len(q)
	r0, r1, r2, r3 = r0[:n], r1[:n], r2[:n], r3[:n]
	var a0, a1, a2, a3 float32 // row 0
	var b0, b1, b2, b3 float32 // row 1
	var c0, c1, c2, c3 float32 // row 2
	var e0, e1, e2, e3 float32 // row 3
	i := 0
	for ; i <= n-8; i += 8 {
		x := q[i : i+8 : i+8]
		y0 := r0[i : i+8 : i+8]
		y1 := r1[i : i+8 : i+8]
		y2 := r2[i : i+8 : i+8]
		y3 := r3[i : i+8 : i+8]
		a0 += x[0]*y0[0] + x[4]*y0[4]
		a1 += x[1]*y0[1] + x[5]*y0[5]
		a2 += x[2]*y0[2] + x[6]*y0[6]
		a3 += x[3]*y0[3] + x[7]*y0[7]
		b0 += x[0]*y1[0] + x[4]*y1[4]
		b1 += x[1]*y1[1] + x[5]*y1[5]
		b2 += x[2]*y1[2] + x[6]*y1[6]
		b3 += x[3]*y1[3] + x[7]*y1[7]
		c0 += x[0]*y2[0] + x[4]*y2[4]
		c1 += x[1]*y2[1] + x[5]*y2[5]
		c2 += x[2]*y2[2] + x[6]*y2[6]
		c3 += x[3]*y2[3] + x[7]*y2[7]
		e0 += x[0]*y3[0] + x[4]*y3[4]
		e1 += x[1]*y3[1] + x[5]*y3[5]
		e2 += x[2]*y3[2] + x[6]*y3[6]
		e3 += x[3]*y3[3] + x[7]*y3[7]
	}
	for ; i < n; i++ {
		a0 += q[i] * r0[i]
		b0 += q[i] * r1[i]
		c0 += q[i] * r2[i]
		e0 += q[i] * r3[i]
	}
	return (a0 + a1) + (a2 + a3), (b0 + b1) + (b2 + b3), (c0 + c1) + (c2 + c3), (e0 + e1) + (e2 + e3)
}
