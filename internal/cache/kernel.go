package cache

import "math"

// The scoring kernel. Every score in the package (TopK, Score, the re-rank
// of the int16 pre-scan) comes from one definition, computed either by the
// amd64 assembly (AVX2 + FMA, kernel_amd64.s) or by the pure-Go code in this
// file; both perform the same IEEE operations in the same order, so they
// agree bit for bit (TestKernelsBitIdentical).
//
// Layout ("tiles"): rows are grouped by tileRows = 32; tile t holds rows
// 32t..32t+31 column-major, tiles[(t*dim+j)*32+c] = vector[32t+c][j], so one
// step j of the kernel reads 32 consecutive floats (4 YMM registers, two
// cache lines) and multiplies them by the broadcast q[j]. The last tile is
// padded with zero rows (never returned). The whole catalogue is one
// sequential stream that the hardware prefetcher follows.
//
// Definition of the score of row r (lane c of tile t) for query q of dim d:
//
//	a0 = +0, a1 = +0
//	for j = 0 .. d-1:  if j even: a0 = fma32(q[j], v[j], a0)
//	                   else:      a1 = fma32(q[j], v[j], a1)
//	dot = a0 + a1                  (float32, round to nearest even)
//	score = dot + bias[r]          (only with a bias; float32)
//
// where fma32 is a single-rounding float32 fused multiply-add (VFMADD231PS).
// Two chains per row and four rows per YMM register give the assembly eight
// independent accumulators, enough to cover the FMA latency (4 cycles at 2
// per cycle), with no horizontal reduction at all.

// tileRows is the number of rows per tile.
const tileRows = 32

// fma32 returns a*b+c rounded once to float32, as VFMADD231PS does, in
// portable Go. a*b is exact in float64 (24+24 bits < 53); the sum is
// computed in float64 with round-to-odd (Boldo and Melquiond, "Emulation of
// FMA and correctly rounded sums: proved algorithms using rounding to odd",
// IEEE TC 2008: rounding to odd at p+2 bits or more, then to nearest at p
// bits, equals one rounding to nearest), so that the final conversion to
// float32 rounds the exact value once. Plain float32(math.FMA(a, b, c)) would
// round twice and can differ in the last bit when the float64 result lands
// on a float32 tie.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b) // exact
	cc := float64(c)
	s := p + cc
	if math.IsInf(s, 0) || s != s {
		return float32(s) // Inf or NaN inputs: IEEE special cases, as the hardware
	}
	// TwoSum: e is the exact rounding error of s = p + cc.
	bv := s - p
	e := (p - (s - bv)) + (cc - bv)
	if e != 0 {
		bits := math.Float64bits(s)
		if bits&1 == 0 { // inexact and even: step to the odd neighbour towards the exact value
			if (e > 0) == (s > 0) {
				bits++
			} else {
				bits--
			}
			s = math.Float64frombits(bits)
		}
	}
	return float32(s)
}

// scoreTilesGeneric is the pure-Go kernel: out[t*32+c] = score of lane c of
// tile t, for t < ntiles, as defined above. bias is nil (no bias) or holds
// ntiles*32 values.
func scoreTilesGeneric(out, q, tiles, bias []float32, dim, ntiles int) {
	out = out[:ntiles*tileRows]
	tiles = tiles[:ntiles*dim*tileRows]
	var a0, a1 [tileRows]float32
	for t := range ntiles {
		a0, a1 = [tileRows]float32{}, [tileRows]float32{}
		base := tiles[t*dim*tileRows:]
		for j := range dim {
			col := base[j*tileRows : (j+1)*tileRows : (j+1)*tileRows]
			qj := q[j]
			if j&1 == 0 {
				for c := range tileRows {
					a0[c] = fma32(qj, col[c], a0[c])
				}
			} else {
				for c := range tileRows {
					a1[c] = fma32(qj, col[c], a1[c])
				}
			}
		}
		o := out[t*tileRows : (t+1)*tileRows : (t+1)*tileRows]
		for c := range tileRows {
			o[c] = a0[c] + a1[c]
		}
		if bias != nil {
			b := bias[t*tileRows : (t+1)*tileRows : (t+1)*tileRows]
			for c := range tileRows {
				o[c] += b[c]
			}
		}
	}
}

// scoreRowGeneric scores row r of the tiled layout alone (the definition
// above, without the bias).
func scoreRowGeneric(q, tiles []float32, dim, r int) float32 {
	t, c := r/tileRows, r%tileRows
	base := tiles[t*dim*tileRows+c:]
	var a0, a1 float32
	for j := range dim {
		if j&1 == 0 {
			a0 = fma32(q[j], base[j*tileRows], a0)
		} else {
			a1 = fma32(q[j], base[j*tileRows], a1)
		}
	}
	return a0 + a1
}

// scoreTiles scores ntiles tiles with the best kernel of this machine.
func scoreTiles(out, q, tiles, bias []float32, dim, ntiles int) {
	if ntiles <= 0 {
		return
	}
	if useFMA {
		_ = out[ntiles*tileRows-1]
		_ = tiles[ntiles*dim*tileRows-1]
		_ = q[dim-1]
		var bp *float32
		if bias != nil {
			_ = bias[ntiles*tileRows-1]
			bp = &bias[0]
		}
		scoreTilesFMA(&out[0], &q[0], &tiles[0], bp, dim, ntiles)
		return
	}
	scoreTilesGeneric(out, q, tiles, bias, dim, ntiles)
}

// buildTiles returns the tiled copy of row-major vecs (n x dim) and the
// number of tiles.
func buildTiles(vecs []float32, n, dim int) ([]float32, int) {
	ntiles := (n + tileRows - 1) / tileRows
	tiles := make([]float32, ntiles*dim*tileRows)
	for r := range n {
		t, c := r/tileRows, r%tileRows
		base := tiles[t*dim*tileRows+c:]
		row := vecs[r*dim : (r+1)*dim]
		for j, v := range row {
			base[j*tileRows] = v
		}
	}
	return tiles, ntiles
}
