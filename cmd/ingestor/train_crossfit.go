package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/streamrec/streamrec/internal/towers"
)

// defaultFolds is --folds' default: the cross-fit's folds on small data.
const defaultFolds = 5

// defaultVecL2Grid is --vec-l2-grid's default: the per-user and per-item
// vectors' L2 penalties the cross-fit tries at the best rate.
const defaultVecL2Grid = "0.0001,0.001,0.01,0.1"

// crossFitFits says whether the cross-fit of every setting (folds trainings on
// (folds-1)/folds of the rows each) and the final training on all rows stay
// inside the serving model's row budget. Only small data gets there: on
// full-size data one training alone exceeds the budget.
func crossFitFits(settings, folds, trainRows int, cfg towers.TrainConfig) bool {
	if folds < 2 || settings < 1 || cfg.MaxSamples <= 0 {
		return false
	}
	perRate := int64(trainRows) * int64(folds-1) // rows of one rate's folds together
	total := (int64(settings)*perRate + int64(trainRows)) * int64(cfg.Epochs)
	return total <= cfg.MaxSamples
}

func ptr[T any](v T) *T { return &v }

// fitCrossFit judges each setting by the out-of-fold MAE of its cross-fit
// calibration (towers.CrossFitTwoTower, towers.FitCrossCalibration: every
// training row predicted by a model that did not see it): first each rate
// of rates at --vec-l2, then, at the best rate, each penalty of l2s (a
// coordinate search; ties keep the earlier). It trains the serving model at
// the best setting on every training row and folds that setting's
// out-of-fold calibration into it. The validation split is then only
// measured, and only big-matrix rows are looked at.
func fitCrossFit(ctx context.Context, logger *slog.Logger, td *trainData, o *trainOpts, rates, l2s []float64, progressW io.Writer) (*fitted, []lrTrial, error) {
	ds := td.ds
	nUsers, _ := ds.UserFeatures.Dims()
	nItems, _ := ds.ItemFeatures.Dims()
	inTrain := make([]bool, nItems)
	for _, it := range ds.Train.Item {
		inTrain[it] = true
	}
	itemOK := func(i int32) bool { return o.twoTower.ItemVectors && inTrain[i] }
	fold := towers.Folds(ds.Train.Len(), o.folds, o.train.Seed)
	logger.Info("cross-fit", "rates", rates, "vec_l2", l2s, "folds", o.folds, "train_rows", ds.Train.Len(), "budget", o.train.MaxSamples)
	var trials []lrTrial
	var best towers.CrossCalibration
	bestCfg := o.train
	try := func(cfg towers.TrainConfig) error {
		progress := func(f int) (func(towers.Progress), func()) {
			bar := &trainBar{w: progressW, model: fmt.Sprintf("twotower lr %g vec-l2 %g fold %d/%d", cfg.LR, cfg.VecL2, f+1, o.folds)}
			return bar.callback(), bar.finish
		}
		oof, err := towers.CrossFitTwoTower(ctx, ds, fold, o.folds, o.twoTower, cfg, progress)
		if err != nil {
			return fmt.Errorf("training the two-tower model: %w", err)
		}
		cc := towers.FitCrossCalibration(oof, fold, o.folds, ds.Train, nUsers, nItems, itemOK)
		logger.Info("cross-fit calibration", "lr", cfg.LR, "vec_l2", cfg.VecL2, "shift", cc.Map.Shift, "slope", cc.Map.Slope,
			"user_lambda", jsonLambda(cc.Shifts.UserLambda), "item_lambda", jsonLambda(cc.Shifts.ItemLambda),
			"cv_mae_before", cc.CVMAE[0], "cv_mae_map", cc.CVMAE[1], "cv_mae_user", cc.CVMAE[2], "cv_mae", cc.CVMAE[3])
		trials = append(trials, lrTrial{LR: cfg.LR, VecL2: ptr(cfg.VecL2), CVMAE: ptr(jsonSafe(cc.CVMAE[3]))})
		if len(trials) == 1 || cc.CVMAE[3] < best.CVMAE[3] {
			best, bestCfg = cc, cfg
		}
		return nil
	}
	for _, lr := range rates {
		cfg := o.train
		cfg.LR = lr
		if err := try(cfg); err != nil {
			return nil, nil, err
		}
	}
	for _, l2 := range l2s {
		if l2 == o.train.VecL2 {
			continue // tried with the rates
		}
		cfg := bestCfg
		cfg.VecL2 = l2
		if err := try(cfg); err != nil {
			return nil, nil, err
		}
	}
	bar := &trainBar{w: progressW, model: "twotower"}
	m, hist, err := towers.FitTwoTower(ctx, ds, o.twoTower, bestCfg, bar.callback())
	bar.finish()
	if err != nil {
		return nil, nil, fmt.Errorf("training the two-tower model: %w", err)
	}
	before := validMAE(m, ds)
	best.Map.Apply(m)
	afterMap := validMAE(m, ds)
	towers.MedianShifts{User: best.Shifts.User}.Apply(m)
	afterUser := validMAE(m, ds)
	towers.MedianShifts{Item: best.Shifts.Item}.Apply(m)
	f := &fitted{m: m, hist: hist, lr: bestCfg.LR, vecL2: bestCfg.VecL2, validMAE: validMAE(m, ds)}
	f.calib = &calibReport{Method: "cross-fit", Folds: o.folds, Shift: best.Map.Shift, Slope: best.Map.Slope,
		ValidRows: ds.Valid.Len(), ValidMAEBefore: jsonSafe(before), ValidMAEAfter: jsonSafe(afterMap),
		UserLambda: jsonLambda(best.Shifts.UserLambda), ItemLambda: jsonLambda(best.Shifts.ItemLambda),
		ValidMAEShifts: []float64{jsonSafe(afterUser), jsonSafe(f.validMAE)}}
	for _, v := range best.CVMAE {
		f.calib.CVMAE = append(f.calib.CVMAE, jsonSafe(v))
	}
	logger.Info("cross-fit done", "lr", bestCfg.LR, "vec_l2", bestCfg.VecL2, "cv_mae", best.CVMAE[3], "valid_mae", f.validMAE)
	return f, trials, nil
}
