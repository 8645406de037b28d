package cache

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// prescanRef is the pre-scan of row r by its definition, in Go: the exact
// int64 dot product of the quantised vectors, then the float32 operations.
func prescanRef(p *prescanIndex, z []uint32, sq float32, r int, bias []float32) float32 {
	t, c := r/tileRows, r%tileRows
	var s int64
	if p.bits == 4 {
		for j := range 8 * p.blocks {
			s += int64(int8(uint8(z[j/4]>>(8*(j%4))))) * p.w4(r, j)
		}
	} else {
		for pi, zz := range z {
			for i := range 2 {
				s += int64(int16(uint16(zz>>(16*i)))) * p.w(t, pi, c, i)
			}
		}
	}
	if s != int64(int32(s)) {
		panic("int32 overflow")
	}
	a := float32(int32(s)) * p.scale[r] * sq
	if bias != nil && p.bits == 4 {
		a += f16Float(p.bias16[r]) // the 4-bit kernel adds the float16 bias
	} else if bias != nil {
		a += bias[r]
	}
	return a
}

// TestPrescanKernelMatchesDefinition: the assembly's approximate scores and
// masks equal the Go definition bit for bit, including rows and queries at
// the edge of the int32 range (every product at R^2, same sign).
func TestPrescanKernelMatchesDefinition(t *testing.T) {
	if !useFMA {
		t.Skip("no pre-scan kernel on this machine")
	}
	r := rand.New(rand.NewPCG(71, 72))
	for _, bits := range []int{4, 8, 16} {
		for _, dim := range []int{1, 2, 3, 5, 7, 13, 64, 65, 128, 300} {
			for _, kind := range []string{"normal", "extreme", "extreme-neg", "mixed"} {
				n := 100 + r.IntN(100)
				var vecs, q []float32
				switch kind {
				case "extreme", "extreme-neg": // all +-1: every |w| = |z| = R, S = +-d R^2 at most (4 bits: every nibble 15, the int16 sums at +-30,480)
					vecs, q = make([]float32, n*dim), make([]float32, dim)
					for i := range vecs {
						vecs[i] = 1
						if i%dim == 0 && r.IntN(2) == 0 {
							vecs[i] = -1
						}
					}
					for i := range q {
						q[i] = 1
						if kind == "extreme-neg" {
							q[i] = -1
						}
					}
				default:
					vecs, q = adversarialVectors(r, kind, n, dim), adversarialVectors(r, "normal", 1, dim)
				}
				_, ntiles := buildTiles(vecs, n, dim)
				p := buildPrescan(vecs, nil, n, dim, ntiles, bits)
				bias := make([]float32, ntiles*tileRows)
				for i := range n {
					bias[i] = float32(r.NormFloat64())
					if p.bits == 4 { // (a 4-bit build falls back to int8 for values beyond float16)
						p.bias16[i], _ = f16Nearest(bias[i])
					}
				}
				z := make([]uint32, p.zWords())
				_, sq, ok := p.quantQuery(z, q, true)
				if !ok {
					if kind == "mixed" {
						continue
					}
					t.Fatalf("dim=%d %s: query refused", dim, kind)
				}
				for _, b := range [][]float32{nil, bias} {
					out, masks := make([]float32, ntiles*tileRows), make([]uint32, ntiles)
					th := float32(r.NormFloat64())
					p.scan(out, masks, z, 0, ptrOrNil(b), sq, th, ntiles)
					for i := range n {
						want := prescanRef(p, z, sq, i, b)
						if !sameBits(out[i], want) {
							t.Fatalf("int%d dim=%d %s row %d: kernel %g, definition %g", bits, dim, kind, i, out[i], want)
						}
						if bit := masks[i/tileRows]>>(i%tileRows)&1 == 1; bit != (out[i] >= th) {
							t.Fatalf("int%d dim=%d %s row %d: mask %v for %g >= %g", bits, dim, kind, i, bit, out[i], th)
						}
					}
					if p.bits != 4 {
						if useZMM { // the YMM kernel (the one above is VPDPWSSD on ZMM): the same bits
							useZMM = false
							out2, masks2 := make([]float32, ntiles*tileRows), make([]uint32, ntiles)
							p.scan(out2, masks2, z, 0, ptrOrNil(b), sq, th, ntiles)
							useZMM = true
							for i := range out {
								if !sameBits(out[i], out2[i]) {
									t.Fatalf("int%d dim=%d %s row %d: ZMM %g, YMM %g", bits, dim, kind, i, out[i], out2[i])
								}
							}
							if !slices.Equal(masks, masks2) {
								t.Fatalf("int%d dim=%d %s: masks differ between ZMM and YMM", bits, dim, kind)
							}
						}
						continue
					}
					// The 4-bit kernel's own filter: out + fl(fl(evq sigma) cb + ca) >= th.
					cb, ca := float32(r.ExpFloat64()), float32(r.ExpFloat64())
					p.scan4(out, masks, z, 0, ptrOrNil(b), sq, th, cb, ca, ntiles)
					for i := range n {
						up := out[i] + fma32(float32(p.evq[i])*p.scale[i], cb, ca)
						if bit := masks[i/tileRows]>>(i%tileRows)&1 == 1; bit != (up >= th) {
							t.Fatalf("int4 dim=%d %s row %d: mask %v for %g + E' = %g >= %g", dim, kind, i, bit, out[i], up, th)
						}
					}
					if !useVNNI {
						continue
					}
					// The AVX2 kernel (the one above is VPDPBUSD): the same bits.
					useVNNI = false
					out2, masks2 := make([]float32, ntiles*tileRows), make([]uint32, ntiles)
					p.scan4(out2, masks2, z, 0, ptrOrNil(b), sq, th, cb, ca, ntiles)
					useVNNI = true
					for i := range n {
						if !sameBits(out[i], out2[i]) {
							t.Fatalf("int4 dim=%d %s row %d: VNNI %g, AVX2 %g", dim, kind, i, out[i], out2[i])
						}
					}
					if !slices.Equal(masks, masks2) {
						t.Fatalf("int4 dim=%d %s: masks differ between VNNI and AVX2", dim, kind)
					}
				}
			}
		}
	}
}

// TestFloat16: the float16 conversions round as they say (up, to nearest
// even) and decode as VCVTPH2PS does.
func TestFloat16(t *testing.T) {
	r := rand.New(rand.NewPCG(81, 82))
	for range 100000 {
		v := float32(math.Ldexp(r.Float64()+0.5, r.IntN(44)-28))
		h, ok := f16Up(float64(v))
		if !ok {
			t.Fatalf("f16Up(%g) refused", v)
		}
		up := f16Float(h)
		if up < v || (h > 1 && f16Float(h-1) >= v) {
			t.Fatalf("f16Up(%g) = %g (bits %#x): not the smallest float16 >= v", v, up, h)
		}
		b := v
		if r.IntN(2) == 0 {
			b = -v
		}
		hn, _ := f16Nearest(b)
		got := f16Float(hn)
		d := math.Abs(float64(got) - float64(b))
		if lo, hi := f16Float(hn&0x7fff-1), f16Float(hn&0x7fff+1); hn&0x7fff > 0 && (d > math.Abs(float64(lo)-math.Abs(float64(b))) || d > math.Abs(float64(hi)-math.Abs(float64(b)))) {
			t.Fatalf("f16Nearest(%g) = %g: a neighbour is nearer", b, got)
		}
		if d > math.Abs(float64(b))*0x1p-11+0x1p-25 {
			t.Fatalf("f16Nearest(%g) = %g: error %g beyond 2^-11 |b| + 2^-25", b, got, d)
		}
	}
	if _, ok := f16Up(70000); ok {
		t.Fatal("f16Up(70000) accepted")
	}
	if f16Float(0x3c00) != 1 || f16Float(0x7bff) != 65504 || f16Float(1) != float32(math.Ldexp(1, -24)) || f16Float(0xc000) != -2 {
		t.Fatal("f16Float decodes wrongly")
	}
}

// TestPrescan4MaskIsLooser: the 4-bit kernel's own E'_r (maskCoef, as the
// kernel computes it in float32) is >= E_r on every row, so its mask keeps
// every row the exact filter keeps.
func TestPrescan4MaskIsLooser(t *testing.T) {
	r := rand.New(rand.NewPCG(79, 80))
	for _, kind := range []string{"normal", "tiny", "scaled-rows", "scaled-rows-f16", "near-top-ties", "equal", "large"} {
		for _, dim := range []int{1, 7, 64, 128} {
			n := 2000
			q := adversarialVectors(r, "normal", 1, dim)
			if kind == "tiny" {
				q = adversarialVectors(r, kind, 1, dim)
			}
			it := prescanItems(r, kind, n, dim, q)
			_, ntiles := buildTiles(it.Vectors, n, dim)
			p := buildPrescan(it.Vectors, it.Biases, n, dim, ntiles, 4)
			if p.bits != 4 {
				if kind != "large" && kind != "scaled-rows" {
					t.Fatalf("%s dim=%d: no 4-bit copy", kind, dim)
				}
				continue // scales beyond float16: int8 instead
			}
			z := make([]uint32, p.zWords())
			for _, useBias := range []bool{false, true} {
				ec, _, ok := p.quantQuery(z, q, useBias)
				if !ok {
					if kind == "large" {
						continue
					}
					t.Fatalf("%s dim=%d: query refused", kind, dim)
				}
				cb, ca := p.maskCoef(&ec)
				for i := range n {
					e := ec.row(p.norm[i], p.errv[i], it.Biases[i])
					if !useBias {
						e = ec.row(p.norm[i], p.errv[i], 0)
					}
					got := fma32(float32(p.evq[i])*p.scale[i], cb, ca)
					if !(float64(got) >= e) {
						t.Fatalf("%s dim=%d bias=%v row %d: kernel E' %g < E_r %g", kind, dim, useBias, i, got, e)
					}
				}
			}
		}
	}
}

// prescanItems returns n items of one kind for the pre-scan tests; the
// "near-top-ties" kind puts 300 rows within a few ulps of a row aligned with
// q, so that the top-k is decided by differences the int16 copy cannot see.
func prescanItems(r *rand.Rand, kind string, n, dim int, q []float32) Items {
	it := Items{IDs: make([]uint32, n), Biases: make([]float32, n)}
	for i := range it.IDs {
		it.IDs[i] = uint32(i*5 + 1)
		it.Biases[i] = float32(r.NormFloat64() * 0.1)
	}
	r.Shuffle(n, func(i, j int) { it.IDs[i], it.IDs[j] = it.IDs[j], it.IDs[i] })
	switch kind {
	case "near-top-ties":
		it.Vectors = adversarialVectors(r, "normal", n, dim)
		for i := range 300 {
			row := it.Vectors[i*dim : (i+1)*dim]
			copy(row, q)
			j := r.IntN(dim)
			row[j] = math.Float32frombits(math.Float32bits(row[j]) + uint32(r.IntN(3)))
			it.Biases[i] = 0.25
		}
	case "scaled-rows", "scaled-rows-f16": // rows of very different magnitudes (per-row scales; -f16: 2^-12..2^11, within the 4-bit copy's float16 scales, which refuses 2^-30..2^29)
		it.Vectors = adversarialVectors(r, "normal", n, dim)
		lo, span := -30, 60
		if kind == "scaled-rows-f16" {
			lo, span = -12, 24
		}
		for i := range n {
			s := float32(math.Pow(2, float64(r.IntN(span)+lo)))
			for j := range dim {
				it.Vectors[i*dim+j] *= s
			}
		}
	default:
		it.Vectors = adversarialVectors(r, kind, n, dim)
	}
	return it
}

// TestPrescanBoundHolds checks the derived bound directly: for every row,
// |approx - exact| <= E_r.
func TestPrescanBoundHolds(t *testing.T) {
	if !useFMA {
		t.Skip("no pre-scan kernel on this machine")
	}
	r := rand.New(rand.NewPCG(73, 74))
	for _, bits := range []int{4, 8, 16} {
		for _, kind := range []string{"normal", "tiny", "mixed", "scaled-rows", "scaled-rows-f16", "near-top-ties", "equal", "large"} {
			for _, dim := range []int{1, 7, 64, 128} {
				n := prescanMinRows + r.IntN(2000)
				q := adversarialVectors(r, "normal", 1, dim)
				if kind == "tiny" || kind == "mixed" {
					q = adversarialVectors(r, kind, 1, dim)
				}
				it := prescanItems(r, kind, n, dim, q)
				x, err := NewItemIndex(ModelMeta{Version: "v", Dim: dim}, it)
				if err != nil {
					t.Fatal(err)
				}
				x.pre = buildPrescan(x.vecs, x.biases, n, dim, x.ntiles, bits)
				z := make([]uint32, x.pre.zWords())
				ec, sq, ok := x.pre.quantQuery(z, q, true)
				if !ok {
					if kind == "mixed" || kind == "large" { // |q| or |v| huge: overflow possible, refused
						continue
					}
					t.Fatalf("%s dim=%d: the bound refused a finite, small query", kind, dim)
				}
				approx := make([]float32, x.ntiles*tileRows)
				exact := make([]float32, x.ntiles*tileRows)
				masks := make([]uint32, x.ntiles)
				x.pre.scan(approx, masks, z, 0, &x.biasPad[0], sq, float32(math.Inf(-1)), x.ntiles)
				scoreTiles(exact, q, x.tiles, x.biasPad, dim, x.ntiles)
				worst := 0.0
				for i := range n {
					e := ec.row(x.pre.norm[i], x.pre.errv[i], x.biasPad[i])
					d := math.Abs(float64(approx[i]) - float64(exact[i]))
					worst = max(worst, d/e)
					if !(d <= e) {
						t.Fatalf("int%d %s dim=%d row %d: |approx %g - exact %g| = %g > E = %g", bits, kind, dim, i, approx[i], exact[i], d, e)
					}
				}
				t.Logf("int%d %s dim=%d: max |approx-exact| / E = %.3f", bits, kind, dim, worst)
			}
		}
	}
}

// TestPrescanTopKIsExact: the pre-scan + re-rank returns exactly the float32
// top-K of the exact scan (assembly and pure Go) and of the brute force, on
// adversarial data; the pre-scan must have been used, not fallen back.
func TestPrescanTopKIsExact(t *testing.T) {
	if !useFMA {
		t.Skip("no pre-scan kernel on this machine")
	}
	r := rand.New(rand.NewPCG(75, 76))
	for _, bits := range []int{4, 8, 16} {
		for _, kind := range []string{"normal", "near-top-ties", "scaled-rows", "scaled-rows-f16", "mixed", "tiny"} {
			for _, dim := range []int{3, 64, 128} {
				t.Run(fmt.Sprintf("int%d/%s/dim=%d", bits, kind, dim), func(t *testing.T) {
					n := prescanMinRows + r.IntN(3000)
					q := adversarialVectors(r, "normal", 1, dim)
					it := prescanItems(r, kind, n, dim, q)
					ref := Items{IDs: slices.Clone(it.IDs), Biases: slices.Clone(it.Biases), Vectors: slices.Clone(it.Vectors)}
					x, err := NewItemIndex(ModelMeta{Version: "v", Dim: dim}, it)
					if err != nil {
						t.Fatal(err)
					}
					if x.pre == nil {
						t.Fatal("no pre-scan index")
					}
					x.pre = buildPrescan(x.vecs, x.biases, n, dim, x.ntiles, bits)
					if x.pre.bits != bits && kind != "scaled-rows" && kind != "mixed" {
						t.Fatalf("asked for %d bits, built %d", bits, x.pre.bits)
					}
					for _, k := range []int{1, 25, 100, 500} {
						for _, bias := range []bool{false, true} {
							opts := TopKOptions{UseBias: bias, Exclude: []uint32{ref.IDs[0], ref.IDs[1], ref.IDs[n-1]}}
							// Call the pre-scan directly, to know that it ran.
							sc := scratchPool.Get().(*topKScratch)
							words := (n + 63) / 64
							excl := make([]uint64, words)
							for _, id := range opts.Exclude {
								r, _ := x.row(id)
								excl[r>>6] |= 1 << (r & 63)
							}
							sel := selector{k: k, th: float32(math.Inf(-1)), excl: excl, nexcl: len(opts.Exclude), ids: x.ids}
							var b []float32
							if bias {
								b = x.biasPad
							}
							if sc.pre == nil {
								sc.pre = newPrescanScratch()
							}
							used := x.topKPrescan(&sel, q, b, sc.pre)
							if !used && kind != "mixed" { // mixed: |v| up to 1e30, refused (overflow possible)
								t.Fatalf("k=%d: the pre-scan fell back", k)
							}
							nCand, nPassed := sc.pre.reranked, sc.pre.passed
							scratchPool.Put(sc)
							pre := sel.sorted()
							if !used {
								pre = bruteTopK(ref, dim, q, k, opts)
							}
							viaTopK := x.TopK(nil, q, k, opts)
							opts.Exact = true
							exact := x.TopK(nil, q, k, opts)
							var gen []Scored
							withGeneric(t, func() { gen = x.TopK(nil, q, k, opts) })
							want := bruteTopK(ref, dim, q, k, opts)
							if !slices.Equal(pre, want) || !slices.Equal(viaTopK, want) || !slices.Equal(exact, want) || !slices.Equal(gen, want) {
								t.Fatalf("k=%d bias=%v: results differ\n prescan %v\n exact   %v\n want    %v", k, bias, head(pre), head(exact), head(want))
							}
							if k == 25 {
								t.Logf("k=%d bias=%v: %d rows past the mask, %d candidates re-ranked, of %d rows", k, bias, nPassed, nCand, n)
							}
						}
					}
				})
			}
		}
	}
}

func TestPrescanDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	if !useFMA {
		t.Skip("no pre-scan kernel on this machine")
	}
	r := rand.New(rand.NewPCG(77, 78))
	x, err := NewItemIndex(ModelMeta{Version: "v", Dim: 64}, randomItems(r, kuaiItems, 64, false))
	if err != nil {
		t.Fatal(err)
	}
	q := randVec(r, 64)
	dst := make([]Scored, 0, 25)
	exclude := []uint32{1, 2, 3, 4000}
	x.TopK(dst, q, 25, TopKOptions{Exclude: exclude}) // warm the pool
	allocs := testing.AllocsPerRun(100, func() {
		dst = x.TopK(dst, q, 25, TopKOptions{UseBias: true, Exclude: exclude})
	})
	if allocs != 0 {
		t.Fatalf("TopK with the pre-scan allocates %v times per call", allocs)
	}
	x.pre = buildPrescan(x.vecs, x.biases, x.Len(), 64, x.ntiles, 4) // the 4-bit copy too
	x.TopK(dst, q, 25, TopKOptions{UseBias: true, Exclude: exclude})
	if allocs := testing.AllocsPerRun(100, func() {
		dst = x.TopK(dst, q, 25, TopKOptions{UseBias: true, Exclude: exclude})
	}); allocs != 0 {
		t.Fatalf("TopK with the 4-bit pre-scan allocates %v times per call", allocs)
	}
}
