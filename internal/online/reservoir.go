package online

import (
	"slices"
	"sync"
)

// Reservoir keeps the last N observations of a value (a ring) for quantiles.
type Reservoir struct {
	mu   sync.Mutex
	buf  []float64
	next int
	full bool
}

// NewReservoir returns a ring of n observations.
func NewReservoir(n int) *Reservoir { return &Reservoir{buf: make([]float64, n)} }

// Add records one observation.
func (r *Reservoir) Add(v float64) {
	r.mu.Lock()
	r.buf[r.next] = v
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
	r.mu.Unlock()
}

// AddProduced records, for each produced-at time (Unix µs), the seconds from
// it to nowUs, under one lock.
func (r *Reservoir) AddProduced(nowUs int64, produced []int64) {
	r.mu.Lock()
	for _, p := range produced {
		if p > 0 {
			r.buf[r.next] = float64(nowUs-p) / 1e6
			r.next++
			if r.next == len(r.buf) {
				r.next, r.full = 0, true
			}
		}
	}
	r.mu.Unlock()
}

// Quantiles returns the qs quantiles (nearest rank) of the kept observations and
// how many there are; all zeros when empty.
func (r *Reservoir) Quantiles(qs ...float64) ([]float64, int) {
	r.mu.Lock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	s := slices.Clone(r.buf[:n])
	r.mu.Unlock()
	out := make([]float64, len(qs))
	if n == 0 {
		return out, 0
	}
	slices.Sort(s)
	for i, q := range qs {
		k := int(q*float64(n)+0.5) - 1
		out[i] = s[min(max(k, 0), n-1)]
	}
	return out, n
}

// Reset drops every observation.
func (r *Reservoir) Reset() {
	r.mu.Lock()
	r.next, r.full = 0, false
	r.mu.Unlock()
}
