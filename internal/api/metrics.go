package api

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's Prometheus metrics, registered on the injected
// registry. Online served-list metrics and drift will get their own struct.
type metrics struct {
	requests    *prometheus.CounterVec   // route, method, code
	latency     *prometheus.HistogramVec // route, method
	recs        *prometheus.CounterVec   // kind: model | feature_tower | popularity
	fallbacks   *prometheus.CounterVec   // reason
	recItems    prometheus.Histogram
	servedStore *prometheus.CounterVec // result: ok | error | skipped | dropped
	servedLog   *prometheus.CounterVec // result: written | dropped | error
	accepted    prometheus.Counter
	rejected    *prometheus.CounterVec // reason
	// intakeReplayed counts answers replayed from a done intake record;
	// intakeRecordErrors counts intake records that could not be read or written.
	intakeReplayed, intakeRecordErrors prometheus.Counter
	acceptBatches                      prometheus.Histogram
	rateLimited                        *prometheus.CounterVec // route
	canary                             *prometheus.CounterVec // outcome
}

// latencyBuckets span 25µs to ~0.8s (doubling): in-process scoring is tens of
// µs, a Redis round trip hundreds of µs, a Kafka acks=all write milliseconds.
var latencyBuckets = prometheus.ExponentialBuckets(25e-6, 2, 16)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrec_api_requests_total",
			Help: "HTTP requests by route template, method and status code (route \"unmatched\" for no route)."},
			[]string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "streamrec_api_request_duration_seconds",
			Help: "HTTP request latency by route template and method, in seconds.", Buckets: latencyBuckets},
			[]string{"route", "method"}),
		recs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrec_api_recommendations_total",
			Help: "Recommendation lists served, by kind: model (the user's embedding), feature_tower or popularity (the fallbacks)."},
			[]string{"kind"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrec_api_fallbacks_total",
			Help: "Recommendation lists served by a fallback (feature tower or popularity), by reason the embedding was not used."}, []string{"reason"}),
		recItems: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "streamrec_api_recommendation_items",
			Help: "Items per served recommendation list.", Buckets: []float64{1, 5, 10, 25, 50, 100, 250, 1000}}),
		servedStore: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrec_api_served_lists_stored_total",
			Help: "Last served lists (without the online evaluation) written to Redis off the request path, by result: ok, error, skipped (Redis already failed in that request), dropped (the writer's queue was full)."},
			[]string{"result"}),
		servedLog: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrec_api_served_log_total",
			Help: "Served lists (version 2) for the online evaluator, by result: written, dropped (the asynchronous writer's queue was full), error."},
			[]string{"result"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamrec_api_interactions_accepted_total",
			Help: "Interactions accepted and acknowledged by Kafka."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrec_api_interactions_rejected_total",
			Help: "Interaction intake requests rejected, by reason (the error code)."}, []string{"reason"}),
		acceptBatches: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "streamrec_api_interaction_batch_events",
			Help: "Events per accepted intake request.", Buckets: []float64{1, 2, 5, 10, 50, 100, 500, 1000, 5000}}),
		intakeReplayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamrec_api_intake_replayed_total",
			Help: "Intake requests answered from a completed request with the same client and Idempotency-Key (nothing published)."}),
		intakeRecordErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamrec_api_intake_record_errors_total",
			Help: "Intake idempotency records that could not be read or written in Redis (the request was published without them)."}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrec_api_rate_limited_total",
			Help: "Requests refused with 429 rate_limited (the client over its token bucket), by route template."}, []string{"route"}),
		canary: newCanaryCounter(),
	}
	for _, c := range []prometheus.Collector{m.rateLimited, m.requests, m.latency, m.recs, m.fallbacks, m.recItems, m.servedStore, m.servedLog,
		m.accepted, m.rejected, m.acceptBatches, m.intakeReplayed, m.intakeRecordErrors, m.canary} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// instrument counts and times every request by route template. It renders
// errors itself (c.Error) so that the status code it records is the one sent.
func (s *Server) instrument(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		route, ok := s.routePaths[c.Path()]
		if !ok {
			route = "unmatched" // bounded label set: never the raw request path
		}
		method := c.Request().Method
		s.metrics.latency.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(c.Response().Status)).Inc()
		return nil
	}
}
