package towers

import "math"

// SGD is plain stochastic gradient descent with optional L2 weight decay:
// x -= LR * (g + L2 * x).
type SGD struct {
	LR, L2 float64
}

// Step updates x in place from its gradient g.
func (o *SGD) Step(x, g []float64) {
	if len(x) != len(g) {
		panic("towers: SGD.Step: shape mismatch")
	}
	for i, gi := range g {
		x[i] -= o.LR * (gi + o.L2*x[i])
	}
}

// Adam is the Adam optimiser (Kingma and Ba) with bias correction over a flat
// parameter vector. Zero Beta1, Beta2, Eps are not defaults: use NewAdam.
type Adam struct {
	LR, Beta1, Beta2, Eps float64
	M, V                  []float64
	T                     int // steps taken
}

// NewAdam returns Adam over n parameters with the usual constants
// (beta1 0.9, beta2 0.999, eps 1e-8).
func NewAdam(n int, lr float64) *Adam {
	return &Adam{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, M: make([]float64, n), V: make([]float64, n)}
}

// Step advances the step count and updates x in place from its gradient g.
func (o *Adam) Step(x, g []float64) {
	if len(x) != len(g) || len(x) != len(o.M) {
		panic("towers: Adam.Step: shape mismatch")
	}
	o.T++
	c1 := 1 - math.Pow(o.Beta1, float64(o.T))
	c2 := 1 - math.Pow(o.Beta2, float64(o.T))
	lr := o.LR * math.Sqrt(c2) / c1
	for i, gi := range g {
		m := o.Beta1*o.M[i] + (1-o.Beta1)*gi
		v := o.Beta2*o.V[i] + (1-o.Beta2)*gi*gi
		o.M[i], o.V[i] = m, v
		x[i] -= lr * m / (math.Sqrt(v) + o.Eps)
	}
}

// LazyAdam is Adam over the rows of an embedding table, updating only the rows
// a step touched (the moments of untouched rows are not decayed), as
// TensorFlow's LazyAdam does. Bias correction uses the global step count.
type LazyAdam struct {
	LR, Beta1, Beta2, Eps float64
	// L2 adds L2*row to the gradient of each touched row.
	L2   float64
	Dim  int
	M, V []float64
	T    int
}

// NewLazyAdam returns LazyAdam for a rows x dim table.
func NewLazyAdam(rows, dim int, lr, l2 float64) *LazyAdam {
	return &LazyAdam{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, L2: l2, Dim: dim,
		M: make([]float64, rows*dim), V: make([]float64, rows*dim)}
}

// Step advances the step count and updates the listed rows of table from the
// same rows of grad (both rows x Dim, row-major).
func (o *LazyAdam) Step(table, grad []float64, rows []int32) {
	if len(table) != len(o.M) || len(grad) != len(o.M) {
		panic("towers: LazyAdam.Step: shape mismatch")
	}
	o.T++
	c1 := 1 - math.Pow(o.Beta1, float64(o.T))
	c2 := 1 - math.Pow(o.Beta2, float64(o.T))
	lr := o.LR * math.Sqrt(c2) / c1
	for _, r := range rows {
		lo := int(r) * o.Dim
		for i := lo; i < lo+o.Dim; i++ {
			gi := grad[i] + o.L2*table[i]
			m := o.Beta1*o.M[i] + (1-o.Beta1)*gi
			v := o.Beta2*o.V[i] + (1-o.Beta2)*gi*gi
			o.M[i], o.V[i] = m, v
			table[i] -= lr * m / (math.Sqrt(v) + o.Eps)
		}
	}
}
