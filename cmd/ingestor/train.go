package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/modellog"
	"github.com/streamrec/streamrec/internal/progress"
	"github.com/streamrec/streamrec/internal/synth"
	"github.com/streamrec/streamrec/internal/towers"
)

func init() {
	commands["train"] = command{
		summary: "load, clean, build features, train the two-tower and seed models, evaluate, publish",
		run:     func(ctx context.Context, args []string) error { return trainMain(ctx, args, os.Stdout, os.Stderr) },
	}
}

const trainUsage = `usage: ingestor train --data DIR [--cut TIME] [--no-publish] --report FILE [flags]

Loads DIR (DIR, DIR/KuaiRec 2.0 or the data folder; real or synthetic), cleans it
like the seed, builds the PCA features, trains the serving two-tower model and the
seed baseline on the big matrix, evaluates both on the small matrix over all its
videos, writes the model file, a training-curve PNG and a JSON report, and unless
--no-publish publishes the model version and every user's initial embedding to Redis.

--cut TIME trains only on big-matrix events strictly before TIME (RFC 3339 with its
offset, e.g. 2020-08-20T00:00:00+08:00, or Unix seconds), so that a replay can stream
the rest. The cut is recorded in three places, all in Unix milliseconds:
  - the model file: towers.LoadModel(path) -> (*towers.TwoTower).Meta["cut_ms"]
    (towers.MetaCutMS; absent when no cut was given);
  - Redis: the version's ModelMeta.Calibration.Extra["cut_ms"] (absent likewise);
  - the report: data.cut_ms (0 when no cut) and data.cut (RFC 3339, "" when none).
A replay should stream the events with timestamp >= cut_ms.

--from-log retrains on the KuaiRec rows before the cut plus the interactions topic
(--brokers, --topic) from its start to the end it has when the run starts: the log is
the source of truth. Simulator events are left out (they come from the small matrix,
the evaluation set) unless --include-simulator (the report's data.log then says so);
replayed events before the cut are rows of the files already. The version records
the offsets it trained through (ModelMeta.trained_offsets) and the sources it left
out; the updater never applies those events on top of it, and re-applies the others
from each user's ring when it takes the version over. Retrains run one at a time
across hosts: a Redis lease ("retrain", --retrain-lease) held for the whole run; a
second one exits at once with "another retrain is running". The API starts one on
POST /v1/admin/retrain or a drift alert (api --retrain-cmd).

--canary SHARE publishes the version complete without making it current, as a
canary for that share of the users (by a hash of the id): the updater learns them
under it, the API serves them from it, and the evaluating API promotes it or rolls
it back after --canary-windows closed windows (--canary-threshold: how much worse its
users' mean watch ratio or hit rate may be). --shuffle-labels (testing only) trains
on the watch ratios shuffled among the training rows: a deliberately worse model.

On synthetic data (a truth/ folder next to the KuaiRec folder) the report also has
the "oracle" (the true expected watch ratio) and the "truth" metrics (rankings scored
against each user's true top-25 among the small matrix's videos).`

// trainOpts are the train subcommand's settings.
type trainOpts struct {
	data, report, modelOut, curve string
	cut                           string
	noPublish, quiet, noCalibrate bool
	namespace, version            string
	redis                         cache.ClientOptions
	modelLog                      modelLogOpts
	logLevel                      string
	workers                       int
	validShare                    float64
	recentHalfLife                time.Duration
	folds                         int
	lrGrid, vecL2Grid             []float64

	twoTower  towers.TwoTowerConfig
	train     towers.TrainConfig
	seedModel towers.SeedConfig
	seedTrain towers.TrainConfig
	log       logOpts
}

func parseTrainFlags(args []string, stderr io.Writer) (*trainOpts, error) {
	o := &trainOpts{
		twoTower: towers.DefaultTwoTowerConfig(), train: towers.DefaultTrainConfig(),
		seedModel: towers.DefaultSeedConfig(), seedTrain: towers.SeedTrainConfig(),
	}
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config.Usage(fs, trainUsage)
	fs.StringVar(&o.data, "data", "", "KuaiRec folder (required): DIR, DIR/KuaiRec 2.0 or the data folder")
	fs.StringVar(&o.cut, "cut", "", "train only on events strictly before this time: RFC 3339 with offset, or Unix seconds")
	fs.BoolVar(&o.noPublish, "no-publish", false, "do not publish to Redis")
	fs.BoolVar(&o.noCalibrate, "no-calibrate", false, "serving model: skip the median calibration (an affine map of the predictions fit for absolute error on the validation split)")
	fs.StringVar(&o.report, "report", "", "JSON report file (required)")
	fs.StringVar(&o.modelOut, "model-out", filepath.Join("out", "model.srm"), "serving model file (towers model file format)")
	fs.StringVar(&o.curve, "curve", "", "training-curve PNG (default: the model file with .png)")
	o.redis = cache.DefaultClientOptions()
	o.redis.ReadTimeout, o.redis.WriteTimeout = 30*time.Second, 30*time.Second
	cache.RegisterClientFlags(fs, &o.redis)
	registerLogFlags(fs, &o.log)
	fs.StringVar(&o.namespace, "namespace", cache.DefaultNamespace, "Redis key namespace")
	o.modelLog.register(fs, "none")
	fs.StringVar(&o.version, "model-version", "", "model version name (default: UTC training time + a hash of the data, cut and seed)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bars")
	fs.IntVar(&o.workers, "workers", 0, "parser goroutines (0: all cores)")
	lrGrid := fs.String("lr-grid", defaultLRGrid, "serving model: Adam rates tried when all their trainings fit in --budget (small data), the one with the lowest validation MAE kept; '', a larger set or an --lr given (flag or environment): --lr alone")
	fs.IntVar(&o.folds, "folds", defaultFolds, "serving model: folds of the cross-fit calibration, run when the rates' cross-fits all fit in --budget (small data): the rate chosen and the calibration fit out of fold on the training rows; < 2: on the validation split")
	vecL2Grid := fs.String("vec-l2-grid", defaultVecL2Grid, "serving model: --vec-l2 values the cross-fit tries at the best rate when they fit in --budget too; '' or a --vec-l2 given: --vec-l2 alone")
	fs.Float64Var(&o.validShare, "valid-share", 0.02, "share of training-period rows held out for validation and early stopping")
	fs.DurationVar(&o.recentHalfLife, "recent-half-life", 0, "weight every training row by 2^-(age / this), its age taken from the newest training row (a retrain after a drift learns mostly from the traffic since); 0: every row weighs 1")
	seed := fs.Uint64("seed", o.train.Seed, "random seed of both trainers (initialisation, shuffles, negatives, samples, validation split)")
	fs.Int64Var(&o.train.MaxSamples, "budget", o.train.MaxSamples, "serving model: training budget in rows (<= 0: epochs only)")
	fs.IntVar(&o.train.Epochs, "epochs", o.train.Epochs, "serving model: maximum epochs")
	fs.Float64Var(&o.train.LR, "lr", o.train.LR, "serving model: Adam learning rate of the towers")
	fs.Float64Var(&o.train.VecLR, "vec-lr", o.train.VecLR, "serving model: LazyAdam learning rate of the per-user and per-item vectors")
	fs.Float64Var(&o.train.VecL2, "vec-l2", o.train.VecL2, "serving model: L2 penalty of the per-user and per-item vectors")
	fs.Float64Var(&o.train.TargetCap, "target-cap", o.train.TargetCap, "cap of the watch-ratio targets (both models)")
	fs.Float64Var(&o.twoTower.RankWeight, "rank-weight", o.twoTower.RankWeight, "serving model: weight of the sampled-softmax ranking loss")
	fs.IntVar(&o.twoTower.Negatives, "negatives", o.twoTower.Negatives, "serving model: sampled negatives per worker part of a batch")
	reference := fs.Bool("reference-trainer", false, "both models: the trainer as it was before issue 17 (gonum's kernels; towers.TrainConfig.Reference), to compare throughput")
	fs.IntVar(&o.seedTrain.Epochs, "seed-epochs", o.seedTrain.Epochs, "seed baseline: maximum epochs over its sample")
	fs.IntVar(&o.seedTrain.SampleSize, "seed-sample", o.seedTrain.SampleSize, "seed baseline: training sample size in rows (<= 0: all)")
	if err := config.Parse(fs, args, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, config.Usagef("%v", err)
	}
	if o.data == "" || o.report == "" {
		return nil, config.Usagef("train: --data and --report are required")
	}
	grid, err := parseGrid("--lr-grid", *lrGrid, false)
	if err != nil {
		return nil, config.Usagef("train: %v", err)
	}
	o.lrGrid = grid
	if flagGiven(fs, "lr") {
		o.lrGrid = nil // a rate the user chose is kept: no search
	}
	if o.vecL2Grid, err = parseGrid("--vec-l2-grid", *vecL2Grid, true); err != nil {
		return nil, config.Usagef("train: %v", err)
	}
	if flagGiven(fs, "vec-l2") {
		o.vecL2Grid = nil
	}
	if o.folds < 0 || o.folds > 20 {
		return nil, config.Usagef("train: --folds %d: want 0 to 20 (< 2: no cross-fit)", o.folds)
	}
	if o.recentHalfLife < 0 {
		return nil, config.Usagef("train: --recent-half-life %v: want >= 0", o.recentHalfLife)
	}
	if !(o.validShare > 0 && o.validShare < 0.5) {
		return nil, config.Usagef("train: --valid-share %v: want (0, 0.5)", o.validShare)
	}
	o.train.Seed, o.seedTrain.Seed = *seed, *seed
	o.train.Reference, o.seedTrain.Reference = *reference, *reference
	o.seedTrain.TargetCap = o.train.TargetCap
	if o.curve == "" {
		o.curve = trimExt(o.modelOut) + ".png"
	}
	o.log.brokers = o.modelLog.brokers
	return o, nil
}

func trimExt(p string) string { return p[:len(p)-len(filepath.Ext(p))] }

// parseCut parses --cut: RFC 3339 with its offset, or Unix seconds.
func parseCut(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--cut %q: want RFC 3339 with an offset (2020-08-20T00:00:00+08:00) or Unix seconds", s)
	}
	return t, nil
}

// stageTimer records the wall time of each stage, in seconds.
type stageTimer struct {
	t0, last time.Time
	secs     map[string]float64
}

func newStageTimer() *stageTimer {
	now := time.Now()
	return &stageTimer{t0: now, last: now, secs: map[string]float64{}}
}

func (s *stageTimer) done(stage string) float64 {
	now := time.Now()
	d := now.Sub(s.last).Seconds()
	s.secs[stage] += d
	s.last = now
	return d
}

func trainMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseTrainFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logger, err := config.NewLogger(stderr, o.logLevel)
	if err != nil {
		return config.Usagef("train: %v", err)
	}
	logger = logger.With("component", "train")
	var cutMS int64
	hasCut := o.cut != ""
	if hasCut {
		t, err := parseCut(o.cut)
		if err != nil {
			return config.Usagef("train: %v", err)
		}
		cutMS = t.UnixMilli()
	}
	var st *cache.Store
	var ml *modellog.Restorer
	if !o.noPublish {
		var rdb interface{ Close() error }
		st, rdb, err = openStore(ctx, o.redis, o.namespace)
		if err != nil {
			return fmt.Errorf("train: %w (use --no-publish to train without Redis)", err)
		}
		defer rdb.Close()
		if ml, err = o.modelLog.open(ctx, st, logger); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		if ml != nil {
			defer ml.Log.Close()
		}
	}
	if o.log.on && st != nil {
		// One retrain at a time across hosts: a lease in Redis, kept for
		// the whole run; losing it stops the run.
		lctx, release, err := holdRetrainLease(ctx, st, o.log.lease, logger)
		if err != nil {
			return fmt.Errorf("train --from-log: %w", err)
		}
		defer release()
		ctx = lctx
	}
	var progressW io.Writer
	if !o.quiet {
		progressW = stderr
	}
	tm := newStageTimer()
	rep := &trainReport{Timings: tm.secs}

	// 1. Load and clean.
	lopt := kuairec.Options{Workers: o.workers, Progress: progressW}
	if hasCut {
		// Item features aggregate item_daily_features only over the days
		// before the cut's local (UTC+8) date: nothing after the cut leaks in.
		lopt.DailyBefore = dailyDate(cutMS)
	}
	ds, lrep, err := kuairec.Load(o.data, lopt)
	if err != nil {
		if lrep != nil {
			lrep.WriteText(stderr)
		}
		return fmt.Errorf("loading %s: %w", o.data, err)
	}
	if !o.quiet {
		lrep.WriteText(stderr)
	}
	fillLoadReport(&rep.Data, ds, lrep)
	logger.Info("loaded", "dir", ds.Dir, "big_rows", rep.Data.BigKept, "users", len(ds.Users), "videos", len(ds.Videos), "seconds", tm.done("load"))

	// 2. Features.
	feats, err := kuairec.BuildFeatures(ds, kuairec.FeatureOptions{})
	if err != nil {
		return fmt.Errorf("building features: %w", err)
	}
	rep.Data.UserFeatures = pcaReport{Encoded: len(feats.Users.Names), Kept: feats.Users.Kept, Explained: feats.Users.Explained}
	rep.Data.ItemFeatures = pcaReport{Encoded: len(feats.Items.Names), Kept: feats.Items.Kept, Explained: feats.Items.Explained}
	logger.Info("features", "user_dims", feats.Users.Kept, "user_variance", feats.Users.Explained,
		"item_dims", feats.Items.Kept, "item_variance", feats.Items.Explained, "seconds", tm.done("features"))

	// 3. Training data (strictly before the cut).
	td := buildTrainData(ds, feats, hasCut, cutMS, o.validShare, o.train.Seed, o.recentHalfLife > 0)
	if o.log.shuffleLabels {
		// A deliberately worse model (the canary's test): the watch ratios
		// shuffled among the training rows.
		r := rand.New(rand.NewPCG(o.train.Seed, 0x5ff1e))
		wr := td.ds.Train.WatchRatio
		r.Shuffle(len(wr), func(i, j int) { wr[i], wr[j] = wr[j], wr[i] })
		rep.Data.ShuffledLabels = true
		logger.Warn("training on shuffled labels (--shuffle-labels): a deliberately worse model")
	}
	if o.log.on {
		lr, err := addLogRows(ctx, &o.log, td, hasCut, cutMS, o.validShare, o.train.Seed, progressW)
		if err != nil {
			return fmt.Errorf("train --from-log: %w", err)
		}
		rep.Data.Log = lr
		logger.Info("log rows added", "topic", lr.Topic, "read", lr.Read, "rows", lr.Rows, "simulator_skipped", lr.Simulator,
			"include_simulator", lr.IncludeSimulator, "replayed_before_cut_skipped", lr.InFiles, "unknown_ids", lr.Unknown,
			"undecodable", lr.Undecoded, "offsets", lr.Offsets)
	}
	if o.recentHalfLife > 0 && td.ds.Train.Len() > 0 {
		eff, err := td.weightByRecency(o.recentHalfLife)
		if err != nil {
			return err
		}
		rep.Data.RecentHalfLifeS, rep.Data.EffectiveRows = o.recentHalfLife.Seconds(), eff
		logger.Info("rows weighted by recency", "half_life", o.recentHalfLife, "effective_rows", eff, "rows", td.ds.Train.Len())
	}
	td.fillReport(&rep.Data)
	rep.Data.CutMS = cutMS
	if hasCut {
		rep.Data.Cut = time.UnixMilli(cutMS).In(cst).Format(time.RFC3339)
	}
	if td.ds.Train.Len() == 0 {
		return fmt.Errorf("no training interactions before the cut %s", o.cut)
	}
	// The training slices hold what is needed (the evaluation reloads the
	// small matrix with every pair): free ~36 bytes per row.
	ds.Big, ds.Small = nil, nil
	runtime.GC()
	logger.Info("training data", "train", td.ds.Train.Len(), "valid", td.ds.Valid.Len(), "after_cut", td.afterCut,
		"unknown_ids", td.unknown, "seconds", tm.done("split"))

	version := o.version
	if version == "" {
		version = defaultVersion(time.Now(), ds.Dir, cutMS, o.train.Seed, td.ds.Train.Len())
	}

	// 4. Train the serving model and the seed baseline.
	// About 100 points on the training curve, whatever the data size.
	o.train.CurveEvery = curveEvery(int64(td.ds.Train.Len()), o.train.Epochs, o.train.MaxSamples, o.train.Batch)
	seedRows := td.ds.Train.Len()
	if o.seedTrain.SampleSize > 0 {
		seedRows = min(seedRows, o.seedTrain.SampleSize)
	}
	o.seedTrain.CurveEvery = curveEvery(int64(seedRows), o.seedTrain.Epochs, 0, o.seedTrain.Batch)
	fit, trials, err := fitServingSearch(ctx, logger, td, o, progressW)
	if err != nil {
		return err
	}
	m, hist, calib := fit.m, fit.hist, fit.calib
	m.Version = version
	m.Meta = map[string]float64{
		towers.MetaTrainRows: float64(td.ds.Train.Len()), towers.MetaLastTrainMS: float64(td.lastMS),
		towers.MetaTargetCap: o.train.TargetCap,
	}
	if hasCut {
		m.Meta[towers.MetaCutMS] = float64(cutMS)
	}
	if calib != nil {
		m.Meta[towers.MetaCalibShift], m.Meta[towers.MetaCalibSlope] = calib.Shift, calib.Slope
	}
	logger.Info("two-tower trained", "lr", fit.lr, "epochs", len(hist.Epochs), "best", hist.Best, "stopped", hist.Stopped,
		"vec_l2", fit.vecL2, "valid_mae", fit.validMAE, "seconds", tm.done("train_twotower"))
	bar := &trainBar{w: progressW, model: "seed"}
	seed, seedHist, err := towers.FitSeed(ctx, td.ds, o.seedModel, o.seedTrain, bar.callback())
	bar.finish()
	if err != nil {
		return fmt.Errorf("training the seed baseline: %w", err)
	}
	seed.Version = version + "-seed"
	logger.Info("seed trained", "epochs", len(seedHist.Epochs), "best", seedHist.Best, "stopped", seedHist.Stopped, "seconds", tm.done("train_seed"))
	rep.Model = modelReport{Version: version, File: o.modelOut, Curve: o.curve, CutMS: cutMS,
		TwoTower: summarizeHistory(hist), Seed: summarizeHistory(seedHist), Calibration: calib,
		LR: fit.lr, VecL2: fit.vecL2, LRSearch: trials}

	// 5. Evaluate on the small matrix over all its videos.
	ev, evRep, err := kuairec.LoadEval(ds.Dir, kuairec.Options{Workers: o.workers})
	if err != nil {
		return fmt.Errorf("loading the evaluation matrix: %w", err)
	}
	tr, trErr := loadTruthNear(o.data, ds.Dir)
	if trErr != nil {
		logger.Info("no ground truth: oracle and truth metrics omitted", "reason", trErr.Error())
	}
	if err := evaluate(rep, &evalInput{ev: ev, evRep: evRep, feats: feats, td: td, model: m, seed: seed, truth: tr,
		stage: func(name string, secs float64) { logger.Info("evaluation", "stage", name, "seconds", secs) }}); err != nil {
		return err
	}
	logger.Info("evaluated", "seconds", tm.done("evaluate"))

	// 6. Model file, curve.
	if err := os.MkdirAll(filepath.Dir(o.modelOut), 0o755); err != nil {
		return fmt.Errorf("creating the model folder: %w", err)
	}
	if err := towers.SaveModel(o.modelOut, m); err != nil {
		return err
	}
	if err := writeCurve(o.curve, version, hist, seedHist); err != nil {
		return err
	}
	tm.done("save")

	// The report is written before publishing (so a Redis failure keeps
	// it), and again with the publish section.
	rep.Timings["total"] = time.Since(tm.t0).Seconds()
	if err := writeJSONFile(o.report, rep); err != nil {
		return err
	}

	// 7. Publish.
	if st != nil {
		lin := rep.Data.Log.lineage()
		lin.staged = o.log.canaryShare > 0
		pr, err := publish(ctx, logger, st, ml, o.redis.Addr, m, feats, []towers.Interactions{td.ds.Train, td.ds.Valid},
			map[string][]uint32{"small_matrix": ev.SortedVideoIDs()}, lin)
		if err != nil {
			return err
		}
		if lin.staged {
			c, err := st.StartCanary(ctx, cache.Canary{Version: version, Share: o.log.canaryShare, Windows: o.log.canaryWindows, Threshold: o.log.canaryThreshold})
			if err != nil {
				return fmt.Errorf("starting the canary of %s (published, not current): %w", version, err)
			}
			logger.Info("published as a canary", "version", version, "baseline", c.Baseline, "share", c.Share, "windows", c.Windows, "threshold", c.Threshold)
		}
		rep.Publish = pr
		logger.Info("published", "version", version, "items", pr.Items, "users", pr.Users, "seconds", tm.done("publish"))
		rep.Timings["total"] = time.Since(tm.t0).Seconds()
		if err := writeJSONFile(o.report, rep); err != nil {
			return err
		}
	}
	printSummary(stdout, rep)
	return ctx.Err()
}

// defaultVersion names a model version: the UTC training time and a hash of
// what it was trained on (data folder, cut, seed, training rows).
func defaultVersion(now time.Time, dir string, cutMS int64, seed uint64, rows int) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s|%d|%d|%d", dir, cutMS, seed, rows)
	return fmt.Sprintf("%s-%08x", now.UTC().Format("20060102T150405Z"), h.Sum32())
}

// loadTruthNear finds the truth/ folder of a synthetic root: next to the
// --data value, or one or two levels above the resolved data folder.
func loadTruthNear(data, dataDir string) (*synth.Truth, error) {
	for _, root := range []string{data, filepath.Dir(dataDir), filepath.Dir(filepath.Dir(dataDir))} {
		if _, err := os.Stat(filepath.Join(root, synth.TruthDir, "manifest.json")); err == nil {
			return synth.LoadTruth(root)
		}
	}
	return nil, errors.New("no truth/manifest.json next to the data folder (real data)")
}

// trainBar draws a training progress bar with rates, created at the first
// progress callback (when the planned total is known).
type trainBar struct {
	w     io.Writer
	model string
	bar   *progress.Bar
}

func (b *trainBar) callback() func(towers.Progress) {
	if b.w == nil {
		return nil
	}
	return func(p towers.Progress) {
		if b.bar == nil {
			fmt.Fprintf(b.w, "training %s (%d rows planned)\n", b.model, p.Total)
			b.bar = progress.New(b.w, b.model+" rows", p.Total)
		}
		b.bar.Set(p.Samples)
	}
}

func (b *trainBar) finish() {
	if b.bar != nil {
		b.bar.Finish()
	}
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the report: %w", err)
	}
	if d := filepath.Dir(path); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating the report folder: %w", err)
		}
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

func writeCurve(path, version string, h, sh towers.History) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating the curve folder: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the training curve: %w", err)
	}
	err = towers.PlotTraining(f, "training "+version, []towers.Curve{{Label: "twotower", History: h}, {Label: "seed", History: sh}}, 900, 520)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the training curve: %w", err)
	}
	return nil
}

// curveEvery spaces about 100 training-curve points over the planned rows:
// rows x epochs, or the budget when smaller; at least one batch apart.
func curveEvery(rows int64, epochs int, budget int64, batch int) int64 {
	total := rows * int64(epochs)
	if budget > 0 && budget < total {
		total = budget
	}
	return max(total/100, int64(batch))
}

// dailyDate is the YYYYMMDD log-partition date (UTC+8) of a Unix ms time.
func dailyDate(ms int64) int32 {
	t := time.UnixMilli(ms).In(cst)
	return int32(t.Year()*10000 + int(t.Month())*100 + t.Day())
}
