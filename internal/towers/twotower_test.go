package towers

import (
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// tinyDataset returns random features and interactions for gradient checks.
func tinyDataset(rng *rand.Rand, nu, du, ni, di, n int) *Dataset {
	uf := mat.NewDense(nu, du, randSlice(rng, nu*du))
	itf := mat.NewDense(ni, di, randSlice(rng, ni*di))
	tr := Interactions{}
	for k := 0; k < n; k++ {
		tr.User = append(tr.User, int32(rng.IntN(nu)))
		tr.Item = append(tr.Item, int32(rng.IntN(ni)))
		tr.WatchRatio = append(tr.WatchRatio, float32(rng.Float64()*2))
		tr.Weight = append(tr.Weight, float32(0.5+rng.Float64()))
	}
	return &Dataset{UserFeatures: uf, ItemFeatures: itf, Train: tr}
}

// denseFromSparse sums sparse row gradients into a table-shaped slice.
func denseFromSparse(s *sparseRows, rows, dim int) []float64 {
	g := make([]float64, rows*dim)
	for k, r := range s.rows {
		axpy(g[int(r)*dim:(int(r)+1)*dim], 1, s.vals[k*dim:(k+1)*dim])
	}
	return g
}

func TestTwoTowerGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	const nu, du, ni, di, n = 4, 3, 6, 5, 10
	ds := tinyDataset(rng, nu, du, ni, di, n)
	cfg := TwoTowerConfig{Dim: 4, Hidden: []int{5}, ItemVectors: true, RankWeight: 0.7,
		RankThreshold: 0.8, RankTemp: 0.5, Negatives: 3}
	m := NewTwoTower(nu, du, ni, di, cfg, rng)
	m.GlobalMean = 0.9
	for i := range m.UserVec {
		m.UserVec[i] = 0.3 * rng.NormFloat64()
	}
	for i := range m.ItemVec {
		m.ItemVec[i] = 0.3 * rng.NormFloat64()
	}
	m.p.Data[m.scaleOff] = 1.3
	idx := make([]int32, n)
	mseNorm, rankNorm := 0.0, 0.0
	for k := range idx {
		idx[k] = int32(k)
		mseNorm += ds.Train.weight(int32(k))
		if float64(ds.Train.WatchRatio[k]) >= cfg.RankThreshold {
			rankNorm += ds.Train.weight(int32(k))
		}
	}
	if rankNorm == 0 {
		t.Fatal("no rank positives in the fixture")
	}
	b := &ttBatch{idx: idx, negs: []int32{1, 4, 5}, mseNorm: mseNorm, rankNorm: rankNorm}
	w := m.newWorker(n)
	loss := func() float64 {
		lp := w.lossGrad(ds, b, 1.7, nil)
		return lp.mse/mseNorm + cfg.RankWeight*lp.rank/rankNorm
	}
	grad := make([]float64, len(m.p.Data))
	w.uRows.reset()
	w.iRows.reset()
	w.lossGrad(ds, b, 1.7, grad)
	gu := denseFromSparse(&w.uRows, nu, cfg.Dim)
	gi := denseFromSparse(&w.iRows, ni, cfg.Dim)
	checkGrad(t, "TwoTower dense+scale", m.p.Data, grad, loss)
	checkGrad(t, "TwoTower user vectors", m.UserVec, gu, loss)
	checkGrad(t, "TwoTower item vectors", m.ItemVec, gi, loss)
}

func TestSeedGradient(t *testing.T) {
	for _, train := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(31, 32))
		const nu, du, ni, di, n = 4, 3, 6, 5, 9
		ds := tinyDataset(rng, nu, du, ni, di, n)
		cfg := SeedConfig{Tower: []int{6, 5, 4}, Comb: []int{5, 3, 1}, Dropout: 0.3}
		m := NewSeed(du, di, cfg, 0.9, rng)
		for _, tw := range []*MLP{m.User, m.Item} {
			for _, d := range tw.Layers {
				for i := range d.B {
					d.B[i] = 0.5 * rng.NormFloat64() // keep L2 norms away from 0
				}
			}
		}
		idx := make([]int32, n)
		norm := 0.0
		for k := range idx {
			idx[k] = int32(k)
			norm += ds.Train.weight(int32(k))
		}
		w := m.newWorker(n, nil)
		loss := func() float64 {
			w.rng = rand.New(rand.NewPCG(5, 5))
			return w.lossGrad(ds, ds.Train, idx, norm, 0, train, nil).mse / norm
		}
		loss()
		grad := make([]float64, len(m.p.Data))
		w.rng = rand.New(rand.NewPCG(5, 5))
		w.lossGrad(ds, ds.Train, idx, norm, 0, train, grad)
		name := "Seed (eval)"
		if train {
			name = "Seed (train, dropout)"
		}
		checkGrad(t, name, m.p.Data, grad, loss)
	}
}
