package towers

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// MLP is a stack of Dense layers: every layer but the last is followed by ReLU
// and (in training) inverted dropout; the last layer is linear and, if L2Norm
// is set, its output rows are normalised to unit length. The parameters are
// shared, read-only, between workers during a step; per-batch state lives in
// an mlpWork.
type MLP struct {
	Layers  []*Dense
	Dropout float64
	L2Norm  bool
}

// newMLP reserves the layers in -> sizes[0] -> ... -> sizes[len-1] in p under
// the given name prefix; call bind after p.alloc.
func newMLP(p *params, prefix string, in int, sizes []int, dropout float64, l2 bool) *MLP {
	m := &MLP{Dropout: dropout, L2Norm: l2}
	for l, out := range sizes {
		m.Layers = append(m.Layers, p.reserveDense(fmt.Sprintf("%s.%d", prefix, l), in, out))
		in = out
	}
	return m
}

// setRef selects gonum's kernels (ref) or gemmAcc for every layer.
func (m *MLP) setRef(ref bool) {
	for _, d := range m.Layers {
		d.ref = ref
	}
}

func (m *MLP) bind(p *params) {
	for _, d := range m.Layers {
		p.bindDense(d)
	}
}

// initHe draws weights from N(0, 2/fan_in) (He initialisation, suited to ReLU)
// and zeroes the biases.
func (m *MLP) initHe(rng *rand.Rand) {
	for _, d := range m.Layers {
		sd := math.Sqrt(2 / float64(d.In))
		for i := range d.W {
			d.W[i] = rng.NormFloat64() * sd
		}
		for i := range d.B {
			d.B[i] = 0
		}
	}
}

// In is the input width; Out the output width.
func (m *MLP) In() int  { return m.Layers[0].In }
func (m *MLP) Out() int { return m.Layers[len(m.Layers)-1].Out }

// mlpWork is one worker's activation and scratch memory for an MLP, sized for
// batches of up to capRows rows.
type mlpWork struct {
	capRows int
	outs    [][]float64 // outs[l]: output of layer l after its activation
	masks   [][]float64 // dropout scale factors of hidden layers
	norms   []float64
	g1, g2  []float64 // backward scratch
	wt      []float64 // a layer's transposed weights (Dense.backward)
}

func (m *MLP) newWork(capRows int) *mlpWork {
	w := &mlpWork{capRows: capRows, norms: make([]float64, capRows)}
	widest, wsize := m.In(), 0
	for _, d := range m.Layers {
		wsize = max(wsize, d.In*d.Out)
		w.outs = append(w.outs, make([]float64, capRows*d.Out))
		w.masks = append(w.masks, make([]float64, capRows*d.Out))
		widest = max(widest, d.Out)
	}
	w.g1 = make([]float64, capRows*widest)
	w.g2 = make([]float64, capRows*widest)
	w.wt = make([]float64, wsize)
	return w
}

// forward runs the n rows of x through the MLP and returns the output (n x
// Out), which lives in w until the next forward. train turns dropout on (it
// then needs rng).
func (m *MLP) forward(w *mlpWork, x []float64, n int, train bool, rng *rand.Rand) []float64 {
	if n > w.capRows {
		panic("towers: MLP.forward: batch larger than its workspace")
	}
	in := x
	last := len(m.Layers) - 1
	for l, d := range m.Layers {
		out := w.outs[l][:n*d.Out]
		d.Forward(out, in, n)
		if l < last {
			if d.ref {
				ReLUForward(out, out)
			} else {
				reluForwardFast(out, out)
			}
			if train && m.Dropout > 0 {
				if d.ref {
					DropoutForward(out, w.masks[l][:n*d.Out], out, m.Dropout, rng)
				} else {
					dropoutForwardFast(out, w.masks[l][:n*d.Out], out, m.Dropout, rng)
				}
			}
		} else if m.L2Norm {
			L2NormForward(out, w.norms, out, n, d.Out)
		}
		in = out
	}
	return w.outs[last][:n*m.Out()]
}

// backward takes the gradient dout (n x Out) of the loss with respect to the
// output of the last forward over x, accumulates parameter gradients into grad
// (flat, with the owning params' layout) and, if dx is not nil, writes the
// gradient with respect to x into dx (n x In). dout is not modified. train
// must match the forward call.
func (m *MLP) backward(w *mlpWork, grad, x, dout, dx []float64, n int, train bool) {
	last := len(m.Layers) - 1
	dy := w.g1[:n*m.Out()]
	if m.L2Norm {
		L2NormBackward(dy, w.outs[last], w.norms, dout, n, m.Out())
	} else {
		copy(dy, dout)
	}
	other := w.g2
	for l := last; l >= 0; l-- {
		d := m.Layers[l]
		if l < last {
			out := w.outs[l][:n*d.Out]
			if train && m.Dropout > 0 {
				DropoutBackward(dy, w.masks[l][:n*d.Out], dy)
			}
			if d.ref {
				ReLUBackward(dy, out, dy)
			} else {
				reluBackwardFast(dy, out, dy)
			}
		}
		var in, dIn []float64
		if l > 0 {
			in = w.outs[l-1][:n*d.In]
			dIn = other[:n*d.In]
		} else {
			in = x
			dIn = dx
		}
		d.backward(dIn, grad, in, dy, n, w.wt)
		if l > 0 {
			dy, other = dIn, dy[:cap(dy)]
		}
	}
}
