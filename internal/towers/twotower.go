package towers

import (
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// TwoTowerConfig is the architecture and objective of the serving model.
// DefaultTwoTowerConfig gives every field a value; there are no zero-means-
// default fields.
type TwoTowerConfig struct {
	// Dim is the embedding dimension D, including the bias slot (the last
	// coordinate). Default 64.
	Dim int
	// Hidden are the hidden widths of each tower; the last layer outputs Dim.
	// Default [128, 64] (towers Dense 128-64-64 like the seed's).
	Hidden []int
	// ItemVectors learns a per-item vector q_i for items seen in training.
	// Default true.
	ItemVectors bool
	// RankWeight multiplies the sampled-softmax ranking loss added to the MSE.
	// 0 trains on MSE alone. Default 0 (see tuning.go: with uniform negatives
	// the loss teaches the exposure popularity of the log, and 0.1 or even
	// 0.01 hurt every offline ranking metric on full-size synthetic data).
	RankWeight float64
	// RankThreshold: an interaction is a positive for the ranking loss when its
	// watch ratio is >= RankThreshold. Default 0.8 (the seed's relevance).
	RankThreshold float64
	// RankTemp is the softmax temperature over scores. Default 0.2.
	RankTemp float64
	// Negatives is the number of uniform negatives (over items seen in
	// training) shared by the positives of one worker's part of a batch.
	// Default 64.
	Negatives int
}

// DefaultTwoTowerConfig returns the serving model's defaults.
func DefaultTwoTowerConfig() TwoTowerConfig {
	return TwoTowerConfig{Dim: 64, Hidden: []int{128, 64}, ItemVectors: true,
		RankWeight: 0, RankThreshold: 0.8, RankTemp: 0.2, Negatives: 64}
}

// TwoTower is the serving model; see the package documentation for the
// embeddings and the calibration of its score. Its dense parameters (both
// towers and the scale) live in one flat vector; the per-user and per-item
// vectors are tables of Dim-wide rows.
type TwoTower struct {
	Cfg TwoTowerConfig
	// Version names this trained model (for example a timestamp); it is
	// written into the model file and should be published with embeddings.
	Version string
	// GlobalMean is mu in pred = mu + a_u[D-1] + <e_u, e_i>.
	GlobalMean float64
	User, Item *MLP
	// UserVec holds p_u (n_users x Dim); ItemVec holds q_i (n_items x Dim,
	// nil without ItemVectors). Rows of items unseen in training stay zero.
	UserVec, ItemVec []float64
	// ItemTrained marks the items that appeared in training interactions.
	ItemTrained []bool
	// Meta is free-form numeric metadata saved with the model file and read
	// back by ReadModel (for example MetaCutMS, the training cut). Keys are
	// stored as "x.<key>"; nil and empty are the same.
	Meta map[string]float64

	nUsers, nItems int
	p              params
	scaleOff       int
}

// NewTwoTower returns an initialised serving model for nUsers users with du
// features and nItems items with di features. The towers get He
// initialisation from rng, the scale starts at 1, the vectors at zero.
func NewTwoTower(nUsers, du, nItems, di int, cfg TwoTowerConfig, rng *rand.Rand) *TwoTower {
	if cfg.Dim < 2 || nUsers <= 0 || nItems <= 0 || du <= 0 || di <= 0 {
		panic("towers: NewTwoTower: bad shape")
	}
	m := &TwoTower{Cfg: cfg, nUsers: nUsers, nItems: nItems}
	sizes := append(append([]int{}, cfg.Hidden...), cfg.Dim)
	m.User = newMLP(&m.p, "user", du, sizes, 0, false)
	m.Item = newMLP(&m.p, "item", di, sizes, 0, false)
	m.scaleOff = m.p.reserve("scale", 1, 1)
	m.p.alloc()
	m.User.bind(&m.p)
	m.Item.bind(&m.p)
	m.User.initHe(rng)
	m.Item.initHe(rng)
	// Shrink the last layers so that initial scores are small.
	for _, t := range []*MLP{m.User, m.Item} {
		last := t.Layers[len(t.Layers)-1]
		for i := range last.W {
			last.W[i] *= 0.1
		}
	}
	m.p.Data[m.scaleOff] = 1
	m.UserVec = make([]float64, nUsers*cfg.Dim)
	if cfg.ItemVectors {
		m.ItemVec = make([]float64, nItems*cfg.Dim)
	}
	m.ItemTrained = make([]bool, nItems)
	return m
}

// Dim is the embedding dimension D (bias slot included).
func (m *TwoTower) Dim() int { return m.Cfg.Dim }

// NumUsers and NumItems are the table sizes the model was built for.
func (m *TwoTower) NumUsers() int { return m.nUsers }
func (m *TwoTower) NumItems() int { return m.nItems }

// Scale is the learned scale s of the inner product of the non-bias parts.
func (m *TwoTower) Scale() float64 { return m.p.Data[m.scaleOff] }

// ttBatch is one worker's share of a training step.
type ttBatch struct {
	idx  []int32 // rows of Dataset.Train
	negs []int32 // shared uniform negatives (items)
	// mseNorm and rankNorm are the sums over the whole batch (all workers) of
	// the loss weights of all rows and of the rank-positive rows.
	mseNorm, rankNorm float64
}

// sparseRows collects per-row gradients of an embedding table in the order
// they were produced (so that their reduction is deterministic).
type sparseRows struct {
	dim  int
	rows []int32
	vals []float64
}

func (s *sparseRows) reset() { s.rows, s.vals = s.rows[:0], s.vals[:0] }

func (s *sparseRows) add(row int32, g []float64) {
	s.rows = append(s.rows, row)
	s.vals = append(s.vals, g...)
}

// ttWorker is one worker's memory for the serving model's forward and
// backward passes, for up to capRows rows plus negatives.
type ttWorker struct {
	m                   *TwoTower
	uw, iw              *mlpWork
	xu, xi              []float64
	items               []int32
	eu, deu, dau, dai   []float64
	sNeg, dSNeg, logits []float64
	gLogits             []float64
	negT                []float64 // the negatives' embeddings transposed
	target, weight      []float64
	uRows, iRows        sparseRows
}

func (m *TwoTower) newWorker(capRows int) *ttWorker {
	D, K := m.Cfg.Dim, m.Cfg.Negatives
	ci := capRows + K
	return &ttWorker{
		m:  m,
		uw: m.User.newWork(capRows), iw: m.Item.newWork(ci),
		xu: make([]float64, capRows*m.User.In()), xi: make([]float64, ci*m.Item.In()),
		items: make([]int32, 0, ci),
		eu:    make([]float64, capRows*D), deu: make([]float64, capRows*D),
		dau: make([]float64, capRows*D), dai: make([]float64, ci*D),
		sNeg: make([]float64, capRows*K), dSNeg: make([]float64, capRows*K),
		logits: make([]float64, K+1), gLogits: make([]float64, K+1), negT: make([]float64, D*K),
		target: make([]float64, capRows), weight: make([]float64, capRows),
		uRows: sparseRows{dim: D}, iRows: sparseRows{dim: D},
	}
}

// lossParts are unnormalised loss sums of one worker's share of a batch.
type lossParts struct {
	mse, rank, absErr float64
	n                 int
}

// lossGrad runs the serving model forward on b and, if grad is not nil,
// backward: it accumulates the gradient of
//
//	L = sum_r w_r (pred_r - y_r)^2 / mseNorm + RankWeight * sum_{r: y_r >= thr} w_r CE_r / rankNorm
//
// into grad (dense parameters, flat) and appends per-row gradients of the
// user and item vectors to w.uRows and w.iRows. y is the watch ratio capped at
// targetCap (if > 0). CE_r is the sampled softmax cross-entropy of the
// positive against b.negs at temperature RankTemp.
func (w *ttWorker) lossGrad(ds *Dataset, b *ttBatch, targetCap float64, grad []float64) lossParts {
	m := w.m
	D := m.Cfg.Dim
	n := len(b.idx)
	K := len(b.negs)
	if m.Cfg.RankWeight == 0 {
		K = 0
	}
	ni := n + K
	tr := ds.Train
	w.items = w.items[:0]
	for _, k := range b.idx {
		w.items = append(w.items, tr.Item[k])
	}
	w.items = append(w.items, b.negs[:K]...)

	// Gather features: users row-wise from the training rows.
	ru := m.User.In()
	uraw := ds.UserFeatures.RawMatrix()
	for r, k := range b.idx {
		u := int(tr.User[k])
		copy(w.xu[r*ru:(r+1)*ru], uraw.Data[u*uraw.Stride:u*uraw.Stride+ru])
		y := float64(tr.WatchRatio[k])
		if targetCap > 0 {
			y = min(y, targetCap)
		}
		w.target[r] = y
		w.weight[r] = tr.weight(k)
	}
	gatherRows(w.xi, ds.ItemFeatures, w.items)

	au := m.User.forward(w.uw, w.xu, n, false, nil)
	ai := m.Item.forward(w.iw, w.xi, ni, false, nil)
	for r, k := range b.idx {
		addRow(au[r*D:(r+1)*D], m.UserVec, int(tr.User[k]), D)
	}
	if m.ItemVec != nil {
		for r, it := range w.items {
			addRow(ai[r*D:(r+1)*D], m.ItemVec, int(it), D)
		}
	}
	s := m.Scale()
	eu := w.eu[:n*D]
	for r := 0; r < n; r++ {
		a, e := au[r*D:(r+1)*D], eu[r*D:(r+1)*D]
		for j := 0; j < D-1; j++ {
			e[j] = s * a[j]
		}
		e[D-1] = 1
	}

	var lp lossParts
	lp.n = n
	withGrad := grad != nil
	deu, dai := w.deu[:n*D], w.dai[:ni*D]
	if withGrad {
		clear(deu)
		clear(dai)
		clear(w.dau[:n*D])
	}
	dau := w.dau[:n*D]
	for r := 0; r < n; r++ {
		e, a, v := eu[r*D:(r+1)*D], au[r*D:(r+1)*D], ai[r*D:(r+1)*D]
		pred := m.GlobalMean + a[D-1] + dotD(e, v)
		err := pred - w.target[r]
		lp.mse += w.weight[r] * err * err
		lp.absErr += w.weight[r] * abs(err)
		if withGrad {
			g := 2 * w.weight[r] * err / b.mseNorm
			dau[r*D+D-1] += g
			axpy(deu[r*D:(r+1)*D], g, v)
			axpy(dai[r*D:(r+1)*D], g, e)
		}
	}

	if K > 0 && b.rankNorm > 0 {
		negA := ai[n*D : ni*D]
		sNeg := w.sNeg[:n*K]
		// sNeg = eu negA^T (n x K)
		if m.User.Layers[0].ref {
			blas64.Gemm(blas.NoTrans, blas.Trans, 1, general(n, D, eu), general(K, D, negA), 0, general(n, K, sNeg))
		} else {
			// sNeg = eu negA^T: A = eu, B = negA^T (B(p, j) = negA[j*D+p]).
			wt := w.negT[:D*K]
			transposeInto(wt, negA, K, D)
			clear(sNeg)
			gemmAcc(n, K, D, eu, D, 1, wt, K, sNeg, K)
		}
		dSNeg := w.dSNeg[:n*K]
		clear(dSNeg)
		inv := 1 / m.Cfg.RankTemp
		anyPos := false
		for r := 0; r < n; r++ {
			if w.target[r] < m.Cfg.RankThreshold {
				continue
			}
			anyPos = true
			e, v := eu[r*D:(r+1)*D], ai[r*D:(r+1)*D]
			w.logits[0] = dotD(e, v) * inv
			for j := 0; j < K; j++ {
				w.logits[1+j] = sNeg[r*K+j] * inv
			}
			ce := SampledSoftmax(w.gLogits, w.logits)
			lp.rank += w.weight[r] * ce
			if withGrad {
				c := m.Cfg.RankWeight * w.weight[r] / b.rankNorm * inv
				g0 := c * w.gLogits[0]
				axpy(deu[r*D:(r+1)*D], g0, v)
				axpy(dai[r*D:(r+1)*D], g0, e)
				for j := 0; j < K; j++ {
					dSNeg[r*K+j] = c * w.gLogits[1+j]
				}
			}
		}
		if withGrad && anyPos {
			// deu += dSNeg negA ; dNegA += dSNeg^T eu
			if m.User.Layers[0].ref {
				blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, general(n, K, dSNeg), general(K, D, negA), 1, general(n, D, deu))
				blas64.Gemm(blas.Trans, blas.NoTrans, 1, general(n, K, dSNeg), general(n, D, eu), 1, general(K, D, dai[n*D:]))
			} else {
				gemmAcc(n, D, K, dSNeg, K, 1, negA, D, deu, D)
				gemmAcc(K, D, n, dSNeg, 1, K, eu, D, dai[n*D:], D)
			}
		}
	}
	if !withGrad {
		return lp
	}
	// e_u = [s a_u[:D-1], 1]: chain into a_u and s.
	dScale := 0.0
	for r := 0; r < n; r++ {
		de, a, da := deu[r*D:(r+1)*D], au[r*D:(r+1)*D], dau[r*D:(r+1)*D]
		for j := 0; j < D-1; j++ {
			da[j] += s * de[j]
			dScale += de[j] * a[j]
		}
	}
	grad[m.scaleOff] += dScale
	for r, k := range b.idx {
		w.uRows.add(tr.User[k], dau[r*D:(r+1)*D])
	}
	if m.ItemVec != nil {
		for r, it := range w.items {
			w.iRows.add(it, dai[r*D:(r+1)*D])
		}
	}
	m.User.backward(w.uw, grad, w.xu, dau, nil, n, false)
	m.Item.backward(w.iw, grad, w.xi, dai, nil, ni, false)
	return lp
}

func addRow(dst, table []float64, row, d int) {
	src := table[row*d : (row+1)*d]
	for j, v := range src {
		dst[j] += v
	}
}

func dotD(a, b []float64) float64 {
	s := 0.0
	for j, v := range a {
		s += v * b[j]
	}
	return s
}

// axpy: y += alpha x.
func axpy(y []float64, alpha float64, x []float64) {
	for j, v := range x {
		y[j] += alpha * v
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
