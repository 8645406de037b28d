package drift

import (
	"fmt"
	"math"
	"slices"
)

// DefaultBins is the number of quantile bins of a Histogram, maxBins the most.
const (
	DefaultBins = 10
	maxBins     = 64
)

// Reference is a distribution's reference: bin edges at the quantiles of a
// reference sample and the reference's share in each bin.
type Reference struct {
	// Edges are the bins' inner edges, ascending: bin i holds x with
	// Edges[i-1] < x <= Edges[i] (the first and last bins are open). Equal
	// quantiles (a discrete signal) are merged, so there may be fewer bins.
	Edges []float64
	// Share of the reference sample in each bin (len(Edges)+1).
	Share []float64
}

// NewReference fixes bins from the quantiles of sample (at least 2*bins
// finite values; NaN and Inf are ignored) and the sample's share in each.
func NewReference(sample []float64, bins int) (*Reference, error) {
	if bins < 2 || bins > maxBins {
		return nil, fmt.Errorf("drift: %d bins: want 2..%d", bins, maxBins)
	}
	xs := make([]float64, 0, len(sample))
	for _, x := range sample {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			xs = append(xs, x)
		}
	}
	if len(xs) < 2*bins {
		return nil, fmt.Errorf("drift: a reference of %d finite values for %d bins: want >= %d", len(xs), bins, 2*bins)
	}
	slices.Sort(xs)
	r := &Reference{}
	for i := 1; i < bins; i++ {
		e := xs[i*len(xs)/bins-1]
		if len(r.Edges) == 0 || e > r.Edges[len(r.Edges)-1] {
			r.Edges = append(r.Edges, e)
		}
	}
	h := r.NewHistogram()
	for _, x := range xs {
		h.Add(x)
	}
	r.Share = make([]float64, len(h.counts))
	for i, c := range h.counts {
		r.Share[i] = float64(c) / float64(h.n)
	}
	return r, nil
}

// Histogram counts samples in a Reference's bins.
type Histogram struct {
	ref    *Reference
	counts []int64
	n      int64
}

// NewHistogram returns an empty histogram over r's bins.
func (r *Reference) NewHistogram() *Histogram {
	return &Histogram{ref: r, counts: make([]int64, len(r.Edges)+1)}
}

// Add counts x (NaN ignored). It does not allocate.
func (h *Histogram) Add(x float64) {
	if math.IsNaN(x) {
		return
	}
	i, _ := slices.BinarySearch(h.ref.Edges, x)
	h.counts[i]++
	h.n++
}

// N is the number of samples counted.
func (h *Histogram) N() int64 { return h.n }

// Reset empties the histogram.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.n = 0
}

// smoothing keeps empty bins finite in PSI and JS: a bin's share is at
// least this (then renormalised).
const smoothing = 1e-4

func (h *Histogram) shares(dst []float64) []float64 {
	dst = dst[:0]
	tot := 0.0
	for _, c := range h.counts {
		s := max(float64(c)/float64(max(h.n, 1)), smoothing)
		dst = append(dst, s)
		tot += s
	}
	for i := range dst {
		dst[i] /= tot
	}
	return dst
}

func refShares(r *Reference, dst []float64) []float64 {
	dst = dst[:0]
	tot := 0.0
	for _, s := range r.Share {
		s = max(s, smoothing)
		dst = append(dst, s)
		tot += s
	}
	for i := range dst {
		dst[i] /= tot
	}
	return dst
}

// PSI is the population stability index of h against its reference:
// sum (p - q) ln(p / q) over the bins, p the current and q the reference
// share (both floored at 1e-4). Usual reading: < 0.1 stable, 0.1-0.2
// moderate, > 0.2 significant. NaN when h is empty.
func (h *Histogram) PSI() float64 {
	if h.n == 0 {
		return math.NaN()
	}
	var pb, qb [64]float64
	p, q := h.shares(pb[:0]), refShares(h.ref, qb[:0])
	s := 0.0
	for i := range p {
		s += (p[i] - q[i]) * math.Log(p[i]/q[i])
	}
	return s
}

// JS is the Jensen-Shannon distance (the square root of the divergence, in
// bits: in [0, 1]) of h against its reference. NaN when h is empty.
func (h *Histogram) JS() float64 {
	if h.n == 0 {
		return math.NaN()
	}
	var pb, qb [64]float64
	p, q := h.shares(pb[:0]), refShares(h.ref, qb[:0])
	d := 0.0
	for i := range p {
		m := (p[i] + q[i]) / 2
		d += 0.5*p[i]*math.Log2(p[i]/m) + 0.5*q[i]*math.Log2(q[i]/m)
	}
	return math.Sqrt(max(d, 0))
}
