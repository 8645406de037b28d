package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/towers"
)

// defaultLRGrid is --lr-grid's default: the towers' Adam rates tried when
// the whole search fits in the training budget.
const defaultLRGrid = "0.001,0.002,0.003,0.005,0.01"

// parseGrid reads a grid flag (name, for the error): comma-separated
// values, positive (or, with zeroOK, non-negative) and finite, or "" (off).
func parseGrid(name, s string, zeroOK bool) ([]float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	want := "positive"
	if zeroOK {
		want = "non-negative"
	}
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(v > 0 || zeroOK && v == 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s %q: %q is not a %s finite number", name, s, f, want)
		}
		out = append(out, v)
	}
	return out, nil
}

// flagGiven reports whether flag name was given on the command line or in
// its environment variable: then that value is trained and no search runs
// over it.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	_, env := os.LookupEnv(config.EnvName(name))
	return given || env
}

// searchFits says whether training every rate of the grid stays inside the
// serving model's row budget (epochs x training rows each). On full-size data
// one training alone exceeds the budget, so no search runs there.
func searchFits(grid []float64, trainRows int, cfg towers.TrainConfig) bool {
	if len(grid) < 2 || cfg.MaxSamples <= 0 {
		return false
	}
	return int64(len(grid))*int64(cfg.Epochs)*int64(trainRows) <= cfg.MaxSamples
}

// lrTrial is one rate of the search and the validation MAE its calibrated
// model reached.
type lrTrial struct {
	LR    float64  `json:"lr"`
	VecL2 *float64 `json:"vec_l2,omitempty"`
	// ValidMAE is the validation split's MAE (the search without
	// cross-fitting); CVMAE the out-of-fold MAE of the training rows after
	// the cross-fit calibration (with it).
	ValidMAE *float64 `json:"valid_mae,omitempty"`
	CVMAE    *float64 `json:"cv_mae,omitempty"`
}

// fitted is a trained (and, unless --no-calibrate, calibrated) serving model.
type fitted struct {
	m        *towers.TwoTower
	hist     towers.History
	calib    *calibReport
	lr       float64
	vecL2    float64
	validMAE float64
}

// fitServing trains the serving model at the rate of cfg and fits its median
// calibration on the validation split (folded into the parameters).
func fitServing(ctx context.Context, logger *slog.Logger, td *trainData, o *trainOpts, cfg towers.TrainConfig, progressW io.Writer) (*fitted, error) {
	bar := &trainBar{w: progressW, model: "twotower"}
	m, hist, err := towers.FitTwoTower(ctx, td.ds, o.twoTower, cfg, bar.callback())
	bar.finish()
	if err != nil {
		return nil, fmt.Errorf("training the two-tower model: %w", err)
	}
	f := &fitted{m: m, hist: hist, lr: cfg.LR, vecL2: cfg.VecL2}
	if !o.noCalibrate {
		c := towers.FitMedianCalibration(m, td.ds.UserFeatures, td.ds.ItemFeatures, td.ds.Valid)
		c.Apply(m)
		f.calib = &calibReport{Method: "validation split", Shift: c.Shift, Slope: c.Slope, ValidRows: c.Rows,
			ValidMAEBefore: jsonSafe(c.MAEBefore), ValidMAEAfter: jsonSafe(c.MAEAfter)}
		sh := towers.FitMedianShifts(m, td.ds.UserFeatures, td.ds.ItemFeatures, td.ds.Train, td.ds.Valid)
		sh.Apply(m)
		f.calib.UserLambda, f.calib.ItemLambda = jsonLambda(sh.UserLambda), jsonLambda(sh.ItemLambda)
		f.calib.ValidMAEShifts = []float64{jsonSafe(sh.ValidMAE[1]), jsonSafe(sh.ValidMAE[2])}
		logger.Info("median calibration", "lr", cfg.LR, "shift", c.Shift, "slope", c.Slope, "valid_mae_before", c.MAEBefore,
			"valid_mae_after", c.MAEAfter, "user_lambda", f.calib.UserLambda, "item_lambda", f.calib.ItemLambda,
			"valid_mae_after_user", sh.ValidMAE[1], "valid_mae_after_item", sh.ValidMAE[2])
	}
	f.validMAE = validMAE(m, td.ds)
	return f, nil
}

// validMAE is the model's mean absolute error on the validation split's raw
// watch ratios (NaN with no validation rows).
func validMAE(m *towers.TwoTower, ds *towers.Dataset) float64 {
	n := ds.Valid.Len()
	if n == 0 {
		return math.NaN()
	}
	pred := m.PredictRows(ds.UserFeatures, ds.ItemFeatures, ds.Valid)
	s := 0.0
	for k, p := range pred {
		s += math.Abs(float64(ds.Valid.WatchRatio[k]) - p)
	}
	return s / float64(n)
}

// fitServingSearch trains the serving model once at --lr or, when the grid's
// trainings all fit in the row budget (small data), once per rate of the
// grid, and keeps the model with the lowest validation MAE after calibration
// (the validation split is big-matrix rows held out; the small matrix is
// never looked at). Ties keep the earlier rate. When the cross-fit's
// trainings fit in the budget as well (--folds, small data), each rate is
// judged, and the kept model calibrated, out of fold instead (fitCrossFit).
func fitServingSearch(ctx context.Context, logger *slog.Logger, td *trainData, o *trainOpts, progressW io.Writer) (*fitted, []lrTrial, error) {
	rates := []float64{o.train.LR}
	search := searchFits(o.lrGrid, td.ds.Train.Len(), o.train) && td.ds.Valid.Len() > 0
	if search {
		rates = o.lrGrid
	}
	if !o.noCalibrate {
		l2s := o.vecL2Grid
		if !crossFitFits(len(rates)+len(l2s), o.folds, td.ds.Train.Len(), o.train) {
			l2s = nil
		}
		if crossFitFits(len(rates)+len(l2s), o.folds, td.ds.Train.Len(), o.train) {
			return fitCrossFit(ctx, logger, td, o, rates, l2s, progressW)
		}
	}
	if !search {
		f, err := fitServing(ctx, logger, td, o, o.train, progressW)
		return f, nil, err
	}
	logger.Info("learning-rate search", "grid", o.lrGrid, "train_rows", td.ds.Train.Len(), "budget", o.train.MaxSamples)
	var best *fitted
	var trials []lrTrial
	for _, lr := range o.lrGrid {
		cfg := o.train
		cfg.LR = lr
		f, err := fitServing(ctx, logger, td, o, cfg, progressW)
		if err != nil {
			return nil, nil, err
		}
		trials = append(trials, lrTrial{LR: lr, ValidMAE: ptr(jsonSafe(f.validMAE))})
		if best == nil || f.validMAE < best.validMAE {
			best = f
		}
	}
	logger.Info("learning-rate search done", "chosen", best.lr, "valid_mae", best.validMAE)
	return best, trials, nil
}
