package eval

import (
	"math"
	"testing"
)

// within reports whether x is in [lo, hi).
func within(x, lo, hi float64) bool { return x >= lo && x < hi }

func TestLivePopularity(t *testing.T) {
	cat := 10
	p, err := NewLivePopularity(4, 1, func() int { return cat })
	if err != nil {
		t.Fatal(err)
	}
	// An empty history: every video is in one tie, [0, 1).
	if x := p.Percentile(7); !within(x, 0, 1) {
		t.Fatalf("empty history: %v, want in [0, 1)", x)
	}
	for _, v := range []uint32{1, 1, 2} {
		p.Add(v)
	}
	// Counts: video 1: 2, video 2: 1, 8 videos 0. Video 1 is above the 9
	// others, video 2 above the 8 zeros, the zeros share [0, 0.8).
	for v, b := range map[uint32][2]float64{1: {0.9, 1}, 2: {0.8, 0.9}, 3: {0, 0.8}, 4: {0, 0.8}} {
		if x := p.Percentile(v); !within(x, b[0], b[1]) {
			t.Errorf("video %d: %v, want in [%v, %v)", v, x, b[0], b[1])
		}
	}
	if p.Percentile(3) == p.Percentile(4) {
		t.Error("two videos of one tie got the same percentile: the tie is not spread")
	}
	// The window holds 4: adding 3, 3 drops the first 1, leaving 1, 2, 3, 3:
	// video 3 on top, 1 and 2 tied in [0.7, 0.9), 7 zeros.
	p.Add(3)
	p.Add(3)
	if a, b := p.Percentile(3), p.Percentile(1); !within(a, 0.9, 1) || !within(b, 0.7, 0.9) {
		t.Errorf("after the window slid: video 3 %v (want [0.9, 1)), video 1 %v (want [0.7, 0.9), tied with video 2)", a, b)
	}
	p.Add(3)
	if x := p.Percentile(1); !within(x, 0, 0.8) {
		t.Errorf("video 1 out of the window: %v, want among the 8 zeros, [0, 0.8)", x)
	}
	// A catalogue change re-ranks at the next query.
	cat = 20
	if x := p.Percentile(3); !within(x, 0.95, 1) {
		t.Errorf("catalogue of 20: video 3 %v, want in [0.95, 1)", x)
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
	x, y := p.Percentile(2), p.Percentile(1)
	if !within(x, 0.5, 1) || !within(y, 0, 0.5) {
		t.Errorf("after the re-rank: video 2 %v (want [0.5, 1)), video 1 %v (want [0, 0.5))", x, y)
	}
	p.Add(1)
	p.Add(1) // not yet re-ranked: the percentiles stay
	if z := p.Percentile(1); z != y {
		t.Errorf("between re-ranks: video 1 %v, want the last ranking's %v", z, y)
	}
}

// Spread ties are close to uniform: the mean over 10,000 tied videos is
// about 0.5 of the tie's span.
func TestLivePopularitySpreadIsUniform(t *testing.T) {
	p, _ := NewLivePopularity(10, 1, func() int { return 10000 })
	sum := 0.0
	for v := range uint32(10000) {
		sum += p.Percentile(v)
	}
	if m := sum / 10000; math.Abs(m-0.5) > 0.01 {
		t.Errorf("mean percentile of a 10,000-video tie: %v, want 0.5 +- 0.01", m)
	}
}
