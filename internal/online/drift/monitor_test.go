package drift

import (
	"math/rand/v2"
	"testing"
)

// A step in a stream's mean opens one alert episode per detector (not one
// per detection), logged in the state and the markers; a stationary stream
// of the same length opens none.
func TestMonitorEpisodes(t *testing.T) {
	var got []Alert
	m, err := NewMonitor([]DetectorSpec{
		{Name: "ph", Signal: "x", Kind: KindPageHinkley, PH: PageHinkleyConfig{Scale: 5}, Cooldown: 100000},
		{Name: "ad", Signal: "x", Kind: KindADWIN, Cooldown: 100000},
	}, nil, nil, func(a Alert) { got = append(got, a) })
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		m.Observe("x", r.NormFloat64()*0.5)
	}
	if len(got) != 0 {
		t.Fatalf("stationary stream: %d alerts %v", len(got), got)
	}
	for range 20000 {
		m.Observe("x", 1+r.NormFloat64()*0.5)
	}
	st := m.State()
	if len(got) != 2 || st[0].Alerts != 1 || st[1].Alerts != 1 || st[0].LastAlertAtMs == nil || st[0].Samples != 40000 {
		t.Fatalf("after the step: alerts %v, state %+v", got, st)
	}
	if mk := m.Markers(0); len(mk) != 2 || mk[0].Signal != "x" || mk[0].Direction != "up" {
		t.Fatalf("markers %+v", mk)
	}
	if mk := m.Markers(got[1].AtMs + 1); len(mk) != 0 {
		t.Fatalf("markers after the last alert: %+v", mk)
	}
	m.Observe("other", 5) // a signal nobody watches: ignored
}

// The distribution check fixes its reference from the first RefN samples,
// alerts once when the distribution shifts, ends the episode when it comes
// back, and restarts its reference on ResetReferences.
func TestMonitorDistribution(t *testing.T) {
	n := 0
	m, err := NewMonitor(nil, []DistSpec{{Name: "d", Signal: "y", RefN: 1000}}, nil, func(Alert) { n++ })
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	feed := func(mean float64, k int) {
		for range k {
			m.Observe("y", mean+r.NormFloat64())
		}
	}
	feed(0, 5000) // reference + 4 comparisons
	if st := m.State()[0]; n != 0 || !*st.ReferenceSet || *st.PSI > 0.1 {
		t.Fatalf("stationary: %d alerts, state %+v", n, st)
	}
	feed(1.5, 3000)
	if st := m.State()[0]; n != 1 || *st.PSI < 0.2 || st.Alerts != 1 {
		t.Fatalf("shifted: %d alerts, psi %v", n, *st.PSI)
	}
	feed(0, 2000)
	feed(1.5, 1000)
	if n != 2 {
		t.Fatalf("a second shift after a return: %d alerts, want 2", n)
	}
	m.ResetReferences()
	if st := m.State()[0]; *st.ReferenceSet {
		t.Fatal("reference kept after ResetReferences")
	}
	if _, err := NewMonitor([]DetectorSpec{{Name: "a", Signal: "x", Kind: "bogus"}}, nil, nil, nil); err == nil {
		t.Fatal("an unknown kind was accepted")
	}
	if _, _, err := func() ([]DetectorSpec, []DistSpec, error) {
		d, s := DefaultSpecs()
		_, err := NewMonitor(d, s, nil, nil)
		return d, s, err
	}(); err != nil {
		t.Fatalf("the default specs: %v", err)
	}
}

// A pinned reference is built from the samples after the pin and survives a
// new version's ResetReferences until unpinned.
func TestMonitorPinnedReference(t *testing.T) {
	m, err := NewMonitor(nil, []DistSpec{{Name: "d", Signal: "y", RefN: 100}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	for range 150 {
		m.Observe("y", r.NormFloat64())
	}
	m.PinReference()
	if st := m.State()[0]; *st.ReferenceSet || !m.Pinned() {
		t.Fatal("pinning did not restart the reference")
	}
	for range 100 {
		m.Observe("y", r.NormFloat64())
	}
	if m.ResetReferences() {
		t.Fatal("a new version reset a pinned reference")
	}
	if st := m.State()[0]; !*st.ReferenceSet {
		t.Fatal("the pinned reference is gone after a new version")
	}
	m.UnpinReference()
	if !m.ResetReferences() {
		t.Fatal("an unpinned reference was kept at a new version")
	}
	if st := m.State()[0]; *st.ReferenceSet {
		t.Fatal("reference kept after an unpinned reset")
	}
}

// Range clips each sample to [0, Range] and divides it by Range.
func TestMonitorRange(t *testing.T) {
	m, err := NewMonitor([]DetectorSpec{{Name: "r", Signal: "x", Kind: KindADWIN, Range: 4}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		m.Observe("x", []float64{-3, 100, 2, 4}[i%4]) // 0, 1, 0.5, 1
	}
	if got := m.dets[0].ad.Mean(); got != 0.625 {
		t.Errorf("mean %v, want 0.625 (of 0, 1, 0.5 and 1)", got)
	}
	if _, err := NewMonitor([]DetectorSpec{{Name: "n", Signal: "x", Kind: KindADWIN, Range: -1}}, nil, nil, nil); err == nil {
		t.Error("a negative range was accepted")
	}
}

// ObserveKeyed counts a key once per reference and per comparison block: a
// user who repeats one value cannot fill a block alone.
func TestMonitorKeyedDistribution(t *testing.T) {
	m, err := NewMonitor(nil, []DistSpec{{Name: "d", Signal: "x", RefN: 100}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		m.ObserveKeyed("x", 7, 99) // one heavy key: counted once
	}
	for k := range uint64(99) {
		m.ObserveKeyed("x", 1000+k, r.Float64())
	}
	if m.dists[0].ref == nil {
		t.Fatal("the reference is not complete after 100 distinct keys")
	}
	if n := m.dists[0].samples; n != 100 {
		t.Fatalf("samples counted %d, want 100 (1 for the repeated key)", n)
	}
	// The next block: the same keys count again (the set restarts).
	for k := range uint64(100) {
		m.ObserveKeyed("x", 1000+k, r.Float64())
	}
	if st := m.State()[0]; st.Samples != 200 {
		t.Fatalf("after a second block of 100 distinct keys: %d samples, want 200", st.Samples)
	}
}

func TestWorse(t *testing.T) {
	for _, c := range []struct {
		sig, dir string
		want     bool
	}{
		{SignalAbsErr, "up", true}, {SignalAbsErr, "down", false},
		{SignalHit, "down", true}, {SignalHit, "up", false},
		{WindowPrefix + "ndcg_graded", "down", true}, {WindowPrefix + "ndcg_graded", "up", false},
		{WindowPrefix + "live_twin_abs_err_ratio", "up", true}, {WindowPrefix + "hit_rate", "up", false},
		{SignalServedPopularity, "shift", true}, {WindowPrefix + "coverage", "down", true},
	} {
		if got := Worse(Alert{Signal: c.sig, Direction: c.dir}); got != c.want {
			t.Errorf("Worse(%s %s) = %v, want %v", c.sig, c.dir, got, c.want)
		}
	}
}
