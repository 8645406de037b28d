package towers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
)

// FitTwoTower trains the serving model on ds: MSE on the (capped) watch ratio,
// weighted by ds.Train.Weight if set, plus cfg.RankWeight times a sampled
// softmax ranking loss; Adam on the towers and the scale, LazyAdam on the
// per-user and per-item vectors. progress (may be nil) is called every
// tc.ProgressEvery steps and after each epoch. The result is deterministic
// for a given (tc.Seed, tc.Workers).
func FitTwoTower(ctx context.Context, ds *Dataset, cfg TwoTowerConfig, tc TrainConfig, progress func(Progress)) (*TwoTower, History, error) {
	if err := ds.Validate(); err != nil {
		return nil, History{}, err
	}
	if err := tc.validate(); err != nil {
		return nil, History{}, err
	}
	if cfg.RankWeight > 0 && (cfg.Negatives <= 0 || !(cfg.RankTemp > 0)) {
		return nil, History{}, fmt.Errorf("twotower config: ranking loss needs negatives > 0 and temp > 0")
	}
	rng := rand.New(rand.NewPCG(tc.Seed, 0x7470))
	nu, du := ds.UserFeatures.Dims()
	ni, di := ds.ItemFeatures.Dims()
	m := NewTwoTower(nu, du, ni, di, cfg, rng)
	m.User.setRef(tc.Reference)
	m.Item.setRef(tc.Reference)
	m.GlobalMean = targetMean(ds.Train, tc.TargetCap)
	for _, it := range ds.Train.Item {
		m.ItemTrained[it] = true
	}
	var pool []int32
	for i, ok := range m.ItemTrained {
		if ok {
			pool = append(pool, int32(i))
		}
	}
	rows := trainRows(ds.Train.Len(), tc.SampleSize, rng)
	f := &ttFitter{m: m, ds: ds, tc: tc, pool: pool}
	// Validation runs the training-side code on the validation rows; built
	// here, before workers run concurrently.
	valDS := *ds
	valDS.Train = ds.Valid
	f.valDS = &valDS
	capRows := (tc.Batch + tc.Workers - 1) / tc.Workers
	for w := 0; w < tc.Workers; w++ {
		f.workers = append(f.workers, m.newWorker(capRows))
		f.rngs = append(f.rngs, rand.New(rand.NewPCG(tc.Seed, uint64(1000+w))))
	}
	f.tabs = []*vecTable{newVecTable(m.UserVec, cfg.Dim, tc.VecLR, tc.VecL2)}
	if m.ItemVec != nil {
		f.tabs = append(f.tabs, newVecTable(m.ItemVec, cfg.Dim, tc.VecLR, tc.VecL2))
	}
	for range tc.Workers {
		f.negBufs = append(f.negBufs, make([]int32, cfg.Negatives))
	}
	h, err := runLoop(ctx, "twotower", ds, tc, f, rows, rng, progress)
	if err != nil {
		return nil, h, err
	}
	return m, h, nil
}

// targetMean is the mean of the (capped) watch ratios.
func targetMean(x Interactions, cap float64) float64 {
	s := 0.0
	for _, v := range x.WatchRatio {
		y := float64(v)
		if cap > 0 {
			y = min(y, cap)
		}
		s += y
	}
	return s / float64(max(len(x.WatchRatio), 1))
}

// trainRows returns the training row indices, or a fixed random sample of
// size of them (sorted, before the loop shuffles them).
func trainRows(n, size int, rng *rand.Rand) []int32 {
	rows := make([]int32, n)
	for k := range rows {
		rows[k] = int32(k)
	}
	if size > 0 && size < n {
		for i := 0; i < size; i++ { // partial Fisher-Yates
			j := i + rng.IntN(n-i)
			rows[i], rows[j] = rows[j], rows[i]
		}
		rows = rows[:size]
		slices.Sort(rows)
	}
	return rows
}

type ttFitter struct {
	m       *TwoTower
	ds      *Dataset
	tc      TrainConfig
	pool    []int32
	workers []*ttWorker
	rngs    []*rand.Rand
	tabs    []*vecTable
	negBufs [][]int32
	valDS   *Dataset
}

func (f *ttFitter) dense() []float64    { return f.m.p.Data }
func (f *ttFitter) tables() []*vecTable { return f.tabs }

func (f *ttFitter) rankPositive(k int32) bool {
	return f.m.Cfg.RankWeight > 0 && float64(f.ds.Train.WatchRatio[k]) >= f.m.Cfg.RankThreshold
}

func (f *ttFitter) step(w int, part []int32, mseNorm, rankNorm float64, grad []float64) lossParts {
	wk := f.workers[w]
	wk.uRows.reset()
	wk.iRows.reset()
	nb := f.negBufs[w]
	for j := range nb {
		nb[j] = f.pool[f.rngs[w].IntN(len(f.pool))]
	}
	b := ttBatch{idx: part, negs: nb, mseNorm: mseNorm, rankNorm: rankNorm}
	return wk.lossGrad(f.ds, &b, f.tc.TargetCap, grad)
}

func (f *ttFitter) val(w int, part []int32) lossParts {
	b := ttBatch{idx: part, mseNorm: 1}
	return f.workers[w].lossGrad(f.valDS, &b, f.tc.TargetCap, nil)
}

func (f *ttFitter) sparse(w int) []*sparseRows {
	wk := f.workers[w]
	if f.m.ItemVec != nil {
		return []*sparseRows{&wk.uRows, &wk.iRows}
	}
	return []*sparseRows{&wk.uRows}
}

// FitSeed trains the seed baseline on ds (see DefaultSeedConfig and
// SeedTrainConfig), with the same loop, progress and history as FitTwoTower.
func FitSeed(ctx context.Context, ds *Dataset, cfg SeedConfig, tc TrainConfig, progress func(Progress)) (*Seed, History, error) {
	if err := ds.Validate(); err != nil {
		return nil, History{}, err
	}
	if err := tc.validate(); err != nil {
		return nil, History{}, err
	}
	rng := rand.New(rand.NewPCG(tc.Seed, 0x5eed))
	_, du := ds.UserFeatures.Dims()
	_, di := ds.ItemFeatures.Dims()
	m := NewSeed(du, di, cfg, targetMean(ds.Train, tc.TargetCap), rng)
	for _, t := range []*MLP{m.User, m.Item, m.Comb} {
		t.setRef(tc.Reference)
	}
	rows := trainRows(ds.Train.Len(), tc.SampleSize, rng)
	f := &seedFitter{m: m, ds: ds, tc: tc}
	capRows := (tc.Batch + tc.Workers - 1) / tc.Workers
	for w := 0; w < tc.Workers; w++ {
		f.workers = append(f.workers, m.newWorker(capRows, rand.New(rand.NewPCG(tc.Seed, uint64(2000+w)))))
	}
	h, err := runLoop(ctx, "seed", ds, tc, f, rows, rng, progress)
	if err != nil {
		return nil, h, err
	}
	return m, h, nil
}

type seedFitter struct {
	m       *Seed
	ds      *Dataset
	tc      TrainConfig
	workers []*seedWorker
}

func (f *seedFitter) dense() []float64         { return f.m.p.Data }
func (f *seedFitter) tables() []*vecTable      { return nil }
func (f *seedFitter) rankPositive(int32) bool  { return false }
func (f *seedFitter) sparse(int) []*sparseRows { return nil }
func (f *seedFitter) step(w int, part []int32, mseNorm, _ float64, grad []float64) lossParts {
	return f.workers[w].lossGrad(f.ds, f.ds.Train, part, mseNorm, f.tc.TargetCap, true, grad)
}
func (f *seedFitter) val(w int, part []int32) lossParts {
	return f.workers[w].lossGrad(f.ds, f.ds.Valid, part, 1, f.tc.TargetCap, false, nil)
}
