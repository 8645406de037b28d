package eval

import (
	"fmt"
	"math"
	"testing"
)

// fixedTwin predicts 2.0 and ranks every video 30th, for lists of version.
type fixedTwin struct{ version string }

func (t *fixedTwin) Predict(version string, _, _ uint32) (float64, bool) {
	return 2.0, version == t.version
}

func (t *fixedTwin) Rank(version string, _, _ uint32, _ string) (int, bool) {
	return 30, version == t.version
}

// The frozen twin and the feedback-to-effect latency, hand-computed: one
// user, three lists whose embeddings include offsets < 5, < 6 and < 7, and
// three interactions at offsets 4, 5 and 6. The first waits for a list (its
// effect arrives with L1, 600 ms later); the next two find theirs already
// added (50 ms and 10 ms). Both joined interactions are scored by the live
// model (1.0, rank 3) and the twin (2.0, rank 30).
func TestTwinAndFeedbackToEffect(t *testing.T) {
	e, err := New(Config{OpenFor: 10 * 1e9, Grace: 1e9, Window: 60 * 1e9, CountWindow: 100, RankEvery: 1,
		Scorer: &fixedScorer{}, Twin: &fixedTwin{version: "v1"}})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWindows()
	list := func(id string, served, next int64, version string) List {
		return List{ID: id, User: 1, Version: version, ServedMS: served, InputNext: next, UserVec: []float32{1, 0},
			Slots: []Slot{{Video: 10}, {Video: 11}, {Video: 12}, {Video: 13}}}
	}
	e.AddInteraction(Interaction{User: 1, Video: 50, EventID: 1, WatchRatio: 1, ProducedMS: 400, Offset: 4, Source: "api"})
	w.Apply(e.Advance(1500)) // no list yet: it waits
	e.AddList(list("L1", 1000, 5, "v1"))
	e.AddInteraction(Interaction{User: 1, Video: 11, EventID: 2, WatchRatio: 0.9, ProducedMS: 2000, Offset: 5, Source: "api"})
	e.AddList(list("L2", 2050, 6, "v1"))
	e.AddInteraction(Interaction{User: 1, Video: 99, EventID: 3, WatchRatio: 1.5, ProducedMS: 2060, Offset: 6, Source: "api"})
	e.AddList(list("L3", 2070, 7, "v0")) // another version: the twin does not score its joins
	e.AddInteraction(Interaction{User: 1, Video: 12, EventID: 4, WatchRatio: 3, ProducedMS: 2080, Offset: 7, Source: "api"})
	w.Apply(e.Advance(3100))
	k := WindowKey{ByTime, 0}
	want := map[string]int64{
		"twin_n": 2, "live_abs_err_u": 100000 + 500000, "twin_abs_err_u": 1100000 + 500000,
		"twin_rank_n": 2, "live_rank_sum": 6, "twin_rank_sum": 60, "live_rank_top": 2, "twin_rank_top": 0,
		"f2e_n": 3, "f2e_sum_ms": 600 + 50 + 10, "f2e_le_1000": 1, "f2e_le_50": 1, "f2e_le_10": 1,
		"f2e_n|source=api": 3,
	}
	for f, v := range want {
		if got := w.Get(k, f); got != v {
			t.Errorf("%s = %d, want %d", f, got, v)
		}
	}
	get := Getter(w.Fields(k), "")
	for name, v := range map[string]float64{"live_abs_err": 0.3, "twin_abs_err": 0.8, "live_twin_abs_err_ratio": 0.375,
		"live_rank": 3, "twin_rank": 30, "live_twin_rank_ratio": 0.1, "live_topk": 1,
		"feedback_to_effect_ms": 220, "feedback_to_effect_p50_ms": 50, "feedback_to_effect_p99_ms": 1000, "feedback_to_effect_n": 3} {
		m, _ := MetricByName(name)
		if got, ok := m.Of(get, 0); !ok || math.Abs(got-v) > 1e-9 {
			t.Errorf("%s = %v (%v), want %v", name, got, ok, v)
		}
	}
	if m, _ := MetricByName("live_twin_topk_ratio"); true {
		if _, ok := m.Of(get, 0); ok {
			t.Error("live_twin_topk_ratio defined although the twin never ranked within K")
		}
	}
}

// Config.Observe receives the drift monitor's signals: the watch ratio of
// every interaction, hit and abs_err of joined ones; ObserveKeyed the served
// list's scores and popularity (keyed by user and video) and vector norm
// (keyed by user); Watched every interaction's video.
func TestObserveSignals(t *testing.T) {
	got := map[string][]float64{}
	keys := map[string][]uint64{}
	var watched []uint32
	e, err := New(Config{OpenFor: 10 * 1e9, Grace: 1e9, Observe: func(s string, x float64) { got[s] = append(got[s], x) },
		ObserveKeyed: func(s string, k uint64, x float64) { got[s], keys[s] = append(got[s], x), append(keys[s], k) },
		Popularity:   func(v uint32) float64 { return 0.1 }, ServedPopularity: func(v uint32) float64 { return float64(v) / 100 },
		Watched: func(v uint32) { watched = append(watched, v) }})
	if err != nil {
		t.Fatal(err)
	}
	e.AddList(List{ID: "L", User: 1, ServedMS: 1000, UserVec: []float32{3, 4}, Slots: []Slot{{Video: 10, Score: 0.5, Predicted: 1.25}, {Video: 11, Score: 0.25}}})
	e.AddInteraction(Interaction{User: 1, Video: 10, EventID: 1, WatchRatio: 2, ProducedMS: 1100})
	e.AddInteraction(Interaction{User: 1, Video: 99, EventID: 2, WatchRatio: 0.5, ProducedMS: 1200})
	e.AddInteraction(Interaction{User: 2, Video: 10, EventID: 3, WatchRatio: 1, ProducedMS: 1300}) // no list: no hit signal
	e.Advance(5000)
	want := map[string][]float64{"served_score": {0.5, 0.25}, "served_popularity": {0.1, 0.11}, "served_norm": {5},
		"watch_ratio": {2, 0.5, 1}, "hit": {1, 0}, "abs_err": {0.75}}
	for s, w := range want {
		if fmt.Sprint(got[s]) != fmt.Sprint(w) {
			t.Errorf("%s: %v, want %v", s, got[s], w)
		}
	}
	wantKeys := map[string][]uint64{"served_score": {1<<32 | 10, 1<<32 | 11}, "served_popularity": {1<<32 | 10, 1<<32 | 11}, "served_norm": {1}}
	for s, w := range wantKeys {
		if fmt.Sprint(keys[s]) != fmt.Sprint(w) {
			t.Errorf("%s keys: %v, want %v", s, keys[s], w)
		}
	}
	if fmt.Sprint(watched) != "[10 99 10]" {
		t.Errorf("watched %v, want [10 99 10]", watched)
	}
}
