package towers

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// synthProblem is a small latent-factor world: users and items have features
// that partly reveal latent factors; the true watch ratio of every pair is
// known (truth), and training sees a popularity-biased, noisy subset.
type synthProblem struct {
	ds    *Dataset
	truth TruthMatrix
}

func newSynthProblem(seed uint64, nu, ni, perUser int) synthProblem {
	rng := rand.New(rand.NewPCG(seed, 77))
	const du, di, L = 8, 8, 4
	A := randSlice(rng, L*du)
	B := randSlice(rng, L*di)
	uf := mat.NewDense(nu, du, randSlice(rng, nu*du))
	itf := mat.NewDense(ni, di, randSlice(rng, ni*di))
	latent := func(M []float64, x []float64, noise float64) []float64 {
		z := make([]float64, L)
		for l := 0; l < L; l++ {
			for j, v := range x {
				z[l] += M[l*len(x)+j] * v / math.Sqrt(float64(len(x)))
			}
			z[l] = 0.6*z[l] + noise*rng.NormFloat64()
		}
		return z
	}
	zu := make([][]float64, nu)
	for u := range zu {
		zu[u] = latent(A, uf.RawRowView(u), 0.6)
	}
	zi := make([][]float64, ni)
	quality := make([]float64, ni)
	pop := make([]float64, ni)
	for i := range zi {
		zi[i] = latent(B, itf.RawRowView(i), 0.6)
		quality[i] = 0.25 * rng.NormFloat64()
		pop[i] = 1 / math.Pow(float64(i+1), 0.6) // popular items are exposed more
	}
	tr := TruthMatrix{Users: nu, Items: ni, WR: make([]float64, nu*ni)}
	for u := 0; u < nu; u++ {
		for i := 0; i < ni; i++ {
			a := 0.0
			for l := 0; l < L; l++ {
				a += zu[u][l] * zi[i][l]
			}
			tr.WR[u*ni+i] = max(0, 0.85+quality[i]+0.35*a)
		}
	}
	// Exposure: popularity-biased sample of perUser items per user.
	cum := make([]float64, ni)
	c := 0.0
	for i, p := range pop {
		c += p
		cum[i] = c
	}
	var train, valid Interactions
	for u := 0; u < nu; u++ {
		seen := map[int]bool{}
		for len(seen) < perUser {
			x := rng.Float64() * c
			i := 0
			for cum[i] < x {
				i++
			}
			if seen[i] {
				continue
			}
			seen[i] = true
			wr := float32(max(0, tr.WR[u*ni+i]+0.2*rng.NormFloat64()))
			dst := &train
			if rng.Float64() < 0.1 {
				dst = &valid
			}
			dst.User = append(dst.User, int32(u))
			dst.Item = append(dst.Item, int32(i))
			dst.WatchRatio = append(dst.WatchRatio, wr)
		}
	}
	return synthProblem{ds: &Dataset{UserFeatures: uf, ItemFeatures: itf, Train: train, Valid: valid}, truth: tr}
}

func allIdx(n int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(i)
	}
	return s
}

func TestTwoTowerBeatsPopularityOnSynthetic(t *testing.T) {
	nu, ni, per, epochs := 300, 400, 60, 12
	if testing.Short() {
		nu, ni, per, epochs = 200, 300, 50, 10
	}
	p := newSynthProblem(1, nu, ni, per)
	cfg := DefaultTwoTowerConfig()
	cfg.Hidden = []int{32}
	cfg.Dim = 16
	tc := DefaultTrainConfig()
	tc.Epochs, tc.MaxSamples, tc.Batch, tc.LR, tc.VecLR, tc.Patience = epochs, 0, 128, 0.01, 0.02, 3
	var calls int
	m, h, err := FitTwoTower(context.Background(), p.ds, cfg, tc, func(Progress) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || len(h.Epochs) == 0 {
		t.Fatalf("progress calls %d, history %d epochs", calls, len(h.Epochs))
	}
	for _, e := range h.Epochs {
		t.Logf("epoch %d: train mse %.4f rank %.4f val mse %.4f mae %.4f (%v)", e.Epoch, e.TrainMSE, e.TrainRank, e.ValMSE, e.ValMAE, e.Duration)
	}
	if first, last := h.Epochs[0].TrainMSE, h.Epochs[len(h.Epochs)-1].TrainMSE; !(last < first) {
		t.Errorf("train MSE did not decrease: %v -> %v", first, last)
	}
	sc := m.NewScorer(p.ds.UserFeatures, allIdx(nu), p.ds.ItemFeatures, allIdx(ni))
	rels := []Relevance{RelevantAt08, {Threshold: 1.2}}
	model := RankingMetrics(p.truth, 25, rels, sc.Scores)
	pop := PopularityScores(p.ds.Train.Item, p.ds.Train.WatchRatio, ni, &RelevantAt08)
	popm := RankingMetrics(p.truth, 25, rels, func(_ int, dst []float64) { copy(dst, pop) })
	// The seed baseline (features only) on the same data.
	stc := SeedTrainConfig()
	stc.Epochs, stc.Batch, stc.LR, stc.SampleSize, stc.Patience = epochs, 128, 0.003, 0, 3
	scfg := DefaultSeedConfig()
	scfg.Tower, scfg.Comb = []int{32, 16, 16}, []int{16, 8, 1}
	seed, _, err := FitSeed(context.Background(), p.ds, scfg, stc, nil)
	if err != nil {
		t.Fatal(err)
	}
	ss := seed.NewScorer(p.ds.UserFeatures, allIdx(nu), p.ds.ItemFeatures, allIdx(ni))
	seedm := RankingMetrics(p.truth, 25, rels, ss.Predict)
	for li, rel := range rels {
		t.Logf("relevance %+v: seed NDCG@25 %.4f P %.4f R %.4f", rel, seedm[li].NDCG, seedm[li].Precision, seedm[li].Recall)
		if !(model[li].NDCG > seedm[li].NDCG) {
			t.Errorf("relevance %+v: model NDCG@25 %.4f does not beat the seed %.4f", rel, model[li].NDCG, seedm[li].NDCG)
		}
	}
	for li, rel := range rels {
		t.Logf("relevance %+v: base rate %.3f; model NDCG@25 %.4f P %.4f R %.4f; popularity NDCG@25 %.4f P %.4f R %.4f",
			rel, BaseRate(p.truth, rel), model[li].NDCG, model[li].Precision, model[li].Recall,
			popm[li].NDCG, popm[li].Precision, popm[li].Recall)
		if !(model[li].NDCG > popm[li].NDCG) {
			t.Errorf("relevance %+v: model NDCG@25 %.4f does not beat popularity %.4f", rel, model[li].NDCG, popm[li].NDCG)
		}
	}
	// MAE on the truth matrix beats the mean baseline.
	pred := make([]float64, nu*ni)
	for u := 0; u < nu; u++ {
		sc.Predict(u, pred[u*ni:(u+1)*ni])
	}
	mean, _ := MeanMedian(p.ds.Train.WatchRatio)
	mae, maeMean := MAE(pred, p.truth.WR), MAEConst(mean, p.truth.WR)
	t.Logf("MAE model %.4f, mean baseline %.4f", mae, maeMean)
	if !(mae < maeMean) {
		t.Errorf("MAE %.4f does not beat the mean baseline %.4f", mae, maeMean)
	}
}
