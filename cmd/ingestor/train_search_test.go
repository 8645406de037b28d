package main

import (
	"io"
	"testing"

	"github.com/streamrec/streamrec/internal/towers"
)

func TestParseLRGrid(t *testing.T) {
	g, err := parseLRGrid(defaultLRGrid)
	if err != nil || len(g) != 5 || g[0] != 0.001 || g[4] != 0.01 {
		t.Fatalf("default grid: %v, %v", g, err)
	}
	if g, err := parseLRGrid(" "); err != nil || g != nil {
		t.Fatalf("empty grid: %v, %v", g, err)
	}
	for _, bad := range []string{"0.001,x", "0", "-0.1", "0.001,,0.002", "inf", "NaN"} {
		if _, err := parseLRGrid(bad); err == nil {
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
