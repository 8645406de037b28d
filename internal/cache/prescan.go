package cache

import (
	"math"
	"math/bits"
)

// The float16 pre-scan: a second copy of the catalogue in IEEE binary16, in
// the same tiled layout, half the bytes of float32 (KuaiRec's 10,728 x 64
// catalogue is 1.4 MB: it stays in a 2 MB L2, where the float32 copy, 2.7
// MB, streams from L3). TopK scans it for approximate scores, keeps every row
// whose approximate score is within twice the error bound E of the k-th
// best approximate score, and re-ranks those candidates with the exact
// float32 kernel. The result is the exact float32 top-K, bit for bit (the
// proof is on topKPrescan).
//
// Each row r is stored scaled by a power of two s_r, h_rj = fp16(v_rj / s_r),
// with s_r chosen so that max_j |v_rj| / s_r lies in [2^14, 2^15): no row
// overflows binary16 (max 65504), a row of tiny values is not flushed to
// zero, and multiplying back by s_r is exact. The approximate score is
//
//	a0, a1 = the two FMA chains of the kernel (kernel.go) over q and h_r
//	approx_r = ((a0 + a1) * s_r) + b_r        (float32)
//
// # The error bound
//
// Notation: u = 2^-24 (float32 unit roundoff), gamma(n) = n*u / (1 - n*u),
// m = ceil(d/2) (the longer chain), g = gamma(m+2), D_r = sum_j q_j v_rj + b_r
// (the real value), N_r = sum_j |q_j v_rj|, Q1 = sum_j |q_j|.
//
//  1. The exact kernel: each FMA rounds (acc + q_j v_j) once, then the two
//     chains are added, then the bias: |exact_r - D_r| <= g (N_r + |b_r|)
//     (Higham, Accuracy and Stability of Numerical Algorithms, 3.1), plus
//     at most 2^-150 per operation whose result is subnormal: (d+2) 2^-150.
//  2. Rounding to binary16 (nearest): |h_rj s_r - v_rj| <= 2^-11 |v_rj| +
//     2^-25 s_r (relative 2^-11 for normal halves, half the subnormal
//     spacing 2^-24 below 2^-14). So |s_r sum_j q_j h_rj - sum_j q_j v_rj|
//     <= 2^-11 N_r + 2^-25 s_r Q1, and s_r sum_j |q_j h_rj| <=
//     (1 + 2^-11) N_r + 2^-25 s_r Q1.
//  3. The pre-scan's own float32 arithmetic, as in 1 (the product by the
//     power of two s_r is exact unless it is subnormal): |approx_r -
//     (s_r sum_j q_j h_rj + b_r)| <= g (s_r sum_j |q_j h_rj| + |b_r|) +
//     (d+2) 2^-150 (1 + s_r).
//
// Adding 1-3, with N_r <= |q|_2 |v_r|_2 (Cauchy-Schwarz) and Q1 <= sqrt(d)
// |q|_2, per row:
//
//	|approx_r - exact_r| <= E_r = |q|_2 |v_r|_2 (2^-11 + g (2 + 2^-11))
//	                             + 2^-25 s_r sqrt(d) |q|_2 (1 + g)
//	                             + 2 g |b_r|   (only with the bias)
//	                             + (d+4) 2^-149 (1 + s_r)
//
// |v_r|_2 is computed once in float64 and stored rounded up; E_r is
// evaluated in float64 and inflated by 1e-6 relative to cover the rounding
// of its own evaluation. The bound assumes no overflow: TopK falls back to
// the exact scan unless |q|_2 sqrt(d) 2^16 and |q|_2 Vmax + Bmax are below
// 2^120 (Vmax, Bmax: the largest row norm and |bias|; every partial sum of
// either kernel is below those). A per-row bound keeps the candidates few
// when row norms differ by orders of magnitude; Emax (E_r with the maxima)
// only sets the threshold of the kernel's mask, a superset filter.

// prescanMinRows is the catalogue size from which TopK uses the pre-scan:
// below it the float32 copy fits in L2 and the exact scan is faster
// (BenchmarkTopK, kernel=own vs kernel=exact).
const prescanMinRows = 6144

// prescanMaxK bounds the k served by the pre-scan (beyond, the exact scan).
const prescanMaxK = 1024

// prescanIndex is the binary16 copy of an ItemIndex.
type prescanIndex struct {
	h     []uint16  // tiled like ItemIndex.tiles
	scale []float32 // per row s_r, padded with 1
	norm  []float32 // per row |v_r|_2, rounded up
	vmax  float64   // max_r |v_r|_2, rounded up
	smax  float64
	bmax  float64
}

// errCoef are the coefficients of E_r for one query:
// E_r = a |v_r|_2 + s s_r + b |b_r| + c (1 + s_r).
type errCoef struct{ a, s, b, c float64 }

func (e errCoef) row(norm, scale, bias float32) float64 {
	return (e.a*float64(norm) + e.s*float64(scale) + e.b*math.Abs(float64(bias)) + e.c*(1+float64(scale))) * (1 + 1e-6)
}

func buildPrescan(vecs, biases []float32, n, dim, ntiles int) *prescanIndex {
	p := &prescanIndex{h: make([]uint16, ntiles*dim*tileRows), scale: make([]float32, ntiles*tileRows), norm: make([]float32, n)}
	for i := range p.scale {
		p.scale[i] = 1
	}
	for r := range n {
		row := vecs[r*dim : (r+1)*dim]
		var mx, ss float64
		for _, v := range row {
			a := math.Abs(float64(v))
			mx = max(mx, a)
			ss += a * a
		}
		nr := math.Sqrt(ss) * (1 + 1e-12)
		p.norm[r] = float32(nr)
		if float64(p.norm[r]) < nr {
			p.norm[r] = math.Nextafter32(p.norm[r], float32(math.Inf(1)))
		}
		p.vmax = max(p.vmax, float64(p.norm[r]))
		if r < len(biases) {
			p.bmax = max(p.bmax, math.Abs(float64(biases[r])))
		}
		s := 1.0
		if mx > 0 {
			_, e := math.Frexp(mx) // mx in [2^(e-1), 2^e)
			s = math.Ldexp(1, max(e-1-14, -126))
		}
		p.smax = max(p.smax, s)
		p.scale[r] = float32(s)
		t, c := r/tileRows, r%tileRows
		base := p.h[t*dim*tileRows+c:]
		for j, v := range row {
			base[j*tileRows] = f32to16(float32(float64(v) / s))
		}
	}
	return p
}

// bound returns the coefficients of E_r (above) for a query of norm qn, and
// whether the pre-scan may be used (no overflow possible, all finite).
func (p *prescanIndex) bound(qn float64, dim int, useBias bool) (errCoef, bool) {
	const u = 1.0 / (1 << 24)
	m := float64((dim + 1) / 2)
	g := (m + 2) * u / (1 - (m+2)*u)
	sd := math.Sqrt(float64(dim))
	if !(qn*sd*(1<<16) < 0x1p120) || !(qn*p.vmax+p.bmax < 0x1p120) {
		return errCoef{}, false // also NaN and Inf
	}
	e := errCoef{a: qn * (0x1p-11 + g*(2+0x1p-11)), s: 0x1p-25 * sd * qn * (1 + g), c: float64(dim+4) * 0x1p-149}
	if useBias {
		e.b = 2 * g
	}
	return e, true
}

// emax is E_r with the maxima of the index: >= every E_r.
func (p *prescanIndex) emax(e errCoef) float64 {
	return (e.a*p.vmax + e.s*p.smax + e.b*p.bmax + e.c*(1+p.smax)) * (1 + 1e-6)
}

// f32to16 rounds f to the nearest binary16 (ties to even). |f| must be
// below 65520 (the scaling above keeps it below 2^15).
func f32to16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	a := b & 0x7fffffff
	e := int(a >> 23) // biased float32 exponent
	if e < 127-25 {   // |f| < 2^-25: rounds to zero
		return sign
	}
	m := a&0x7fffff | 0x800000 // value = m * 2^(e-150)
	if e >= 127-14 {           // a normal half: keep 11 of the 24 bits
		r, rem := m>>13, m&0x1fff
		if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
			r++
		}
		he := e - 127 + 15
		if r == 0x800 {
			r, he = 0x400, he+1
		}
		if he >= 31 {
			panic("cache: f32to16 overflow")
		}
		return sign | uint16(he)<<10 | uint16(r-0x400)
	}
	// A subnormal half: value = r * 2^-24 with r = m * 2^(e-126).
	sh := uint(126 - e) // 14..24
	r, rem, half := m>>sh, m&(1<<sh-1), uint32(1)<<(sh-1)
	if rem > half || (rem == half && r&1 == 1) {
		r++
	}
	return sign | uint16(r) // r = 0x400 is the smallest normal: the encoding is right
}

// f16to32 converts a binary16 to float32 (exactly).
func f16to32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	e, m := uint32(h>>10)&0x1f, uint32(h&0x3ff)
	switch e {
	case 0:
		f := float32(m) * 0x1p-24
		return math.Float32frombits(math.Float32bits(f) | sign)
	case 31:
		return math.Float32frombits(sign | 0x7f800000 | m<<13)
	}
	return math.Float32frombits(sign | (e-15+127)<<23 | m<<13)
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
	approx []float32 // one chunk
	masks  []uint32  // one per tile of the chunk
	heap   []float64 // min-heap of the k largest lower bounds
	cRows  []int32   // candidate rows, ascending
	cUp    []float64 // their upper bounds
	exact  []float32 // one tile of exact scores
	gather []float32 // one tile of candidate rows
	gbias  []float32 // their biases
	// passed counts the rows of the last call that passed the kernel's mask
	// (benchmarks report it).
	passed int
}

// candCap bounds the candidates kept before compaction.
const candCap = 4096

func newPrescanScratch() *prescanScratch {
	return &prescanScratch{approx: make([]float32, chunkTiles*tileRows), masks: make([]uint32, chunkTiles),
		heap: make([]float64, 0, prescanMaxK), cRows: make([]int32, 0, candCap), cUp: make([]float64, 0, candCap),
		exact: make([]float32, tileRows), gbias: make([]float32, tileRows)}
}

// topKPrescan computes into sel the exact top-k by the pre-scan and an
// exact re-rank. It returns false (sel untouched) when it cannot vouch for
// the result cheaply (too many candidates); the caller then scans exactly.
//
// Why the result is exact: every row has exact_r in [lo_r, up_r] with lo_r
// = approx_r - E_r and up_r = approx_r + E_r. Let L be the k-th largest lo_r
// over the eligible rows (-Inf when fewer than k). k rows have exact >= L,
// so the k-th best exact score V is >= L, and a row of the exact top-k has
// up_r >= exact_r >= V >= L: it is a candidate (the running L only grows, so
// the running filter is looser, and the kernel's mask threshold L - Emax is
// looser still). Candidates are re-scored with the exact kernel and ranked
// by the same order (score, then id), so the top-k of the candidates is the
// top-k of all rows.
func (x *ItemIndex) topKPrescan(sel *selector, query []float32, bias []float32, ec errCoef, ps *prescanScratch) bool {
	p, dim, n, k := x.pre, x.dim, len(x.ids), sel.k
	emax := p.emax(ec)
	hp := ps.heap[:0]
	cRows, cUp := ps.cRows[:0], ps.cUp[:0]
	lim := math.Inf(-1) // L
	excl := sel.excl
	passed := 0
	defer func() { ps.passed = passed }()
	for t0 := 0; t0 < x.ntiles; t0 += chunkTiles {
		nt := min(chunkTiles, x.ntiles-t0)
		lo := t0 * tileRows
		var bp *float32
		if bias != nil {
			bp = &bias[lo]
		}
		prescanF16(&ps.approx[0], &ps.masks[0], &query[0], &p.h[lo*dim], &p.scale[lo], bp, f32floor(lim-emax), dim, nt)
		for ti, mk := range ps.masks[:nt] {
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
				a := float64(ps.approx[ti*tileRows+c])
				var b float32
				if bias != nil {
					b = bias[r]
				}
				er := ec.row(p.norm[r], p.scale[r], b)
				if a+er < lim {
					continue
				}
				if low := a - er; len(hp) < k {
					hp = append(hp, low)
					fSiftUp(hp, len(hp)-1)
					if len(hp) == k {
						lim = hp[0]
					}
				} else if low > hp[0] {
					hp[0] = low
					fSiftDown(hp, 0, len(hp))
					lim = hp[0]
				}
				if len(cRows) == cap(cRows) {
					cRows, cUp = compact(cRows, cUp, lim)
					if len(cRows) > cap(cRows)/2 {
						ps.heap, ps.cRows, ps.cUp = hp, cRows, cUp
						return false
					}
				}
				cRows, cUp = append(cRows, int32(r)), append(cUp, a+er)
			}
		}
	}
	ps.heap = hp
	cRows, cUp = compact(cRows, cUp, lim)
	ps.cRows, ps.cUp = cRows, cUp
	// Exact re-rank: up to 32 candidates at a time are gathered from the
	// row-major copy (4 cache lines per row at dim 64, where their tiles
	// would be 8 KB each) into one scratch tile and scored by the same
	// kernel. A lane's score depends only on its row, the query and its
	// bias, so it is bit for bit the score of the full scan.
	if cap(ps.gather) < dim*tileRows {
		ps.gather = make([]float32, dim*tileRows)
	}
	g := ps.gather[:dim*tileRows]
	for i0 := 0; i0 < len(cRows); i0 += tileRows {
		batch := cRows[i0:min(len(cRows), i0+tileRows)]
		clear(g)
		clear(ps.gbias)
		for c, r := range batch {
			row := x.vecs[int(r)*dim : (int(r)+1)*dim]
			for j, v := range row {
				g[j*tileRows+c] = v
			}
			if bias != nil {
				ps.gbias[c] = bias[r]
			}
		}
		var b []float32
		if bias != nil {
			b = ps.gbias
		}
		scoreTiles(ps.exact, query, g, b, dim, 1)
		for c, r := range batch {
			sel.offer(ps.exact[c], int(r))
		}
	}
	return true
}

// compact keeps the candidates whose upper bound is >= lim.
func compact(rows []int32, up []float64, lim float64) ([]int32, []float64) {
	j := 0
	for i, a := range up {
		if a >= lim {
			rows[j], up[j] = rows[i], a
			j++
		}
	}
	return rows[:j], up[:j]
}

func fSiftUp(h []float64, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !(h[i] < h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func fSiftDown(h []float64, i, n int) {
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h[r] < h[l] {
			m = r
		}
		if !(h[m] < h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
