package eval

import (
	"maps"
	"math"
	"strings"
	"testing"
	"time"
)

// fixedScorer predicts 1.0 for every video and ranks every video 3rd.
type fixedScorer struct{ predicts, ranks int }

func (s *fixedScorer) Predict([]float32, float32, uint32) (float64, bool) {
	s.predicts++
	return 1.0, true
}
func (s *fixedScorer) Rank([]float32, uint32, string) (int, bool) {
	s.ranks++
	return 3, true
}

func newEval(t *testing.T, sc Scorer) *Evaluator {
	t.Helper()
	e, err := New(Config{OpenFor: 10 * time.Second, Grace: time.Second, Window: time.Minute, CountWindow: 3, RankEvery: 1, PreqHorizon: 30 * time.Second,
		Popularity: func(v uint32) float64 { return float64(v) / 100 }, Scorer: sc})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func untagged(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		if !strings.Contains(k, "|") {
			out[k] = v
		}
	}
	return out
}

// One user: a model list joined by three interactions (two hits) and a
// duplicate, closed by a popularity list, which a hit joins and a timeout
// closes; then an interaction with no open list, scored prequentially under
// the first list's vector.
func TestJoinAndListMetrics(t *testing.T) {
	sc := &fixedScorer{}
	e := newEval(t, sc)
	w := NewWindows()
	e.AddList(List{ID: "L1", User: 1, ServedMS: 1000, UserVec: []float32{1, 0},
		Slots: []Slot{{Video: 10, Predicted: 1.0}, {Video: 11, Predicted: 0.5}, {Video: 12, Predicted: 2.5}, {Video: 13, Predicted: 0.9}}})
	e.AddInteraction(Interaction{User: 1, Video: 11, EventID: 1, WatchRatio: 0.9, ProducedMS: 2000, Source: "replay"})
	e.AddInteraction(Interaction{User: 1, Video: 12, EventID: 2, WatchRatio: 3.0, ProducedMS: 3000, Source: "replay"})
	e.AddInteraction(Interaction{User: 1, Video: 99, EventID: 3, WatchRatio: 1.2, ProducedMS: 4000, Source: "replay"})
	e.AddInteraction(Interaction{User: 1, Video: 12, EventID: 2, WatchRatio: 3.0, ProducedMS: 4500, Source: "replay"}) // duplicate
	// Due: everything produced by 4 s.
	w.Apply(e.Advance(5000))
	if got := w.Get(WindowKey{ByTime, 0}, "joined"); got != 3 {
		t.Fatalf("after 5 s: joined %d, want 3", got)
	}
	if got := w.Get(WindowKey{ByTime, 0}, "lists"); got != 0 {
		t.Fatalf("L1 finalised while open")
	}
	e.AddList(List{ID: "L2", User: 1, ServedMS: 5000, Fallback: FallbackPopularity,
		Slots: []Slot{{Video: 20, Predicted: 0.7}, {Video: 21, Predicted: 1.1}}})
	e.AddInteraction(Interaction{User: 1, Video: 21, EventID: 4, WatchRatio: 0.3, ProducedMS: 6000, Source: "api"})
	e.AddInteraction(Interaction{User: 1, Video: 10, EventID: 5, WatchRatio: 1.5, ProducedMS: 17000, Source: "replay"})
	w.Apply(e.Advance(20000))
	if e.Pending() != 0 {
		t.Fatalf("%d interactions still pending", e.Pending())
	}

	l1NDCG08 := (1/math.Log2(3) + 1/math.Log2(4)) / (1 + 1/math.Log2(3))
	l1Graded := (0.9/math.Log2(3) + 3.0/math.Log2(4)) / (3.0 + 0.9/math.Log2(3))
	l2Graded := (0.3 / math.Log2(3)) / 0.3
	want := map[string]int64{
		"interactions": 5, "duplicates": 1, "joined": 4, "hits": 3, "joined_wr_u": Micro(0.9) + Micro(3.0) + Micro(1.2) + Micro(0.3),
		"abs_err_u": 400000 + 500000 + Micro(math.Abs(float64(float32(1.1))-0.3)), "abs_err_n": 3,
		"no_list": 1, "preq_n": 1, "preq_abs_err_u": 500000, "preq_rank_n": 1, "preq_rank_sum": 3,
		"lists": 2, "served_slots": 6, "pop_pct_u": Micro(0.10) + Micro(0.11) + Micro(0.12) + Micro(0.13) + Micro(0.20) + Micro(0.21),
		"prec08_u": 500000, "ndcg08_u": Micro(l1NDCG08), "ndcg08_n": 1, "ndcg08_none": 1,
		"prec2_u": 250000, "ndcg2_u": 500000, "ndcg2_n": 1, "ndcg2_none": 1,
		"ndcg_graded_u": Micro(l1Graded) + Micro(l2Graded), "ndcg_graded_n": 2,
	}
	tw := WindowKey{ByTime, 0}
	if got := untagged(w.Fields(tw)); !maps.Equal(got, want) {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %d, want %d", k, got[k], v)
			}
		}
		for k, v := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected %s = %d", k, v)
			}
		}
	}
	if got := w.Get(tw, "served_videos"); got != 6 {
		t.Errorf("coverage: %d distinct videos served, want 6", got)
	}
	for field, v := range map[string]int64{
		"hits|source=replay": 2, "hits|source=api": 1, "hits|fallback=none": 2, "hits|fallback=popularity": 1, "hits|version=": 3,
		"interactions|source=api": 1, "interactions|source=replay": 4, "duplicates|source=replay": 1,
		"lists|fallback=none": 1, "lists|fallback=popularity": 1, "no_list|source=replay": 1,
		"prec08_u|fallback=none": 500000, "ndcg08_none|fallback=popularity": 1,
	} {
		if got := w.Get(tw, field); got != v {
			t.Errorf("%s = %d, want %d", field, got, v)
		}
	}
	// Count windows of 3: x1, x2, x3 in window 0; x5 and x6 in window 1.
	if a, b := w.Get(WindowKey{ByCount, 0}, "interactions"), w.Get(WindowKey{ByCount, 1}, "interactions"); a != 3 || b != 2 {
		t.Errorf("count windows: %d and %d interactions, want 3 and 2", a, b)
	}
	if sc.predicts != 1 || sc.ranks != 1 {
		t.Errorf("scorer called %d/%d times, want once each", sc.predicts, sc.ranks)
	}
}

// A list written after its interaction arrived (within the grace period) is
// joined; a list later than the grace period is counted late; an interaction
// reaching the evaluator after its list was finalised joins it for the hit
// rate only; a user with no list gets no prequential score.
func TestLateListsAndLateInteractions(t *testing.T) {
	sc := &fixedScorer{}
	e := newEval(t, sc)
	w := NewWindows()
	// user 2: the interaction first, its list 0.5 s later on the clock.
	e.AddInteraction(Interaction{User: 2, Video: 30, EventID: 1, WatchRatio: 2.5, ProducedMS: 100000, Source: "simulator"})
	w.Apply(e.Advance(100400))
	e.AddList(List{ID: "M1", User: 2, ServedMS: 99800, Slots: []Slot{{Video: 31, Predicted: 1}, {Video: 30, Predicted: 2}}})
	w.Apply(e.Advance(111000))
	m1 := WindowKey{ByTime, 1} // 99.8 s and 100 s are in minute 1
	if got := w.Get(m1, "hits"); got != 1 {
		t.Fatalf("interaction before its (timely) list: hits %d, want 1", got)
	}
	if got := w.Get(m1, "late_lists"); got != 0 {
		t.Errorf("a list within the grace period counted late")
	}
	// M1 closed at 109.8 s and was finalised at 110.8 s: prec2 = 1/2 (video 30
	// at rank 2).
	if got := w.Get(m1, "prec2_u"); got != 500000 {
		t.Errorf("M1 prec2 %d, want 500000", got)
	}
	// A late interaction for M1 (produced 105 s, arriving at 111 s, within
	// Keep = 12 s).
	e.AddInteraction(Interaction{User: 2, Video: 31, EventID: 2, WatchRatio: 1, ProducedMS: 105000, Source: "simulator"})
	w.Apply(e.Advance(160000))
	// A list served at 150 s reaching the evaluator at 160 s, and an
	// interaction inside it.
	e.AddList(List{ID: "M2", User: 2, ServedMS: 150000, Slots: []Slot{{Video: 40, Predicted: 1}}})
	e.AddInteraction(Interaction{User: 2, Video: 40, EventID: 3, WatchRatio: 0.9, ProducedMS: 155000, Source: "simulator"})
	// user 3: never served.
	e.AddInteraction(Interaction{User: 3, Video: 1, EventID: 1, WatchRatio: 1, ProducedMS: 155000, Source: "api"})
	w.Apply(e.Advance(200000))
	// Produced 100 s, arriving at 200 s: more than Keep late.
	e.AddInteraction(Interaction{User: 2, Video: 31, EventID: 9, WatchRatio: 1, ProducedMS: 100000, Source: "api"})
	w.Apply(e.Advance(200000))
	if got := w.Get(m1, "late_interactions"); got != 1 {
		t.Errorf("late interactions %d, want 1", got)
	}
	if got := w.Get(m1, "hits"); got != 2 {
		t.Errorf("the late interaction joins for the hit rate: hits %d, want 2", got)
	}
	if got := w.Get(m1, "prec08_u"); got != 500000 {
		t.Errorf("the late interaction changed M1's finalised precision: %d", got)
	}
	if got := w.Get(m1, "stale_interactions|source=api"); got != 1 || w.Get(m1, "interactions|source=api") != 0 {
		t.Errorf("stale interactions %d, want 1 (and not counted as an interaction)", got)
	}
	m2 := WindowKey{ByTime, 2}
	if got := w.Get(m2, "late_lists"); got != 1 {
		t.Errorf("late lists %d, want 1", got)
	}
	if got, want := w.Get(m2, "prec08_u"), int64(1000000); got != want {
		t.Errorf("M2 prec08 %d, want %d", got, want)
	}
	if got := w.Get(m2, "no_list|source=api"); got != 1 || sc.predicts != 0 {
		t.Errorf("a never-served user: no_list %d, scorer calls %d", got, sc.predicts)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{}
	if err := c.Validate(); err != nil || c.OpenFor != 30*time.Minute || c.Window != time.Minute || c.CountWindow != 10000 {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	for _, bad := range []Config{{Window: time.Microsecond}, {Grace: -time.Second}, {CountWindow: -1}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// Two evaluators fed the same traffic in different arrival orders (within the
// grace period) produce the same windows: the join depends on produce times.
func TestArrivalOrderWithinGraceDoesNotMatter(t *testing.T) {
	run := func(reverse bool) *Windows {
		e := newEval(t, &fixedScorer{})
		w := NewWindows()
		var xs []Interaction
		for i := range 50 {
			xs = append(xs, Interaction{User: uint32(i % 3), Video: uint32(i % 7), EventID: uint64(i + 1), WatchRatio: float64(i%5) * 0.6, ProducedMS: int64(1000 + 100*i), Source: "replay"})
		}
		if reverse {
			for i, j := 0, len(xs)-1; i < j; i, j = i+1, j-1 {
				xs[i], xs[j] = xs[j], xs[i]
			}
		}
		for u := range uint32(3) {
			e.AddList(List{User: u, ServedMS: 500, UserVec: []float32{1}, Slots: []Slot{{Video: 1}, {Video: 2}, {Video: 3}}})
			e.AddList(List{User: u, ServedMS: 3500, Slots: []Slot{{Video: 4}, {Video: 5}}})
		}
		for _, x := range xs {
			e.AddInteraction(x)
		}
		w.Apply(e.Advance(5999)) // every interaction is due (6,000 - grace)
		w.Apply(e.Advance(60000))
		return w
	}
	a, b := run(false), run(true)
	for _, k := range a.Keys(ByTime) {
		if !maps.Equal(a.Fields(k), b.Fields(k)) {
			t.Errorf("window %v differs:\n%v\n%v", k, a.Fields(k), b.Fields(k))
		}
	}
	if len(a.Keys(ByTime)) == 0 || a.Get(WindowKey{ByTime, 0}, "hits") == 0 {
		t.Fatal("nothing joined")
	}
}
