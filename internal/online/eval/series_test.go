package eval

import (
	"math"
	"testing"
)

func TestMetricsOfAWindow(t *testing.T) {
	f := map[string]int64{"interactions": 8, "hits": 2, "lists": 4, "prec08_u": 1_500_000, "ndcg2_u": 900_000, "ndcg2_n": 2,
		"abs_err_u": 1_000_000, "abs_err_n": 4, "served_videos": 30, "served_slots": 40, "pop_pct_u": 20_000_000,
		"hits|source=api": 1, "interactions|source=api": 4}
	want := map[string]float64{"hit_rate": 0.25, "precision_08": 0.375, "ndcg_2": 0.45, "abs_err": 0.25, "coverage": 0.3, "popularity_pct": 0.5, "lists": 4}
	for name, w := range want {
		m, ok := MetricByName(name)
		if !ok {
			t.Fatalf("no metric %s", name)
		}
		if v, ok := m.Of(Getter(f, ""), 100); !ok || math.Abs(v-w) > 1e-12 {
			t.Errorf("%s = %v, %v; want %v", name, v, ok, w)
		}
	}
	if v, ok := Metrics[0].Of(Getter(f, "source=api"), 100); !ok || v != 0.25 {
		t.Errorf("hit rate of source=api: %v %v", v, ok)
	}
	if _, ok := Metrics[0].Of(Getter(f, "source=simulator"), 100); ok {
		t.Error("a metric with no data in the window is defined")
	}
	if _, ok := MetricByName("nope"); ok {
		t.Error("unknown metric found")
	}
}
