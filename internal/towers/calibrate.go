package towers

import (
	"math"
	"runtime"
	"slices"
	"sync"

	"gonum.org/v1/gonum/mat"
)

// MedianCalibration is an affine map of the serving model's predictions fit
// for absolute error: pred' = Shift + Slope * pred. MSE training makes pred
// an estimate of the conditional mean; the MAE-optimal prediction is the
// conditional median, which for a right-skewed watch ratio lies below it,
// and a noisy estimate gains from being shrunk towards the median of the
// targets. FitMedianCalibration fits the map on held-out rows and Apply folds
// it into the model's parameters, so that the serving form (inner products,
// pred = mu + user bias + <e_u, e_i>) and the online step are unchanged.
type MedianCalibration struct {
	Shift, Slope float64
	// MAEBefore and MAEAfter are the mean absolute errors on the rows it
	// was fit on, before and after the map.
	MAEBefore, MAEAfter float64
	Rows                int
}

// calibrationSlopes are the slopes FitMedianCalibration tries; for each
// the best shift (the median of the residuals) is exact.
var calibrationSlopes = func() []float64 {
	var s []float64
	for b := 0.30; b < 1.301; b += 0.025 {
		s = append(s, math.Round(b*1000)/1000)
	}
	return s
}()

// FitMedianCalibration predicts the rows of x (user and item rows of the
// feature matrices) with m and returns the slope (on a grid from 0.3 to 1.3)
// and shift (the median of the residuals at that slope) that minimise the
// mean absolute error against the rows' raw watch ratios. With no rows it
// returns the identity.
func FitMedianCalibration(m *TwoTower, userFeats, itemFeats *mat.Dense, x Interactions) MedianCalibration {
	if x.Len() == 0 {
		return MedianCalibration{Slope: 1, MAEBefore: math.NaN(), MAEAfter: math.NaN()}
	}
	pred := m.PredictRows(userFeats, itemFeats, x)
	y := make([]float64, x.Len())
	for k, v := range x.WatchRatio {
		y[k] = float64(v)
	}
	return fitMedianAffine(pred, y)
}

// fitMedianAffine returns the slope of calibrationSlopes and the shift (the
// median of the residuals at that slope) that minimise the mean absolute
// error of shift + slope * pred against y (len(y) > 0).
func fitMedianAffine(pred, y []float64) MedianCalibration {
	n := len(y)
	res := make([]float64, n)
	maeAt := func(b float64) (a, mae float64) {
		for k := range res {
			res[k] = y[k] - b*pred[k]
		}
		slices.Sort(res)
		a = res[n/2]
		if n%2 == 0 {
			a = (res[n/2-1] + res[n/2]) / 2
		}
		s := 0.0
		for _, r := range res {
			s += math.Abs(r - a)
		}
		return a, s / float64(n)
	}
	before := 0.0
	for k := range y {
		before += math.Abs(y[k] - pred[k])
	}
	best := MedianCalibration{MAEAfter: math.Inf(1), MAEBefore: before / float64(n), Rows: n}
	for _, b := range calibrationSlopes {
		a, mae := maeAt(b)
		if mae < best.MAEAfter {
			best.Shift, best.Slope, best.MAEAfter = a, b, mae
		}
	}
	return best
}

// PredictRows returns m's watch-ratio predictions of the rows of x, over
// all cores.
func (m *TwoTower) PredictRows(userFeats, itemFeats *mat.Dense, x Interactions) []float64 {
	users, items := uniqueRows(x.User), uniqueRows(x.Item)
	ue, ub := m.UserEmbeddings(userFeats, users)
	ie := m.ItemEmbeddings(itemFeats, items)
	uPos, iPos := positions(users), positions(items)
	pred := make([]float64, x.Len())
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*len(pred)/workers, (w+1)*len(pred)/workers
		wg.Go(func() {
			for k := lo; k < hi; k++ {
				u, i := uPos[x.User[k]], iPos[x.Item[k]]
				pred[k] = m.GlobalMean + ub[u] + dotD(ue.Row(int(u)), ie.Row(int(i)))
			}
		})
	}
	wg.Wait()
	return pred
}

func uniqueRows(x []int32) []int32 {
	if len(x) == 0 {
		return nil
	}
	seen := make([]bool, slices.Max(x)+1)
	for _, v := range x {
		seen[v] = true
	}
	var s []int32
	for v, ok := range seen {
		if ok {
			s = append(s, int32(v))
		}
	}
	return s
}

// positions maps each value of the sorted x to its index (a slice indexed by
// value; -1 elsewhere).
func positions(x []int32) []int32 {
	if len(x) == 0 {
		return nil
	}
	p := make([]int32, x[len(x)-1]+1)
	for i := range p {
		p[i] = -1
	}
	for i, v := range x {
		p[v] = int32(i)
	}
	return p
}

// Apply folds c into m: afterwards every prediction of m is Shift + Slope *
// its prediction before. The global mean becomes Shift + Slope * mu; the
// scale s and the bias coordinate (D-1) of both towers' last layers and of
// the per-user and per-item vectors are multiplied by Slope. (Both towers
// end in a linear layer, so this is exact up to rounding.)
func (c MedianCalibration) Apply(m *TwoTower) {
	b := c.Slope
	D := m.Cfg.Dim
	m.GlobalMean = c.Shift + b*m.GlobalMean
	m.p.Data[m.scaleOff] *= b
	for _, t := range []*MLP{m.User, m.Item} {
		last := t.Layers[len(t.Layers)-1]
		for r := 0; r < last.In; r++ {
			last.W[r*last.Out+D-1] *= b
		}
		last.B[D-1] *= b
	}
	for u := 0; u < m.nUsers; u++ {
		m.UserVec[u*D+D-1] *= b
	}
	if m.ItemVec != nil {
		for i := 0; i < m.nItems; i++ {
			m.ItemVec[i*D+D-1] *= b
		}
	}
}

// MedianShifts are per-user and per-item additive corrections fit for
// absolute error (a median polish of the residuals on the training rows,
// each shrunk towards 0 by n / (n + Lambda) for a user or item with n rows),
// folded into the bias coordinates of the per-user and per-item vectors by
// Apply. MSE fits a user's (or an item's) mean residual to about 0; the
// median residual is what absolute error wants, and it differs from 0 where
// a user's watch ratios are skewed (a heavy replay tail). The Lambdas are
// chosen on held-out rows (FitMedianShifts); +Inf means no shift.
type MedianShifts struct {
	User, Item             []float64 // per user and item row (0 where none)
	UserLambda, ItemLambda float64
	// ValidMAE are the validation MAEs before, after the user shifts and
	// after both.
	ValidMAE [3]float64
}

// shiftLambdas are the shrinkage constants FitMedianShifts tries.
var shiftLambdas = []float64{math.Inf(1), 200, 50, 20, 10, 5, 2}

// FitMedianShifts fits per-user, then per-item median shifts of m's
// residuals on train, each with the shrinkage of shiftLambdas that gives
// the lowest MAE on valid (with no valid rows: none). Rows of items that m
// did not train on (no per-item vector) get no item shift.
func FitMedianShifts(m *TwoTower, userFeats, itemFeats *mat.Dense, train, valid Interactions) MedianShifts {
	s := MedianShifts{User: make([]float64, m.nUsers), Item: make([]float64, m.nItems),
		UserLambda: math.Inf(1), ItemLambda: math.Inf(1)}
	ptr := m.PredictRows(userFeats, itemFeats, train)
	pva := m.PredictRows(userFeats, itemFeats, valid)
	resTr := make([]float64, len(ptr))
	for k := range ptr {
		resTr[k] = float64(train.WatchRatio[k]) - ptr[k]
	}
	resVa := make([]float64, len(pva))
	for k := range pva {
		resVa[k] = float64(valid.WatchRatio[k]) - pva[k]
	}
	mae := func(res []float64) float64 {
		t := 0.0
		for _, r := range res {
			t += math.Abs(r)
		}
		return t / float64(max(len(res), 1))
	}
	s.ValidMAE[0] = mae(resVa)
	if valid.Len() == 0 {
		s.ValidMAE[1], s.ValidMAE[2] = s.ValidMAE[0], s.ValidMAE[0]
		return s
	}
	// One pass per side: group the training residuals, take medians, try
	// each lambda on the validation rows, keep the best, update residuals.
	step := func(keyTr, keyVa []int32, n int, ok func(int32) bool) ([]float64, float64, float64) {
		med, cnt := groupMedians(resTr, keyTr, n)
		bestLam, bestMAE := math.Inf(1), mae(resVa)
		tmp := make([]float64, len(resVa))
		for _, lam := range shiftLambdas[1:] {
			for k, r := range resVa {
				g := keyVa[k]
				tmp[k] = r
				if ok(g) {
					tmp[k] = r - med[g]*cnt[g]/(cnt[g]+lam)
				}
			}
			if e := mae(tmp); e < bestMAE {
				bestLam, bestMAE = lam, e
			}
		}
		shift := make([]float64, n)
		if !math.IsInf(bestLam, 1) {
			for g := range shift {
				if ok(int32(g)) {
					shift[g] = med[g] * cnt[g] / (cnt[g] + bestLam)
				}
			}
			for k := range resTr {
				resTr[k] -= shift[keyTr[k]]
			}
			for k := range resVa {
				resVa[k] -= shift[keyVa[k]]
			}
		}
		return shift, bestLam, bestMAE
	}
	s.User, s.UserLambda, s.ValidMAE[1] = step(train.User, valid.User, m.nUsers, func(int32) bool { return true })
	s.Item, s.ItemLambda, s.ValidMAE[2] = step(train.Item, valid.Item, m.nItems, func(i int32) bool {
		return m.ItemVec != nil && m.ItemTrained[i]
	})
	return s
}

// groupMedians returns the median of res over the rows of each group key
// (0 for a group without rows) and the rows per group.
func groupMedians(res []float64, key []int32, n int) (med, cnt []float64) {
	cnt = make([]float64, n)
	for _, g := range key {
		cnt[g]++
	}
	start := make([]int, n+1)
	for g := 0; g < n; g++ {
		start[g+1] = start[g] + int(cnt[g])
	}
	vals := make([]float64, len(res))
	fill := slices.Clone(start[:n])
	for k, g := range key {
		vals[fill[g]] = res[k]
		fill[g]++
	}
	med = make([]float64, n)
	for g := 0; g < n; g++ {
		v := vals[start[g]:start[g+1]]
		if len(v) == 0 {
			continue
		}
		slices.Sort(v)
		h := len(v) / 2
		if len(v)%2 == 1 {
			med[g] = v[h]
		} else {
			med[g] = (v[h-1] + v[h]) / 2
		}
	}
	return med, cnt
}

// Apply adds the shifts to the bias coordinates of m's per-user and
// per-item vectors: every prediction of user u and item i grows by
// User[u] + Item[i] (Item only for items with a per-item vector).
func (s MedianShifts) Apply(m *TwoTower) {
	D := m.Cfg.Dim
	for u, d := range s.User {
		m.UserVec[u*D+D-1] += d
	}
	if m.ItemVec != nil {
		for i, d := range s.Item {
			m.ItemVec[i*D+D-1] += d
		}
	}
}
