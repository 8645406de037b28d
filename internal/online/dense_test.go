package online

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/towers"
)

func randomTower(r *rand.Rand, sizes ...int) []towers.LayerWeights {
	var ls []towers.LayerWeights
	for i := 0; i+1 < len(sizes); i++ {
		l := towers.LayerWeights{In: sizes[i], Out: sizes[i+1], ReLU: i+2 < len(sizes),
			W: make([]float32, sizes[i]*sizes[i+1]), B: make([]float32, sizes[i+1])}
		for j := range l.W {
			l.W[j] = float32(r.NormFloat64() * 0.5)
		}
		for j := range l.B {
			l.B[j] = float32(r.NormFloat64() * 0.1)
		}
		ls = append(ls, l)
	}
	return ls
}

func randomFeatures(r *rand.Rand, users, dim int) cache.UserFeatures {
	f := cache.UserFeatures{Dim: dim}
	for u := 0; u < users; u++ {
		f.IDs = append(f.IDs, uint32(u))
		for j := 0; j < dim; j++ {
			f.Feats = append(f.Feats, float32(r.NormFloat64()))
		}
	}
	return f
}

// Step's update equals -LR times the gradient of <g, T(x; W)>, checked
// against central finite differences on every weight.
func TestDenseTowerGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	layers := randomTower(r, 5, 6, 4)
	feats := randomFeatures(r, 1, 5)
	g := []float32{0.3, -1.2, 0.7, 0.5}
	loss := func(d *DenseTower) float64 {
		out := make([]float32, 4)
		d.Dense(out, make([]float32, 4), 0)
		// dense = base + T - T0 with base 0: <g, dense> + <g, T0> = <g, T>.
		var s float64
		for j := range out {
			s += float64(g[j]) * float64(out[j]+d.t0[0][j])
		}
		return s
	}
	const lr, eps = 1e-3, 1e-2
	d, err := NewDenseTower(layers, feats, lr)
	if err != nil {
		t.Fatal(err)
	}
	before := d.Weights()
	d.Dense(make([]float32, 4), make([]float32, 4), 0)
	d.Step(g)
	after := d.Weights()
	worst := 0.0
	for k := range before {
		analytic := float64(before[k]-after[k]) / lr
		probe, _ := NewDenseTower(layers, feats, 0)
		w := slices.Clone(before)
		w[k] += eps
		probe.SetWeights(w, 0)
		up := loss(probe)
		w[k] -= 2 * eps
		probe.SetWeights(w, 0)
		down := loss(probe)
		numeric := (up - down) / (2 * eps)
		rel := math.Abs(analytic-numeric) / math.Max(math.Abs(analytic)+math.Abs(numeric), 1e-2)
		worst = max(worst, rel)
	}
	if worst > 2e-2 {
		t.Fatalf("dense step differs from finite differences: worst relative error %.3g", worst)
	}
	if d.Steps != 1 {
		t.Fatalf("Steps = %d, want 1", d.Steps)
	}
}

type fakeDenseLog struct {
	fakeLog
	dmu sync.Mutex
	cps []*DenseCheckpoint
}

func (f *fakeDenseLog) WriteDense(_ context.Context, cp *DenseCheckpoint) error {
	f.dmu.Lock()
	defer f.dmu.Unlock()
	f.cps = append(f.cps, cp)
	return nil
}

// With a zero dense learning rate, dense mode is per-user mode bit for bit.
func TestDenseZeroLREqualsPerUser(t *testing.T) {
	items, users, m := fixture(t)
	r := rand.New(rand.NewPCG(3, 4))
	layers := randomTower(r, 6, 8, dim)
	feats := randomFeatures(r, 12, 6)
	evs := events(500, 7)
	d, err := NewDenseTower(layers, feats, 0)
	if err != nil {
		t.Fatal(err)
	}
	plain := newTestUpdater(t, m, users, &fakeLog{})
	_, users2, _ := fixture(t)
	dm := Model{Items: items, GlobalMean: m.GlobalMean, Scale: m.Scale, Dense: d}
	dense := newTestUpdater(t, dm, users2, &fakeLog{})
	for _, u := range []*Updater{plain, dense} {
		if err := u.Handle(t.Context(), evs); err != nil {
			t.Fatal(err)
		}
	}
	for uid := uint32(0); uid < 12; uid++ {
		a, b := users.recs[ukey("v1", uid)], users2.recs[ukey("v1", uid)]
		if !slices.Equal(a.Embedding, b.Embedding) || a.Bias != b.Bias {
			t.Fatalf("user %d: dense mode at lr 0 differs from per-user mode", uid)
		}
	}
}

// With a positive rate the tower learns from every applied event of a user
// with features, each flush writes a checkpoint, and a checkpoint restores the
// weights exactly.
func TestDenseLearnsAndCheckpoints(t *testing.T) {
	items, users, m := fixture(t)
	r := rand.New(rand.NewPCG(5, 6))
	layers := randomTower(r, 6, 8, dim)
	feats := randomFeatures(r, 10, 6) // users 10 and 11 have no features
	d, err := NewDenseTower(layers, feats, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	log := &fakeDenseLog{}
	u := newTestUpdater(t, Model{Items: items, GlobalMean: m.GlobalMean, Scale: m.Scale, Dense: d}, users, log)
	evs := events(400, 8)
	for i := 0; i < len(evs); i += 100 {
		if err := u.Handle(t.Context(), evs[i:i+100]); err != nil {
			t.Fatal(err)
		}
	}
	var want uint64
	for _, rec := range evs {
		if _, _, ok := items.Item(rec.Event.VideoID); ok && rec.Event.UserID < 10 {
			want++
		}
	}
	if u.DenseSteps() != want {
		t.Fatalf("dense steps %d, want %d (applied events of users with features)", u.DenseSteps(), want)
	}
	if len(log.cps) != 4 || log.cps[3].Steps != want || len(log.cps[3].Offsets) == 0 {
		t.Fatalf("checkpoints: %d, last %+v", len(log.cps), log.cps[len(log.cps)-1].Steps)
	}
	if slices.Equal(log.cps[3].Weights, func() []float32 { d0, _ := NewDenseTower(layers, feats, 0); return d0.Weights() }()) {
		t.Fatal("the tower did not learn")
	}
	// Round trip through the codec, then restore into a fresh updater.
	cp, err := DecodeDense(AppendDense(nil, log.cps[3]))
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := NewDenseTower(layers, feats, 0.01)
	u2 := newTestUpdater(t, Model{Items: items, GlobalMean: m.GlobalMean, Scale: m.Scale, Dense: d2}, users, &fakeLog{})
	if ok, err := u2.RestoreDense(cp); !ok || err != nil {
		t.Fatalf("RestoreDense: %v %v", ok, err)
	}
	if !slices.Equal(d2.Weights(), d.Weights()) || d2.Steps != d.Steps {
		t.Fatal("restored weights differ")
	}
}
