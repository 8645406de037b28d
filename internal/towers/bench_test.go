package towers

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// benchDataset has KuaiRec's full-size shape (7,176 users x 10,728 videos)
// with f features per side and rows random interactions.
func benchDataset(f, rows int) *Dataset {
	rng := rand.New(rand.NewPCG(1, 1))
	const nu, ni = 7176, 10728
	ds := &Dataset{UserFeatures: mat.NewDense(nu, f, randSlice(rng, nu*f)), ItemFeatures: mat.NewDense(ni, f, randSlice(rng, ni*f))}
	for k := 0; k < rows; k++ {
		ds.Train.User = append(ds.Train.User, int32(rng.IntN(nu)))
		ds.Train.Item = append(ds.Train.Item, int32(rng.IntN(ni)))
		ds.Train.WatchRatio = append(ds.Train.WatchRatio, float32(rng.ExpFloat64()))
	}
	return ds
}

// BenchmarkTrainThroughput measures training rows per second of the serving
// model and of the seed baseline in the same run (one epoch over 40,960 rows,
// batch 512, no validation), per worker count, for the trainer of today
// (trainer=fast) and the trainer before issue 17 (trainer=reference,
// TrainConfig.Reference: gonum's kernels), on the same data:
//
//	go test -run '^$' -bench TrainThroughput -benchmem ./internal/towers/
func BenchmarkTrainThroughput(b *testing.B) {
	const rows, feats = 40960, 32
	ds := benchDataset(feats, rows)
	for _, workers := range []int{1, 2} {
		for _, trainer := range []string{"reference", "fast"} {
			ref := trainer == "reference"
			b.Run("model=twotower/workers="+strconv.Itoa(workers)+"/trainer="+trainer, func(b *testing.B) {
				tc := DefaultTrainConfig()
				tc.Epochs, tc.MaxSamples, tc.Workers, tc.Patience, tc.Reference = 1, 0, workers, 0, ref
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := FitTwoTower(context.Background(), ds, DefaultTwoTowerConfig(), tc, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
			})
			b.Run("model=seed/workers="+strconv.Itoa(workers)+"/trainer="+trainer, func(b *testing.B) {
				tc := SeedTrainConfig()
				tc.Epochs, tc.Workers, tc.Patience, tc.SampleSize, tc.Reference = 1, workers, 0, 0, ref
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := FitSeed(context.Background(), ds, DefaultSeedConfig(), tc, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}

// BenchmarkDense measures the Dense kernel forward+backward per layer size.
func BenchmarkDense(b *testing.B) {
	for _, s := range [][3]int{{256, 32, 128}, {256, 128, 64}, {256, 64, 64}} {
		n, in, out := s[0], s[1], s[2]
		b.Run("n="+strconv.Itoa(n)+"/in="+strconv.Itoa(in)+"/out="+strconv.Itoa(out), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			var p params
			d := p.reserveDense("d", in, out)
			p.alloc()
			p.bindDense(d)
			copy(p.Data, randSlice(rng, len(p.Data)))
			x, dy := randSlice(rng, n*in), randSlice(rng, n*out)
			y, dx, g := make([]float64, n*out), make([]float64, n*in), make([]float64, len(p.Data))
			b.ReportAllocs()
			for b.Loop() {
				d.Forward(y, x, n)
				d.Backward(dx, g, x, dy, n)
			}
			b.ReportMetric(float64(6*n*in*out)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
