package towers

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMedianCalibrationFoldsExactly: after Apply, every prediction (the
// scorer's, PredictRows' and the exported embeddings' inner products) is
// Shift + Slope * the prediction before, and the ranking scores are Slope
// times the old ones.
func TestMedianCalibrationFoldsExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	ds := tinyDataset(rng, 9, 4, 13, 3, 200)
	m := NewTwoTower(9, 4, 13, 3, TwoTowerConfig{Dim: 5, Hidden: []int{6}, ItemVectors: true}, rng)
	m.GlobalMean = 0.9
	for i := range m.UserVec {
		m.UserVec[i] = 0.3 * rng.NormFloat64()
	}
	for i := range m.ItemVec {
		m.ItemVec[i] = 0.3 * rng.NormFloat64()
	}
	for i := range m.ItemTrained {
		m.ItemTrained[i] = i%4 != 0
	}
	before := m.PredictRows(ds.UserFeatures, ds.ItemFeatures, ds.Train)
	users, items := []int32{0, 3, 8}, []int32{0, 1, 5, 12}
	sBefore := m.NewScorer(ds.UserFeatures, users, ds.ItemFeatures, items)
	c := MedianCalibration{Shift: -0.17, Slope: 0.65}
	c.Apply(m)
	after := m.PredictRows(ds.UserFeatures, ds.ItemFeatures, ds.Train)
	for k := range before {
		if want := c.Shift + c.Slope*before[k]; math.Abs(after[k]-want) > 1e-12 {
			t.Fatalf("row %d: %v, want %v", k, after[k], want)
		}
	}
	sAfter := m.NewScorer(ds.UserFeatures, users, ds.ItemFeatures, items)
	p0, p1 := make([]float64, len(items)), make([]float64, len(items))
	s0, s1 := make([]float64, len(items)), make([]float64, len(items))
	for u := range users {
		sBefore.Predict(u, p0)
		sAfter.Predict(u, p1)
		sBefore.Scores(u, s0)
		sAfter.Scores(u, s1)
		for i := range items {
			if math.Abs(p1[i]-(c.Shift+c.Slope*p0[i])) > 1e-12 || math.Abs(s1[i]-c.Slope*s0[i]) > 1e-12 {
				t.Fatalf("user %d item %d: predict %v -> %v, score %v -> %v", u, i, p0[i], p1[i], s0[i], s1[i])
			}
		}
	}
}

// TestFitMedianCalibrationFindsTheMap: on rows whose watch ratios are an
// exact affine map of the predictions except for a minority of outliers,
// the fit recovers the map (absolute error ignores the outliers).
func TestFitMedianCalibrationFindsTheMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	ds := tinyDataset(rng, 9, 4, 13, 3, 400)
	m := NewTwoTower(9, 4, 13, 3, TwoTowerConfig{Dim: 5, Hidden: []int{6}, ItemVectors: true}, rng)
	m.GlobalMean = 1
	for i := range m.UserVec {
		m.UserVec[i] = 0.5 * rng.NormFloat64()
	}
	pred := m.PredictRows(ds.UserFeatures, ds.ItemFeatures, ds.Train)
	for k := range pred {
		y := 0.2 + 0.75*pred[k]
		if k%5 == 0 {
			y += 3 // outliers, all above
		}
		ds.Train.WatchRatio[k] = float32(max(y, 0))
	}
	c := FitMedianCalibration(m, ds.UserFeatures, ds.ItemFeatures, ds.Train)
	if math.Abs(c.Slope-0.75) > 1e-9 || math.Abs(c.Shift-0.2) > 1e-3 {
		t.Fatalf("fit %+v, want slope 0.75 shift 0.2", c)
	}
	if !(c.MAEAfter < c.MAEBefore) {
		t.Fatalf("MAE %v -> %v: no gain", c.MAEBefore, c.MAEAfter)
	}
}

// TestMedianShiftsFollowSkewedUsers: user 0's watch ratios are the
// predictions plus a right-skewed residual whose median is +0.4 (mean
// larger), the other users' exactly the predictions; the fit shifts user 0
// by about its shrunk median residual, chooses a finite lambda on the
// validation rows (which follow the same pattern), lowers their MAE, and
// Apply moves exactly user 0's predictions.
func TestMedianShiftsFollowSkewedUsers(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	const nu, ni = 4, 6
	m := NewTwoTower(nu, 3, ni, 3, TwoTowerConfig{Dim: 4, Hidden: []int{5}, ItemVectors: true}, rng)
	m.GlobalMean = 1
	for i := range m.ItemTrained {
		m.ItemTrained[i] = true
	}
	ds := tinyDataset(rng, nu, 3, ni, 3, 0)
	mk := func(n int) Interactions {
		var x Interactions
		for k := 0; k < n; k++ {
			x.User = append(x.User, int32(k%nu))
			x.Item = append(x.Item, int32(rng.IntN(ni)))
		}
		p := m.PredictRows(ds.UserFeatures, ds.ItemFeatures, x)
		for k := range p {
			y := p[k]
			if x.User[k] == 0 {
				y += 0.4 + 0.3*math.Log(1/(1-rng.Float64())) - 0.3*math.Ln2 // median 0.4
			}
			x.WatchRatio = append(x.WatchRatio, float32(y))
		}
		return x
	}
	train, valid := mk(4000), mk(800)
	s := FitMedianShifts(m, ds.UserFeatures, ds.ItemFeatures, train, valid)
	if math.IsInf(s.UserLambda, 1) || math.Abs(s.User[0]-0.4) > 0.05 || math.Abs(s.User[1]) > 1e-6 {
		t.Fatalf("user shifts %v lambda %v", s.User, s.UserLambda)
	}
	if !(s.ValidMAE[1] < s.ValidMAE[0]) {
		t.Fatalf("validation MAE %v", s.ValidMAE)
	}
	before := m.PredictRows(ds.UserFeatures, ds.ItemFeatures, valid)
	s.Apply(m)
	after := m.PredictRows(ds.UserFeatures, ds.ItemFeatures, valid)
	for k := range before {
		want := before[k] + s.User[valid.User[k]] + s.Item[valid.Item[k]]
		if math.Abs(after[k]-want) > 1e-12 {
			t.Fatalf("row %d: %v, want %v", k, after[k], want)
		}
	}
}
