package cache

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTwoPassHelpers: tileMax, maskAbove and kthLargest against plain Go.
func TestTwoPassHelpers(t *testing.T) {
	if !useFMA {
		t.Skip("no assembly kernels on this machine")
	}
	r := rand.New(rand.NewPCG(91, 92))
	for _, nt := range []int{1, 2, 7, 336} {
		v := make([]float32, nt*tileRows)
		for i := range v {
			v[i] = float32(r.NormFloat64())
			if r.IntN(10) == 0 {
				v[i] = float32(r.IntN(3)) // ties
			}
		}
		v[r.IntN(len(v))] = float32(math.Inf(-1))
		maxes := make([]float32, nt)
		tileMax(&v[0], &maxes[0], nt)
		th := float32(r.NormFloat64())
		masks := make([]uint32, nt)
		maskAbove(&v[0], &masks[0], th, nt)
		for ti := range nt {
			tile := v[ti*tileRows : (ti+1)*tileRows]
			if want := slices.Max(tile); maxes[ti] != want {
				t.Fatalf("nt=%d tile %d: max %v, want %v", nt, ti, maxes[ti], want)
			}
			var want uint32
			for c, s := range tile {
				if s >= th {
					want |= 1 << c
				}
			}
			if masks[ti] != want {
				t.Fatalf("nt=%d tile %d: mask %#x, want %#x", nt, ti, masks[ti], want)
			}
		}
		desc := slices.Clone(v)
		slices.Sort(desc)
		slices.Reverse(desc)
		for _, m := range []int{1, 2, 25, len(v) / 2, len(v)} {
			if got := kthLargest(slices.Clone(v), m); got != desc[m-1] {
				t.Fatalf("nt=%d: kthLargest(%d) = %v, want %v", nt, m, got, desc[m-1])
			}
		}
	}
}

// TestTwoPassAdversarial: the two-pass threshold stays sound where a tile's
// maximum is not an eligible row: the best rows excluded (each is likely the
// maximum of its tile), and every real row scoring below the padding rows'
// zero. Each case also checks that the adjustment is needed: without it,
// the threshold would lie above the k-th best exact score, so the test
// would fail if the adjustment were dropped.
func TestTwoPassAdversarial(t *testing.T) {
	if !useFMA {
		t.Skip("no pre-scan kernel on this machine")
	}
	r := rand.New(rand.NewPCG(93, 94))
	const dim = 64
	for _, tc := range []struct {
		name     string
		n, k     int
		negative bool // every score far below 0, n not a multiple of 32
		nExcl    int  // the best rows excluded
	}{
		{"exclude-best", kuaiItems, 25, false, 40},
		{"exclude-best-k1", kuaiItems, 1, false, 3},
		{"padding-above-all", kuaiItems, 1, true, 0},
	} {
		for _, bits := range []int{16, 8} {
			t.Run(fmt.Sprintf("%s/int%d", tc.name, bits), func(t *testing.T) {
				it := randomItems(r, tc.n, dim, false)
				if tc.negative {
					for i := range it.Biases {
						it.Biases[i] = -1000 - float32(r.Float64())
					}
				}
				ref := Items{IDs: slices.Clone(it.IDs), Biases: slices.Clone(it.Biases), Vectors: slices.Clone(it.Vectors)}
				x, err := NewItemIndex(ModelMeta{Version: "v", Dim: dim}, it)
				if err != nil {
					t.Fatal(err)
				}
				if x.pre == nil {
					t.Fatal("no pre-scan")
				}
				x.pre = buildPrescan(x.vecs, x.biases, tc.n, dim, x.ntiles, bits) // both widths, whichever prescanWidth picks here
				if !x.useTwoPass(tc.k, tc.nExcl) {
					t.Fatal("the two-pass pre-scan is not in use")
				}
				q := randVec(r, dim)
				best := bruteTopK(ref, dim, q, tc.nExcl, TopKOptions{UseBias: true})
				opts := TopKOptions{UseBias: true}
				for _, s := range best {
					opts.Exclude = append(opts.Exclude, s.ID)
				}
				want := bruteTopK(ref, dim, q, tc.k, opts)
				if got := x.TopK(nil, q, tc.k, opts); !slices.Equal(got, want) {
					t.Fatalf("two-pass top-%d differs\n got  %v\n want %v", tc.k, head(got), head(want))
				}
				// Without the adjustment (m = k: neither the excluded rows nor
				// the padding tile counted) the threshold would pass V, the
				// k-th best eligible exact score.
				ps := newPrescanScratch()
				ps.z = make([]uint32, x.pre.zWords())
				ec, sq, ok := x.pre.quantQuery(ps.z, q, true)
				if !ok {
					t.Fatal("query refused")
				}
				emax := x.pre.emax(&ec)
				x.scanTwoPass(ps, ps.z, x.biasPad, sq, tc.k, tc.nExcl, emax)
				unadj := float64(kthLargest(ps.tmax[:x.ntiles], tc.k)) - emax
				if v := float64(want[tc.k-1].Score); unadj <= v {
					t.Fatalf("the unadjusted threshold %v does not pass V = %v: the case tests nothing", unadj, v)
				}
			})
		}
	}
}
