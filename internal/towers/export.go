package towers

import (
	"gonum.org/v1/gonum/mat"
)

// LayerWeights is one Dense layer of a tower in float32, as published for the
// serving side: y = x W + B (W is In x Out, row-major), followed by ReLU when
// ReLU is set.
type LayerWeights struct {
	In, Out int
	W, B    []float32
	ReLU    bool
}

func exportMLP(t *MLP) []LayerWeights {
	out := make([]LayerWeights, len(t.Layers))
	for l, d := range t.Layers {
		out[l] = LayerWeights{In: d.In, Out: d.Out, W: f64to32(d.W), B: f64to32(d.B), ReLU: l < len(t.Layers)-1}
	}
	return out
}

func f64to32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

// UserTowerWeights returns a float32 copy of the user tower (features ->
// T_u(x_u), Dim outputs), for publishing; ApplyTower evaluates it.
func (m *TwoTower) UserTowerWeights() []LayerWeights { return exportMLP(m.User) }

// ItemTowerWeights returns a float32 copy of the item tower, with which a
// video unseen in training is embedded from its features alone.
func (m *TwoTower) ItemTowerWeights() []LayerWeights { return exportMLP(m.Item) }

// ApplyTower evaluates published tower weights on one feature vector x and
// writes the output into dst (the last layer's Out). scratch must hold at
// least twice the widest layer; with it ApplyTower does not allocate.
func ApplyTower(dst []float32, layers []LayerWeights, x []float32, scratch []float32) {
	if len(layers) == 0 || len(x) != layers[0].In || len(dst) != layers[len(layers)-1].Out {
		panic("towers: ApplyTower: shape mismatch")
	}
	widest := 0
	for _, l := range layers {
		widest = max(widest, l.Out)
	}
	if len(scratch) < 2*widest {
		panic("towers: ApplyTower: scratch too small")
	}
	in := x
	bufs := [2][]float32{scratch[:widest], scratch[widest : 2*widest]}
	for li, l := range layers {
		out := bufs[li%2][:l.Out]
		if li == len(layers)-1 {
			out = dst
		}
		ApplyLayer(out, l, in)
		in = out
	}
}

// ApplyLayer evaluates one published layer: out = in W + B, then ReLU when
// the layer has it. len(in) must be l.In and len(out) l.Out.
func ApplyLayer(out []float32, l LayerWeights, in []float32) {
	copy(out, l.B)
	for i, v := range in {
		if v == 0 {
			continue
		}
		row := l.W[i*l.Out : (i+1)*l.Out]
		for j, w := range row {
			out[j] += v * w
		}
	}
	if l.ReLU {
		for j, v := range out {
			if v < 0 {
				out[j] = 0
			}
		}
	}
}

// UserDense writes T_u(x_u), the user tower's output on the features of user
// row u of feats, into dst (Dim) in float32: the "dense" argument of
// OnlineStep and UserEmbedding.
func (m *TwoTower) UserDense(dst []float32, feats *mat.Dense, u int) {
	if len(dst) != m.Cfg.Dim {
		panic("towers: UserDense: shape mismatch")
	}
	out := make([]float64, m.Cfg.Dim)
	towerRows(m.User, out, feats, []int32{int32(u)})
	for j, v := range out {
		dst[j] = float32(v)
	}
}

// UserVector writes the learned vector p_u of user u into dst (Dim) in
// float32: the "vec" argument of OnlineStep.
func (m *TwoTower) UserVector(dst []float32, u int) {
	D := m.Cfg.Dim
	if len(dst) != D {
		panic("towers: UserVector: shape mismatch")
	}
	for j, v := range m.UserVec[u*D : (u+1)*D] {
		dst[j] = float32(v)
	}
}

// OnlineParams returns the model's calibration constants for OnlineStep, with
// the given learning rate and L2 penalty.
func (m *TwoTower) OnlineParams(lr, l2, targetCap float32) OnlineParams {
	return OnlineParams{LR: lr, L2: l2, GlobalMean: float32(m.GlobalMean), Scale: float32(m.Scale()), TargetCap: targetCap}
}

// ExportItemEmbeddings returns the float32 item embeddings e_i of every row of
// the item feature matrix, keyed by ids[row] (the dataset's video ids). Items
// seen in training include their learned vector; the others are embedded from
// their features alone.
func (m *TwoTower) ExportItemEmbeddings(feats *mat.Dense, ids []int64) map[int64][]float32 {
	n, _ := feats.Dims()
	if len(ids) != n {
		panic("towers: ExportItemEmbeddings: ids and feature rows differ")
	}
	e := m.ItemEmbeddings(feats, allRows(n))
	out := make(map[int64][]float32, n)
	for r, id := range ids {
		out[id] = f64to32(e.Row(r))
	}
	return out
}

func allRows(n int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(i)
	}
	return s
}
