package towers

import "math/rand/v2"

// SeedConfig is the architecture of the seed baseline. DefaultSeedConfig is
// the seed notebook's.
type SeedConfig struct {
	// Tower are the widths of each tower's layers; the last is its output.
	Tower []int
	// Comb are the widths of the combination MLP over the concatenated tower
	// outputs; the last must be 1 (the predicted watch ratio).
	Comb []int
	// Dropout is the drop rate after each hidden ReLU of the towers.
	Dropout float64
}

// DefaultSeedConfig: towers 128-64-64 with ReLU, dropout 0.3 and L2
// normalisation; combination 128-64-32-1.
func DefaultSeedConfig() SeedConfig {
	return SeedConfig{Tower: []int{128, 64, 64}, Comb: []int{64, 32, 1}, Dropout: 0.3}
}

// Seed is the seed notebook's model, kept as the named baseline "seed". Its
// prediction is the combination MLP's output on [T_u(x_u), T_i(x_i)], where
// both towers end in L2 normalisation; it sees only features.
type Seed struct {
	Cfg              SeedConfig
	Version          string
	User, Item, Comb *MLP
	p                params
}

// NewSeed returns an initialised seed model (He initialisation from rng; the
// output bias starts at mean, the training mean watch ratio).
func NewSeed(du, di int, cfg SeedConfig, mean float64, rng *rand.Rand) *Seed {
	if len(cfg.Tower) == 0 || len(cfg.Comb) == 0 || cfg.Comb[len(cfg.Comb)-1] != 1 || du <= 0 || di <= 0 {
		panic("towers: NewSeed: bad shape")
	}
	m := &Seed{Cfg: cfg}
	m.User = newMLP(&m.p, "user", du, cfg.Tower, cfg.Dropout, true)
	m.Item = newMLP(&m.p, "item", di, cfg.Tower, cfg.Dropout, true)
	m.Comb = newMLP(&m.p, "comb", 2*cfg.Tower[len(cfg.Tower)-1], cfg.Comb, 0, false)
	m.p.alloc()
	for _, t := range []*MLP{m.User, m.Item, m.Comb} {
		t.bind(&m.p)
		t.initHe(rng)
	}
	m.Comb.Layers[len(m.Comb.Layers)-1].B[0] = mean
	return m
}

type seedWorker struct {
	m              *Seed
	uw, iw, cw     *mlpWork
	xu, xi, c, dc  []float64
	pred, gpred    []float64
	target, weight []float64
	users, items   []int32
	rng            *rand.Rand
}

func (m *Seed) newWorker(capRows int, rng *rand.Rand) *seedWorker {
	h := m.User.Out()
	return &seedWorker{m: m,
		uw: m.User.newWork(capRows), iw: m.Item.newWork(capRows), cw: m.Comb.newWork(capRows),
		xu: make([]float64, capRows*m.User.In()), xi: make([]float64, capRows*m.Item.In()),
		c: make([]float64, capRows*2*h), dc: make([]float64, capRows*2*h),
		pred: make([]float64, capRows), gpred: make([]float64, capRows),
		target: make([]float64, capRows), weight: make([]float64, capRows),
		users: make([]int32, capRows), items: make([]int32, capRows),
		rng: rng,
	}
}

// lossGrad runs the seed forward over the training rows idx (with dropout when
// train) and, if grad is not nil, accumulates the gradient of
// sum_r w_r (pred_r - y_r)^2 / mseNorm into grad.
func (w *seedWorker) lossGrad(ds *Dataset, x Interactions, idx []int32, mseNorm, targetCap float64, train bool, grad []float64) lossParts {
	m := w.m
	n := len(idx)
	h := m.User.Out()
	for r, k := range idx {
		w.users[r], w.items[r] = x.User[k], x.Item[k]
		y := float64(x.WatchRatio[k])
		if targetCap > 0 {
			y = min(y, targetCap)
		}
		w.target[r], w.weight[r] = y, x.weight(k)
	}
	gatherRows(w.xu, ds.UserFeatures, w.users[:n])
	gatherRows(w.xi, ds.ItemFeatures, w.items[:n])
	zu := m.User.forward(w.uw, w.xu, n, train, w.rng)
	zi := m.Item.forward(w.iw, w.xi, n, train, w.rng)
	c := w.c[:n*2*h]
	for r := 0; r < n; r++ {
		copy(c[r*2*h:r*2*h+h], zu[r*h:(r+1)*h])
		copy(c[r*2*h+h:(r+1)*2*h], zi[r*h:(r+1)*h])
	}
	pred := m.Comb.forward(w.cw, c, n, false, nil)
	var lp lossParts
	lp.n = n
	for r := 0; r < n; r++ {
		e := pred[r] - w.target[r]
		lp.mse += w.weight[r] * e * e
		lp.absErr += w.weight[r] * abs(e)
		w.gpred[r] = 2 * w.weight[r] * e / mseNorm
	}
	if grad == nil {
		return lp
	}
	dc := w.dc[:n*2*h]
	m.Comb.backward(w.cw, grad, c, w.gpred[:n], dc, n, false)
	dzu := w.c[:n*h] // c is no longer needed once the combination is done
	for r := 0; r < n; r++ {
		copy(dzu[r*h:(r+1)*h], dc[r*2*h:r*2*h+h])
	}
	m.User.backward(w.uw, grad, w.xu, dzu, nil, n, train)
	for r := 0; r < n; r++ {
		copy(dzu[r*h:(r+1)*h], dc[r*2*h+h:(r+1)*2*h])
	}
	m.Item.backward(w.iw, grad, w.xi, dzu, nil, n, train)
	return lp
}
