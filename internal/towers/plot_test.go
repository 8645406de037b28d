package towers

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"testing"
)

func TestPlotTrainingWritesPNG(t *testing.T) {
	h := History{Epochs: []EpochStats{
		{Epoch: 1, TrainMSE: 0.5, ValMSE: 0.55},
		{Epoch: 2, TrainMSE: 0.4, ValMSE: 0.47},
		{Epoch: 3, TrainMSE: 0.35, ValMSE: math.NaN()},
	}}
	var buf bytes.Buffer
	if err := PlotTraining(&buf, "training", []Curve{{"twotower", h}, {"seed", h}}, 640, 400); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 400 {
		t.Errorf("PNG is %dx%d, want 640x400", b.Dx(), b.Dy())
	}
}

// The training loop records the curve every CurveEvery rows, with increasing
// row counts, and the plot draws it.
func TestTrainingCurvePoints(t *testing.T) {
	p := newSynthProblem(3, 60, 80, 20)
	cfg := DefaultTwoTowerConfig()
	cfg.Hidden, cfg.Dim, cfg.Negatives = []int{16}, 8, 16
	tc := DefaultTrainConfig()
	tc.Epochs, tc.MaxSamples, tc.Batch, tc.Seed, tc.Workers, tc.CurveEvery = 2, 0, 64, 1, 1, 256
	_, h, err := FitTwoTower(context.Background(), p.ds, cfg, tc, nil)
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for _, e := range h.Epochs {
		rows += e.Samples
	}
	if want := rows / 256; int64(len(h.Points)) < want-1 || int64(len(h.Points)) > want+1 {
		t.Fatalf("%d curve points for %d rows every 256, want about %d", len(h.Points), rows, want)
	}
	for i, pt := range h.Points {
		if pt.TrainMSE <= 0 || math.IsNaN(pt.TrainMSE) || (i > 0 && pt.Samples <= h.Points[i-1].Samples) {
			t.Fatalf("bad curve point %d: %+v", i, pt)
		}
	}
	var buf bytes.Buffer
	if err := PlotTraining(&buf, "curve", []Curve{{"twotower", h}}, 640, 400); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&buf); err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
}
