package towers

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestFoldsBalancedAndSeeded: every row gets a fold in [0, k), the folds'
// sizes differ by at most one, the same seed gives the same folds and
// another seed others.
func TestFoldsBalancedAndSeeded(t *testing.T) {
	const n, k = 1003, 5
	f := Folds(n, k, 7)
	size := make([]int, k)
	for _, v := range f {
		if v < 0 || int(v) >= k {
			t.Fatalf("fold %d outside [0,%d)", v, k)
		}
		size[v]++
	}
	if slices.Max(size)-slices.Min(size) > 1 {
		t.Errorf("fold sizes %v", size)
	}
	if !slices.Equal(f, Folds(n, k, 7)) {
		t.Error("the same seed gave other folds")
	}
	if slices.Equal(f, Folds(n, k, 8)) {
		t.Error("another seed gave the same folds")
	}
}

// TestFitCrossCalibrationRecovers: out-of-fold predictions whose watch
// ratios are 0.2 + 0.8 * pred, plus a per-user offset (+-0.4 for a third of
// the users each way) and Laplace noise: the map recovers the slope and the
// shift, the user shifts recover the offsets (shrunk), items (no effect)
// gain nothing worth a shift, and every step lowers the out-of-fold MAE
// or keeps it.
func TestFitCrossCalibrationRecovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	const n, nu, ni, k = 30_000, 30, 40, 5
	off := make([]float64, nu)
	for u := range off {
		off[u] = []float64{-0.4, 0, 0.4}[u%3]
	}
	var x Interactions
	pred := make([]float64, n)
	for r := 0; r < n; r++ {
		u, i := int32(rng.IntN(nu)), int32(rng.IntN(ni))
		pred[r] = 0.5 + rng.Float64()*1.5
		noise := rng.ExpFloat64() * 0.2
		if rng.IntN(2) == 0 {
			noise = -noise
		}
		y := math.Max(0, 0.2+0.8*pred[r]+off[u]+noise)
		x.User, x.Item, x.WatchRatio = append(x.User, u), append(x.Item, i), append(x.WatchRatio, float32(y))
	}
	fold := Folds(n, k, 1)
	c := FitCrossCalibration(pred, fold, k, x, nu, ni, func(int32) bool { return true })
	if math.Abs(c.Map.Slope-0.8) > 0.051 || math.Abs(c.Map.Shift-0.2) > 0.1 {
		t.Errorf("map shift %v slope %v, want about 0.2 and 0.8", c.Map.Shift, c.Map.Slope)
	}
	if math.IsInf(c.Shifts.UserLambda, 1) {
		t.Fatal("no user shift chosen although users differ by +-0.4")
	}
	for u := range off {
		if d := c.Shifts.User[u] - off[u]; math.Abs(d) > 0.1 {
			t.Errorf("user %d: shift %v, offset %v", u, c.Shifts.User[u], off[u])
		}
	}
	for k := 1; k < 4; k++ {
		if !(c.CVMAE[k] <= c.CVMAE[k-1]) {
			t.Errorf("out-of-fold MAE rose at step %d: %v", k, c.CVMAE)
		}
	}
	if !(c.CVMAE[2] < c.CVMAE[1]-0.05) {
		t.Errorf("user shifts gained only %v -> %v", c.CVMAE[1], c.CVMAE[2])
	}
	if c.CVMAE[3] < c.CVMAE[2]-0.005 {
		t.Errorf("item shifts gained %v -> %v on items without an effect", c.CVMAE[2], c.CVMAE[3])
	}
	for i, s := range c.Shifts.Item {
		if math.Abs(s) > 0.05 {
			t.Errorf("item %d: shift %v without an effect", i, s)
		}
	}
}

// TestCrossFitTwoTowerPredictsEveryRow: each training row gets a finite
// out-of-fold prediction, and fold labels that do not match the rows, or
// a fold holding every row, are errors.
func TestCrossFitTwoTowerPredictsEveryRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	ds := tinyDataset(rng, 12, 4, 15, 3, 300)
	cfg := TwoTowerConfig{Dim: 4, Hidden: []int{6}, ItemVectors: true}
	tc := DefaultTrainConfig()
	tc.Epochs, tc.Batch, tc.Workers = 1, 32, 1
	fold := Folds(ds.Train.Len(), 3, 5)
	pred, err := CrossFitTwoTower(context.Background(), ds, fold, 3, cfg, tc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pred) != ds.Train.Len() {
		t.Fatalf("%d predictions for %d rows", len(pred), ds.Train.Len())
	}
	for r, p := range pred {
		if math.IsNaN(p) || math.IsInf(p, 0) || p == 0 {
			t.Fatalf("row %d: prediction %v", r, p)
		}
	}
	if _, err := CrossFitTwoTower(context.Background(), ds, fold[1:], 3, cfg, tc, nil); err == nil {
		t.Error("fold labels for fewer rows accepted")
	}
	if _, err := CrossFitTwoTower(context.Background(), ds, make([]int8, ds.Train.Len()), 2, cfg, tc, nil); err == nil {
		t.Error("a fold holding every row accepted")
	}
}
