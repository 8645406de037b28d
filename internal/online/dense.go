package online

import (
	"fmt"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/towers"
)

// DenseTower is the user tower fine-tuned online ("dense mode"): the published
// layers W0 stay frozen, a working copy W learns from every event at its own
// learning rate. A user's dense input to OnlineStep is then
//
//	dense_u = a0_u + T(x_u; W) - T(x_u; W0)
//
// where a0_u is the user's offline vector (State.Base): with W = W0 it is the
// per-user mode exactly. It is not safe for concurrent use (the Updater
// serialises).
type DenseTower struct {
	LR    float32
	Steps uint64 // events whose gradient reached W (its version within the model version)

	w0, w []towers.LayerWeights
	feats map[uint32][]float32 // user features, views into one slice
	t0    map[uint32][]float32 // T(x_u; W0), filled lazily
	acts  [][]float32          // per-layer outputs of the last Forward
	x     []float32            // input of the last Forward
	grad  [2][]float32         // back-propagation scratch
	out   []float32
}

// NewDenseTower starts from the published user-tower layers and the users'
// features (features.Dim must be the first layer's input).
func NewDenseTower(layers []towers.LayerWeights, features cache.UserFeatures, lr float32) (*DenseTower, error) {
	if len(layers) == 0 {
		return nil, fmt.Errorf("dense tower: no layers")
	}
	if features.Dim != layers[0].In {
		return nil, fmt.Errorf("dense tower: features of dim %d, tower input %d", features.Dim, layers[0].In)
	}
	d := &DenseTower{LR: lr, w0: layers, feats: make(map[uint32][]float32, len(features.IDs)),
		t0: map[uint32][]float32{}}
	widest := 0
	for _, l := range layers {
		c := l
		c.W, c.B = append([]float32(nil), l.W...), append([]float32(nil), l.B...)
		d.w = append(d.w, c)
		d.acts = append(d.acts, make([]float32, l.Out))
		widest = max(widest, l.In, l.Out)
	}
	d.grad = [2][]float32{make([]float32, widest), make([]float32, widest)}
	d.out = make([]float32, layers[len(layers)-1].Out)
	for i, id := range features.IDs {
		d.feats[id] = features.Feats[i*features.Dim : (i+1)*features.Dim : (i+1)*features.Dim]
	}
	return d, nil
}

// Dim is the tower's output size.
func (d *DenseTower) Dim() int { return len(d.out) }

// forward evaluates layers on x, keeping every layer's output in acts.
func forward(layers []towers.LayerWeights, acts [][]float32, x []float32) []float32 {
	in := x
	for li, l := range layers {
		towers.ApplyLayer(acts[li], l, in)
		in = acts[li]
	}
	return in
}

// Dense writes the user's dense input (see the type) into dst, keeping the
// activations for Step. It returns false, leaving dst untouched, for a user
// without features.
func (d *DenseTower) Dense(dst, base []float32, uid uint32) bool {
	x, ok := d.feats[uid]
	if !ok {
		return false
	}
	t0, ok := d.t0[uid]
	if !ok {
		scratch := make([][]float32, len(d.w0))
		for i, l := range d.w0 {
			scratch[i] = make([]float32, l.Out)
		}
		t0 = append([]float32(nil), forward(d.w0, scratch, x)...)
		d.t0[uid] = t0
	}
	d.x = x
	t := forward(d.w, d.acts, x)
	for j := range dst {
		dst[j] = base[j] + (t[j] - t0[j]) // exactly base while W == W0
	}
	return true
}

// Step back-propagates g, the loss gradient with respect to the dense input
// of the last Dense call, through W, and takes one SGD step on W.
func (d *DenseTower) Step(g []float32) {
	cur := d.grad[0][:len(g)]
	copy(cur, g)
	for li := len(d.w) - 1; li >= 0; li-- {
		l := &d.w[li]
		out := d.acts[li]
		if l.ReLU {
			for j := range cur {
				if out[j] <= 0 {
					cur[j] = 0
				}
			}
		}
		in := d.x
		if li > 0 {
			in = d.acts[li-1]
		}
		// Gradient for the layer below, with W before this step.
		var next []float32
		if li > 0 {
			next = d.grad[(len(d.w)-li)%2][:l.In]
			for i := range next {
				row := l.W[i*l.Out : (i+1)*l.Out]
				var s float32
				for j, w := range row {
					s += w * cur[j]
				}
				next[i] = s
			}
		}
		for i, xi := range in {
			if xi == 0 {
				continue
			}
			row := l.W[i*l.Out : (i+1)*l.Out]
			a := d.LR * xi
			for j := range row {
				row[j] -= a * cur[j]
			}
		}
		for j := range l.B {
			l.B[j] -= d.LR * cur[j]
		}
		cur = next
	}
	d.Steps++
}

// Weights returns a flat copy of W (every layer's W then B, in order).
func (d *DenseTower) Weights() []float32 {
	var out []float32
	for _, l := range d.w {
		out = append(out, l.W...)
		out = append(out, l.B...)
	}
	return out
}

// SetWeights restores W from a flat copy made by Weights.
func (d *DenseTower) SetWeights(flat []float32, steps uint64) error {
	n := 0
	for _, l := range d.w {
		n += len(l.W) + len(l.B)
	}
	if len(flat) != n {
		return fmt.Errorf("dense tower: %d weights, want %d", len(flat), n)
	}
	for i := range d.w {
		l := &d.w[i]
		flat = flat[copy(l.W, flat):]
		flat = flat[copy(l.B, flat):]
	}
	d.Steps = steps
	return nil
}
