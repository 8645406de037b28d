package kuairec

import (
	"math"
	"testing"
)

func TestEngagement(t *testing.T) {
	tests := []struct {
		play, dur                     int32
		wr                            float64
		wantCap, wantComp, wantReplay float64
		wantConfidence                float64
	}{
		{0, 1000, 0, 0, 0, 0, 2},
		{500, 1000, 0.5, 0.5, 0.5, 0, 2 + 60*math.Log1p(0.5)*1.4},
		{3000, 1000, 3, 3, 1, 2, 2 + 60*math.Log1p(3)*1.8*(1+0.5*math.Log1p(2))},
		{573457, 1000, 573.457, 5, 1, 4, 2 + 60*math.Log1p(5)*1.8*(1+0.5*math.Log1p(4))},
		{100, 0, 0, 0, 0, 0, 2},
	}
	for _, tc := range tests {
		e := ComputeEngagement(tc.play, tc.dur, tc.wr)
		if e.WatchRatioCapped != tc.wantCap || e.Completion != tc.wantComp || e.Replay != tc.wantReplay || math.Abs(e.Confidence-tc.wantConfidence) > 1e-9 {
			t.Errorf("%+v: got %+v", tc, e)
		}
	}
	m := &Interactions{User: []uint32{2, 1, 1}, Video: []uint32{5, 7, 7}, PlayMS: []int32{10, 10, 30}, DurMS: []int32{10, 10, 10},
		TimeMS: []int64{1, 2, 3}, Date: []int32{1, 1, 1}, WatchRatio: []float64{1, 1, 3}}
	ps := m.Pairs()
	if len(ps) != 2 || ps[0].User != 1 || ps[0].Views != 2 || ps[0].WatchRatio != 2 || ps[0].Replay != 1 || ps[0].LastMS != 3 {
		t.Errorf("pairs %+v", ps)
	}
}
