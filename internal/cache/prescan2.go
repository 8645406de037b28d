package cache

import (
	"math"
	"math/bits"
)

// The two-pass pre-scan, for catalogues whose approximate scores fit in a
// core's L1/L2 (up to twoPassMaxTiles tiles: KuaiRec's 10,728 videos are
// 336 tiles, 43 KB of float32).
//
// The streaming pre-scan (topKPrescan) learns its threshold L, the k-th
// largest lower bound, as the rows go by: in a random order about
// k (1 + ln(n/k)) rows (about 175 of 10,728 at k = 25) improve it, and each
// passes the kernel's mask and costs a bound, a heap update and a
// candidate. Here the kernel first scores every row into one buffer (mask
// threshold +Inf: no row passes), tileMax takes each tile's largest
// approximate score, and t, the m-th largest of those maxima, gives the
// threshold before any row is looked at:
//
// m tiles have a row with approx_r >= t. With m = k + e + pad, where e
// bounds the excluded rows (len(Exclude)) and pad is 1 when the last tile
// holds padding rows, at most e of those tiles have an excluded row as
// their maximum and at most one a padding row, so at least k distinct
// eligible rows have approx_r >= t, hence exact_r >= approx_r - E_r >=
// t - Emax: V, the k-th best exact score, is >= t - Emax, which is a valid
// starting value of max(L, T) in topKPrescan's proof (prescan.go). The
// rows that can still reach it (approx_r >= t - 2 Emax, maskAbove) are
// then collected exactly as by the streaming scan, from one mask per
// tile. Because the tiles' maxima of distinct tiles are nearly the best
// rows (k = 25 of 336 tiles rarely share one), t - Emax is close to the
// final threshold from the start.
//
// Used for the int16 and int8 copies when 4 m <= ntiles (else the
// maxima of m tiles would say little); the 4-bit copy, for catalogues far
// beyond a core's cache, keeps the streaming scan.

// twoPassMaxTiles is the largest catalogue, in tiles, of the two-pass
// pre-scan (32,768 rows: 128 KB of approximate scores).
const twoPassMaxTiles = 1024

// useTwoPass reports whether topKPrescan takes the two-pass path for k
// results and nExcl excluded ids.
func (x *ItemIndex) useTwoPass(k, nExcl int) bool {
	return x.pre.bits != 4 && x.ntiles <= twoPassMaxTiles && 4*(k+nExcl+1) <= x.ntiles
}

// scanTwoPass runs the first pass and returns the approximate scores of
// every row, the masks of the rows that can reach the threshold, and the
// threshold t - Emax (above).
func (x *ItemIndex) scanTwoPass(ps *prescanScratch, z []uint32, bias []float32, sq float32, k, nExcl int, emax float64) ([]float32, []uint32, float64) {
	nt := x.ntiles
	ntm := (nt + tileRows - 1) / tileRows // tiles of tile maxima
	if cap(ps.all) < nt*tileRows {
		ps.all, ps.allMasks = make([]float32, nt*tileRows), make([]uint32, nt)
		ps.tmax, ps.sel = make([]float32, ntm*tileRows), make([]float32, ntm*tileRows)
	}
	all, masks, tm := ps.all[:nt*tileRows], ps.allMasks[:nt], ps.tmax[:ntm*tileRows]
	for i := nt; i < len(tm); i++ {
		tm[i] = float32(math.Inf(-1))
	}
	var bp *float32
	if bias != nil {
		bp = &bias[0]
	}
	x.pre.scan(all, masks, z, 0, bp, sq, float32(math.Inf(1)), nt)
	tileMax(&all[0], &tm[0], nt)
	m := k + nExcl
	if len(x.ids)%tileRows != 0 {
		m++
	}
	lim := float64(ps.mthLargest(tm, m)) - emax
	maskAbove(&all[0], &masks[0], f32floor(lim-emax), nt)
	return all, masks, lim
}

// mthLargest returns the m-th largest of tm (tiles of 32 values, -Inf
// padded; 4m <= len): c, the m-th largest of the first 4m, is at most the
// answer, so the answer is the m-th largest of the values >= c (maskAbove
// finds them; about a quarter of tm), which costs a fraction of one
// quickselect over tm.
func (ps *prescanScratch) mthLargest(tm []float32, m int) float32 {
	sel := ps.sel[:4*m]
	copy(sel, tm)
	c := kthLargest(sel, m)
	masks := ps.allMasks[:len(tm)/tileRows] // free until the second maskAbove
	maskAbove(&tm[0], &masks[0], c, len(masks))
	sel = ps.sel[:0]
	for ti, mk := range masks {
		for mk != 0 {
			sel = append(sel, tm[ti*tileRows+bits.TrailingZeros32(mk)])
			mk &= mk - 1
		}
	}
	return kthLargest(sel, m)
}

// kthLargest returns the m-th largest value of v (1 <= m <= len(v), no
// NaN), reordering v: a quickselect.
func kthLargest(v []float32, m int) float32 {
	lo, hi, want := 0, len(v)-1, m-1 // want: the index in descending order
	for lo < hi {
		p := v[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for v[i] > p {
				i++
			}
			for v[j] < p {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		// v[lo..j] >= p, v[i..hi] <= p, v[j+1..i-1] == p.
		switch {
		case want <= j:
			hi = j
		case want >= i:
			lo = i
		default:
			return p
		}
	}
	return v[want]
}
