package cache

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestF16ConversionsMatchHardware(t *testing.T) {
	if !useFMA {
		t.Skip("no F16C kernel on this machine")
	}
	// Every finite half through VCVTPH2PS: dim 1, q = [1], scale 1, no bias.
	const dim = 1
	h := make([]uint16, tileRows)
	scale := make([]float32, tileRows)
	for i := range scale {
		scale[i] = 1
	}
	out, mask := make([]float32, tileRows), make([]uint32, 1)
	q := []float32{1}
	for base := 0; base < 1<<16; base += tileRows {
		for c := range h {
			h[c] = uint16(base + c)
		}
		prescanF16(&out[0], &mask[0], &q[0], &h[0], &scale[0], nil, 0, dim, 1)
		for c, got := range out {
			want := f16to32(h[c])
			if math.IsNaN(float64(want)) || math.IsInf(float64(want), 0) {
				continue
			}
			if got != want { // +0 and -0 compare equal: the sum with +0 loses the sign
				t.Fatalf("half %#04x: VCVTPH2PS %g, f16to32 %g", h[c], got, want)
			}
			if (mask[0]>>c)&1 == 1 != (got >= 0) {
				t.Fatalf("half %#04x: mask bit %d for %g >= 0", h[c], (mask[0]>>c)&1, got)
			}
		}
	}
}

func TestF32to16RoundsToNearestEven(t *testing.T) {
	r := rand.New(rand.NewPCG(71, 72))
	for i := range 200000 {
		var x float32
		switch i % 3 {
		case 0:
			x = float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(44)-30))) // normals and subnormals
		case 1:
			x = float32(math.Ldexp(float64(r.IntN(1<<11)), r.IntN(20)-34)) // exact halves
		case 2: // ties: an exact half plus half its spacing
			k, e := r.IntN(1<<10)+1<<10, r.IntN(20)-24
			x = float32(math.Ldexp(float64(k)+0.5, e))
		}
		if math.Abs(float64(x)) >= 65504 {
			continue
		}
		h := f32to16(x)
		got := float64(f16to32(h))
		d := math.Abs(got - float64(x))
		for _, nb := range []uint16{h + 1, h - 1} {
			v := float64(f16to32(nb))
			if math.IsNaN(v) || math.IsInf(v, 0) || (nb^h)&0x8000 != 0 {
				continue
			}
			dn := math.Abs(v - float64(x))
			if dn < d || (dn == d && h&1 == 1) {
				t.Fatalf("f32to16(%g) = %g (%#04x), neighbour %g (%#04x) is nearer or an even tie", x, got, h, v, nb)
			}
		}
		if d > 0x1p-11*math.Abs(float64(x))+0x1p-25 {
			t.Fatalf("f32to16(%g) = %g: error %g beyond the bound", x, got, d)
		}
	}
}

// prescanItems returns n items of one kind for the pre-scan tests; the
// "near-top-ties" kind puts 300 rows within a few ulps of a row aligned with
// q, so that the top-k is decided by differences float16 cannot see.
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
	case "scaled-rows": // rows of very different magnitudes (per-row scales)
		it.Vectors = adversarialVectors(r, "normal", n, dim)
		for i := range n {
			s := float32(math.Pow(2, float64(r.IntN(60)-30)))
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
// |approx - exact| <= E.
func TestPrescanBoundHolds(t *testing.T) {
	if !useFMA {
		t.Skip("no pre-scan kernel on this machine")
	}
	r := rand.New(rand.NewPCG(73, 74))
	for _, kind := range []string{"normal", "tiny", "mixed", "scaled-rows", "near-top-ties", "equal"} {
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
			var ss float64
			for _, v := range q {
				ss += float64(v) * float64(v)
			}
			ec, ok := x.pre.bound(math.Sqrt(ss)*(1+1e-12), dim, true)
			if !ok {
				if kind == "mixed" { // |q| up to 1e30: overflow is possible, refused
					continue
				}
				t.Fatalf("%s dim=%d: the bound refused a finite, small query", kind, dim)
			}
			approx := make([]float32, x.ntiles*tileRows)
			exact := make([]float32, x.ntiles*tileRows)
			masks := make([]uint32, x.ntiles)
			prescanF16(&approx[0], &masks[0], &q[0], &x.pre.h[0], &x.pre.scale[0], &x.biasPad[0], float32(math.Inf(-1)), dim, x.ntiles)
			scoreTiles(exact, q, x.tiles, x.biasPad, dim, x.ntiles)
			worst := 0.0
			for i := range n {
				e := ec.row(x.pre.norm[i], x.pre.scale[i], x.biasPad[i])
				d := math.Abs(float64(approx[i]) - float64(exact[i]))
				worst = max(worst, d/e)
				if !(d <= e) {
					t.Fatalf("%s dim=%d row %d: |approx %g - exact %g| = %g > E = %g", kind, dim, i, approx[i], exact[i], d, e)
				}
			}
			t.Logf("%s dim=%d: max |approx-exact| / E = %.3f", kind, dim, worst)
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
	for _, kind := range []string{"normal", "near-top-ties", "scaled-rows", "mixed", "tiny"} {
		for _, dim := range []int{3, 64, 128} {
			t.Run(fmt.Sprintf("%s/dim=%d", kind, dim), func(t *testing.T) {
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
						sel := selector{k: k, th: float32(math.Inf(-1)), excl: excl, ids: x.ids}
						var b []float32
						if bias {
							b = x.biasPad
						}
						var ss float64
						for _, v := range q {
							ss += float64(v) * float64(v)
						}
						ec, _ := x.pre.bound(math.Sqrt(ss)*(1+1e-12), dim, bias)
						if sc.pre == nil {
							sc.pre = newPrescanScratch()
						}
						if !x.topKPrescan(&sel, q, b, ec, sc.pre) {
							t.Fatalf("k=%d: the pre-scan fell back (too many candidates)", k)
						}
						nCand, nPassed := len(sc.pre.cRows), sc.pre.passed
						scratchPool.Put(sc)
						pre := sel.sorted()
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

func TestPrescanDoesNotAllocate(t *testing.T) {
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
}
