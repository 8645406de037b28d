package cache

import (
	"math"
	"math/bits"
	"unsafe"
)

// The pre-scan: a second copy of the catalogue quantised to int16, int8 or
// 4 bits (prescanWidth: int16 while it fits in L2, 4 bits from 16 MB of
// int8; the 4-bit copy and its bound are in prescan4.go, the rest of this
// comment is about int16 and int8), half or a quarter of the bytes
// of float32 (KuaiRec's
// 10,728 x 64 catalogue is 0.7 MB in int8, 1.4 MB in int16, 2.7 MB in
// float32; 1M x 64 is 64 MB in int8, 128 MB in int16, 256 MB in float32),
// scored with VPMADDWD (16 int16 products summed in pairs into 8 int32
// lanes per instruction; the int8 copy is sign-extended to int16 by
// VPMOVSXBW on the way, no float conversion per element, unlike a float16
// copy, whose VCVTPH2PS per 8 values measured slower than the float32
// kernel from L1). The query is always int16. TopK scans the copy for
// approximate scores, keeps every row whose interval [approx - E_r, approx
// + E_r] can still reach the k-th best lower bound, and re-ranks those
// candidates with the exact float32 kernel. The result is the exact float32
// top-K, bit for bit (the proof is on topKPrescan).
//
// # Quantisation
//
// Row r: sigma_r = max_j |v_rj| / Rv rounded up to a float32, w_rj =
// round(v_rj / sigma_r), so |w_rj| <= Rv. Query: sigma_q likewise from
// max_j |q_j| and Rq, z_j = round(q_j / sigma_q). With d' = d rounded up to
// even: int16 rows have Rv = Rq = min(32767, floor(sqrt((2^31 - 1) / d')));
// int8 rows have Rv = 127 and Rq = min(32767, floor((2^31 - 1) / (127
// d'))). Either way no VPMADDWD pair sum (<= 2 Rv Rq) and no int32
// accumulator (<= d' Rv Rq) overflows: the integer dot product S_r = sum_j
// z_j w_rj is exact. The layout is the tiles of kernel.go with pairs of
// coordinates interleaved, as VPMADDWD wants them: h[((t*P + p)*32 + c)*2 +
// i] = w[32t+c][2p+i], P = d'/2, the odd coordinate of an odd d padded with
// 0 (in the query too); one 16-byte load of the int8 copy is the 8 rows x 2
// coordinates that one 32-byte load of the int16 copy holds.
//
// The approximate score is approx_r = ((float32(S_r) * sigma_r) * sigma_q)
// + b_r in float32.
//
// # The error bound
//
// Notation: u = 2^-24, gamma(n) = n*u / (1 - n*u), m = ceil(d/2), g =
// gamma(m+2), qn = |q|_2, n_r = |v_r|_2 (stored rounded up), dequantised
// vectors q^ = sigma_q z and v^ = sigma_r w_r, so that |q^_j - q_j| <=
// sigma_q/2 and |v^_j - v_rj| <= sigma_r/2 (rounding to the nearest integer;
// the float64 division that precedes it is exact to 2^-53 relative, covered
// by the final inflation), and sigma_q sigma_r S_r = sum_j q^_j v^_j. Rv and
// Rq enter only through sigma_r and sigma_q: the bound below is the same
// for both widths, with the int8 copy's sigma_r about 46x the int16 one's.
//
//  1. The exact kernel (kernel.go): each FMA rounds once, then the two
//     chains are added, then the bias: |exact_r - (q.v_r + b_r)| <= g (qn n_r
//     + |b_r|) (Higham, Accuracy and Stability of Numerical Algorithms, 3.1;
//     sum_j |q_j v_rj| <= qn n_r by Cauchy-Schwarz), plus at most 2^-150 per
//     operation whose result is subnormal.
//  2. Quantisation: |q^.v^ - q.v_r| <= sum |q^_j - q_j| |v^_j| + sum |q_j|
//     |v^_j - v_rj| <= (sigma_q/2)(sqrt(d) n_r + d sigma_r/2) + (sigma_r/2)
//     sqrt(d) qn.
//  3. The pre-scan's float32 arithmetic (a conversion, two products, a sum,
//     each rounding once): |approx_r - (q^.v^ + b_r)| <= 4u (|q^.v^| +
//     |b_r|) + 3 2^-150, and |q^.v^| <= |q^|_2 |v^|_2 <= (qn + sqrt(d)
//     sigma_q/2)(n_r + sqrt(d) sigma_r/2).
//
// So |approx_r - exact_r| <= E_r, the sum of these terms (the bias terms
// only with the bias), evaluated in float64 and inflated by 1e-6 relative
// (which covers the rounding of that evaluation and of the stored n_r and
// sigmas). The bound assumes no overflow: TopK scans exactly unless qn
// sqrt(d) + qn Vmax + Bmax is below 2^100 and Vmax below 2^90 (Vmax, Bmax:
// the largest n_r and |b_r|; float32(S_r) sigma_r <= 2^31 Vmax), and q is
// not all zero. Emax, E_r with the maxima of the index,
// sets the threshold of the kernel's mask, a superset filter.
//
// At dim 64 the row's term is (sigma_r/2) sqrt(d) qn <= (sqrt(d) / 2Rv)
// qn n_r and the query's (sigma_q/2) sqrt(d) n_r <= (sqrt(d) / 2Rq) qn n_r:
// 6.9e-4 each in int16 (Rv = Rq = 5792; 1.4e-3 of qn n_r together), 3.1e-2
// and 1.2e-4 in int8 (Rv = 127, Rq = 32767).

// prescanMinRows is the catalogue size from which TopK uses the pre-scan:
// below it the float32 copy fits in L2 and the exact scan is as fast
// (BenchmarkTopK, kernel=own vs kernel=exact at 3,327 rows).
const prescanMinRows = 6144

// prescanMaxK bounds the k served by the pre-scan (beyond, the exact scan).
const prescanMaxK = 1024

// prescanWidth is the width of the copy NewItemIndex builds for n rows of
// dim: 16 while the int16 copy fits in prescanI16MaxBytes (a core's L2
// here), where the kernel is bound by its instructions and the int8 one's
// extra VPMOVSXBW per 16 values makes it slower (BenchmarkPrescanKernel:
// 39 against 27 us at 10,728 x 64); 8 beyond, where the scan is bound by
// memory bandwidth and the int8 copy reads half the bytes (BenchmarkTopK,
// kernel=own against kernel=int16 at 1M x 64: 7.4 against 12 ms).
// Beyond prescanI8MaxBytes of int8, the 4-bit copy (prescan4.go) reads half
// the bytes again.
//
// With the ZMM kernels (useZMM) the int8 copy is built from prescanMinRows
// up: there prescanZ over int8 is as fast as over int16 from L2 (BenchmarkPrescanKernel:
// 13.5 against 14.7 us at 10,728 x 64), and in the API under load, where
// the copy no longer stays in L2 beside Redis and the load generator, it
// reads half the bytes from L3 (go run ./bench/api with --before-bin: 127
// against 156 us of API CPU per request at saturation; README, "The top-K
// kernel").
func prescanWidth(n, dim int) int {
	switch {
	case useZMM && n*((dim+1)/2)*2 <= prescanI8MaxBytes:
		return 8
	case n*((dim+1)/2)*2*2 <= prescanI16MaxBytes:
		return 16
	case n*((dim+1)/2)*2 <= prescanI8MaxBytes:
		return 8
	}
	return 4
}

// prescanI16MaxBytes is the largest int16 copy built (above it, int8).
const prescanI16MaxBytes = 2 << 20

// prescanI8MaxBytes is the largest int8 copy built (above it, 4 bits).
const prescanI8MaxBytes = 16 << 20

// prescanIndex is the quantised copy of an ItemIndex.
type prescanIndex struct {
	bits  int       // 4, 8 or 16
	h     []int16   // the interleaved tiles (above), 16 bits
	h8    []int8    // the same, 8 bits
	h4    []byte    // the 4-bit tiles (prescan4.go)
	scale []float32 // per row sigma_r, padded with 0
	norm  []float32 // per row |v_r|_2, rounded up
	// errv is the row's second term of E_r: sigma_r (the same slice as
	// scale) for 8 and 16 bits, ev_r >= |e_r|_2 for 4 bits.
	errv   []float32
	pairs  int     // P
	blocks int     // K, 4 bits
	r      float64 // Rv
	rq     float64 // Rq
	vmax   float64
	smax   float64 // the largest errv
	bmax   float64
	// evq and evf, 4 bits: ev_r <= evq_r sigma_r evf (prescan4.go), for the
	// kernel's own filter; scale16 and bias16 are the float16 scales (scale
	// holds their values) and biases the 4-bit kernel reads.
	evq     []uint8
	evf     float64
	scale16 []uint16
	bias16  []uint16
}

// zWords is the length of the quantised query of p's width.
func (p *prescanIndex) zWords() int {
	if p.bits == 4 {
		return 2*p.blocks + 1
	}
	return p.pairs
}

// quantRange returns Rv and Rq for dimension dim and a copy of bits 8 or
// 16.
func quantRange(dim, bits int) (int, int) {
	dp := dim + dim&1
	if bits == 8 {
		return 127, min(32767, (1<<31-1)/(127*dp))
	}
	r := min(32767, int(math.Sqrt(float64(1<<31-1)/float64(dp))))
	return r, r
}

// w returns the quantised coordinate 2pi+i of lane c of tile t.
func (p *prescanIndex) w(t, pi, c, i int) int64 {
	at := ((t*p.pairs+pi)*tileRows+c)*2 + i
	if p.bits == 8 {
		return int64(p.h8[at])
	}
	return int64(p.h[at])
}

// upScale returns the smallest float32 >= mx/r (mx > 0).
func upScale(mx, r float64) float32 {
	s := float32(mx / r)
	if float64(s) < mx/r || s == 0 {
		s = math.Nextafter32(s, float32(math.Inf(1)))
	}
	return s
}

func buildPrescan(vecs, biases []float32, n, dim, ntiles, bits int) *prescanIndex {
	pairs := (dim + 1) / 2
	if bits == 4 {
		p := &prescanIndex{bits: 4, scale: make([]float32, ntiles*tileRows), norm: make([]float32, n),
			errv: make([]float32, ntiles*tileRows), pairs: pairs, r: 7, rq: 127}
		if buildPrescan4(p, vecs, biases, n, dim, ntiles) {
			return p
		}
		bits = 8
	}
	rv, rq := quantRange(dim, bits)
	p := &prescanIndex{bits: bits, scale: make([]float32, ntiles*tileRows),
		norm: make([]float32, n), pairs: pairs, r: float64(rv), rq: float64(rq)}
	p.errv = p.scale
	if bits == 8 {
		p.h8 = make([]int8, ntiles*pairs*tileRows*2)
	} else {
		p.h = make([]int16, ntiles*pairs*tileRows*2)
	}
	for r := range n {
		row := vecs[r*dim : (r+1)*dim]
		mx, ss := absMaxSq(row)
		nr := math.Sqrt(ss) * (1 + 1e-12)
		p.norm[r] = float32(nr)
		if float64(p.norm[r]) < nr {
			p.norm[r] = math.Nextafter32(p.norm[r], float32(math.Inf(1)))
		}
		p.vmax = max(p.vmax, float64(p.norm[r]))
		if r < len(biases) {
			p.bmax = max(p.bmax, math.Abs(float64(biases[r])))
		}
		if mx == 0 {
			continue // w = 0, sigma = 0: exact
		}
		s := upScale(mx, p.r)
		p.scale[r] = s
		p.smax = max(p.smax, float64(s))
		t, c := r/tileRows, r%tileRows
		for j, v := range row {
			w := math.RoundToEven(float64(v) / float64(s))
			if at := ((t*pairs+j/2)*tileRows+c)*2 + j&1; bits == 8 {
				p.h8[at] = int8(w)
			} else {
				p.h[at] = int16(w)
			}
		}
	}
	return p
}

// scan runs the kernel of p's width over ntiles tiles from row lo (a tile
// boundary): approx into out, masks of approx >= th. bias is nil or
// &biasPad[lo].
func (p *prescanIndex) scan(out []float32, masks, z []uint32, lo int, bias *float32, sq, th float32, ntiles int) {
	_ = out[ntiles*tileRows-1]
	_ = masks[ntiles-1]
	_ = z[p.zWords()-1]
	_ = p.scale[lo+ntiles*tileRows-1]
	if p.bits == 4 {
		p.scan4(out, masks, z, lo, bias, sq, th, 0, 0, ntiles)
		return
	}
	if p.bits == 8 {
		_ = p.h8[(lo+ntiles*tileRows)*p.pairs*2-1]
		if useZMM {
			prescanZ(&out[0], &masks[0], &z[0], (*byte)(unsafe.Pointer(&p.h8[lo*p.pairs*2])), &p.scale[lo], bias, sq, th, p.pairs, ntiles, 8)
			return
		}
		prescanI8(&out[0], &masks[0], &z[0], &p.h8[lo*p.pairs*2], &p.scale[lo], bias, sq, th, p.pairs, ntiles)
		return
	}
	_ = p.h[(lo+ntiles*tileRows)*p.pairs*2-1]
	if useZMM {
		prescanZ(&out[0], &masks[0], &z[0], (*byte)(unsafe.Pointer(&p.h[lo*p.pairs*2])), &p.scale[lo], bias, sq, th, p.pairs, ntiles, 16)
		return
	}
	prescanI16(&out[0], &masks[0], &z[0], &p.h[lo*p.pairs*2], &p.scale[lo], bias, sq, th, p.pairs, ntiles)
}

// scan4 is scan over the 4-bit copy (bias non-nil: the float16 biases
// bias16 are added) with the kernel's own filter: mask bit
// set when fl(approx + fl(fl(evq_r sigma_r) cb + ca)) >= th (maskCoef; cb =
// ca = 0: approx >= th, as scan).
func (p *prescanIndex) scan4(out []float32, masks, z []uint32, lo int, bias *float32, sq, th, cb, ca float32, ntiles int) {
	_ = out[ntiles*tileRows-1]
	_ = masks[ntiles-1]
	_ = z[p.zWords()-1]
	_ = p.scale[lo+ntiles*tileRows-1]
	_ = p.evq[lo+ntiles*tileRows-1]
	_ = p.scale16[lo+ntiles*tileRows-1]
	_ = p.bias16[lo+ntiles*tileRows-1]
	_ = p.h4[(lo+ntiles*tileRows)*p.blocks*4-1]
	var b16 *uint16
	if bias != nil {
		b16 = &p.bias16[lo]
	}
	if useVNNI {
		prescanI4VNNI(&out[0], &masks[0], &z[0], &p.h4[lo*p.blocks*4], &p.scale16[lo], b16, &p.evq[lo], sq, th, cb, ca, p.blocks, ntiles, int(int32(z[2*p.blocks])))
		return
	}
	prescanI4(&out[0], &masks[0], &z[0], &p.h4[lo*p.blocks*4], &p.scale16[lo], b16, &p.evq[lo], sq, th, cb, ca, p.blocks, ntiles, int(int32(z[2*p.blocks])))
}

// errCoef holds E_r for one query as a linear form in the row's norm,
// scale and |bias|: E_r = (a n_r + s sigma_r + b |b_r| + c) (1 + 1e-6),
// the terms of the bound above regrouped (each is linear in n_r and
// sigma_r once the query is fixed).
type errCoef struct{ a, s, b, c float64 }

func newErrCoef(qn, sq float64, dim int, useBias bool) errCoef {
	const u = 1.0 / (1 << 24)
	d := float64(dim)
	sd := math.Sqrt(d)
	m := float64((dim + 1) / 2)
	g := (m + 2) * u / (1 - (m+2)*u)
	arith := 4 * u * (qn + sd*sq/2) // 3: times (n_r + sqrt(d) sigma_r/2)
	e := errCoef{
		a: sq*sd/2 + arith + g*qn,        // 2 (sigma_q/2 sqrt(d) n_r), 3, 1 (g qn n_r)
		s: sq*d/4 + sd*qn/2 + arith*sd/2, // 2 (sigma_q d sigma_r/4 + sigma_r sqrt(d) qn/2), 3
		c: (d + 5) * 0x1p-149,            // subnormal results, 1 and 3
	}
	if useBias {
		e.b = 4*u + g // 3 and 1
	}
	return e
}

// row returns E_r for a row of norm n, scale s and bias b.
func (e *errCoef) row(n, s, b float32) float64 {
	return (e.a*float64(n) + e.s*float64(s) + e.b*math.Abs(float64(b)) + e.c) * (1 + 1e-6)
}

// absMaxSq returns max_j |v_j| and sum_j v_j^2, in float64.
func absMaxSq(v []float32) (mx, ss float64) {
	for _, x := range v {
		a := math.Abs(float64(x))
		mx = max(mx, a)
		ss += a * a
	}
	return mx, ss
}

// queryNorm returns max_j |q_j| and |q| (rounded up), and false when the
// bound's arithmetic could overflow, or for a zero, NaN or Inf query.
func (p *prescanIndex) queryNorm(q []float32) (mx, qn float64, ok bool) {
	mx, ss := absMaxSq(q)
	qn = math.Sqrt(ss) * (1 + 1e-12)
	ok = mx > 0 && qn*math.Sqrt(float64(len(q)))+qn*p.vmax+p.bmax < 0x1p100 && p.vmax < 0x1p90
	return mx, qn, ok
}

// quantQuery quantises q into z (P int32 words, each two int16: the pair
// VPMADDWD multiplies; 4 bits: quantQuery4) and returns the error coefficients and sigma_q, or
// false when the bound cannot be used (overflow possible, NaN, zero query).
func (p *prescanIndex) quantQuery(z []uint32, q []float32, useBias bool) (errCoef, float32, bool) {
	if p.bits == 4 {
		return p.quantQuery4(z, q, useBias)
	}
	mx, qn, ok := p.queryNorm(q)
	if !ok {
		return errCoef{}, 0, false // also NaN and Inf
	}
	sq := upScale(mx, p.rq)
	for i := range z {
		var lo, hi int16
		lo = int16(math.RoundToEven(float64(q[2*i]) / float64(sq)))
		if 2*i+1 < len(q) {
			hi = int16(math.RoundToEven(float64(q[2*i+1]) / float64(sq)))
		}
		z[i] = uint32(uint16(lo)) | uint32(uint16(hi))<<16
	}
	return newErrCoef(qn, float64(sq), len(q), useBias), sq, true
}

// emax is E_r with the maxima of the index: >= every E_r.
func (p *prescanIndex) emax(e *errCoef) float64 {
	b := float32(p.bmax)
	return e.row(math.Nextafter32(float32(p.vmax), float32(math.Inf(1))), math.Nextafter32(float32(p.smax), float32(math.Inf(1))), math.Nextafter32(b, float32(math.Inf(1)))) * (1 + 1e-6)
}

// f32floor returns the largest float32 <= v.
func f32floor(v float64) float32 {
	f := float32(v)
	if float64(f) > v {
		f = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	return f
}

// prescanScratch is the pre-scan's per-call working memory (pooled).
type prescanScratch struct {
	z      []uint32  // the quantised query
	approx []float32 // one chunk
	masks  []uint32  // one per tile of the chunk
	// all, allMasks and tmax: every row's approximate score, every tile's
	// mask and maximum; sel, the maxima being selected (the two-pass scan,
	// prescan2.go).
	all      []float32
	allMasks []uint32
	tmax     []float32
	sel      []float32
	heap     []float64   // min-heap of the k largest lower bounds
	cands    []candidate // candidates not yet re-ranked, ascending rows
	batch    []int32     // one batch of rows to re-rank
	exact    []float32   // one tile of exact scores
	gather   []float32   // one tile of candidate rows
	gbias    []float32   // their biases
	// passed counts the rows of the last call that passed the kernel's mask,
	// reranked the candidates it scored exactly (tests and benchmarks report
	// them).
	passed, reranked int
}

// candidate is a row that may belong to the top-k: its bounds lo_r, up_r
// (up = NaN once re-ranked).
type candidate struct {
	low, up float64
	row     int32
}

// candCap is the initial capacity of the candidate list; it grows (once per
// pooled scratch) up to maxCands.
const candCap = 4096

// maxCands bounds the candidates kept: beyond, the pre-scan gives up.
func maxCands(n int) int { return max(1<<16, n/8) }

func newPrescanScratch() *prescanScratch {
	return &prescanScratch{approx: make([]float32, chunkTiles*tileRows), masks: make([]uint32, chunkTiles),
		heap: make([]float64, 0, prescanMaxK), cands: make([]candidate, 0, candCap), batch: make([]int32, 0, tileRows),
		exact: make([]float32, tileRows), gbias: make([]float32, tileRows)}
}

// topKPrescan computes into sel the exact top-k by the pre-scan and an
// exact re-rank. It returns false (sel reset to empty) when it cannot vouch
// for the result (the bound does not apply to this query) or gives up (too
// many candidates: near-equal rows); the caller then scans exactly.
//
// Why the result is exact: every row has exact_r in [lo_r, up_r] with lo_r
// = approx_r - E_r and up_r = approx_r + E_r (4 bits: the kernel's E'_r >=
// E_r in place of E_r, a wider interval). Let V be the k-th best exact
// score over the eligible rows (-Inf when fewer than k). Two lower bounds of
// V are kept as the scan goes: L, the k-th largest lo_r of the rows seen (k
// rows have exact >= L), and T, the k-th best exact score of the candidates
// re-ranked so far (sel's threshold: k eligible rows score T or more); both
// only grow. A row of the exact top-k has up_r >= exact_r >= V >= max(L, T)
// at every moment, so it is kept as a candidate (the kernel's mask is
// looser still: threshold max(L, T) - Emax, Emax >= E_r, or for 4 bits its
// own E'_r >= E_r, maskCoef) and never dropped from the list. Each
// candidate is re-scored once with the exact kernel, and ranked by the
// same order (score, then id), so the top-k of the candidates is the top-k
// of all rows.
//
// The order of the re-rank only changes how many rows it scores: when the
// list fills, and at the end, the candidates with lo_r >= L (the k best
// lower bounds, likely the k best rows so far) are re-ranked first, so that
// T rises to about the k-th best score before the rest are looked at; then
// the list is cut to up_r >= max(L, T).
func (x *ItemIndex) topKPrescan(sel *selector, query []float32, bias []float32, ps *prescanScratch) bool {
	p, n, k := x.pre, len(x.ids), sel.k
	if zw := p.zWords(); cap(ps.z) < zw {
		ps.z = make([]uint32, zw)
	}
	z := ps.z[:p.zWords()]
	ec, sq, ok := p.quantQuery(z, query, bias != nil)
	if !ok {
		return false
	}
	if cap(ps.gather) < x.dim*tileRows {
		ps.gather = make([]float32, x.dim*tileRows)
	}
	emax := p.emax(&ec)
	var cb, ca float32
	if p.bits == 4 {
		cb, ca = p.maskCoef(&ec)
	}
	hp := ps.heap[:0]
	cands := ps.cands[:0]
	lim := math.Inf(-1) // max(L, T)
	excl := sel.excl
	passed, reranked, check := 0, 0, 2*k+256
	twoPass := x.useTwoPass(k, sel.nexcl)
	defer func() { ps.heap, ps.cands, ps.passed, ps.reranked = hp, cands[:0], passed, reranked }()
	// Chunks grow 1, 2, 4, 8 tiles: the threshold of the kernel's mask is
	// set per call, so a small first chunk gives a useful bound sooner.
	for t0, nt := 0, 1; t0 < x.ntiles; t0, nt = t0+nt, min(2*nt, chunkTiles) {
		nt := min(nt, x.ntiles-t0)
		lo := t0 * tileRows
		var bp *float32
		if bias != nil {
			bp = &bias[lo]
		}
		approx, masks := ps.approx, ps.masks
		switch {
		case twoPass: // one pass over every tile (prescan2.go)
			nt = x.ntiles
			approx, masks, lim = x.scanTwoPass(ps, z, bias, sq, k, sel.nexcl, emax)
		case p.bits == 4:
			p.scan4(approx, masks, z, lo, bp, sq, f32floor(lim), cb, ca, nt)
		default:
			p.scan(approx, masks, z, lo, bp, sq, f32floor(lim-emax), nt)
		}
		for ti, mk := range masks[:nt] {
			for mk != 0 {
				c := bits.TrailingZeros32(mk)
				mk &= mk - 1
				r := lo + ti*tileRows + c
				if r >= n {
					break
				}
				passed++
				if excl != nil && excl[r>>6]&(1<<(r&63)) != 0 {
					continue
				}
				a := float64(approx[ti*tileRows+c])
				if a+emax < lim { // the bound rose since the kernel's mask: cheap reject (Emax >= E_r)
					continue
				}
				var er float64
				if p.bits == 4 {
					// E'_r of the kernel's own filter (>= E_r, maskCoef), from
					// the bytes the kernel has just read (norm, errv and the
					// float32 bias would each be a cache miss here).
					er = float64(cb)*(float64(p.evq[r])*float64(f16Float(p.scale16[r]))) + float64(ca)
				} else {
					var b float32
					if bias != nil {
						b = bias[r]
					}
					er = ec.row(p.norm[r], p.errv[r], b)
				}
				if a+er < lim {
					continue
				}
				if low := a - er; len(hp) < k {
					hp = append(hp, low)
					fSiftUp(hp, len(hp)-1)
					if len(hp) == k {
						lim = max(lim, hp[0])
					}
				} else if low > hp[0] {
					hp[0] = low
					fSiftDown(hp, 0, len(hp))
					lim = max(lim, hp[0])
				}
				cands = append(cands, candidate{low: a - er, up: a + er, row: int32(r)})
			}
		}
		if len(cands) >= check {
			// The 4-bit copy lets many rows through: re-ranking the best
			// lower bounds now raises T and keeps the list short. The
			// int16 and int8 copies let few through, and an early re-rank
			// (at a lower bound than the final one) scored more rows than
			// it saved: at 10,728 x 64, 45.5 against 37.9 us a query for
			// the kernel of 7f6ac4a; without it, 47.3 against 55.9 in a
			// slower stretch (medians of 9 runs each, alternated,
			// 2026-12-02 04:44-04:45 UTC). They only drop the rows below L
			// here, as before.
			if p.bits == 4 {
				var m int
				m, lim = x.rerank(sel, query, bias, ps, cands, lowBound(hp, k), lim)
				reranked += m
			}
			cands = compactCands(cands, lim)
			check = max(check, 2*len(cands))
			if len(cands) > maxCands(n) {
				sel.h, sel.th = sel.h[:0], float32(math.Inf(-1))
				return false
			}
		}
		if twoPass {
			break
		}
	}
	m, lim := x.rerank(sel, query, bias, ps, cands, lowBound(hp, k), lim)
	m2, _ := x.rerank(sel, query, bias, ps, cands, math.Inf(-1), lim)
	reranked += m + m2
	return true
}
