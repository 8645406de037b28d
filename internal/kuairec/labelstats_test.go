package kuairec

import (
	"math"
	"testing"
)

func TestGiniAndSpearman(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		want float64
	}{
		{"equal", []float64{3, 3, 3, 3}, 0},
		{"one holds all", []float64{0, 0, 0, 4}, 0.75}, // (n-1)/n
		{"linear", []float64{1, 2, 3, 4}, 0.25},
		{"empty", nil, 0},
		{"zeros", []float64{0, 0}, 0},
	}
	for _, tc := range tests {
		if got := Gini(tc.xs); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Gini %s = %v, want %v", tc.name, got, tc.want)
		}
	}
	if r := Spearman([]float64{1, 2, 3, 4}, []float64{10, 20, 30, 40}); math.Abs(r-1) > 1e-12 {
		t.Errorf("monotone: %v", r)
	}
	if r := Spearman([]float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}); math.Abs(r+1) > 1e-12 {
		t.Errorf("reversed: %v", r)
	}
	// Ties get average ranks: x ranks 1.5,1.5,3,4; y ranks 1,2,3,4.
	want := pearson([]float64{1.5, 1.5, 3, 4}, []float64{1, 2, 3, 4})
	if r := Spearman([]float64{0, 0, 5, 9}, []float64{1, 2, 3, 4}); math.Abs(r-want) > 1e-12 || r >= 1 {
		t.Errorf("ties: %v, want %v", r, want)
	}
	if r := Spearman([]float64{1, 1}, []float64{1, 2}); !math.IsNaN(r) {
		t.Errorf("constant side: %v", r)
	}
}

func TestLabelStatsHandBuilt(t *testing.T) {
	// 2 users x 3 videos; user 1 watched video 9 twice (once above 2: a positive
	// pair counted once); user 2 never watched video 8.
	m := &Interactions{
		User:       []uint32{1, 1, 1, 1, 2, 2},
		Video:      []uint32{7, 8, 9, 9, 7, 9},
		WatchRatio: []float64{2.5, 0.3, 0.1, 3.0, 2.0, 4.0},
	}
	s := ComputeLabelStats(m, map[uint32]int{7: 5, 9: 1}, PositiveThreshold)
	if s.Users != 2 || s.Videos != 3 {
		t.Fatalf("users %d videos %d", s.Users, s.Videos)
	}
	// pairs: (1,7)+ (1,8)- (1,9)+ (2,7)- [2.0 is not > 2] (2,9)+  -> 3/5
	if s.MeanShare != 0.6 {
		t.Errorf("mean share %v", s.MeanShare)
	}
	// video shares: 7: 1/2, 8: 0/1, 9: 2/2; user shares: 1: 2/3, 2: 1/2.
	if s.VideoShareQ[len(s.VideoShareQ)-1] != 1 || s.VideoShareQ[0] != 0 {
		t.Errorf("video quantiles %v", s.VideoShareQ)
	}
	if g, want := s.VideoGini, Gini([]float64{0.5, 0, 1}); g != want {
		t.Errorf("video gini %v, want %v", g, want)
	}
	if g, want := s.UserGini, Gini([]float64{2.0 / 3, 0.5}); g != want {
		t.Errorf("user gini %v, want %v", g, want)
	}
	// big positives 5, 0, 1 vs shares 0.5, 0, 1: ranks 3,1,2 vs 2,1,3.
	if want := pearson([]float64{3, 1, 2}, []float64{2, 1, 3}); math.Abs(s.Spearman-want) > 1e-12 {
		t.Errorf("spearman %v, want %v", s.Spearman, want)
	}
	if s := ComputeLabelStats(m, nil, PositiveThreshold); !math.IsNaN(s.Spearman) {
		t.Errorf("no big matrix: spearman %v", s.Spearman)
	}
}
