package main

import (
	"io"
	"testing"

	"github.com/streamrec/streamrec/internal/towers"
)

func TestParseLRGrid(t *testing.T) {
	g, err := parseGrid("--lr-grid", defaultLRGrid, false)
	if err != nil || len(g) != 5 || g[0] != 0.001 || g[4] != 0.01 {
		t.Fatalf("default grid: %v, %v", g, err)
	}
	if g, err := parseGrid("--lr-grid", " ", false); err != nil || g != nil {
		t.Fatalf("empty grid: %v, %v", g, err)
	}
	for _, bad := range []string{"0.001,x", "0", "-0.1", "0.001,,0.002", "inf", "NaN"} {
		if _, err := parseGrid("--lr-grid", bad, false); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSearchFitsBudget(t *testing.T) {
	cfg := towers.TrainConfig{Epochs: 3, MaxSamples: 5_000_000}
	grid := []float64{0.001, 0.002, 0.003, 0.005, 0.01}
	if !searchFits(grid, 17_674, cfg) {
		t.Error("tiny data (17,674 rows): the search should fit the budget")
	}
	if searchFits(grid, 11_000_000, cfg) {
		t.Error("full-size data: one training alone exceeds the budget, no search")
	}
	if searchFits(grid, 400_000, cfg) { // 5 x 3 x 400k = 6M > 5M
		t.Error("6M rows of search accepted under a 5M budget")
	}
	if searchFits(grid[:1], 10, cfg) {
		t.Error("a one-rate grid is no search")
	}
	cfg.MaxSamples = 0
	if searchFits(grid, 10, cfg) {
		t.Error("no budget (epochs only): no search")
	}
}

func TestExplicitLRTurnsSearchOff(t *testing.T) {
	base := []string{"--data", "d", "--report", "r"}
	o, err := parseTrainFlags(base, io.Discard)
	if err != nil || len(o.lrGrid) != 5 {
		t.Fatalf("default: grid %v, %v", o.lrGrid, err)
	}
	o, err = parseTrainFlags(append(base, "--lr", "0.001"), io.Discard)
	if err != nil || o.lrGrid != nil || o.train.LR != 0.001 {
		t.Fatalf("--lr 0.001 given: grid %v, lr %v, %v (want no search)", o.lrGrid, o.train.LR, err)
	}
	t.Setenv("STREAMREC_LR", "0.004")
	o, err = parseTrainFlags(base, io.Discard)
	if err != nil || o.lrGrid != nil || o.train.LR != 0.004 {
		t.Fatalf("STREAMREC_LR given: grid %v, lr %v, %v (want no search)", o.lrGrid, o.train.LR, err)
	}
}

func TestCrossFitFitsBudget(t *testing.T) {
	cfg := towers.TrainConfig{Epochs: 3, MaxSamples: 5_000_000}
	// Tiny data: 5 rates + 3 more penalties, 5 folds: (8 x 4 + 1) x 3 x 17,674 = 1.75M.
	if !crossFitFits(8, 5, 17_674, cfg) {
		t.Error("tiny data: the cross-fit should fit the budget")
	}
	if crossFitFits(1, 5, 11_000_000, cfg) {
		t.Error("full-size data: no cross-fit")
	}
	if crossFitFits(8, 5, 60_000, cfg) { // (8 x 4 + 1) x 3 x 60k = 5.94M
		t.Error("5.94M rows of cross-fit accepted under a 5M budget")
	}
	if crossFitFits(8, 1, 100, cfg) || crossFitFits(8, 0, 100, cfg) {
		t.Error("fewer than 2 folds is no cross-fit")
	}
	cfg.MaxSamples = 0
	if crossFitFits(1, 5, 100, cfg) {
		t.Error("no budget (epochs only): no cross-fit")
	}
}

func TestVecL2Grid(t *testing.T) {
	base := []string{"--data", "d", "--report", "r"}
	o, err := parseTrainFlags(base, io.Discard)
	if err != nil || len(o.vecL2Grid) != 4 || o.folds != defaultFolds {
		t.Fatalf("default: vec-l2 grid %v, folds %d, %v", o.vecL2Grid, o.folds, err)
	}
	o, err = parseTrainFlags(append(base, "--vec-l2", "0.01"), io.Discard)
	if err != nil || o.vecL2Grid != nil || o.lrGrid == nil {
		t.Fatalf("--vec-l2 given: vec-l2 grid %v, lr grid %v, %v (want the penalty kept, rates searched)", o.vecL2Grid, o.lrGrid, err)
	}
	if o, err = parseTrainFlags(append(base, "--vec-l2-grid", "0,0.1"), io.Discard); err != nil || len(o.vecL2Grid) != 2 {
		t.Fatalf("a zero penalty: %v, %v", o.vecL2Grid, err)
	}
	for _, bad := range [][]string{{"--vec-l2-grid", "-1"}, {"--vec-l2-grid", "x"}, {"--folds", "-1"}, {"--folds", "21"}} {
		if _, err := parseTrainFlags(append(base, bad...), io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
