package api

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online/drift"
	"github.com/streamrec/streamrec/internal/online/eval"
)

// DriftReport is the body of GET /v1/drift.
type DriftReport struct {
	// Detectors holds every detector and distribution check: name, signal,
	// statistic, threshold, alerts (episodes so far) and last_alert_at_ms
	// (null when none).
	Detectors []drift.DetectorState `json:"detectors"`
	// Alerts are the latest alert episodes, oldest first (at most 1,000).
	Alerts []drift.Alert `json:"alerts"`
	// ReferencePinned: the distribution checks' references were pinned by
	// an admin (POST /v1/admin/drift:pin) and are kept across versions.
	ReferencePinned bool `json:"reference_pinned"`
}

func (s *Server) driftReport(c echo.Context) error {
	o := s.online
	if o == nil || o.cfg.Drift == nil {
		return errorf(http.StatusServiceUnavailable, CodeDriftOff, "", "drift monitoring is not running in this API (start it with --eval)")
	}
	for k := range c.QueryParams() {
		return errorf(http.StatusBadRequest, CodeInvalidParameter, k, "unknown query parameter %q", truncate(k, 32))
	}
	return c.JSON(http.StatusOK, driftReportOf(o.cfg.Drift))
}

// driftReportOf is the report of m (alerts an empty array when none).
func driftReportOf(m *drift.Monitor) *DriftReport {
	rep := &DriftReport{Detectors: m.State(), Alerts: m.Markers(0), ReferencePinned: m.Pinned()}
	if rep.Alerts == nil {
		rep.Alerts = []drift.Alert{}
	}
	return rep
}

// adminDriftPin restarts the distribution checks' references with the
// samples from now on and keeps them across model versions (pin), or goes
// back to a reference per version (unpin); it answers GET /v1/drift's report.
func (s *Server) adminDriftPin(pin bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		o := s.online
		if o == nil || o.cfg.Drift == nil {
			return errorf(http.StatusServiceUnavailable, CodeDriftOff, "", "drift monitoring is not running in this API (start it with --eval)")
		}
		if pin {
			o.cfg.Drift.PinReference()
			s.log.Warn("drift: reference pinned by an admin: the next samples of every distribution check are its reference, kept across versions")
		} else {
			o.cfg.Drift.UnpinReference()
			s.log.Warn("drift: reference unpinned: the next model version restarts it")
		}
		return c.JSON(http.StatusOK, driftReportOf(o.cfg.Drift))
	}
}

// RunDriftWindows feeds the drift monitor's per-window series until ctx
// ends: at every half window it reads the last closed produce-time window
// (two back from now, as the Prometheus export does) once, and feeds its
// metrics (drift.WindowMetrics) as signals "window:<metric>"; when the live
// model version changes it restarts the distribution checks' references.
// Without Online.Drift it returns at once.
func (s *Server) RunDriftWindows(ctx context.Context) error {
	o := s.online
	if o == nil || o.cfg.Drift == nil {
		return nil
	}
	w := o.cfg.Window.Milliseconds()
	tick := time.NewTicker(max(o.cfg.Window/2, 10*time.Millisecond))
	defer tick.Stop()
	last := floorDiv(s.now().UnixMilli(), w) - 2
	version := ""
	metrics := make([]eval.Metric, 0, len(drift.WindowMetrics))
	for _, name := range drift.WindowMetrics {
		if m, ok := eval.MetricByName(name); ok {
			metrics = append(metrics, m)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		catalogue := 0
		if ix := s.deps.Items.Index(); ix != nil {
			catalogue = ix.Len()
			if v := ix.Version(); v != version {
				if version != "" {
					if o.cfg.Drift.ResetReferences() {
						s.log.Info("drift: new model version live, distribution references restarted", "version", v)
					} else {
						s.log.Info("drift: new model version live, the admin's pinned reference kept", "version", v)
					}
				}
				version = v
			}
		}
		idx := floorDiv(s.now().UnixMilli(), w) - 2
		for i := last + 1; i <= idx; i++ {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			fields, err := o.cfg.Windows.Window(rctx, o.cfg.Group, cache.WindowByTime, i)
			cancel()
			if err != nil {
				s.log.Debug("drift: reading a window", "index", i, "err", err)
				break // retried at the next tick
			}
			last = i
			if len(fields) == 0 {
				continue
			}
			get := eval.Getter(fields, "")
			for _, m := range metrics {
				if v, ok := m.Of(get, catalogue); ok {
					o.cfg.Drift.Observe(drift.WindowPrefix+m.Name, v)
				}
			}
		}
	}
}

// driftCollector exports every detector's statistic and threshold at scrape
// time; the alert counter is DriftAlerts.
type driftCollector struct {
	m         *drift.Monitor
	statistic *prometheus.Desc
	threshold *prometheus.Desc
}

func newDriftCollector(m *drift.Monitor) *driftCollector {
	return &driftCollector{m: m,
		statistic: prometheus.NewDesc("streamrec_drift_statistic", "Each drift detector's current statistic (PSI for a distribution check).", []string{"detector", "signal"}, nil),
		threshold: prometheus.NewDesc("streamrec_drift_threshold", "Each drift detector's alarm threshold.", []string{"detector", "signal"}, nil)}
}

func (c *driftCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.statistic; ch <- c.threshold }

func (c *driftCollector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range c.m.State() {
		ch <- prometheus.MustNewConstMetric(c.statistic, prometheus.GaugeValue, d.Statistic, d.Name, d.Signal)
		ch <- prometheus.MustNewConstMetric(c.threshold, prometheus.GaugeValue, d.Threshold, d.Name, d.Signal)
	}
}

// NewDriftAlerts is the counter of alert episodes by detector and signal,
// streamrec_drift_alerts_total; give its Inc to the monitor's onAlert.
func NewDriftAlerts() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrec_drift_alerts_total",
		Help: "Drift alert episodes, by detector and signal."}, []string{"detector", "signal"})
}
