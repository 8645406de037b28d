package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/synth"
	"github.com/streamrec/streamrec/internal/towers"
)

// evalK is the list length of every ranking metric.
const evalK = 25

// The item-kNN reference's settings: neighbours per candidate, the
// popularity blend weights tried on the validation split, and the most
// validation users scored per weight (every n-th user).
const (
	knnNeighbours = 100
	knnValidUsers = 3000
)

var knnAlphaGrid = []float64{0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.7}

// trainReport is the JSON report. The names of "data", "metrics" (and
// everything under it) and "timings" are read by other tools: do not rename.
type trainReport struct {
	Data    dataReport         `json:"data"`
	Model   modelReport        `json:"model"`
	Metrics metricsReport      `json:"metrics"`
	Publish *publishReport     `json:"publish,omitempty"`
	Timings map[string]float64 `json:"timings"`
}

type metricsReport struct {
	MAE  maeReport   `json:"mae"`
	At08 levelReport `json:"at_0.8"`
	At2  levelReport `json:"at_2.0"`
	// Truth is present on synthetic data only.
	Truth *truthReport `json:"truth,omitempty"`
}

type maeReport struct {
	Model          float64 `json:"model"`
	Seed           float64 `json:"seed"`
	MeanBaseline   float64 `json:"mean_baseline"`
	MedianBaseline float64 `json:"median_baseline"`
	// Oracle predicts the truth's conditional median (the MAE-optimal
	// prediction); OracleExpected its expected value. Synthetic data only.
	Oracle         *float64 `json:"oracle,omitempty"`
	OracleExpected *float64 `json:"oracle_expected,omitempty"`
}

type levelReport struct {
	BaseRate   float64    `json:"base_rate"`
	Model      rankReport `json:"model"`
	Seed       rankReport `json:"seed"`
	Popularity rankReport `json:"popularity"`
	// ItemKNN is the item-based kNN reference (towers.ItemKNN) on this
	// level's positives, blended with popularity by the weight chosen on the
	// validation split (KNN).
	ItemKNN rankReport  `json:"item_knn"`
	KNN     knnReport   `json:"item_knn_fit"`
	Oracle  *rankReport `json:"oracle,omitempty"`
}

// knnReport is how the item-kNN reference was fit: neighbours per
// candidate, the popularity blend weight chosen, and the validation NDCG@25
// of every weight tried (on held-out big-matrix rows, never the small matrix).
type knnReport struct {
	Neighbours int       `json:"neighbours"`
	Alpha      float64   `json:"alpha"`
	Grid       []float64 `json:"alpha_grid"`
	ValidNDCG  []float64 `json:"valid_ndcg@25"`
	ValidUsers int       `json:"valid_users"`
	Seconds    float64   `json:"seconds"`
}

type truthReport struct {
	Model      rankReport `json:"model"`
	Seed       rankReport `json:"seed"`
	Popularity rankReport `json:"popularity"`
	// ItemKNN is the wr >= 0.8 item-kNN reference (as popularity).
	ItemKNN rankReport `json:"item_knn"`
}

type rankReport struct {
	NDCG      float64 `json:"ndcg@25"`
	Precision float64 `json:"precision@25"`
	Recall    float64 `json:"recall@25"`
}

func toRank(m towers.RankMetrics) rankReport {
	return rankReport{NDCG: m.NDCG, Precision: m.Precision, Recall: m.Recall}
}

type modelReport struct {
	Version  string        `json:"version"`
	File     string        `json:"file"`
	Curve    string        `json:"curve"`
	CutMS    int64         `json:"cut_ms"`
	TwoTower historyReport `json:"twotower"`
	Seed     historyReport `json:"seed"`
	// Calibration is the serving model's median calibration (absent with
	// --no-calibrate): pred' = shift + slope * pred and the per-user and
	// per-item shifts, fit on the validation split or out of fold (small
	// data) and folded into the parameters.
	Calibration *calibReport `json:"calibration,omitempty"`
	// LR and VecL2 are the towers' Adam rate and the per-user and per-item
	// vectors' L2 penalty the model was trained at; LRSearch the settings
	// tried and their validation MAE (--lr-grid's search; small data: the
	// whole grid fits in --budget) or out-of-fold MAE (the cross-fit's
	// search over --lr-grid then --vec-l2-grid; smaller data still), else
	// absent.
	LR       float64   `json:"lr"`
	VecL2    float64   `json:"vec_l2"`
	LRSearch []lrTrial `json:"lr_search,omitempty"`
}

type calibReport struct {
	// Method is "validation split" (the map, the shifts' medians from the
	// training rows and their shrinkage fit on the validation split) or
	// "cross-fit" (all of it fit out of fold on the training rows, Folds
	// folds; CVMAE the out-of-fold MAE before, after the map, after the
	// user and after the item shifts; the Valid figures are then measured
	// on the validation split, which nothing was fit on).
	Method         string    `json:"method"`
	Folds          int       `json:"folds,omitempty"`
	CVMAE          []float64 `json:"cv_mae,omitempty"`
	Shift          float64   `json:"shift"`
	Slope          float64   `json:"slope"`
	ValidRows      int       `json:"valid_rows"`
	ValidMAEBefore float64   `json:"valid_mae_before"`
	ValidMAEAfter  float64   `json:"valid_mae_after"`
	// UserLambda and ItemLambda are the shrinkage constants of the per-user
	// and per-item median shifts chosen on the validation split (-1: none);
	// ValidMAEShifts the validation MAE after the user and the item shifts.
	UserLambda     float64   `json:"user_shift_lambda"`
	ItemLambda     float64   `json:"item_shift_lambda"`
	ValidMAEShifts []float64 `json:"valid_mae_after_shifts"`
}

// jsonLambda maps +Inf (no shift) to -1.
func jsonLambda(x float64) float64 { return jsonSafe(x) }

type historyReport struct {
	Epochs     int     `json:"epochs"`
	Best       int     `json:"best_epoch"`
	Stopped    string  `json:"stopped"`
	Samples    int64   `json:"samples"`
	ValMSE     float64 `json:"val_mse"`
	ValMAE     float64 `json:"val_mae"`
	RowsPerSec float64 `json:"rows_per_second"`
}

func summarizeHistory(h towers.History) historyReport {
	r := historyReport{Epochs: len(h.Epochs), Best: h.Best, Stopped: h.Stopped}
	var secs float64
	for _, e := range h.Epochs {
		r.Samples += e.Samples
		secs += e.Duration.Seconds()
	}
	if secs > 0 {
		r.RowsPerSec = float64(r.Samples) / secs
	}
	if h.Best >= 1 && h.Best <= len(h.Epochs) {
		e := h.Epochs[h.Best-1]
		r.ValMSE, r.ValMAE = jsonSafe(e.ValMSE), jsonSafe(e.ValMAE)
	}
	return r
}

// jsonSafe maps NaN and infinities (which JSON cannot hold) to -1.
func jsonSafe(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return -1
	}
	return x
}

type evalInput struct {
	ev    *kuairec.Interactions
	evRep *kuairec.FileReport
	feats *kuairec.Features
	td    *trainData
	model *towers.TwoTower
	seed  *towers.Seed
	truth *synth.Truth // nil on real data
	// stage (may be nil) is told the wall time of each part of the
	// evaluation as it ends (the progress of a long evaluation).
	stage func(name string, seconds float64)
}

// evaluate fills rep.Metrics (and the evaluation counts of rep.Data):
// the small matrix, every observed (user, video) pair with re-watches
// averaged, is a dense users x videos truth matrix; every model ranks all
// of a user's observed videos.
func evaluate(rep *trainReport, in *evalInput) error {
	last := time.Now()
	stage := func(name string) {
		if in.stage != nil {
			in.stage(name, time.Since(last).Seconds())
		}
		last = time.Now()
	}
	pairs := in.ev.Pairs()
	d := &rep.Data
	d.EvalRows, d.EvalUntimed = in.evRep.Kept, in.evRep.KeptUntimed
	// Users and videos of the evaluation matrix that have feature rows.
	var users, videos []uint32
	for _, p := range pairs {
		_, ok1 := in.td.userRow[p.User]
		_, ok2 := in.td.itemRow[p.Video]
		if !ok1 || !ok2 {
			d.EvalUnknownRows += int(p.Views)
			continue
		}
		users = append(users, p.User)
		videos = append(videos, p.Video)
	}
	users, videos = sortedUnique(users), sortedUnique(videos)
	if len(users) == 0 || len(videos) == 0 {
		return fmt.Errorf("evaluation: no small-matrix pair has both a user and a video with features")
	}
	uPos, vPos := rowIndex(users), rowIndex(videos)
	t := towers.TruthMatrix{Users: len(users), Items: len(videos), WR: make([]float64, len(users)*len(videos))}
	for i := range t.WR {
		t.WR[i] = math.NaN()
	}
	for _, p := range pairs {
		u, ok1 := uPos[p.User]
		v, ok2 := vPos[p.Video]
		if ok1 && ok2 {
			t.WR[int(u)*t.Items+int(v)] = p.WatchRatio
			d.EvalPairs++
		}
	}
	d.EvalUsers, d.EvalVideos = len(users), len(videos)
	userRows := make([]int32, len(users))
	for i, id := range users {
		userRows[i] = in.td.userRow[id]
	}
	itemRows := make([]int32, len(videos))
	for i, id := range videos {
		itemRows[i] = in.td.itemRow[id]
	}

	// Scorers: each writes user u's scores (or predictions) over all videos.
	sc := in.model.NewScorer(in.feats.Users.Reduced, userRows, in.feats.Items.Reduced, itemRows)
	ss := in.seed.NewScorer(in.feats.Users.Reduced, userRows, in.feats.Items.Reduced, itemRows)
	nItems := in.td.ds.ItemFeatures.RawMatrix().Rows
	train := in.td.ds.Train
	popOf := func(rel towers.Relevance) func(int, []float64) {
		all := towers.PopularityScores(train.Item, train.WatchRatio, nItems, &rel)
		s := make([]float64, len(videos))
		for i, r := range itemRows {
			s[i] = all[r]
		}
		return func(_ int, dst []float64) { copy(dst, s) }
	}
	// Item-kNN references, one per level, over the same candidates; the
	// blend weight chosen on the validation split (held-out big-matrix rows).
	candPos := make(map[int32]int32, len(itemRows))
	for c, r := range itemRows {
		candPos[r] = int32(c)
	}
	vs := towers.NewValidSet(in.td.ds.Valid, candPos, knnValidUsers)
	knnOf := func(rel towers.Relevance) (*towers.ItemKNN, knnReport) {
		t0 := time.Now()
		nUsers := in.td.ds.UserFeatures.RawMatrix().Rows
		k := towers.NewItemKNN(train, nUsers, nItems, itemRows, rel, knnNeighbours)
		ndcg := k.ChooseAlpha(vs, rel, evalK, knnAlphaGrid)
		for i := range ndcg {
			ndcg[i] = jsonSafe(ndcg[i])
		}
		return k, knnReport{Neighbours: knnNeighbours, Alpha: k.Alpha, Grid: knnAlphaGrid, ValidNDCG: ndcg,
			ValidUsers: len(vs.Users), Seconds: time.Since(t0).Seconds()}
	}
	knnScores := func(k *towers.ItemKNN) func(int, []float64) {
		return func(u int, dst []float64) { k.Scores(userRows[u], k.Alpha, dst) }
	}

	var oracle func(int, []float64)
	if in.truth != nil {
		at := in.truth.Manifest.EndMS
		oracle = func(u int, dst []float64) {
			for i, v := range videos {
				dst[i] = in.truth.ExpectedWatchRatio(users[u], v, at)
			}
		}
	}

	stage("scorers")
	// MAE against the mean and median of the training watch ratios.
	m := &rep.Metrics
	mean, median := towers.MeanMedian(train.WatchRatio)
	m.MAE = maeReport{Model: maeOf(t, sc.Predict), Seed: maeOf(t, ss.Predict),
		MeanBaseline: towers.MAEConst(mean, t.WR), MedianBaseline: towers.MAEConst(median, t.WR)}
	if oracle != nil {
		at := in.truth.Manifest.EndMS
		// The conditional median is found by bisection (slow): over all
		// cores (Truth's methods are pure).
		o := maeOfParallel(t, func(u int, dst []float64) {
			for i, v := range videos {
				dst[i] = in.truth.MedianWatchRatio(users[u], v, at)
			}
		})
		oe := maeOfParallel(t, oracle)
		m.MAE.Oracle, m.MAE.OracleExpected = &o, &oe
	}

	stage("mae")
	// Ranking at both relevance levels.
	rels := []towers.Relevance{towers.RelevantAt08, towers.RelevantAbove2}
	model := towers.RankingMetrics(t, evalK, rels, sc.Scores)
	seed := towers.RankingMetrics(t, evalK, rels, ss.Predict)
	stage("ranking model and seed")
	levels := []*levelReport{&m.At08, &m.At2}
	knns := make([]*towers.ItemKNN, len(rels))
	for li, rel := range rels {
		pop := towers.RankingMetrics(t, evalK, rels[li:li+1], popOf(rel))[0]
		stage("popularity")
		k, kr := knnOf(rel)
		stage("item-kNN fit")
		knns[li] = k
		kn := towers.RankingMetrics(t, evalK, rels[li:li+1], knnScores(k))[0]
		*levels[li] = levelReport{BaseRate: towers.BaseRate(t, rel), Model: toRank(model[li]), Seed: toRank(seed[li]),
			Popularity: toRank(pop), ItemKNN: toRank(kn), KNN: kr}
	}
	d.EvalUsersAt08, d.EvalNoRelevantAt08 = model[0].Users, model[0].NoRelevant
	d.EvalUsersAbove2, d.EvalNoRelevantAbove2 = model[1].Users, model[1].NoRelevant
	if oracle == nil {
		return nil
	}
	stage("item-kNN ranking")
	d.Truth = true
	om := towers.RankingMetrics(t, evalK, rels, oracle)
	stage("oracle ranking")
	for li := range rels {
		o := toRank(om[li])
		levels[li].Oracle = &o
	}

	// Ground truth: each user's true top-25 among the videos observed for
	// that user in the small matrix (the same candidates every ranking uses).
	gt := towers.TruthMatrix{Users: t.Users, Items: t.Items, WR: make([]float64, len(t.WR))}
	cands := make([]uint32, 0, len(videos))
	at := in.truth.Manifest.EndMS
	for u := range users {
		row, grow := t.Row(u), gt.Row(u)
		cands = cands[:0]
		for i, wr := range row {
			if math.IsNaN(wr) {
				grow[i] = math.NaN()
			} else {
				cands = append(cands, videos[i])
			}
		}
		for _, v := range in.truth.TopK(users[u], cands, evalK, at) {
			grow[vPos[v]] = 1
		}
	}
	stage("true top-25")
	inTop := []towers.Relevance{{Threshold: 1}}
	m.Truth = &truthReport{
		Model:      toRank(towers.RankingMetrics(gt, evalK, inTop, sc.Scores)[0]),
		Seed:       toRank(towers.RankingMetrics(gt, evalK, inTop, ss.Predict)[0]),
		Popularity: toRank(towers.RankingMetrics(gt, evalK, inTop, popOf(towers.RelevantAt08))[0]),
		ItemKNN:    toRank(towers.RankingMetrics(gt, evalK, inTop, knnScores(knns[0]))[0]),
	}
	stage("ranking against the truth")
	return nil
}

// maeOf is towers.MAE of predict's rows against t, without materialising
// the whole prediction matrix.
func maeOf(t towers.TruthMatrix, predict func(int, []float64)) float64 {
	pred := make([]float64, t.Items)
	s, n := 0.0, 0
	for u := 0; u < t.Users; u++ {
		predict(u, pred)
		for i, y := range t.Row(u) {
			if !math.IsNaN(y) {
				s += math.Abs(pred[i] - y)
				n++
			}
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

// maeOfParallel is maeOf over all cores for a predict that is safe for
// concurrent use (users split into contiguous ranges, sums added in order).
func maeOfParallel(t towers.TruthMatrix, predict func(int, []float64)) float64 {
	workers := runtime.GOMAXPROCS(0)
	sums := make([]float64, workers)
	counts := make([]int, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*t.Users/workers, (w+1)*t.Users/workers
		wg.Go(func() {
			pred := make([]float64, t.Items)
			for u := lo; u < hi; u++ {
				predict(u, pred)
				for i, y := range t.Row(u) {
					if !math.IsNaN(y) {
						sums[w] += math.Abs(pred[i] - y)
						counts[w]++
					}
				}
			}
		})
	}
	wg.Wait()
	s, n := 0.0, 0
	for w := range sums {
		s += sums[w]
		n += counts[w]
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

func sortedUnique(x []uint32) []uint32 {
	slices.Sort(x)
	return slices.Compact(x)
}

// printSummary prints the human summary table.
func printSummary(w io.Writer, r *trainReport) {
	d, m := &r.Data, &r.Metrics
	fmt.Fprintf(w, "\nmodel %s -> %s (curve %s)\n", r.Model.Version, r.Model.File, r.Model.Curve)
	cut := "none (all events)"
	if d.Cut != "" {
		cut = fmt.Sprintf("%s (%d ms): %d big-matrix rows left for replay", d.Cut, d.CutMS, d.AfterCut)
	}
	fmt.Fprintf(w, "cut: %s\n", cut)
	fmt.Fprintf(w, "data: big %d rows read, %d kept (dropped %d missing, %d timestamp<=0, %d duplicates, %d bad); train %d, valid %d\n",
		d.BigRows, d.BigKept, d.BigDroppedMissing, d.BigDroppedNonPositive, d.BigDroppedDuplicates, d.BigBadRows, d.TrainRows, d.ValidRows)
	fmt.Fprintf(w, "features: users %d -> %d PCA dims (%.1f%% variance), videos %d -> %d (%.1f%%)\n",
		d.UserFeatures.Encoded, d.UserFeatures.Kept, 100*d.UserFeatures.Explained, d.ItemFeatures.Encoded, d.ItemFeatures.Kept, 100*d.ItemFeatures.Explained)
	fmt.Fprintf(w, "evaluation: small matrix %d users x %d videos, %d observed pairs (%d rows, %d untimed)\n\n",
		d.EvalUsers, d.EvalVideos, d.EvalPairs, d.EvalRows, d.EvalUntimed)
	var b strings.Builder
	row := func(name string, cells ...string) {
		fmt.Fprintf(&b, "%-22s", name)
		for _, c := range cells {
			fmt.Fprintf(&b, " %10s", c)
		}
		b.WriteByte('\n')
	}
	f := func(x float64) string { return fmt.Sprintf("%.4f", x) }
	na := "-"
	row("", "model", "seed", "popularity", "item-kNN", "oracle")
	o := na
	if m.MAE.Oracle != nil {
		o = f(*m.MAE.Oracle)
	}
	row("MAE watch ratio", f(m.MAE.Model), f(m.MAE.Seed), na, na, o)
	if m.MAE.OracleExpected != nil {
		row("  oracle of E[wr]", "", "", "", "", f(*m.MAE.OracleExpected))
	}
	row("  mean / median base", f(m.MAE.MeanBaseline), f(m.MAE.MedianBaseline), "", "", "")
	for _, lv := range []struct {
		name string
		l    *levelReport
		u, n int
	}{{"wr >= 0.8", &m.At08, d.EvalUsersAt08, d.EvalNoRelevantAt08}, {"wr > 2.0", &m.At2, d.EvalUsersAbove2, d.EvalNoRelevantAbove2}} {
		l := lv.l
		fmt.Fprintf(&b, "%s: base rate %.4f, %d users (%d with no relevant video left out); item-kNN alpha %g (validation)\n", lv.name, l.BaseRate, lv.u, lv.n, l.KNN.Alpha)
		for _, k := range []struct {
			name string
			get  func(rankReport) float64
		}{{"  NDCG@25", func(x rankReport) float64 { return x.NDCG }},
			{"  Precision@25", func(x rankReport) float64 { return x.Precision }},
			{"  Recall@25", func(x rankReport) float64 { return x.Recall }}} {
			o := na
			if l.Oracle != nil {
				o = f(k.get(*l.Oracle))
			}
			row(k.name, f(k.get(l.Model)), f(k.get(l.Seed)), f(k.get(l.Popularity)), f(k.get(l.ItemKNN)), o)
		}
	}
	if m.Truth != nil {
		b.WriteString("ground truth (each user's true top-25 among the small matrix's videos):\n")
		row("  NDCG@25", f(m.Truth.Model.NDCG), f(m.Truth.Seed.NDCG), f(m.Truth.Popularity.NDCG), f(m.Truth.ItemKNN.NDCG), "1.0000")
		row("  Precision@25", f(m.Truth.Model.Precision), f(m.Truth.Seed.Precision), f(m.Truth.Popularity.Precision), f(m.Truth.ItemKNN.Precision), "1.0000")
		row("  Recall@25", f(m.Truth.Model.Recall), f(m.Truth.Seed.Recall), f(m.Truth.Popularity.Recall), f(m.Truth.ItemKNN.Recall), "1.0000")
	} else {
		b.WriteString("real data (no truth/ folder): oracle and ground-truth metrics omitted\n")
	}
	b.WriteString("popularity ranks by the number of relevant training interactions at each level (wr >= 0.8 for the ground truth);\n")
	b.WriteString("item-kNN: item-item cosine on the same positives, 100 neighbours, blended with popularity by alpha\n")
	io.WriteString(w, b.String())
	keys := make([]string, 0, len(r.Timings))
	for k := range r.Timings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprint(w, "timings:")
	for _, k := range keys {
		fmt.Fprintf(w, " %s %.1fs", k, r.Timings[k])
	}
	fmt.Fprintln(w)
}
