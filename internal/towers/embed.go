package towers

import (
	"gonum.org/v1/gonum/mat"
)

// Embeddings is a row-major n x Dim matrix of embeddings.
type Embeddings struct {
	N, Dim int
	Data   []float64
}

// Row returns embedding r.
func (e Embeddings) Row(r int) []float64 { return e.Data[r*e.Dim : (r+1)*e.Dim] }

const embedChunk = 512

// towerRows runs t (evaluation mode) over the feature rows idx of feats and
// writes the outputs into dst (len(idx) x t.Out()).
func towerRows(t *MLP, dst []float64, feats *mat.Dense, idx []int32) {
	w := t.newWork(embedChunk)
	x := make([]float64, embedChunk*t.In())
	for lo := 0; lo < len(idx); lo += embedChunk {
		hi := min(lo+embedChunk, len(idx))
		gatherRows(x, feats, idx[lo:hi])
		out := t.forward(w, x, hi-lo, false, nil)
		copy(dst[lo*t.Out():hi*t.Out()], out)
	}
}

// UserEmbeddings returns e_u for the given users (rows of the user feature
// matrix and of UserVec) and their biases a_u[D-1]:
// e_u = [s a_u[:D-1], 1] with a_u = T_u(x_u) + p_u.
func (m *TwoTower) UserEmbeddings(feats *mat.Dense, users []int32) (Embeddings, []float64) {
	D := m.Cfg.Dim
	e := Embeddings{N: len(users), Dim: D, Data: make([]float64, len(users)*D)}
	towerRows(m.User, e.Data, feats, users)
	bias := make([]float64, len(users))
	s := m.Scale()
	for r, u := range users {
		row := e.Row(r)
		addRow(row, m.UserVec, int(u), D)
		bias[r] = row[D-1]
		for j := 0; j < D-1; j++ {
			row[j] *= s
		}
		row[D-1] = 1
	}
	return e, bias
}

// ItemEmbeddings returns e_i = T_i(x_i) + q_i for the given items (rows of
// the item feature matrix); q_i is used only for items seen in training.
func (m *TwoTower) ItemEmbeddings(feats *mat.Dense, items []int32) Embeddings {
	D := m.Cfg.Dim
	e := Embeddings{N: len(items), Dim: D, Data: make([]float64, len(items)*D)}
	towerRows(m.Item, e.Data, feats, items)
	if m.ItemVec != nil {
		for r, i := range items {
			if int(i) < m.nItems && m.ItemTrained[i] {
				addRow(e.Row(r), m.ItemVec, int(i), D)
			}
		}
	}
	return e
}

// Scorer scores users against items with precomputed embeddings:
// Score = <e_u, e_i>, Predict = mu + user bias + Score.
type Scorer struct {
	GlobalMean float64
	Users      Embeddings
	UserBias   []float64
	Items      Embeddings
}

// NewScorer precomputes the embeddings of users and items.
func (m *TwoTower) NewScorer(userFeats *mat.Dense, users []int32, itemFeats *mat.Dense, items []int32) *Scorer {
	ue, ub := m.UserEmbeddings(userFeats, users)
	return &Scorer{GlobalMean: m.GlobalMean, Users: ue, UserBias: ub, Items: m.ItemEmbeddings(itemFeats, items)}
}

// Scores writes the inner-product scores of user row u against every item
// row into dst (Items.N).
func (s *Scorer) Scores(u int, dst []float64) {
	eu := s.Users.Row(u)
	for i := 0; i < s.Items.N; i++ {
		dst[i] = dotD(eu, s.Items.Row(i))
	}
}

// Predict writes the calibrated watch-ratio predictions of user row u against
// every item row into dst.
func (s *Scorer) Predict(u int, dst []float64) {
	s.Scores(u, dst)
	c := s.GlobalMean + s.UserBias[u]
	for i := range dst[:s.Items.N] {
		dst[i] += c
	}
}

// SeedScorer precomputes the seed's tower outputs and the first combination
// layer's per-user and per-item halves, so that scoring a pair costs only the
// remaining combination layers.
type SeedScorer struct {
	m      *Seed
	hu, hi []float64 // n x width of the first combination layer
	width  int
	buf    []float64
}

// NewScorer precomputes the seed's towers for users and items.
func (m *Seed) NewScorer(userFeats *mat.Dense, users []int32, itemFeats *mat.Dense, items []int32) *SeedScorer {
	h := m.User.Out()
	zu := make([]float64, len(users)*h)
	zi := make([]float64, len(items)*h)
	towerRows(m.User, zu, userFeats, users)
	towerRows(m.Item, zi, itemFeats, items)
	first := m.Comb.Layers[0]
	width := first.Out
	// Split W (2h x width) into its user half (rows 0..h) and item half.
	wu := &Dense{In: h, Out: width, W: first.W[:h*width], B: first.B}
	wi := &Dense{In: h, Out: width, W: first.W[h*width:], B: make([]float64, width)}
	s := &SeedScorer{m: m, width: width, hu: make([]float64, len(users)*width), hi: make([]float64, len(items)*width)}
	wu.Forward(s.hu, zu, len(users))
	wi.Forward(s.hi, zi, len(items))
	return s
}

// Predict writes the seed's predictions of user row u against every item
// row into dst. Not safe for concurrent use.
func (s *SeedScorer) Predict(u int, dst []float64) {
	n := len(s.hi) / s.width
	if len(s.buf) < n*s.width {
		s.buf = make([]float64, n*s.width)
	}
	x := s.buf[:n*s.width]
	hu := s.hu[u*s.width : (u+1)*s.width]
	for i := 0; i < n; i++ {
		row := x[i*s.width : (i+1)*s.width]
		hi := s.hi[i*s.width : (i+1)*s.width]
		for j := range row {
			row[j] = max(hu[j]+hi[j], 0)
		}
	}
	rest := &MLP{Layers: s.m.Comb.Layers[1:]}
	if len(rest.Layers) == 0 {
		panic("towers: SeedScorer: combination MLP needs two layers or more")
	}
	w := rest.newWork(n)
	copy(dst[:n], rest.forward(w, x, n, false, nil))
}
