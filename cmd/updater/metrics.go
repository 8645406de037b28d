package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/streamrec/streamrec/internal/online"
	"github.com/streamrec/streamrec/internal/stream"
)

// newMetrics registers the updater's metrics on reg. Counters are read from the
// updater and the consumer at scrape time, so the hot path pays nothing.
func newMetrics(reg prometheus.Registerer, u *online.Updater, c *stream.Consumer, sched *online.LRSchedule) {
	reg.MustRegister(lagCollector{c}, poisonCollector{u.Poison()})
	fresh := &quantileCache{r: u.Freshness()}
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "streamrec", Subsystem: "updater", Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "streamrec", Subsystem: "updater", Name: name, Help: help}, f)
	}
	reg.MustRegister(
		counter("events_applied_total", "Events whose SGD step was applied to the user vector.", func() uint64 { return u.Counters().Applied }),
		counter("redelivered_skipped_total", "Messages skipped because the user's state already covers their input position (a redelivery after a crash, a rebalance or a retry).", func() uint64 { return u.Counters().Redelivered }),
		counter("duplicates_skipped_total", "Messages skipped because their event id is in the user's ring of recent events (the same event published twice).", func() uint64 { return u.Counters().Duplicates }),
		counter("fenced_writes_total", "Redis user writes refused because Redis held a record from a newer fencing epoch (another updater owns the partition now).", func() uint64 { return u.Counters().Fenced }),
		counter("repaired_users_total", "Users written again after a restore because their latest changelog record was a stale writer's.", func() uint64 { return u.Counters().Repaired }),
		counter("trained_skipped_total", "Events skipped because the current model version was trained on them (its cut or its log offsets).", func() uint64 { return u.Counters().Trained }),
		counter("handover_replayed_total", "Events re-applied from users' rings when they were re-based on a new model version (or a rollback).", func() uint64 { return u.Counters().HandoverReplayed }),
		counter("handover_truncated_total", "Users re-based on a new version whose ring may not have held every event the version did not train on.", func() uint64 { return u.Counters().HandoverTruncated }),
		counter("late_events_total", "Events applied although older (event time) than the user's newest applied event.", func() uint64 { return u.Counters().Late }),
		counter("cold_items_total", "Events for a video without an embedding (recorded in the user's state, no step).", func() uint64 { return u.Counters().ColdItems }),
		counter("new_users_total", "Users first seen without an offline vector.", func() uint64 { return u.Counters().NewUsers }),
		counter("flushes_total", "Flushes of dirty users to the changelog and Redis.", func() uint64 { return u.Counters().Flushes }),
		counter("user_writes_total", "User states written to the changelog and Redis (coalesced per flush).", func() uint64 { return u.Counters().Written }),
		counter("stale_writes_skipped_total", "Redis writes skipped because Redis held a newer record.", func() uint64 { return u.Counters().Stale }),
		counter("events_fetched_total", "Messages fetched from the interactions topic.", func() uint64 { return c.Stats().Fetched }),
		counter("dead_letters_total", "Malformed messages sent to the dead-letter topic.", func() uint64 { return c.Stats().DeadLettered }),
		counter("commit_errors_total", "Offset commits that failed (a later commit covers them).", func() uint64 { return c.Stats().CommitErrors }),
		counter("handler_retries_total", "Handler calls that failed before applying their batch (offline vectors unreadable) and were retried.", func() uint64 { return c.Stats().HandlerRetries }),
		counter("flush_retries_total", "Flushes to the changelog and Redis that failed and were retried.", func() uint64 { return u.Counters().FlushRetries }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "streamrec", Subsystem: "updater", Name: "prequential_abs_error_total",
			Help: "Sum of |prediction before the step - capped watch ratio| over applied events (test-then-train); divide its rate by events_applied_total's for the online MAE."},
			func() float64 { return u.Counters().AbsError }),
		counter("dense_steps_total", "Events whose gradient reached the dense user tower (dense mode; the dense weights' version within the model version).", u.DenseSteps),
		gauge("users", "Users with state held by this instance.", func() float64 { return float64(u.Users()) }),
		gauge("items", "Items of the model version applied (the published ones and the videos registered after training).", func() float64 {
			if x, ok := u.Items().(interface{ Len() int }); ok {
				return float64(x.Len())
			}
			return 0
		}),
		gauge("freshness_p50_seconds", "Median delay from event produced to embedding in Redis (last 65536 events; computed at most once a second).", func() float64 {
			return fresh.get(0)
		}),
		gauge("lr_factor", "The learning-rate factor of an event produced now (a drift action's control record; 1 when none is active).", func() float64 {
			if sched == nil {
				return 1
			}
			return float64(sched.Factor(time.Now().UnixMilli()))
		}),
		gauge("freshness_p99_seconds", "99th percentile delay from event produced to embedding in Redis (last 65536 events; computed at most once a second).", func() float64 {
			return fresh.get(1)
		}),
	)
}

// FlushSeconds is the histogram of flush durations (changelog + Redis writes).
var flushBuckets = []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2}

func newFlushHistogram(reg prometheus.Registerer) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "streamrec", Subsystem: "updater", Name: "flush_seconds",
		Help: "Time to write one flush of dirty users to the changelog (acks=all) and Redis.", Buckets: flushBuckets})
	reg.MustRegister(h)
	return h
}

// latenessBuckets span a second to a decade: a replayed 2020 event among
// live ones is years late.
var latenessBuckets = []float64{1, 10, 60, 600, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400, 3 * 365 * 86400, 10 * 365 * 86400}

func newLatenessHistogram(reg prometheus.Registerer) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "streamrec", Subsystem: "updater", Name: "late_event_lateness_seconds",
		Help: "How far a late event's time is behind its user's newest applied event.", Buckets: latenessBuckets})
	reg.MustRegister(h)
	return h
}

// quantileCache computes the freshness quantiles (a sort of up to 65536
// samples) at most once a second, for both gauges, however often /metrics is
// scraped.
type quantileCache struct {
	r  *online.Reservoir
	mu sync.Mutex
	at time.Time
	q  []float64
}

func (c *quantileCache) get(i int) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.q == nil || time.Since(c.at) >= time.Second {
		c.q, _ = c.r.Quantiles(0.5, 0.99)
		c.at = time.Now()
	}
	return c.q[i]
}

var poisonDesc = prometheus.NewDesc("streamrec_updater_poison_records_total",
	"Records skipped because they do not decode (counted, logged once with their position, never retried), by reason: "+
		"changelog_key, changelog_state, dense_checkpoint, redis_user.", []string{"reason"}, nil)

// poisonCollector reports the poison counts at scrape time; every reason is
// exported from the start, at 0.
type poisonCollector struct{ p *online.Poison }

func (c poisonCollector) Describe(ch chan<- *prometheus.Desc) { ch <- poisonDesc }

func (c poisonCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.p.Counts()
	for _, r := range []string{online.PoisonChangelogKey, online.PoisonChangelogState, online.PoisonDense, online.PoisonRedisUser} {
		ch <- prometheus.MustNewConstMetric(poisonDesc, prometheus.CounterValue, float64(counts[r]), r)
	}
}

var lagDesc = prometheus.NewDesc("streamrec_updater_consumer_lag_messages",
	"Messages behind the end of each owned partition of the interactions topic.", []string{"partition"}, nil)

// lagCollector reports the consumer's lag per owned partition at scrape time.
type lagCollector struct{ c *stream.Consumer }

func (l lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (l lagCollector) Collect(ch chan<- prometheus.Metric) {
	for p, n := range l.c.Stats().PartitionLag {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(n), strconv.Itoa(p))
	}
}

func serveMetrics(addr string, reg *prometheus.Registry) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/heap", pprof.Index)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return srv, nil
}
