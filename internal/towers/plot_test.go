package towers

import (
	"bytes"
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
