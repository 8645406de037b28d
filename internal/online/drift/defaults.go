package drift

import "strings"

// The signals the online evaluation feeds (internal/online/eval's
// Config.Observe and the API's window poller):
//
//	hit                   1 or 0 per joined interaction: its video was in the open list
//	abs_err               |predicted - observed| watch ratio of each hit
//	watch_ratio           the observed watch ratio of every interaction
//	served_score          the score of every served slot
//	served_popularity     the popularity percentile of every served slot
//	served_norm           the norm of every served list's user vector
//	event_rate:<source>   per second of produce time, the interactions of a
//	                      source (replay, api, simulator) in it
//	window:<metric>       a closed produce-time window's metric (eval.Metrics),
//	                      for precision_2, ndcg_graded, hit_rate, live_twin_abs_err_ratio
const (
	SignalHit              = "hit"
	SignalAbsErr           = "abs_err"
	SignalWatchRatio       = "watch_ratio"
	SignalServedScore      = "served_score"
	SignalServedPopularity = "served_popularity"
	SignalServedNorm       = "served_norm"
	SignalEventRate        = "event_rate:"
	WindowPrefix           = "window:"
)

// WindowMetrics are the per-window series the default detectors watch.
var WindowMetrics = []string{"precision_2", "ndcg_graded", "hit_rate", "popularity_pct", "coverage", "live_twin_abs_err_ratio"}

// DefaultSpecs are the API's detectors and distribution checks, calibrated
// on the generator's sessions and drifts (internal/online/drift/driftsim;
// the figures: go run ./bench/drift):
//
//   - hit: Page-Hinkley with the usual delta 0.005, lambda 50, alpha 1 -
//     1e-4 and 30 warm-up samples, but Scale 6 (about 12 x the stationary
//     standard deviation, about 0.5: see PageHinkleyConfig.Scale), and ADWIN
//     with delta 1e-5;
//   - abs_err: clipped to [0, 4] and divided by 4 (Range 4: the error of a
//     heavy-tailed watch ratio; ADWIN's bound assumes [0, 1]), then
//     Page-Hinkley with Scale 3 and ADWIN with delta 1e-6;
//   - on the per-window series: Page-Hinkley with lambda 5, 8 warm-up
//     windows, and the scale 3 x the warm-up windows' standard deviation
//     (ScaleSD: a window's noise depends on its size, which the traffic
//     sets): a window is one sample, so the per-interaction warm-up and
//     lambda would take hours;
//   - distribution checks (PSI and Jensen-Shannon, 10 quantile bins,
//     thresholds PSI 0.1 moderate and 0.2 significant, JS 0.1) against the
//     first samples after a version goes live: watch_ratio over 5,000
//     interactions; served_score and served_popularity over the slots of
//     1,000 distinct users' lists (25,000), served_norm over 1,000 distinct
//     users (Monitor.ObserveKeyed: without the key, a few heavy users' repeated
//     lists made stationary blocks differ by PSI 0.1-1.2); and the event rate
//     of each source (replay, api, simulator), one sample a second, against
//     its first 120 seconds (6 quantile bins: 5,000 samples would take 83
//     minutes), each check every 120 seconds.
//
// The deltas are far below the usual 0.002 because interactions come in
// user sessions: a user's hits and errors run together, and the active
// users change with the day. On the generator's stationary streams the
// usual delta alarmed 9-20 times per million interactions on hit and 5 on
// abs_err (bench/drift; 1e-4 on abs_err), 1e-5 and 1e-6 at most 1-2, at the
// cost of longer delays (the README's drift figures).
func DefaultSpecs() ([]DetectorSpec, []DistSpec) {
	dets := []DetectorSpec{
		{Name: "hit_ph", Signal: SignalHit, Kind: KindPageHinkley, PH: PageHinkleyConfig{Scale: 6}},
		{Name: "hit_adwin", Signal: SignalHit, Kind: KindADWIN, AD: ADWINConfig{Delta: 1e-5}},
		{Name: "abs_err_ph", Signal: SignalAbsErr, Kind: KindPageHinkley, Range: 4, PH: PageHinkleyConfig{Scale: 3}},
		{Name: "abs_err_adwin", Signal: SignalAbsErr, Kind: KindADWIN, Range: 4, AD: ADWINConfig{Delta: 1e-6}},
	}
	for _, m := range WindowMetrics {
		dets = append(dets, DetectorSpec{Name: m + "_window_ph", Signal: WindowPrefix + m, Kind: KindPageHinkley, Cooldown: 3,
			PH: PageHinkleyConfig{Lambda: 5, WarmUp: 8, ScaleSD: 3}})
	}
	var dists []DistSpec
	for _, s := range []string{SignalWatchRatio, SignalServedScore, SignalServedPopularity, SignalServedNorm} {
		n := 5000
		switch s {
		case SignalServedScore, SignalServedPopularity:
			n = 25000 // the 25 slots of 1,000 users' lists
		case SignalServedNorm:
			n = 1000 // users
		}
		dists = append(dists, DistSpec{Name: s + "_psi", Signal: s, RefN: n})
	}
	for _, src := range []string{"replay", "api", "simulator"} {
		dists = append(dists, DistSpec{Name: "event_rate_" + src + "_psi", Signal: SignalEventRate + src, RefN: 120, Bins: 6})
	}
	return dets, dists
}

// Worse reports whether an alert says the model got worse, the alerts the
// actions (a raised learning rate, a retrain) act on: an absolute error or
// live/twin error ratio going up; a hit indicator, hit rate, precision or
// NDCG going down; any distribution shift. An improvement (the error going
// down as the model learns online) is alerted and shown, but not acted on.
func Worse(a Alert) bool {
	sig := strings.TrimPrefix(a.Signal, WindowPrefix)
	switch sig {
	case SignalAbsErr, "live_twin_abs_err_ratio", "preq_abs_err", "live_twin_rank_ratio":
		return a.Direction == Up.String()
	case SignalHit, "hit_rate", "precision_2", "precision_08", "ndcg_graded", "ndcg_08", "ndcg_2", "live_topk":
		return a.Direction == Down.String()
	}
	return true
}
