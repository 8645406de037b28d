package towers

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
)

// Cross-fitting, for small data: the validation split that the median
// calibration is fit on (FitMedianCalibration, FitMedianShifts) is a few
// hundred rows when the big matrix is small, too few to fit a slope, choose
// two shrinkage constants and compare learning rates without noise.
// CrossFitTwoTower instead trains K models, each on the training rows
// outside one fold, and predicts that fold: every training row then has an
// out-of-fold prediction, made by a model that did not see it, so that the
// calibration is fit and judged on all the training rows (FitCrossCalibration).
// The model that serves is still the one trained on every row; the
// calibration learnt out of fold is folded into it.

// Folds assigns each of n rows to one of k folds of (nearly) equal size, by a
// permutation drawn from seed.
func Folds(n, k int, seed uint64) []int8 {
	rng := rand.New(rand.NewPCG(seed, 0x666f6c64))
	fold := make([]int8, n)
	for pos, r := range rng.Perm(n) {
		fold[r] = int8(pos % k)
	}
	return fold
}

// subset returns the rows k of x with keep(k).
func (x Interactions) subset(keep func(k int) bool) Interactions {
	var s Interactions
	for k := range x.User {
		if !keep(k) {
			continue
		}
		s.User = append(s.User, x.User[k])
		s.Item = append(s.Item, x.Item[k])
		s.WatchRatio = append(s.WatchRatio, x.WatchRatio[k])
		if x.Weight != nil {
			s.Weight = append(s.Weight, x.Weight[k])
		}
	}
	return s
}

// CrossFitTwoTower trains one model per fold (folds from Folds, values 0 to
// k-1) on ds.Train without that fold, with the fold as its validation rows,
// and returns every training row's prediction by the model that did not
// train on it (uncalibrated). progress, if not nil, gives the callback of
// each fold's training.
func CrossFitTwoTower(ctx context.Context, ds *Dataset, fold []int8, k int, cfg TwoTowerConfig, tc TrainConfig, progress func(f int) (func(Progress), func())) ([]float64, error) {
	if len(fold) != ds.Train.Len() || k < 2 {
		return nil, fmt.Errorf("cross-fit: %d fold labels for %d rows, %d folds", len(fold), ds.Train.Len(), k)
	}
	pred := make([]float64, ds.Train.Len())
	for f := 0; f < k; f++ {
		in := ds.Train.subset(func(r int) bool { return int(fold[r]) != f })
		out := ds.Train.subset(func(r int) bool { return int(fold[r]) == f })
		if in.Len() == 0 || out.Len() == 0 {
			return nil, fmt.Errorf("cross-fit: fold %d of %d is empty or holds every row", f, k)
		}
		dsf := &Dataset{UserFeatures: ds.UserFeatures, ItemFeatures: ds.ItemFeatures, Train: in, Valid: out}
		cb, done := func(Progress) {}, func() {}
		if progress != nil {
			cb, done = progress(f)
		}
		m, _, err := FitTwoTower(ctx, dsf, cfg, tc, cb)
		done()
		if err != nil {
			return nil, fmt.Errorf("cross-fit fold %d of %d: %w", f+1, k, err)
		}
		p := m.PredictRows(ds.UserFeatures, ds.ItemFeatures, out)
		j := 0
		for r := range pred {
			if int(fold[r]) == f {
				pred[r] = p[j]
				j++
			}
		}
	}
	return pred, nil
}

// CrossCalibration is a median calibration fit out of fold: the affine map
// on every training row's out-of-fold prediction, then per-user and
// per-item median shifts of the out-of-fold residuals, each shrinkage
// constant chosen by the MAE on each fold of shifts whose medians come from
// the other folds. CVMAE are those out-of-fold MAEs: before any
// calibration, after the map, after the user shifts and after both.
type CrossCalibration struct {
	Map    MedianCalibration
	Shifts MedianShifts
	CVMAE  [4]float64
}

// FitCrossCalibration fits a CrossCalibration on the out-of-fold predictions
// pred of the rows of train (folds fold, k of them); items with
// itemOK(i) false get no shift (the serving model has no per-item vector
// for them).
func FitCrossCalibration(pred []float64, fold []int8, k int, train Interactions, nUsers, nItems int, itemOK func(int32) bool) CrossCalibration {
	n := len(pred)
	y := make([]float64, n)
	for r, v := range train.WatchRatio {
		y[r] = float64(v)
	}
	c := CrossCalibration{Map: fitMedianAffine(pred, y)}
	res := make([]float64, n)
	for r := range res {
		res[r] = y[r] - (c.Map.Shift + c.Map.Slope*pred[r])
	}
	c.CVMAE[0], c.CVMAE[1] = c.Map.MAEBefore, meanAbs(res)
	c.Shifts = MedianShifts{UserLambda: math.Inf(1), ItemLambda: math.Inf(1)}
	c.Shifts.User, c.Shifts.UserLambda, c.CVMAE[2] = crossShift(res, train.User, fold, k, nUsers, func(int32) bool { return true })
	c.Shifts.Item, c.Shifts.ItemLambda, c.CVMAE[3] = crossShift(res, train.Item, fold, k, nItems, itemOK)
	c.Shifts.ValidMAE = [3]float64{c.CVMAE[1], c.CVMAE[2], c.CVMAE[3]}
	return c
}

// crossShift chooses the shrinkage of shiftLambdas whose group shifts,
// medians taken on the other folds' residuals, give each fold's rows the
// lowest MAE; it returns the shifts from every row's residual at that
// constant (0 for groups with ok false or +Inf: none), the constant and the
// out-of-fold MAE, and takes the shifts out of res.
func crossShift(res []float64, key []int32, fold []int8, k, nGroups int, ok func(int32) bool) ([]float64, float64, float64) {
	errs := make([]float64, len(shiftLambdas))
	for f := 0; f < k; f++ {
		var rest []float64
		var restKey []int32
		for r := range res {
			if int(fold[r]) != f {
				rest = append(rest, res[r])
				restKey = append(restKey, key[r])
			}
		}
		med, cnt := groupMedians(rest, restKey, nGroups)
		for li, lam := range shiftLambdas {
			for r := range res {
				if int(fold[r]) != f {
					continue
				}
				d, g := res[r], key[r]
				if !math.IsInf(lam, 1) && ok(g) {
					d -= med[g] * cnt[g] / (cnt[g] + lam)
				}
				errs[li] += math.Abs(d)
			}
		}
	}
	best := 0 // shiftLambdas[0] is +Inf: ties keep no shift
	for li := range errs {
		if errs[li] < errs[best] {
			best = li
		}
	}
	lam := shiftLambdas[best]
	shift := make([]float64, nGroups)
	if !math.IsInf(lam, 1) {
		med, cnt := groupMedians(res, key, nGroups)
		for g := range shift {
			if ok(int32(g)) {
				shift[g] = med[g] * cnt[g] / (cnt[g] + lam)
			}
		}
		for r := range res {
			res[r] -= shift[key[r]]
		}
	}
	return shift, lam, errs[best] / float64(max(len(res), 1))
}

func meanAbs(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += math.Abs(v)
	}
	return s / float64(max(len(x), 1))
}
