package drift

import (
	"cmp"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"
)

// Kinds of a DetectorSpec.
const (
	KindPageHinkley = "page_hinkley"
	KindADWIN       = "adwin"
)

// DetectorSpec names one change detector on one signal of the Monitor.
type DetectorSpec struct {
	// Name is unique within the monitor (the /v1/drift "name").
	Name string
	// Signal is the stream fed by Monitor.Observe(Signal, x).
	Signal string
	// Kind is KindPageHinkley or KindADWIN, with its configuration.
	Kind string
	PH   PageHinkleyConfig
	AD   ADWINConfig
	// Cooldown: a detection within this many samples of the previous one belongs to the same episode (one alert). Default: 100.
	Cooldown int
	// Range, if > 0, clips each sample to [0, Range] and divides it by
	// Range, so that the detector sees values in [0, 1] (ADWIN's bound
	// assumes that range; an absolute error of a watch ratio is heavy
	// tailed). Default: 0, the sample as it is.
	Range float64
}

// DistSpec is a distribution drift check of one signal against a reference:
// the first RefN samples after a reset fix quantile bins (Bins) and the
// reference shares; then every RefN samples the current histogram's PSI and
// Jensen-Shannon distance are computed and the histogram restarts.
type DistSpec struct {
	Name, Signal string
	// RefN is the reference's and each comparison's sample count. Default: 5000.
	RefN int
	// Bins of the quantile histogram. Default: DefaultBins (10).
	Bins int
	// PSIModerate and PSISignificant are the PSI thresholds (the usual 0.1
	// and 0.2); JSThreshold the Jensen-Shannon distance's (0.1). An alert
	// episode starts when PSI >= PSISignificant or JS >= JSThreshold, and
	// ends when a comparison is below both PSIModerate and JSThreshold.
	PSIModerate, PSISignificant, JSThreshold float64
}

// Alert is one alert episode's start.
type Alert struct {
	AtMs      int64   `json:"at_ms"`
	Detector  string  `json:"detector"`
	Signal    string  `json:"signal"`
	Direction string  `json:"direction"`
	Statistic float64 `json:"statistic"`
	Threshold float64 `json:"threshold"`
}

// DetectorState is one detector's state (GET /v1/drift).
type DetectorState struct {
	Name          string  `json:"name"`
	Signal        string  `json:"signal"`
	Kind          string  `json:"kind"`
	Statistic     float64 `json:"statistic"`
	Threshold     float64 `json:"threshold"`
	Alerts        int64   `json:"alerts"`
	LastAlertAtMs *int64  `json:"last_alert_at_ms"`
	Samples       int64   `json:"samples"`
	// PSIModerate is set for a distribution check (with PSI and JS).
	PSI          *float64 `json:"psi,omitempty"`
	JS           *float64 `json:"js,omitempty"`
	PSIModerate  *float64 `json:"psi_moderate,omitempty"`
	ReferenceN   *int     `json:"reference_n,omitempty"`
	ReferenceSet *bool    `json:"reference_set,omitempty"`
}

type watcher struct {
	spec     DetectorSpec
	ph       *PageHinkley
	ad       *ADWIN
	samples  int64
	lastHit  int64 // sample number of the last detection (0: none)
	alerts   int64
	lastAtMs int64
}

func (d *watcher) add(x float64) (Direction, float64, float64) {
	if r := d.spec.Range; r > 0 {
		x = min(max(x, 0), r) / r
	}
	d.samples++
	if d.ph != nil {
		return d.ph.Add(x), d.ph.Statistic(), d.ph.Threshold()
	}
	return d.ad.Add(x), d.ad.Statistic(), d.ad.Threshold()
}

func (d *watcher) stat() (float64, float64) {
	if d.ph != nil {
		return d.ph.Statistic(), d.ph.Threshold()
	}
	return d.ad.Statistic(), d.ad.Threshold()
}

type distCheck struct {
	spec     DistSpec
	sample   []float64 // the reference being collected
	ref      *Reference
	cur      *Histogram
	psi, js  float64
	inAlert  bool
	samples  int64
	alerts   int64
	lastAtMs int64
	keys     map[uint64]struct{} // the keys counted in the open sample or block
}

// Monitor runs detectors and distribution checks on named signals, keeps
// their state and the alert episodes, logs each episode once and calls
// OnAlert. Safe for concurrent use (one mutex: Observe is a few hundred ns).
type Monitor struct {
	mu      sync.Mutex
	dets    []*watcher
	dists   []*distCheck
	bySig   map[string][]int // signal -> detector indexes
	distSig map[string][]int
	markers []Alert
	log     *slog.Logger
	now     func() time.Time
	onAlert func(Alert)
	pinned  bool // an admin pinned the reference (PinReference)
}

// maxMarkers bounds the alerts kept for the series' markers.
const maxMarkers = 1000

// NewMonitor validates the specs. onAlert, if not nil, is called (outside
// the lock) for each new episode, after it is logged.
func NewMonitor(dets []DetectorSpec, dists []DistSpec, log *slog.Logger, onAlert func(Alert)) (*Monitor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{bySig: map[string][]int{}, distSig: map[string][]int{}, log: log, now: time.Now, onAlert: onAlert}
	names := map[string]bool{}
	for _, s := range dets {
		if s.Name == "" || s.Signal == "" || names[s.Name] {
			return nil, fmt.Errorf("drift: detector %q on %q: want a unique name and a signal", s.Name, s.Signal)
		}
		names[s.Name] = true
		if s.Cooldown == 0 {
			s.Cooldown = 100
		}
		if s.Range < 0 {
			return nil, fmt.Errorf("drift: detector %s: range %v must be >= 0", s.Name, s.Range)
		}
		d := &watcher{spec: s}
		var err error
		switch s.Kind {
		case KindPageHinkley:
			d.ph, err = NewPageHinkley(s.PH)
		case KindADWIN:
			d.ad, err = NewADWIN(s.AD)
		default:
			err = fmt.Errorf("drift: detector %s: kind %q, want %s or %s", s.Name, s.Kind, KindPageHinkley, KindADWIN)
		}
		if err != nil {
			return nil, err
		}
		m.bySig[s.Signal] = append(m.bySig[s.Signal], len(m.dets))
		m.dets = append(m.dets, d)
	}
	for _, s := range dists {
		if s.Name == "" || s.Signal == "" || names[s.Name] {
			return nil, fmt.Errorf("drift: distribution check %q on %q: want a unique name and a signal", s.Name, s.Signal)
		}
		names[s.Name] = true
		if s.RefN == 0 {
			s.RefN = 5000
		}
		if s.Bins == 0 {
			s.Bins = DefaultBins
		}
		if s.PSIModerate == 0 {
			s.PSIModerate = 0.1
		}
		if s.PSISignificant == 0 {
			s.PSISignificant = 0.2
		}
		if s.JSThreshold == 0 {
			s.JSThreshold = 0.1
		}
		if s.RefN < 2*s.Bins || s.Bins < 2 || s.Bins > maxBins || s.PSIModerate > s.PSISignificant {
			return nil, fmt.Errorf("drift: distribution check %s: %d samples for %d bins, PSI thresholds %v <= %v", s.Name, s.RefN, s.Bins, s.PSIModerate, s.PSISignificant)
		}
		m.distSig[s.Signal] = append(m.distSig[s.Signal], len(m.dists))
		m.dists = append(m.dists, &distCheck{spec: s, sample: make([]float64, 0, s.RefN), psi: math.NaN(), js: math.NaN()})
	}
	return m, nil
}

// Observe feeds x to every detector and distribution check of signal. NaN
// is ignored.
func (m *Monitor) Observe(signal string, x float64) { m.observe(signal, 0, false, x) }

// ObserveKeyed is Observe, except that each distribution check of signal
// counts a key at most once per reference sample and per comparison block
// (the detectors see every sample). The served signals are keyed by user
// (served_norm) or by user and video (served_score, served_popularity): a
// few heavy users request many times in a block, and without the key their
// repeated lists would be most of it, so the check would compare who is
// active rather than what is served (measured on the generator's
// sessions: PSI 0.1-1.2 between stationary blocks of 5,000 lists).
func (m *Monitor) ObserveKeyed(signal string, key uint64, x float64) { m.observe(signal, key, true, x) }

func (m *Monitor) observe(signal string, key uint64, keyed bool, x float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return
	}
	var fired []Alert
	m.mu.Lock()
	for _, i := range m.bySig[signal] {
		d := m.dets[i]
		dir, st, th := d.add(x)
		if dir == None {
			continue
		}
		newEpisode := d.lastHit == 0 || d.samples-d.lastHit > int64(d.spec.Cooldown)
		d.lastHit = d.samples
		if newEpisode {
			fired = append(fired, m.alert(&d.alerts, &d.lastAtMs, d.spec.Name, signal, dir.String(), st, th))
		}
	}
	for _, i := range m.distSig[signal] {
		c := m.dists[i]
		if keyed {
			if _, dup := c.keys[key]; dup {
				continue
			}
			if c.keys == nil {
				c.keys = map[uint64]struct{}{}
			}
			c.keys[key] = struct{}{}
		}
		c.samples++
		if c.ref == nil {
			c.sample = append(c.sample, x)
			if len(c.sample) == c.spec.RefN {
				if ref, err := NewReference(c.sample, c.spec.Bins); err == nil {
					c.ref, c.cur = ref, ref.NewHistogram()
				} else {
					c.sample = c.sample[:0] // a degenerate sample: collect anew
				}
				clear(c.keys)
			}
			continue
		}
		c.cur.Add(x)
		if c.cur.N() < int64(c.spec.RefN) {
			continue
		}
		c.psi, c.js = c.cur.PSI(), c.cur.JS()
		c.cur.Reset()
		clear(c.keys)
		switch above := c.psi >= c.spec.PSISignificant || c.js >= c.spec.JSThreshold; {
		case above && !c.inAlert:
			c.inAlert = true
			st, th := c.psi, c.spec.PSISignificant
			if c.js >= c.spec.JSThreshold && c.psi < c.spec.PSISignificant {
				st, th = c.js, c.spec.JSThreshold
			}
			fired = append(fired, m.alert(&c.alerts, &c.lastAtMs, c.spec.Name, signal, "shift", st, th))
		case !above && c.psi < c.spec.PSIModerate && c.js < c.spec.JSThreshold:
			c.inAlert = false
		}
	}
	m.mu.Unlock()
	for _, a := range fired {
		m.log.Warn("drift alert", "detector", a.Detector, "signal", a.Signal, "direction", a.Direction, "statistic", a.Statistic, "threshold", a.Threshold)
		if m.onAlert != nil {
			m.onAlert(a)
		}
	}
}

func (m *Monitor) alert(count, last *int64, name, signal, dir string, st, th float64) Alert {
	a := Alert{AtMs: m.now().UnixMilli(), Detector: name, Signal: signal, Direction: dir, Statistic: st, Threshold: th}
	*count++
	*last = a.AtMs
	m.markers = append(m.markers, a)
	if len(m.markers) > maxMarkers {
		m.markers = slices.Delete(m.markers, 0, len(m.markers)-maxMarkers)
	}
	return a
}

// ResetReferences restarts every distribution check's reference: a new
// model version went live. While an admin's reference is pinned it does
// nothing (it returns false).
func (m *Monitor) ResetReferences() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pinned {
		return false
	}
	m.resetLocked()
	return true
}

// PinReference is the admin's reference: every distribution check restarts
// its reference with the samples from now on (its first RefN), and keeps it
// across model versions until UnpinReference.
func (m *Monitor) PinReference() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pinned = true
	m.resetLocked()
}

// UnpinReference returns to a reference per model version (the current one
// is kept until the next version goes live).
func (m *Monitor) UnpinReference() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pinned = false
}

// Pinned reports whether an admin's reference is pinned.
func (m *Monitor) Pinned() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pinned
}

func (m *Monitor) resetLocked() {
	for _, c := range m.dists {
		c.sample, c.ref, c.cur, c.inAlert = c.sample[:0], nil, nil, false
		c.psi, c.js = math.NaN(), math.NaN()
		clear(c.keys)
	}
}

// State is every detector's and distribution check's state, in spec order.
func (m *Monitor) State() []DetectorState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]DetectorState, 0, len(m.dets)+len(m.dists))
	last := func(ms int64) *int64 {
		if ms == 0 {
			return nil
		}
		return &ms
	}
	for _, d := range m.dets {
		st, th := d.stat()
		out = append(out, DetectorState{Name: d.spec.Name, Signal: d.spec.Signal, Kind: d.spec.Kind, Statistic: finiteOr0(st), Threshold: th,
			Alerts: d.alerts, LastAlertAtMs: last(d.lastAtMs), Samples: d.samples})
	}
	for _, c := range m.dists {
		psi, js, mod, n, set := finiteOr0(c.psi), finiteOr0(c.js), c.spec.PSIModerate, c.spec.RefN, c.ref != nil
		out = append(out, DetectorState{Name: c.spec.Name, Signal: c.spec.Signal, Kind: "psi_js", Statistic: psi, Threshold: c.spec.PSISignificant,
			Alerts: c.alerts, LastAlertAtMs: last(c.lastAtMs), Samples: c.samples, PSI: &psi, JS: &js, PSIModerate: &mod, ReferenceN: &n, ReferenceSet: &set})
	}
	return out
}

// Markers are the alert episodes started at or after sinceMs, oldest first
// (at most the last 1,000).
func (m *Monitor) Markers(sinceMs int64) []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, _ := slices.BinarySearchFunc(m.markers, sinceMs, func(a Alert, t int64) int {
		switch {
		case a.AtMs < t:
			return -1
		case a.AtMs > t:
			return 1
		}
		return 0
	})
	for i > 0 && m.markers[i-1].AtMs >= sinceMs {
		i--
	}
	return slices.Clone(m.markers[i:])
}

func finiteOr0(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

// Mark keeps a (a decision of another kind: a canary promoted or rolled
// back) among the alert markers of the series, without counting it as a
// detector's alert.
func (m *Monitor) Mark(a Alert) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a.AtMs == 0 {
		a.AtMs = m.now().UnixMilli()
	}
	i, _ := slices.BinarySearchFunc(m.markers, a.AtMs, func(x Alert, t int64) int { return cmp.Compare(x.AtMs, t) })
	m.markers = slices.Insert(m.markers, i, a)
	if len(m.markers) > maxMarkers {
		m.markers = slices.Delete(m.markers, 0, len(m.markers)-maxMarkers)
	}
}
