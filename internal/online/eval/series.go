package eval

import "math"

// Metric is a value derived from a window's fields.
type Metric struct {
	Name string
	// Of computes the metric from a window's fields (tag: "" for all, or
	// "source=api", "fallback=popularity"...), catalogue is the number of
	// servable videos. ok is false when the window has no data for it.
	Of func(get func(field string) int64, catalogue int) (v float64, ok bool)
	// Help describes it (Prometheus help and the OpenAPI document).
	Help string
}

func ratio(num, den int64, scale float64) (float64, bool) {
	if den == 0 {
		return math.NaN(), false
	}
	return float64(num) / scale / float64(den), true
}

// Metrics are the series the online evaluator's windows give.
var Metrics = []Metric{
	{"hit_rate", func(g func(string) int64, _ int) (float64, bool) { return ratio(g("hits"), g("interactions"), 1) },
		"share of interactions whose video was in the user's open list"},
	{"precision_08", func(g func(string) int64, _ int) (float64, bool) { return ratio(g("prec08_u"), g("lists"), 1e6) },
		"precision@K of closed lists, label watch_ratio >= 0.8"},
	{"precision_2", func(g func(string) int64, _ int) (float64, bool) { return ratio(g("prec2_u"), g("lists"), 1e6) },
		"precision@K of closed lists, label watch_ratio > 2"},
	{"ndcg_08", func(g func(string) int64, _ int) (float64, bool) { return ratio(g("ndcg08_u"), g("ndcg08_n"), 1e6) },
		"binary NDCG@K of closed lists with a relevant slot, label >= 0.8"},
	{"ndcg_2", func(g func(string) int64, _ int) (float64, bool) { return ratio(g("ndcg2_u"), g("ndcg2_n"), 1e6) },
		"binary NDCG@K of closed lists with a relevant slot, label > 2"},
	{"ndcg_graded", func(g func(string) int64, _ int) (float64, bool) {
		return ratio(g("ndcg_graded_u"), g("ndcg_graded_n"), 1e6)
	},
		"NDCG@K with the observed watch ratios as gains, over closed lists with a watched slot"},
	{"abs_err", func(g func(string) int64, _ int) (float64, bool) { return ratio(g("abs_err_u"), g("abs_err_n"), 1e6) },
		"mean |predicted - observed| watch ratio of the interactions on a served video"},
	{"preq_abs_err", func(g func(string) int64, _ int) (float64, bool) { return ratio(g("preq_abs_err_u"), g("preq_n"), 1e6) },
		"prequential mean absolute error of interactions with no open list, under the last served user vector"},
	{"preq_rank", func(g func(string) int64, _ int) (float64, bool) {
		return ratio(g("preq_rank_sum"), g("preq_rank_n"), 1)
	},
		"mean rank (1 = top) of the watched video under the last served user vector, sampled"},
	{"coverage", func(g func(string) int64, c int) (float64, bool) {
		if c <= 0 || g("lists") == 0 {
			return math.NaN(), false
		}
		return float64(g("served_videos")) / float64(c), true
	}, "distinct videos served in the window over the catalogue"},
	{"popularity_pct", func(g func(string) int64, _ int) (float64, bool) {
		return ratio(g("pop_pct_u"), g("served_slots"), 1e6)
	},
		"mean popularity percentile of the served videos"},
	{"no_list_share", func(g func(string) int64, _ int) (float64, bool) { return ratio(g("no_list"), g("interactions"), 1) },
		"share of interactions with no open list"},
	{"live_abs_err", func(g func(string) int64, _ int) (float64, bool) { return ratio(g("live_abs_err_u"), g("twin_n"), 1e6) },
		"mean |predicted - observed| watch ratio of joined interactions under the served (live) user vector, on the interactions the frozen twin also scores"},
	{"twin_abs_err", func(g func(string) int64, _ int) (float64, bool) { return ratio(g("twin_abs_err_u"), g("twin_n"), 1e6) },
		"the same error under the frozen twin (the version's offline user vector, never updated online)"},
	{"live_twin_abs_err_ratio", func(g func(string) int64, _ int) (float64, bool) {
		return ratio(g("live_abs_err_u"), g("twin_abs_err_u"), 1)
	}, "live_abs_err / twin_abs_err (below 1: the live model predicts better)"},
	{"live_rank", func(g func(string) int64, _ int) (float64, bool) {
		return ratio(g("live_rank_sum"), g("twin_rank_n"), 1)
	},
		"mean rank (1 = top) of the watched video among the list's candidates under the live user vector, sampled joined interactions"},
	{"twin_rank", func(g func(string) int64, _ int) (float64, bool) {
		return ratio(g("twin_rank_sum"), g("twin_rank_n"), 1)
	},
		"the same rank under the frozen twin"},
	{"live_twin_rank_ratio", func(g func(string) int64, _ int) (float64, bool) {
		return ratio(g("live_rank_sum"), g("twin_rank_sum"), 1)
	}, "live_rank / twin_rank (below 1: the live model ranks watched videos higher)"},
	{"live_topk", func(g func(string) int64, _ int) (float64, bool) {
		return ratio(g("live_rank_top"), g("twin_rank_n"), 1)
	},
		"share of sampled joined interactions whose video ranks within the list's K under the live user vector"},
	{"twin_topk", func(g func(string) int64, _ int) (float64, bool) {
		return ratio(g("twin_rank_top"), g("twin_rank_n"), 1)
	},
		"the same share under the frozen twin"},
	{"live_twin_topk_ratio", func(g func(string) int64, _ int) (float64, bool) {
		return ratio(g("live_rank_top"), g("twin_rank_top"), 1)
	}, "live_topk / twin_topk (above 1: the live model would have served more of what was watched)"},
	{"feedback_to_effect_ms", func(g func(string) int64, _ int) (float64, bool) { return ratio(g("f2e_sum_ms"), g("f2e_n"), 1) },
		"mean ms from an interaction's produce time to the first served list whose user embedding includes it"},
	{"feedback_to_effect_p50_ms", f2eQuantile(0.5), "median feedback-to-effect latency (the upper bound of its histogram bucket; absent beyond 60 s)"},
	{"feedback_to_effect_p99_ms", f2eQuantile(0.99), "99th percentile feedback-to-effect latency (bucket upper bound)"},
	{"feedback_to_effect_n", count("f2e_n"), "interactions whose effect was seen: a later list's embedding included them (within OpenFor + 2 Grace)"},
	{"feedback_to_effect_over_60s", count("f2e_le_inf"), "of those, the ones seen more than 60 s after their produce time"},
	{"interactions", count("interactions"), "interactions (duplicates and stale ones excluded)"},
	{"lists", count("lists"), "closed lists"},
	{"duplicates", count("duplicates"), "duplicate interactions dropped"},
	{"late_lists", count("late_lists"), "lists written later than the grace period (ignored)"},
	{"stale_interactions", count("stale_interactions"), "interactions more than OpenFor + 2 Grace behind the watermark (not joined)"},
}

// f2eQuantile is the upper bound of the feedback-to-effect bucket holding
// quantile q; absent when that bucket is the one beyond the last bound (60 s).
func f2eQuantile(q float64) func(func(string) int64, int) (float64, bool) {
	return func(g func(string) int64, _ int) (float64, bool) {
		n := g("f2e_n")
		if n == 0 {
			return math.NaN(), false
		}
		need := int64(math.Ceil(q * float64(n)))
		var cum int64
		for i, b := range F2EBucketsMS {
			if cum += g(F2EField(i)); cum >= need {
				return float64(b), true
			}
		}
		return math.NaN(), false
	}
}

func count(field string) func(func(string) int64, int) (float64, bool) {
	return func(g func(string) int64, _ int) (float64, bool) { return float64(g(field)), true }
}

// MetricByName returns the metric called name.
func MetricByName(name string) (Metric, bool) {
	for _, m := range Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// Getter reads a window's fields under tag ("" for all).
func Getter(fields map[string]int64, tag string) func(string) int64 {
	if tag == "" {
		return func(f string) int64 { return fields[f] }
	}
	return func(f string) int64 {
		if f == "served_videos" {
			return fields[f] // coverage is not split by tag
		}
		return fields[f+"|"+tag]
	}
}
