package towers

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

func bitsEqual(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) })
}

func trainedSmall(t *testing.T, seed uint64, workers int) (*TwoTower, synthProblem) {
	t.Helper()
	p := newSynthProblem(3, 60, 80, 20)
	cfg := DefaultTwoTowerConfig()
	cfg.Hidden, cfg.Dim, cfg.Negatives = []int{16}, 8, 16
	tc := DefaultTrainConfig()
	tc.Epochs, tc.MaxSamples, tc.Batch, tc.Seed, tc.Workers = 2, 0, 64, seed, workers
	m, _, err := FitTwoTower(context.Background(), p.ds, cfg, tc, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Version = "test-v1"
	return m, p
}

func TestModelFileRoundTripBitExact(t *testing.T) {
	m, p := trainedSmall(t, 1, 2)
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	raw := append([]byte(nil), buf.Bytes()...)
	got, err := ReadModel(&buf)
	if err != nil {
		t.Fatal(err)
	}
	m2 := got.(*TwoTower)
	if m2.Version != "test-v1" || math.Float64bits(m2.GlobalMean) != math.Float64bits(m.GlobalMean) {
		t.Errorf("version/mean: %q %v", m2.Version, m2.GlobalMean)
	}
	if !bitsEqual(m.p.Data, m2.p.Data) || !bitsEqual(m.UserVec, m2.UserVec) || !bitsEqual(m.ItemVec, m2.ItemVec) || !slices.Equal(m.ItemTrained, m2.ItemTrained) {
		t.Fatal("parameters differ after a round trip")
	}
	// Writing the read model reproduces the same bytes.
	var again bytes.Buffer
	m2.WriteTo(&again)
	if !bytes.Equal(raw, again.Bytes()) {
		t.Error("re-encoded file differs")
	}
	// Same scores through the file.
	s1 := m.NewScorer(p.ds.UserFeatures, allIdx(60), p.ds.ItemFeatures, allIdx(80))
	s2 := m2.NewScorer(p.ds.UserFeatures, allIdx(60), p.ds.ItemFeatures, allIdx(80))
	if !bitsEqual(s1.Items.Data, s2.Items.Data) || !bitsEqual(s1.Users.Data, s2.Users.Data) {
		t.Error("embeddings differ after a round trip")
	}

	// On disk, atomically.
	path := filepath.Join(t.TempDir(), "model.bin")
	if err := SaveModel(path, m); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadModel(path); err != nil || !bitsEqual(got.(*TwoTower).p.Data, m.p.Data) {
		t.Fatalf("LoadModel: %v", err)
	}

	// Corruption is detected, never a panic.
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"bad magic", append([]byte("XXXXXXXX"), raw[8:]...)},
		{"flipped bit", func() []byte { b := slices.Clone(raw); b[len(b)/2] ^= 1; return b }()},
		{"truncated", raw[:len(raw)-9]},
	} {
		if _, err := ReadModel(bytes.NewReader(tc.data)); !errors.Is(err, ErrBadModelFile) {
			t.Errorf("%s: err %v, want ErrBadModelFile", tc.name, err)
		}
	}
}

func TestSeedFileRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := NewSeed(5, 7, DefaultSeedConfig(), 0.9, rng)
	m.Version = "seed-v1"
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadModel(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if s := got.(*Seed); !bitsEqual(s.p.Data, m.p.Data) || s.Version != "seed-v1" {
		t.Fatal("seed parameters differ after a round trip")
	}
}

func TestTrainingDeterministic(t *testing.T) {
	a, _ := trainedSmall(t, 7, 2)
	b, _ := trainedSmall(t, 7, 2)
	if !bitsEqual(a.p.Data, b.p.Data) || !bitsEqual(a.UserVec, b.UserVec) || !bitsEqual(a.ItemVec, b.ItemVec) {
		t.Error("two runs with the same seed and workers differ")
	}
	c, _ := trainedSmall(t, 8, 2)
	if bitsEqual(a.p.Data, c.p.Data) {
		t.Error("different seeds gave identical models")
	}
}

// The float32 serving path (published tower weights, OnlinePredict) agrees
// with the float64 model.
func TestExportsMatchModel(t *testing.T) {
	m, p := trainedSmall(t, 1, 1)
	D := m.Dim()
	ids := make([]int64, 80)
	for i := range ids {
		ids[i] = int64(1000 + i)
	}
	items := m.ExportItemEmbeddings(p.ds.ItemFeatures, ids)
	sc := m.NewScorer(p.ds.UserFeatures, allIdx(60), p.ds.ItemFeatures, allIdx(80))
	uw := m.UserTowerWeights()
	scratch := make([]float32, 2*128)
	pred := make([]float64, 80)
	for u := 0; u < 60; u += 7 {
		dense, dense2 := make([]float32, D), make([]float32, D)
		m.UserDense(dense, p.ds.UserFeatures, u)
		ApplyTower(dense2, uw, f64to32(p.ds.UserFeatures.RawRowView(u)), scratch)
		vec := make([]float32, D)
		m.UserVector(vec, u)
		sc.Predict(u, pred)
		op := m.OnlineParams(0, 0, 0)
		for i := 0; i < 80; i += 11 {
			got := OnlinePredict(vec, dense2, items[ids[i]], op)
			if math.Abs(float64(got)-pred[i]) > 1e-4 {
				t.Errorf("user %d item %d: float32 serving path %v, model %v", u, i, got, pred[i])
			}
		}
		for j := range dense {
			if math.Abs(float64(dense[j]-dense2[j])) > 1e-5 {
				t.Errorf("ApplyTower differs from the model at %d: %v vs %v", j, dense2[j], dense[j])
			}
		}
	}
}
