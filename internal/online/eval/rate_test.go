package eval

import (
	"log/slog"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/streamrec/streamrec/internal/online/drift"
)

// The counter observes, per source and second of produce time, the count of
// interactions, zeros for a known source's empty seconds included.
func TestRateCounter(t *testing.T) {
	got := map[string][]float64{}
	obs := func(sig string, x float64) { got[sig] = append(got[sig], x) }
	var r rateCounter
	for _, e := range []struct {
		src string
		ms  int64
	}{{"api", 10_000}, {"api", 10_500}, {"replay", 10_900}, {"api", 11_000}, {"api", 13_200}, {"replay", 12_999}} {
		r.add(obs, e.src, e.ms)
	}
	// Seconds 10, 11 and 12 are closed (12's replay event arrived after 13
	// began, so it counts into 13).
	want := map[string][]float64{drift.SignalEventRate + "api": {2, 1, 0}, drift.SignalEventRate + "replay": {1, 0, 0}}
	for sig, w := range want {
		if len(got[sig]) != len(w) {
			t.Fatalf("%s: %v, want %v", sig, got[sig], w)
		}
		for i := range w {
			if got[sig][i] != w[i] {
				t.Fatalf("%s: %v, want %v", sig, got[sig], w)
			}
		}
	}
}

// The default specs' event-rate check: a source whose rate triples is an
// alert of its own check, and a stationary rate is not.
func TestEventRateShiftAlerts(t *testing.T) {
	dets, dists := drift.DefaultSpecs()
	var alerts []drift.Alert
	m, err := drift.NewMonitor(dets, dists, slog.New(slog.DiscardHandler), func(a drift.Alert) { alerts = append(alerts, a) })
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	poisson := func(mean float64) float64 { // normal approximation, fine at these means
		return max(0, float64(int(mean+r.NormFloat64()*math.Sqrt(mean)+0.5)))
	}
	for s := 0; s < 600; s++ { // 2 min of reference, then 8 min stationary
		m.Observe(drift.SignalEventRate+"api", poisson(50))
	}
	if len(alerts) != 0 {
		t.Fatalf("a stationary rate alerted: %+v", alerts)
	}
	for s := 0; s < 240; s++ {
		m.Observe(drift.SignalEventRate+"api", poisson(150))
	}
	if len(alerts) != 1 || alerts[0].Detector != "event_rate_api_psi" {
		t.Fatalf("alerts after the rate tripled: %+v; want one of event_rate_api_psi", alerts)
	}
}
