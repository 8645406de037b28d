package drift

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
var WindowMetrics = []string{"precision_2", "ndcg_graded", "hit_rate", "live_twin_abs_err_ratio"}

// DefaultSpecs are the API's detectors and distribution checks:
//
//   - on the per-interaction streams hit and abs_err: Page-Hinkley with the
//     usual delta 0.005, lambda 50, alpha 1 - 1e-4 and 30 warm-up samples,
//     but Scale 5 (about 10 x the stationary standard deviation of both,
//     about 0.5: see PageHinkleyConfig.Scale for why and the false-alarm
//     measurements), and ADWIN with delta 0.002;
//   - on the per-window series: Page-Hinkley with lambda 5, 5 warm-up windows
//     and Scale 0.05 (0.2 for the live/twin error ratio): a window is one
//     sample, so the per-interaction warm-up and lambda would take hours;
//   - distribution checks (PSI and Jensen-Shannon against the first 5,000
//     samples after a version goes live, 10 quantile bins, thresholds PSI 0.1
//     moderate and 0.2 significant, JS 0.1) on watch_ratio, served_score,
//     served_popularity and served_norm; and on the event rate of each source
//     (replay, api, simulator), one sample a second, against its first 120
//     seconds (6 quantile bins: 5,000 samples would take 83 minutes), each
//     check every 120 seconds.
//
// The per-window parameters are not yet calibrated against the generator's
// injected drifts (the drift issue's detection-delay figures).
func DefaultSpecs() ([]DetectorSpec, []DistSpec) {
	ph := PageHinkleyConfig{Scale: 5}
	dets := []DetectorSpec{
		{Name: "hit_ph", Signal: SignalHit, Kind: KindPageHinkley, PH: ph},
		{Name: "hit_adwin", Signal: SignalHit, Kind: KindADWIN},
		{Name: "abs_err_ph", Signal: SignalAbsErr, Kind: KindPageHinkley, PH: ph},
		{Name: "abs_err_adwin", Signal: SignalAbsErr, Kind: KindADWIN},
	}
	for _, m := range WindowMetrics {
		scale := 0.05
		if m == "live_twin_abs_err_ratio" {
			scale = 0.2
		}
		dets = append(dets, DetectorSpec{Name: m + "_window_ph", Signal: WindowPrefix + m, Kind: KindPageHinkley, Cooldown: 3,
			PH: PageHinkleyConfig{Lambda: 5, WarmUp: 5, Scale: scale}})
	}
	var dists []DistSpec
	for _, s := range []string{SignalWatchRatio, SignalServedScore, SignalServedPopularity, SignalServedNorm} {
		dists = append(dists, DistSpec{Name: s + "_psi", Signal: s})
	}
	for _, src := range []string{"replay", "api", "simulator"} {
		dists = append(dists, DistSpec{Name: "event_rate_" + src + "_psi", Signal: SignalEventRate + src, RefN: 120, Bins: 6})
	}
	return dets, dists
}
