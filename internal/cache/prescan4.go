package cache

import "math"

// The 4-bit copy: for the largest catalogues (prescanWidth), where the scan
// is bound by memory bandwidth, a copy of half the bytes of the int8 one
// (1M x 64, per query: 32 MB of codes, 2 MB of float16 scales, 2 MB of
// float16 biases and 1 MB of error bytes, where int8 reads 64 + 4 + 4 MB).
//
// # Quantisation and layout
//
// Row r: sigma_r = max_j |v_rj| / 7 rounded up to a float16 (a row whose
// sigma_r is beyond 65504, or a bias beyond it, makes buildPrescan build
// int8 instead), w_rj =
// round(v_rj / sigma_r) in [-7, 7], stored as the nibble u_rj = w_rj + 8 in
// [1, 15] (8 for a padding coordinate or row). The query: sigma_q = max_j
// |q_j| / 127 rounded up, z_j = round(q_j / sigma_q) in [-127, 127] (int8).
// Coordinates go in blocks of 8 (d8 = d rounded up to 8, z_j = 0 on the
// padding); in tile t, block k, row group g (rows 32t+8g .. +7), row i, byte
// j < 4: h4[((t*K + k)*4 + g)*32 + 4i + j] = u[8k+j] | u[8k+4+j] << 4, K =
// d8/8. One 32-byte load is 8 rows x 8 coordinates: its low nibbles times
// the broadcast query bytes z[8k..8k+3] and its high nibbles times
// z[8k+4..8k+7] by VPMADDUBSW (unsigned x signed bytes, adjacent products
// summed into int16: |.| <= 2*15*127 = 3810, no saturation), the two added
// into an int16 accumulator per row group (2*3810 per block, so 4 blocks,
// 30,480, stay below 2^15 exactly), widened every 4 blocks by VPMADDWD with
// ones into int32 (two int16 lanes per row, the row's lane of 8). The kernel
// gets U_r = sum_j u_rj z_j and subtracts off = 8 sum_j z_j: S_r = sum_j
// w_rj z_j exactly (|U_r| <= 15*127 d8, far inside int32). approx_r is then
// the same float32 expression as for int8 and int16, with the float16
// values of sigma_r (exact in float32) and of the bias: b16_r, b_r rounded
// to the nearest float16, |b16_r - b_r| <= 2^-11 |b_r| + 2^-25.
//
// # The error bound
//
// With q^ = sigma_q z, v^ = sigma_r w_r, the row's error e_r = v_r - v^
// and the query's e_q = q - q^: q.v_r - q^.v^ = e_q.v^ + q.e_r, so by
// Cauchy-Schwarz |q.v_r - q^.v^| <= |e_q| |v^| + qn |e_r|, with |v^| <= n_r
// + |e_r|. The copy stores ev_r >= |e_r|_2 per row (computed in float64
// from the stored w and sigma_r, inflated by 1e-12 relative and rounded up
// to a float32); the query's eq >= |e_q|_2 likewise per call. This is
// tighter than the worst-case (sigma/2) sqrt(d) terms of the int8 and int16
// bound (it uses the rounding errors the row actually has, on average
// sqrt(1/3) of the worst case), which matters at 7 levels a side. The
// other two terms are those of prescan.go: the exact kernel's rounding g
// (qn n_r + |b_r|) and the pre-scan's four float32 roundings 4u (|q^.v^| +
// |b16_r|) with |q^.v^| <= |q^| |v^| <= (qn + eq)(n_r + ev_r), plus the
// subnormal terms, plus |b16_r - b_r| for the float16 bias. So
//
//	E_r = (eq + 4u(qn+eq) + g qn) n_r + (eq + qn + 4u(qn+eq)) ev_r
//	    + (4u(1 + 2^-10) + g + 2^-11) |b_r| + (d+5) 2^-149 + 2^-23,
//	    times (1 + 1e-6),
//
// the linear form of errCoef in (n_r, ev_r, |b_r|): errv holds ev_r where
// the int8 and int16 copies hold sigma_r. The overflow conditions are those
// of quantQuery; the 1e-6 inflation covers the float64 evaluation (as
// there). The proof that the re-ranked result is the exact top-K is the
// one on topKPrescan, which only needs |approx_r - exact_r| <= E_r.

// buildPrescan4 fills p (bits 4) from row-major vecs.
func buildPrescan4(p *prescanIndex, vecs, biases []float32, n, dim, ntiles int) bool {
	kb := (dim + 7) / 8
	p.scale16 = make([]uint16, ntiles*tileRows)
	p.bias16 = make([]uint16, ntiles*tileRows)
	for r, b := range biases {
		h, ok := f16Nearest(b)
		if !ok {
			return false // a bias beyond float16: the caller builds int8
		}
		p.bias16[r] = h
	}
	p.blocks = kb
	p.h4 = make([]byte, ntiles*kb*tileRows*4)
	for i := range p.h4 {
		p.h4[i] = 0x88 // w = 0 in both nibbles: padding rows and coordinates
	}
	for r := range n {
		row := vecs[r*dim : (r+1)*dim]
		mx, ss := absMaxSq(row)
		p.norm[r] = upF32(math.Sqrt(ss) * (1 + 1e-12))
		p.vmax = max(p.vmax, float64(p.norm[r]))
		if r < len(biases) {
			p.bmax = max(p.bmax, math.Abs(float64(biases[r])))
		}
		if mx == 0 {
			continue // w = 0, sigma = 0, e = 0: exact
		}
		s, ok := f16Up(mx / 7)
		if !ok {
			return false // sigma_r beyond float16: the caller builds int8
		}
		p.scale[r], p.scale16[r] = f16Float(s), s
		t, c := r/tileRows, r%tileRows
		var es float64
		sf := float64(p.scale[r])
		for j, v := range row {
			w := math.RoundToEven(float64(v) / sf)
			e := float64(v) - w*sf
			es += e * e
			k, jj := j/8, j%8
			at := ((t*kb+k)*4+c/8)*32 + (c%8)*4 + jj%4
			if jj < 4 {
				p.h4[at] = p.h4[at]&0xf0 | byte(int(w)+8)
			} else {
				p.h4[at] = p.h4[at]&0x0f | byte(int(w)+8)<<4
			}
		}
		p.errv[r] = upF32(math.Sqrt(es) * (1 + 1e-12))
		p.smax = max(p.smax, float64(p.errv[r]))
		p.evf = max(p.evf, float64(p.errv[r])/sf)
	}
	// evq_r = ceil(ev_r / (sigma_r F)) <= 255 with F = max_r(ev_r /
	// sigma_r) / 255 (at most sqrt(d)/2 / 255), checked in float64 so that
	// evq_r sigma_r F >= ev_r.
	p.evf = p.evf / 255 * (1 + 1e-9)
	p.evq = make([]uint8, ntiles*tileRows)
	for r := range n {
		if p.scale[r] == 0 {
			continue
		}
		sf := float64(p.scale[r]) * p.evf
		q := min(255, math.Ceil(float64(p.errv[r])/sf))
		for q < 255 && q*sf < float64(p.errv[r]) {
			q++
		}
		if q*sf < float64(p.errv[r]) {
			panic("cache: 4-bit error byte out of range")
		}
		p.evq[r] = uint8(q)
	}
	return true
}

// f16Up returns the float16 (bits) of the smallest float16 >= v (v > 0),
// or false beyond the largest (65504).
func f16Up(v float64) (uint16, bool) {
	return f16Round(v, math.Ceil)
}

// f16Nearest returns b rounded to the nearest float16 (ties to even), or
// false beyond 65504 in magnitude.
func f16Nearest(b float32) (uint16, bool) {
	h, ok := f16Round(math.Abs(float64(b)), math.RoundToEven)
	if b < 0 {
		h |= 0x8000
	}
	return h, ok
}

// f16Round rounds v >= 0 to a float16 by round (math.Ceil or
// math.RoundToEven applied to v in units of the float16 spacing at v, an
// exact scaling by a power of two) and encodes it.
func f16Round(v float64, round func(float64) float64) (uint16, bool) {
	if v == 0 {
		return 0, true
	}
	e := max(math.Ilogb(v), -14) // subnormals: the spacing of 2^-14
	m := round(math.Ldexp(v, 10-e))
	if m >= 2048 { // rounded up to the next binade
		m, e = m/2, e+1
	}
	if e > 15 || m > 2047 {
		return 0, false
	}
	if m < 1024 { // subnormal (e = -14)
		return uint16(m), true
	}
	return uint16(e+15)<<10 | uint16(m-1024), true
}

// f16Float decodes a float16 (exact in float32), as VCVTPH2PS does.
func f16Float(h uint16) float32 {
	if e := h >> 10 & 0x1f; e != 0 && e != 0x1f { // normal: rebias the exponent
		return math.Float32frombits(uint32(h&0x8000)<<16 | (uint32(h&0x7fff)<<13 + (127-15)<<23))
	}
	m, e := float64(h&0x3ff), int(h>>10&0x1f)
	var v float64
	if e == 0 {
		v = math.Ldexp(m, -24)
	} else {
		v = math.Ldexp(1024+m, e-25)
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return float32(v)
}

// maskCoef returns the float32 coefficients (cb, ca) of the 4-bit kernel's
// own filter: it sets a row's mask bit when fl(approx_r + fl(fl(evq_r
// sigma_r) cb + ca)) >= th = f32floor(lim). E'_r = evq_r sigma_r cb + ca is
// >= E_r (ev_r <= evq_r sigma_r F, n_r <= vmax, |b_r| <= bmax), with cb
// and ca inflated by 1e-5 relative (more than the three float32 roundings
// of the kernel's E'_r, 3u) and ca raised by the absolute error of a
// subnormal product (2^-149 cb + 2^-148); so the kernel's E'_r >= E_r, and
// approx_r + E_r >= lim implies fl(approx_r + E'_r) >= fl(lim) >= th
// (rounding is monotone): the mask keeps every row the exact filter would.
func (p *prescanIndex) maskCoef(e *errCoef) (float32, float32) {
	cb := e.s * p.evf * (1 + 1e-6) * (1 + 1e-5)
	ca := (e.a*p.vmax+e.b*p.bmax+e.c)*(1+1e-6)*(1+1e-5) + cb*0x1p-149 + 0x1p-148
	return upF32(cb), upF32(ca)
}

// upF32 returns the smallest float32 >= v (v >= 0 finite).
func upF32(v float64) float32 {
	f := float32(v)
	if float64(f) < v {
		f = math.Nextafter32(f, float32(math.Inf(1)))
	}
	return f
}

// w4 returns w of row r, coordinate j of the 4-bit copy.
func (p *prescanIndex) w4(r, j int) int64 {
	t, c, k, jj := r/tileRows, r%tileRows, j/8, j%8
	b := p.h4[((t*p.blocks+k)*4+c/8)*32+(c%8)*4+jj%4]
	if jj >= 4 {
		b >>= 4
	}
	return int64(b&0x0f) - 8
}

// quantQuery4 is quantQuery for the 4-bit copy: z holds the int8 query, 4
// to a word (2*blocks words), then off = 8 sum_j z_j.
func (p *prescanIndex) quantQuery4(z []uint32, q []float32, useBias bool) (errCoef, float32, bool) {
	mx, qn, ok := p.queryNorm(q)
	d := float64(len(q))
	if !ok {
		return errCoef{}, 0, false // also NaN and Inf
	}
	sq := upScale(mx, 127)
	clear(z)
	var es float64
	var sum int64
	for j, v := range q {
		w := math.RoundToEven(float64(v) / float64(sq))
		e := float64(v) - w*float64(sq)
		es += e * e
		sum += int64(w)
		z[j/4] |= uint32(uint8(int8(w))) << (8 * (j % 4))
	}
	z[2*p.blocks] = uint32(int32(8 * sum))
	eq := math.Sqrt(es) * (1 + 1e-12)
	const u = 1.0 / (1 << 24)
	m := float64((len(q) + 1) / 2)
	g := (m + 2) * u / (1 - (m+2)*u)
	arith := 4 * u * (qn + eq)
	e := errCoef{
		a: eq + arith + g*qn,
		s: eq + qn + arith,
		c: (d + 5) * 0x1p-149,
	}
	if useBias {
		// The kernel adds the bias rounded to float16, |b16 - b| <= 2^-11
		// |b| + 2^-25: that, and 4u |b16| <= 4u (1 + 2^-10) |b| + 2^-24.
		e.b = 4*u*(1+0x1p-10) + g + 0x1p-11
		e.c += 0x1p-23
	}
	return e, sq, true
}
