// Package drift holds the change detectors of streamrec's drift monitoring:
// Page-Hinkley and ADWIN on metric streams (per-interaction values such as
// the absolute error or the hit indicator, or per-window series such as
// precision@25), and PSI and Jensen-Shannon distance of a distribution
// against a reference. Every detector is allocation-free per update and not
// safe for concurrent use (one goroutine feeds it).
//
// Monitor runs them on named signals with alert episodes (monitor.go);
// the API wires it to the online evaluator (GET /v1/drift, Prometheus,
// markers on the series). The drift issue's actions are not built yet.
package drift

import (
	"fmt"
	"math"
)

// Direction is the sign of a detected change in mean.
type Direction int8

// Directions.
const (
	None Direction = 0
	Up   Direction = 1
	Down Direction = -1
)

func (d Direction) String() string {
	switch d {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "none"
}

// PageHinkleyConfig configures a PageHinkley detector.
type PageHinkleyConfig struct {
	// Delta is the magnitude of change tolerated. Default: 0.005.
	Delta float64
	// Lambda is the alarm threshold on the cumulative deviation. Default: 50.
	Lambda float64
	// Alpha is the forgetting factor of the cumulative sum. Default: 1 - 1e-4.
	Alpha float64
	// WarmUp samples before any alarm. Default: 30.
	WarmUp int
	// Scale divides every sample. Default: 1. This is where streamrec
	// differs from the usual defaults, which suit a signal whose noise is
	// small against 1: set Scale to about 10 times the signal's stationary
	// standard deviation. Measured on 2M stationary samples (a Bernoulli(0.3)
	// hit indicator, an absolute error |N(0.5, 0.3)|): 6x gave 14-18 false
	// alarms, 8x 1-5, 10x 0-1. A mean shift of m then adds m/Scale - Delta
	// per sample and is seen after about Lambda / (m/Scale - Delta) samples
	// (a hit rate going from 0.40 to 0.55: about 2,000 interactions).
	Scale float64
	// ScaleSD, if > 0, replaces Scale by ScaleSD x the standard deviation
	// of the warm-up samples (learnt again after each alarm): a per-window
	// series' noise depends on the window's size, which the traffic sets.
	// The warm-up samples then only estimate the mean and deviation.
	ScaleSD float64
}

func (c *PageHinkleyConfig) defaults() error {
	if c.Delta == 0 {
		c.Delta = 0.005
	}
	if c.Lambda == 0 {
		c.Lambda = 50
	}
	if c.Alpha == 0 {
		c.Alpha = 1 - 1e-4
	}
	if c.WarmUp == 0 {
		c.WarmUp = 30
	}
	if c.Scale == 0 {
		c.Scale = 1
	}
	if c.ScaleSD > 0 && c.WarmUp < 3 {
		return fmt.Errorf("drift: Page-Hinkley ScaleSD needs a warm-up of at least 3 samples, not %d", c.WarmUp)
	}
	if c.Delta < 0 || c.Lambda <= 0 || c.Alpha <= 0 || c.Alpha > 1 || c.WarmUp < 1 || c.Scale < 0 || c.ScaleSD < 0 {
		return fmt.Errorf("drift: Page-Hinkley delta %v >= 0, lambda %v > 0, alpha %v in (0, 1], warm-up %d >= 1, scale %v > 0", c.Delta, c.Lambda, c.Alpha, c.WarmUp, c.Scale)
	}
	return nil
}

// PageHinkley detects a change in the mean of a stream, in both directions
// (two cumulative sums). After an alarm it restarts from the next sample.
type PageHinkley struct {
	cfg         PageHinkleyConfig
	n           int
	mean        float64
	up, upMin   float64
	down, dnMax float64
	stat        float64
	scale       float64 // Scale, or ScaleSD x the warm-up's deviation
	wMean, wM2  float64 // the warm-up's raw mean and sum of squares (ScaleSD)
}

// NewPageHinkley returns a detector; cfg's zero fields take the defaults.
func NewPageHinkley(cfg PageHinkleyConfig) (*PageHinkley, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &PageHinkley{cfg: cfg, scale: cfg.Scale}, nil
}

// Reset forgets every sample.
func (p *PageHinkley) Reset() { *p = PageHinkley{cfg: p.cfg, scale: p.cfg.Scale} }

// Statistic is the larger of the two cumulative deviations, in units of
// Lambda's scale.
func (p *PageHinkley) Statistic() float64 { return p.stat }

// Threshold is Lambda.
func (p *PageHinkley) Threshold() float64 { return p.cfg.Lambda }

// Add feeds one sample and reports a detected change (None most of the
// time). NaN samples are ignored.
func (p *PageHinkley) Add(x float64) Direction {
	if math.IsNaN(x) {
		return None
	}
	if p.cfg.ScaleSD > 0 && p.n < p.cfg.WarmUp {
		p.n++
		d := x - p.wMean
		p.wMean += d / float64(p.n)
		p.wM2 += d * (x - p.wMean)
		if p.n == p.cfg.WarmUp {
			p.scale = max(p.cfg.ScaleSD*math.Sqrt(p.wM2/float64(p.n-1)), 1e-9)
			p.mean = p.wMean / p.scale
		}
		return None
	}
	x /= p.scale
	p.n++
	p.mean += (x - p.mean) / float64(p.n)
	a := p.cfg.Alpha
	p.up = a*p.up + (x - p.mean - p.cfg.Delta)
	p.upMin = min(p.upMin, p.up)
	p.down = a*p.down + (x - p.mean + p.cfg.Delta)
	p.dnMax = max(p.dnMax, p.down)
	u, d := p.up-p.upMin, p.dnMax-p.down
	p.stat = max(u, d)
	if p.n < p.cfg.WarmUp {
		return None
	}
	switch {
	case u > p.cfg.Lambda:
		p.Reset()
		p.stat = u // the alarm's statistic stays readable until the next sample
		return Up
	case d > p.cfg.Lambda:
		p.Reset()
		p.stat = d
		return Down
	}
	return None
}

// ADWINConfig configures an ADWIN detector.
type ADWINConfig struct {
	// Delta is the confidence of a cut. Default: 0.002.
	Delta float64
	// MaxBuckets per row of the exponential histogram. Default: 5.
	MaxBuckets int
	// MinWindow: no cut leaves a side shorter than this. Default: 10.
	MinWindow int
	// CheckEvery: the cut test runs every this many samples (it is O(log n)
	// per run). Default: 32, as in the reference implementation.
	CheckEvery int
}

const adwinRows = 48 // 2^48 samples

// ADWIN is the adaptive windowing detector of Bifet and Gavaldà (2007), with
// the variance-aware bound of ADWIN2: the window shrinks whenever two of its
// sub-windows have means that differ more than the bound allows, and the
// shrink is reported as a change. Memory is a fixed exponential histogram
// (no allocation per sample).
type ADWIN struct {
	cfg    ADWINConfig
	rows   [adwinRows][]bucket // rows[i]: buckets of 2^i samples, oldest first
	n      int64               // samples in the window
	sum    float64
	varSum float64 // sum of squared deviations (Welford over buckets)
	since  int
	stat   float64
}

type bucket struct{ sum, v float64 } // v: sum of squared deviations within

// NewADWIN returns a detector; cfg's zero fields take the defaults.
func NewADWIN(cfg ADWINConfig) (*ADWIN, error) {
	if cfg.Delta == 0 {
		cfg.Delta = 0.002
	}
	if cfg.MaxBuckets == 0 {
		cfg.MaxBuckets = 5
	}
	if cfg.MinWindow == 0 {
		cfg.MinWindow = 10
	}
	if cfg.CheckEvery == 0 {
		cfg.CheckEvery = 32
	}
	if cfg.Delta <= 0 || cfg.Delta >= 1 || cfg.MaxBuckets < 2 || cfg.MinWindow < 1 || cfg.CheckEvery < 1 {
		return nil, fmt.Errorf("drift: ADWIN delta %v in (0, 1), max buckets %d >= 2, min window %d >= 1, check-every %d >= 1", cfg.Delta, cfg.MaxBuckets, cfg.MinWindow, cfg.CheckEvery)
	}
	a := &ADWIN{cfg: cfg}
	for i := range a.rows {
		a.rows[i] = make([]bucket, 0, cfg.MaxBuckets+1)
	}
	return a, nil
}

// Width is the number of samples in the window; Mean their mean.
func (a *ADWIN) Width() int64 { return a.n }

// Mean of the window.
func (a *ADWIN) Mean() float64 {
	if a.n == 0 {
		return 0
	}
	return a.sum / float64(a.n)
}

// Statistic is the largest ratio of a tested difference of means to its
// bound at the last check (a cut happens above 1).
func (a *ADWIN) Statistic() float64 { return a.stat }

// Threshold is 1 (see Statistic).
func (a *ADWIN) Threshold() float64 { return 1 }

// Add feeds one sample and reports a detected change: the direction of the
// newer part's mean against the older. NaN samples are ignored.
func (a *ADWIN) Add(x float64) Direction {
	if math.IsNaN(x) {
		return None
	}
	// Insert a bucket of one sample, updating the variance (Welford).
	if a.n > 0 {
		d := x - a.sum/float64(a.n)
		a.varSum += d * d * float64(a.n) / float64(a.n+1)
	}
	a.n++
	a.sum += x
	a.rows[0] = append(a.rows[0], bucket{sum: x})
	a.compress()
	a.since++
	if a.since < a.cfg.CheckEvery || a.n < int64(2*a.cfg.MinWindow) {
		return None
	}
	a.since = 0
	return a.check()
}

// compress merges the two oldest buckets of a row that has too many.
func (a *ADWIN) compress() {
	for i := 0; i < adwinRows-1; i++ {
		row := a.rows[i]
		if len(row) <= a.cfg.MaxBuckets {
			return
		}
		b1, b2 := row[0], row[1]
		size := float64(int64(1) << i)
		m1, m2 := b1.sum/size, b2.sum/size
		merged := bucket{sum: b1.sum + b2.sum, v: b1.v + b2.v + (m1-m2)*(m1-m2)*size/2}
		copy(row, row[2:])
		a.rows[i] = row[:len(row)-2]
		a.rows[i+1] = append(a.rows[i+1], merged)
	}
}

// check tests every cut between buckets, newest first; on a significant
// difference it drops the older side and reports the change.
func (a *ADWIN) check() Direction {
	dir := None
	for {
		cut := false
		var n0, s0 float64 // the older part: everything before the cut
		n1, s1 := float64(a.n), a.sum
		variance := a.varSum / float64(a.n)
		lnTerm := math.Log(2 * math.Log(float64(a.n)) / a.cfg.Delta)
		a.stat = 0
		// Walk from the oldest bucket to the newest, moving it to the older side.
	walk:
		for i := adwinRows - 1; i >= 0; i-- {
			size := float64(int64(1) << i)
			for _, b := range a.rows[i] {
				n0 += size
				s0 += b.sum
				n1 -= size
				s1 -= b.sum
				if n1 < float64(a.cfg.MinWindow) {
					break walk
				}
				if n0 < float64(a.cfg.MinWindow) {
					continue
				}
				m := 1 / (1/n0 + 1/n1)
				eps := math.Sqrt(2/m*variance*lnTerm) + 2/(3*m)*lnTerm
				diff := s1/n1 - s0/n0
				if r := math.Abs(diff) / eps; r > a.stat {
					a.stat = r
				}
				if math.Abs(diff) > eps {
					if diff > 0 {
						dir = Up
					} else {
						dir = Down
					}
					a.dropOldest()
					cut = true
					break walk
				}
			}
		}
		if !cut || a.n < int64(2*a.cfg.MinWindow) {
			return dir
		}
	}
}

// dropOldest removes the oldest bucket.
func (a *ADWIN) dropOldest() {
	for i := adwinRows - 1; i >= 0; i-- {
		row := a.rows[i]
		if len(row) == 0 {
			continue
		}
		b := row[0]
		size := int64(1) << i
		mean := a.sum / float64(a.n)
		bm := b.sum / float64(size)
		a.n -= size
		a.sum -= b.sum
		// Remove the bucket's share of the variance (exact for the merged form).
		if a.n > 0 {
			a.varSum -= b.v + (bm-mean)*(bm-mean)*float64(size)*float64(a.n+size)/float64(a.n)
			a.varSum = max(a.varSum, 0)
		} else {
			a.varSum = 0
		}
		copy(row, row[1:])
		a.rows[i] = row[:len(row)-1]
		return
	}
}
