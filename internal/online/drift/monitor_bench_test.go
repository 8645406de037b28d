package drift

import (
	"math"
	"math/rand/v2"
	"testing"
)

// BenchmarkMonitorObserve: one Observe of a per-interaction signal through
// the default monitor (two detectors on hit), the API's per-interaction cost.
func BenchmarkMonitorObserve(b *testing.B) {
	dets, dists := DefaultSpecs()
	m, _ := NewMonitor(dets, dists, nil, nil)
	r := rand.New(rand.NewPCG(1, 2))
	xs := make([]float64, 4096)
	for i := range xs {
		if r.Float64() < 0.7 {
			xs[i] = 1
		}
	}
	b.ReportAllocs()
	for i := range b.N {
		m.Observe(SignalHit, xs[i&4095])
	}
}

// BenchmarkMonitorStationary: alert episodes per million interactions of the
// default monitor on stationary streams: a Bernoulli(0.7) hit indicator, and
// for each hit an absolute error |N(0.5, 0.3)|, and a watch ratio
// LogNormal(-0.1, 0.5) for the distribution check. Run with
// -benchtime 5000000x (the target: at most 1 per million per detector).
func BenchmarkMonitorStationary(b *testing.B) {
	dets, dists := DefaultSpecs()
	alerts := map[string]int{}
	m, _ := NewMonitor(dets, dists, nil, func(a Alert) { alerts[a.Detector]++ })
	r := rand.New(rand.NewPCG(11, 12))
	for range b.N {
		hit := 0.0
		if r.Float64() < 0.7 {
			hit = 1
			m.Observe(SignalAbsErr, math.Abs(0.5+0.3*r.NormFloat64()))
		}
		m.Observe(SignalHit, hit)
		m.Observe(SignalWatchRatio, math.Exp(-0.1+0.5*r.NormFloat64()))
	}
	for _, d := range []string{"hit_ph", "hit_adwin", "abs_err_ph", "abs_err_adwin", "watch_ratio_psi"} {
		b.ReportMetric(float64(alerts[d])/float64(b.N)*1e6, d+"/M")
	}
}
