package towers

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestTowerBlobRoundTrip(t *testing.T) {
	m, _ := trainedSmall(t, 1, 1)
	blob := m.TowerBlob()
	got, err := DecodeTowers(blob)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []NamedTower{{"user", m.UserTowerWeights()}, {"item", m.ItemTowerWeights()}} {
		layers := FindTower(got, want.Name)
		if len(layers) != len(want.Layers) {
			t.Fatalf("tower %q: %d layers, want %d", want.Name, len(layers), len(want.Layers))
		}
		for i, l := range layers {
			w := want.Layers[i]
			if l.In != w.In || l.Out != w.Out || l.ReLU != w.ReLU || !slices.Equal(l.W, w.W) || !slices.Equal(l.B, w.B) {
				t.Errorf("tower %q layer %d differs after a round trip", want.Name, i)
			}
		}
	}
	if FindTower(got, "nope") != nil {
		t.Error("FindTower found a tower that is not there")
	}
}

func TestTowerBlobRejectsCorruption(t *testing.T) {
	m, _ := trainedSmall(t, 1, 1)
	blob := m.TowerBlob()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XXXXXXXX"), blob[8:]...),
		"truncated": blob[:len(blob)/2],
		"flipped":   func() []byte { c := bytes.Clone(blob); c[40] ^= 1; return c }(),
	} {
		if _, err := DecodeTowers(b); !errors.Is(err, ErrBadTowerBlob) {
			t.Errorf("%s: err %v, want ErrBadTowerBlob", name, err)
		}
	}
}

func TestModelFileKeepsMeta(t *testing.T) {
	m, _ := trainedSmall(t, 1, 1)
	m.Meta = map[string]float64{MetaCutMS: 1596211200000, MetaTrainRows: 1234}
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadModel(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tt := got.(*TwoTower)
	if tt.Meta[MetaCutMS] != 1596211200000 || tt.Meta[MetaTrainRows] != 1234 || len(tt.Meta) != 2 {
		t.Errorf("meta after a round trip: %v", tt.Meta)
	}
}
