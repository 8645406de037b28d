package api

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online/eval"
)

// EffectHistogram is the feedback-to-effect latency as a Prometheus
// histogram, streamrec_feedback_to_effect_seconds: from an interaction's
// produce time to the first served list whose user embedding includes it,
// buckets from 1 ms to 60 s (eval.F2EBucketsMS). It counts what this
// process's evaluator runner applied (Observe is its RunnerConfig.Applied),
// so each replica exports the partitions it evaluates and a restart starts
// the counters again, as Prometheus counters do; the windows of
// GET /v1/metrics/online hold every replica's total.
type EffectHistogram struct {
	desc    *prometheus.Desc
	mu      sync.Mutex
	buckets []uint64 // per bucket, not cumulative; the last is beyond 60 s
	count   uint64
	sumMS   int64
}

// NewEffectHistogram returns an empty histogram.
func NewEffectHistogram() *EffectHistogram {
	return &EffectHistogram{
		desc: prometheus.NewDesc("streamrec_feedback_to_effect_seconds",
			"Seconds from an interaction's produce time to the first served list whose user embedding includes it (the partitions this replica evaluates).", nil, nil),
		buckets: make([]uint64, len(eval.F2EBucketsMS)+1),
	}
}

// Observe adds a batch's time-window increments (eval.RunnerConfig.Applied).
func (h *EffectHistogram) Observe(deltas []cache.WindowDelta) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range deltas {
		if d.Kind != cache.WindowByTime || d.Distinct || !strings.HasPrefix(d.Field, "f2e_") || strings.Contains(d.Field, "|") {
			continue
		}
		switch d.Field {
		case "f2e_n":
			h.count += uint64(d.Delta)
		case "f2e_sum_ms":
			h.sumMS += d.Delta
		default:
			for i := range h.buckets {
				if d.Field == eval.F2EField(i) {
					h.buckets[i] += uint64(d.Delta)
					break
				}
			}
		}
	}
}

// Describe implements prometheus.Collector.
func (h *EffectHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

// Collect implements prometheus.Collector.
func (h *EffectHistogram) Collect(ch chan<- prometheus.Metric) {
	h.mu.Lock()
	cum, b := uint64(0), make(map[float64]uint64, len(eval.F2EBucketsMS))
	for i, ms := range eval.F2EBucketsMS {
		cum += h.buckets[i]
		b[float64(ms)/1000] = cum
	}
	count, sum := h.count, float64(h.sumMS)/1000
	h.mu.Unlock()
	ch <- prometheus.MustNewConstHistogram(h.desc, count, sum, b)
}
