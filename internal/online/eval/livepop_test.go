package eval

import (
	"math"
	"testing"
)

func TestLivePopularity(t *testing.T) {
	cat := 10
	p, err := NewLivePopularity(4, 1, func() int { return cat })
	if err != nil {
		t.Fatal(err)
	}
	if x := p.Percentile(7); x != 0.5 {
		t.Fatalf("empty history: %v, want 0.5", x)
	}
	for _, v := range []uint32{1, 1, 2} {
		p.Add(v)
	}
	// Counts: video 1: 2, video 2: 1, 8 videos 0. Video 1 is above the 9
	// others, video 2 above the 8 zeros, the zeros share ranks 0-7.
	want := map[uint32]float64{1: 9.5 / 10, 2: 8.5 / 10, 3: 4.0 / 10}
	for v, w := range want {
		if x := p.Percentile(v); math.Abs(x-w) > 1e-12 {
			t.Errorf("video %d: %v, want %v", v, x, w)
		}
	}
	// The window holds 4: adding 3, 3 drops the first 1, leaving 1, 2, 3, 3.
	p.Add(3)
	p.Add(3)
	if a, b := p.Percentile(3), p.Percentile(1); a != 9.5/10 || b != 0.8 {
		t.Errorf("after the window slid: video 3 %v (want 0.95), video 1 %v (want 0.8, tied with video 2)", a, b)
	}
	p.Add(3)
	if x := p.Percentile(1); x != 0.4 {
		t.Errorf("video 1 out of the window: %v, want 0.4 (the mid-rank of the 8 zeros)", x)
	}
	// A catalogue change re-ranks at the next query.
	cat = 20
	if x := p.Percentile(3); x != 19.5/20 {
		t.Errorf("catalogue of 20: video 3 %v, want 0.975", x)
	}
	if _, err := NewLivePopularity(0, 1, nil); err == nil {
		t.Error("a window of 0 was accepted")
	}
}

func TestLivePopularityReranksEvery(t *testing.T) {
	p, _ := NewLivePopularity(100, 3, nil)
	p.Add(1)
	p.Percentile(1) // first query ranks: video 1 alone
	p.Add(2)
	p.Add(2)
	p.Add(2) // the third addition since the ranking re-ranks
	if x, y := p.Percentile(2), p.Percentile(1); x != 0.75 || y != 0.25 {
		t.Errorf("after the re-rank: video 2 %v (want 0.75), video 1 %v (want 0.25)", x, y)
	}
	p.Add(1)
	p.Add(1) // not yet re-ranked: the percentiles stay
	if x := p.Percentile(1); x != 0.25 {
		t.Errorf("between re-ranks: video 1 %v, want the last ranking's 0.25", x)
	}
}
