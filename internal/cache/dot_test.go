package cache

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func TestDotMatchesFloat64Reference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 3, 7, 8, 9, 16, 31, 64, 65, 128, 300} {
		a, b := randVec(r, n), randVec(r, n)
		var ref, mag float64
		for i := range a {
			ref += float64(a[i]) * float64(b[i])
			mag += math.Abs(float64(a[i]) * float64(b[i]))
		}
		got := float64(dot(a, b))
		if math.Abs(got-ref) > 1e-5*(mag+1) {
			t.Errorf("n=%d: dot=%v, float64 reference %v", n, got, ref)
		}
	}
}

func TestDot4AgreesWithDotBitForBit(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 5, 8, 13, 64, 100} {
		q := randVec(r, n)
		rows := [4][]float32{randVec(r, n), randVec(r, n), randVec(r, n), randVec(r, n)}
		d0, d1, d2, d3 := dot4(q, rows[0], rows[1], rows[2], rows[3])
		for i, d := range []float32{d0, d1, d2, d3} {
			if want := dot(q, rows[i]); math.Float32bits(d) != math.Float32bits(want) {
				t.Errorf("n=%d row %d: dot4=%v dot=%v", n, i, d, want)
			}
		}
	}
}

func BenchmarkDot(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{16, 64, 256} {
		x, y := randVec(r, n), randVec(r, n)
		b.Run(fmt.Sprintf("dim=%d", n), func(b *testing.B) {
			var s float32
			for b.Loop() {
				s += dot(x, y)
			}
			_ = s
		})
	}
}
