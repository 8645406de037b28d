package main

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/synth"
)

// mapTruth is a hand-written truth: user 7 over videos 1..4.
type mapTruth struct{ r map[uint32]float64 }

func (m mapTruth) Ratio(_, v uint32, _ int64) (float64, bool) { r, ok := m.r[v]; return r, ok }
func (m mapTruth) DurationMS(uint32) int64                    { return 10000 }
func (m mapTruth) Users() []uint32                            { return []uint32{7} }
func (m mapTruth) Videos() []uint32                           { return []uint32{1, 2, 3, 4, 5} }
func (m mapTruth) Phase(uint32, int64) int                    { return 0 }
func (m mapTruth) Describe() string                           { return "hand-written" }

// The exact metrics of a list, computed by hand: true ratios 3.0, 0.5, 1.0
// in the list, the candidates' best three 3.0, 2.5, 1.0 (video 5 unknown:
// skipped by the ideal, gain 0 in a list).
//
//	DCG  = 3 + 0.5/log2(3) + 1/2       = 3.81546...
//	IDCG = 3 + 2.5/log2(3) + 1/2       = 5.07732...
//	NDCG = 0.751471560269597; P@3(>=0.8) = 2/3; P@3(>2) = 1/3.
func TestExactMetricsByHand(t *testing.T) {
	tr := mapTruth{r: map[uint32]float64{1: 3.0, 2: 0.5, 3: 1.0, 4: 2.5}}
	cache := newIdealCache(tr, tr.Videos(), 3)
	ideal := cache.ideal(7, 0, nil)
	if len(ideal) != 3 || ideal[0] != 3 || ideal[1] != 2.5 || ideal[2] != 1 {
		t.Fatalf("ideal gains %v, want [3 2.5 1]", ideal)
	}
	// Without the watched video 4 the ideal is 3, 1, 0.5.
	if ex := cache.ideal(7, 0, []uint32{4}); len(ex) != 3 || ex[0] != 3 || ex[1] != 1 || ex[2] != 0.5 {
		t.Fatalf("ideal gains without video 4: %v, want [3 1 0.5]", ex)
	}
	ratio := func(v uint32) (float64, bool) { return tr.Ratio(7, v, 0) }
	got := exactMetrics([]uint32{1, 2, 3}, 3, ratio, ideal)
	if math.Abs(got.NDCG-0.751471560269597) > 1e-12 || math.Abs(got.P08-2.0/3) > 1e-12 || math.Abs(got.P2-1.0/3) > 1e-12 {
		t.Fatalf("exact %+v, want NDCG 0.751471560269597, P08 2/3, P2 1/3", got)
	}
	// A list shorter than K: its missing slots are not relevant.
	if got := exactMetrics([]uint32{1, 2, 3}, 4, ratio, ideal); got.P08 != 0.5 || got.P2 != 0.25 {
		t.Fatalf("short list: %+v, want P08 0.5, P2 0.25", got)
	}
	// The ideal list scores 1; an unknown video counts as gain 0.
	if got := exactMetrics([]uint32{1, 4, 3}, 3, ratio, ideal); math.Abs(got.NDCG-1) > 1e-12 {
		t.Fatalf("ideal list NDCG %v, want 1", got.NDCG)
	}
	if got := exactMetrics([]uint32{5, 5, 5}, 3, ratio, ideal); got.NDCG != 0 || got.P08 != 0 {
		t.Fatalf("unknown videos: %+v, want zeros", got)
	}
}

// On a generated folder the truth is the generator's: its users and videos
// are the small matrix's, its ratio the expected watch ratio, and the
// preference drift changes the phase of drifted users only.
func TestSimTruthSynthetic(t *testing.T) {
	dir := t.TempDir()
	cfg := synth.GenConfig{Scale: synth.Scales["tiny"], Seed: 3}
	cfg.Drifts = []synth.Drift{{Kind: synth.DriftPrefs, AtMS: synth.SpanStartMS + 40*86400000, Share: 0.5}}
	if _, err := synth.Generate(dir, cfg); err != nil {
		t.Fatal(err)
	}
	data, err := kuairec.ResolveDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := loadSimTruth(data)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := synth.LoadTruth(filepath.Clean(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Users()) != len(tr.Manifest.SmallUsers) || len(st.Videos()) != len(tr.Manifest.SmallVideos) {
		t.Fatalf("%d users, %d videos; want the small matrix's %d and %d", len(st.Users()), len(st.Videos()), len(tr.Manifest.SmallUsers), len(tr.Manifest.SmallVideos))
	}
	u, v := st.Users()[0], st.Videos()[0]
	if r, ok := st.Ratio(u, v, 1598000000000); !ok || r != tr.ExpectedWatchRatio(u, v, 1598000000000) {
		t.Fatalf("ratio %v %v, want the expected watch ratio", r, ok)
	}
	drifted, kept := 0, 0
	for _, u := range st.Users() {
		before, after := st.Phase(u, synth.SpanStartMS+39*86400000), st.Phase(u, synth.SpanStartMS+41*86400000)
		if before != 0 {
			t.Fatalf("user %d in phase %d before the drift", u, before)
		}
		if after != 0 {
			drifted++
		} else {
			kept++
		}
	}
	if drifted == 0 || kept == 0 {
		t.Fatalf("after the drift %d users changed phase, %d did not; want some of each", drifted, kept)
	}
}

// A video the user already watched scores no gain when a list serves it
// again, so that a list re-serving watched videos cannot score above the
// ideal taken without them; the re-served slots among the first k are
// counted.
func TestUnwatchedScoresRewatchesAsNoGain(t *testing.T) {
	tr := mapTruth{r: map[uint32]float64{1: 3.0, 2: 0.5, 3: 1.0, 4: 2.5}}
	cache := newIdealCache(tr, tr.Videos(), 3)
	watched := []uint32{1}
	ideal := cache.ideal(7, 0, watched) // 2.5, 1, 0.5
	ratio := func(v uint32) (float64, bool) { return tr.Ratio(7, v, 0) }
	list := []uint32{1, 4, 3}
	if got := exactMetrics(list, 3, ratio, ideal); !(got.NDCG > 1) {
		t.Fatalf("without the correction the re-served list scores NDCG %v; the case needs one above 1", got.NDCG)
	}
	fresh, n := unwatched(ratio, watched, list, 3)
	if n != 1 {
		t.Errorf("%d re-served slots, want 1", n)
	}
	got := exactMetrics(list, 3, fresh, ideal)
	if !(got.NDCG < 1) || got.P2 != 1.0/3 || got.P08 != 2.0/3 {
		t.Errorf("corrected %+v: want NDCG < 1, P2 1/3 (video 4), P08 2/3 (videos 4 and 3)", got)
	}
	if got := exactMetrics([]uint32{4, 3, 2}, 3, fresh, ideal); math.Abs(got.NDCG-1) > 1e-12 {
		t.Errorf("the ideal list without watched videos: NDCG %v, want 1", got.NDCG)
	}
	if same, n := unwatched(ratio, nil, list, 3); n != 0 {
		t.Errorf("no watched videos: %d re-served", n)
	} else if r, ok := same(1); !ok || r != 3 {
		t.Errorf("no watched videos: ratio of 1 = %v, %v", r, ok)
	}
}
