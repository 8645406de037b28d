package cache

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

// withGeneric runs f with the pure-Go kernels selected.
func withGeneric(t testing.TB, f func()) {
	t.Helper()
	saved := useFMA
	useFMA = false
	defer func() { useFMA = saved }()
	f()
}

// bigFMA32 is a*b+c rounded once to float32 (nearest, ties to even), by
// exact big.Float arithmetic.
func bigFMA32(a, b, c float32) float32 {
	p := new(big.Float).SetPrec(2000).SetFloat64(float64(a))
	p.Mul(p, new(big.Float).SetFloat64(float64(b)))
	p.Add(p, new(big.Float).SetPrec(2000).SetFloat64(float64(c)))
	f, _ := p.Float32() // nearest, ties to even, subnormals included
	return f
}

// randBitsFloat32 returns a finite float32 with uniformly random bits.
func randBitsFloat32(r *rand.Rand) float32 {
	for {
		f := math.Float32frombits(r.Uint32())
		if !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) {
			return f
		}
	}
}

// fmaCases are (a, b, c) triples, random and built to hit float32 ties
// after a float64 rounding (where a double-rounded FMA goes wrong).
func fmaCases(r *rand.Rand, n int) [][3]float32 {
	var cs [][3]float32
	for range n {
		cs = append(cs, [3]float32{float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())})
		cs = append(cs, [3]float32{randBitsFloat32(r), randBitsFloat32(r), randBitsFloat32(r)})
		// a*b = 1 + 2^-11 + 2^-24 + ...: a float32 tie after rounding to
		// float64 once c is far below; a tiny c decides the direction.
		u := float32(1 + math.Ldexp(1, -12) + math.Ldexp(float64(r.IntN(64)), -23))
		c := float32(math.Ldexp(r.Float64()+0.5, -60-r.IntN(60)))
		if r.IntN(2) == 0 {
			c = -c
		}
		cs = append(cs, [3]float32{u, u, c})
		// Subnormal results.
		cs = append(cs, [3]float32{float32(math.Ldexp(r.Float64(), -70)), float32(math.Ldexp(r.Float64(), -70)), float32(math.Ldexp(r.NormFloat64(), -135))})
		// Cancellation.
		a, b := float32(r.NormFloat64()), float32(r.NormFloat64())
		cs = append(cs, [3]float32{a, b, -a * b})
	}
	return cs
}

func TestFMA32IsCorrectlyRounded(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	doubles := 0
	for _, c := range fmaCases(r, 20000) {
		got, want := fma32(c[0], c[1], c[2]), bigFMA32(c[0], c[1], c[2])
		if math.Float32bits(got) != math.Float32bits(want) && !(got == 0 && want == 0) {
			t.Fatalf("fma32(%g, %g, %g) = %g (%#x), exact rounding %g (%#x)", c[0], c[1], c[2], got, math.Float32bits(got), want, math.Float32bits(want))
		}
		if float32(math.FMA(float64(c[0]), float64(c[1]), float64(c[2]))) != want {
			doubles++
		}
	}
	// The tie cases are there for a reason: double rounding does go wrong on them.
	if doubles == 0 {
		t.Fatal("no case where float32(math.FMA(...)) rounds twice wrongly: the tie cases test nothing")
	}
	t.Logf("double rounding differs from one rounding on %d cases", doubles)
}

// TestFMA32MatchesHardware checks fma32 against VFMADD231PS: a row of dim 3
// with q = [c, 0, a] and v = [1, 0, b] scores fma(a, b, c) + 0.
func TestFMA32MatchesHardware(t *testing.T) {
	if !useFMA {
		t.Skip("no FMA kernel on this machine")
	}
	r := rand.New(rand.NewPCG(63, 64))
	const dim = 3
	out := make([]float32, tileRows)
	for i, c := range fmaCases(r, 5000) {
		tiles, _ := buildTiles([]float32{1, 0, c[1]}, 1, dim)
		q := []float32{c[2], 0, c[0]}
		scoreTilesFMA(&out[0], &q[0], &tiles[0], nil, dim, 1)
		if want := fma32(c[0], c[1], c[2]) + 0; !sameBits(out[0], want) {
			t.Fatalf("case %d: hardware fma(%g, %g, %g) = %g, fma32 %g", i, c[0], c[1], c[2], out[0], want)
		}
	}
}

// adversarialVectors returns n x dim values of one kind.
func adversarialVectors(r *rand.Rand, kind string, n, dim int) []float32 {
	v := make([]float32, n*dim)
	switch kind {
	case "normal":
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
	case "bits": // any finite float32: huge, tiny, subnormal; scores overflow to Inf
		for i := range v {
			v[i] = randBitsFloat32(r)
		}
	case "large":
		for i := range v {
			v[i] = float32(r.NormFloat64() * 1e18)
		}
	case "tiny":
		for i := range v {
			v[i] = float32(r.NormFloat64() * 1e-22)
		}
	case "mixed": // magnitudes from 1e-30 to 1e30 in one row: cancellation
		for i := range v {
			v[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(61)-30)))
		}
	case "near-ties": // one base row, each copy 0-3 ulps away in one coordinate
		base := make([]float32, dim)
		for j := range base {
			base[j] = float32(r.NormFloat64())
		}
		for i := range n {
			row := v[i*dim : (i+1)*dim]
			copy(row, base)
			j := r.IntN(dim)
			row[j] = math.Float32frombits(math.Float32bits(row[j]) + uint32(r.IntN(4)))
		}
	case "equal": // a few distinct rows repeated: equal scores, ties by id
		distinct := make([]float32, 3*dim)
		for j := range distinct {
			distinct[j] = float32(r.IntN(5) - 2)
		}
		for i := range n {
			copy(v[i*dim:(i+1)*dim], distinct[(i%3)*dim:(i%3+1)*dim])
		}
	default:
		panic(kind)
	}
	return v
}

var adversarialKinds = []string{"normal", "bits", "large", "tiny", "mixed", "near-ties", "equal"}

func sameBits(a, b float32) bool {
	if a != a && b != b {
		return true // NaN payloads are not compared: NaN is never returned
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

func TestKernelsBitIdentical(t *testing.T) {
	if !useFMA {
		t.Skip("no assembly kernel on this machine: nothing to compare")
	}
	r := rand.New(rand.NewPCG(65, 66))
	for _, kind := range adversarialKinds {
		for _, dim := range []int{1, 2, 3, 7, 8, 31, 32, 33, 64, 100, 128} {
			n := 1 + r.IntN(200)
			vecs := adversarialVectors(r, kind, n, dim)
			tiles, ntiles := buildTiles(vecs, n, dim)
			q := adversarialVectors(r, kind, 1, dim)
			bias := make([]float32, ntiles*tileRows)
			for i := range n {
				bias[i] = float32(r.NormFloat64())
			}
			for _, b := range [][]float32{nil, bias} {
				asm, gen := make([]float32, ntiles*tileRows), make([]float32, ntiles*tileRows)
				scoreTilesFMA(&asm[0], &q[0], &tiles[0], ptrOrNil(b), dim, ntiles)
				scoreTilesGeneric(gen, q, tiles, b, dim, ntiles)
				for i := range n {
					ref := refScore(q, vecs[i*dim:(i+1)*dim])
					if b != nil {
						ref += b[i]
					}
					if !sameBits(asm[i], gen[i]) || !sameBits(gen[i], ref) {
						t.Fatalf("%s dim=%d bias=%v row %d: asm %g (%#x), generic %g (%#x), row reference %g",
							kind, dim, b != nil, i, asm[i], math.Float32bits(asm[i]), gen[i], math.Float32bits(gen[i]), ref)
					}
				}
			}
		}
	}
}

func ptrOrNil(b []float32) *float32 {
	if b == nil {
		return nil
	}
	return &b[0]
}

// TestTopKSameOnEveryKernel: the assembly and the pure-Go kernels return the
// same top-K (ids and score bits), and both equal the brute-force reference,
// on adversarial data.
func TestTopKSameOnEveryKernel(t *testing.T) {
	r := rand.New(rand.NewPCG(67, 68))
	for _, kind := range adversarialKinds {
		for _, dim := range []int{3, 32, 64} {
			t.Run(fmt.Sprintf("%s/dim=%d", kind, dim), func(t *testing.T) {
				n := 500 + r.IntN(300)
				it := Items{IDs: make([]uint32, n), Biases: make([]float32, n), Vectors: adversarialVectors(r, kind, n, dim)}
				for i := range it.IDs {
					it.IDs[i] = uint32(i * 3)
					if kind != "equal" {
						it.Biases[i] = float32(r.NormFloat64())
					}
				}
				r.Shuffle(n, func(i, j int) { it.IDs[i], it.IDs[j] = it.IDs[j], it.IDs[i] })
				ref := Items{IDs: slices.Clone(it.IDs), Biases: slices.Clone(it.Biases), Vectors: slices.Clone(it.Vectors)}
				x, err := NewItemIndex(ModelMeta{Version: "v", Dim: dim}, it)
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range []int{1, 25, n} {
					q := adversarialVectors(r, kind, 1, dim)
					opts := TopKOptions{UseBias: k != 1, Exclude: []uint32{ref.IDs[0], ref.IDs[7]}}
					fast := x.TopK(nil, q, k, opts)
					var slow []Scored
					withGeneric(t, func() { slow = x.TopK(nil, q, k, opts) })
					want := bruteTopK(ref, dim, q, k, opts)
					if !slices.Equal(fast, want) || !slices.Equal(slow, want) {
						t.Fatalf("k=%d (%s kernel): top-K differs\n fast %v\n slow %v\n want %v", k, kernelName(), head(fast), head(slow), head(want))
					}
					if len(want) == 0 {
						t.Fatalf("k=%d: empty reference (all NaN?)", k)
					}
				}
			})
		}
	}
}

func head(s []Scored) []Scored { return s[:min(len(s), 30)] }
