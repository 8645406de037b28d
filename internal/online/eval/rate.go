package eval

import "github.com/streamrec/streamrec/internal/online/drift"

// rateCounter turns the interactions into the drift monitor's event-rate
// signals: per source, the count of interactions in each second of produce
// time (drift.SignalEventRate + source), observed when the second ends. A
// source seen once is observed every second after (0 when it sent nothing).
// Interactions of an earlier second than the current one (partitions are
// read side by side, so produce times interleave by up to a batch) count
// into the current second: a rate's bucket is exact to about a batch.
type rateCounter struct {
	sec    int64
	counts map[string]float64
	names  map[string]string
}

func (r *rateCounter) add(obs func(string, float64), source string, producedMS int64) {
	if r.counts == nil {
		r.counts, r.names = map[string]float64{}, map[string]string{}
	}
	sec := producedMS / 1000
	if r.sec == 0 {
		r.sec = sec
	}
	if sec > r.sec {
		// Close the current second, and the empty ones up to this one
		// (at most a minute of them: a gap longer than that is a pause,
		// not a rate).
		for s := r.sec; s < sec && s < r.sec+60; s++ {
			for src, n := range r.counts {
				obs(r.names[src], n)
				r.counts[src] = 0
			}
		}
		r.sec = sec
	}
	if _, ok := r.names[source]; !ok {
		r.names[source] = drift.SignalEventRate + source
	}
	r.counts[source]++
}
