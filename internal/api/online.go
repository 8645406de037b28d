package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online/drift"
	"github.com/streamrec/streamrec/internal/online/eval"
	"github.com/streamrec/streamrec/internal/stream"
)

// ServedLogStore stores served lists (version 2) for the online evaluator;
// *cache.Store implements it.
type ServedLogStore interface {
	PutServedRecord(ctx context.Context, r *cache.ServedRecord) (int64, error)
}

// WindowReader reads the online evaluator's shared windows; *cache.Store
// implements it.
type WindowReader interface {
	Window(ctx context.Context, group string, kind byte, index int64) (map[string]int64, error)
	WindowIndexes(ctx context.Context, group string, kind byte) ([]int64, error)
}

// Online wires the online evaluation into the server: every served list is
// written to the served-list log off the request path, and the evaluator's
// windows are served at GET /v1/metrics/online and exported to Prometheus.
type Online struct {
	Log     ServedLogStore
	Windows WindowReader
	// Group, Window and CountWindow are the evaluator's (eval.RunnerConfig,
	// eval.Config).
	Group       string
	Window      time.Duration
	CountWindow int
	// Partitions is the interactions topic's partition count (a list is
	// indexed under its user's partition).
	Partitions int
	// Queue bounds the lists waiting to be written; a full queue drops the
	// list and counts it (a request never waits). Default: 4096.
	Queue int
	// WriteTimeout bounds one write. Default: 1 s.
	WriteTimeout time.Duration
	// Drift, if not nil, is the drift monitor the evaluator feeds: served at
	// GET /v1/drift, its alerts kept as markers in GET /v1/metrics/online,
	// its statistics exported to Prometheus; RunDriftWindows feeds it the
	// per-window series.
	Drift *drift.Monitor
}

type onlineState struct {
	cfg     Online
	replica string
	seq     atomic.Uint64
	queue   chan *cache.ServedRecord
}

func newOnlineState(o *Online) *onlineState {
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = time.Second
	}
	if o.Group == "" {
		o.Group = "online"
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &onlineState{cfg: *o, replica: hex.EncodeToString(b[:]), queue: make(chan *cache.ServedRecord, o.Queue)}
}

// offer queues a served list; it never blocks.
func (s *Server) offerServed(r *cache.ServedRecord) {
	o := s.online
	r.ID = o.replica + "-" + strconv.FormatUint(o.seq.Add(1), 36)
	r.Partition = int32(stream.PartitionFor(r.User, o.cfg.Partitions))
	select {
	case o.queue <- r:
	default:
		s.metrics.servedLog.WithLabelValues("dropped").Inc()
	}
}

// RunServedLog writes the queued served lists until ctx ends, then drains
// what is queued within drain: to the served-list log with Online, else the
// last-list records (servedlast.go). It returns nil.
func (s *Server) RunServedLog(ctx context.Context, drain time.Duration) error {
	o := s.online
	if o == nil {
		return s.runLastServed(ctx, drain)
	}
	write := func(wctx context.Context, r *cache.ServedRecord) {
		wctx, cancel := context.WithTimeout(wctx, o.cfg.WriteTimeout)
		defer cancel()
		if _, err := o.cfg.Log.PutServedRecord(wctx, r); err != nil {
			s.metrics.servedLog.WithLabelValues("error").Inc()
			s.log.Debug("writing a served list", "user", r.User, "err", err)
			return
		}
		s.metrics.servedLog.WithLabelValues("written").Inc()
	}
	// Writes are bounded by WriteTimeout, not by ctx: a list dequeued as ctx
	// ends is still written.
	wctx := context.WithoutCancel(ctx)
	for {
		select {
		case r := <-o.queue:
			write(wctx, r)
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), drain)
			defer cancel()
			for {
				select {
				case r := <-o.queue:
					write(dctx, r)
				default:
					return nil
				}
			}
		}
	}
}

// OnlinePoint is one window of GET /v1/metrics/online.
type OnlinePoint struct {
	Index   int64              `json:"index"`
	StartMs *int64             `json:"start_ms,omitempty"`
	Values  map[string]float64 `json:"values"`
}

// OnlineSeries is the body of GET /v1/metrics/online.
type OnlineSeries struct {
	Kind        string        `json:"kind"`
	WindowMs    int64         `json:"window_ms,omitempty"`
	CountWindow int           `json:"count_window,omitempty"`
	Tag         string        `json:"tag,omitempty"`
	Points      []OnlinePoint `json:"points"`
	// Markers are the drift alert episodes since the first point's window
	// (time windows; absent without drift monitoring).
	Markers []drift.Alert `json:"markers,omitempty"`
}

const maxOnlinePoints = 1000

func (s *Server) onlineMetrics(c echo.Context) error {
	o := s.online
	if o == nil {
		return errorf(http.StatusServiceUnavailable, CodeOnlineOff, "", "the online evaluation is not running in this API (start it with --eval)")
	}
	q := c.QueryParams()
	for k := range q {
		switch k {
		case "metric", "kind", "since", "limit", "source", "fallback":
		default:
			return errorf(http.StatusBadRequest, CodeInvalidParameter, k, "unknown query parameter %q", truncate(k, 32))
		}
	}
	kind := byte(cache.WindowByTime)
	out := OnlineSeries{Kind: "time", WindowMs: o.cfg.Window.Milliseconds()}
	switch q.Get("kind") {
	case "", "time":
	case "count":
		kind, out = cache.WindowByCount, OnlineSeries{Kind: "count", CountWindow: o.cfg.CountWindow}
	default:
		return errorf(http.StatusBadRequest, CodeInvalidParameter, "kind", "kind: want time or count")
	}
	var metrics []eval.Metric
	if name := q.Get("metric"); name != "" {
		m, ok := eval.MetricByName(name)
		if !ok {
			return errorf(http.StatusBadRequest, CodeInvalidParameter, "metric", "metric %q: unknown (see the OpenAPI document)", truncate(name, 32))
		}
		metrics = []eval.Metric{m}
	} else {
		metrics = eval.Metrics
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxOnlinePoints {
			return errorf(http.StatusBadRequest, CodeInvalidParameter, "limit", "limit: want an integer in [1, %d]", maxOnlinePoints)
		}
		limit = n
	}
	since := int64(math.MinInt64)
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return errorf(http.StatusBadRequest, CodeInvalidParameter, "since", "since: want an integer (Unix ms for time windows, a window index for count windows)")
		}
		since = n
		if kind == cache.WindowByTime {
			since = floorDiv(n, o.cfg.Window.Milliseconds())
		}
	}
	switch src, fb := q.Get("source"), q.Get("fallback"); {
	case src != "" && fb != "":
		return errorf(http.StatusBadRequest, CodeInvalidParameter, "source", "give source or fallback, not both")
	case src != "":
		if _, err := stream.ParseSource(src); err != nil {
			return errorf(http.StatusBadRequest, CodeInvalidParameter, "source", "source: want replay, api or simulator")
		}
		out.Tag = "source=" + src
	case fb != "":
		if fb != "none" && fb != eval.FallbackFeatureTower && fb != eval.FallbackPopularity {
			return errorf(http.StatusBadRequest, CodeInvalidParameter, "fallback", "fallback: want none, feature_tower or popularity")
		}
		out.Tag = "fallback=" + fb
	}
	ctx := c.Request().Context()
	idx, err := o.cfg.Windows.WindowIndexes(ctx, o.cfg.Group, kind)
	if err != nil {
		s.log.Warn("reading online windows", "err", err)
		return errorf(http.StatusServiceUnavailable, CodeOnlineStoreDown, "", "the online metrics store is unavailable")
	}
	first := 0
	for first < len(idx) && idx[first] < since {
		first++
	}
	idx = idx[first:]
	if len(idx) > limit {
		idx = idx[len(idx)-limit:]
	}
	catalogue := 0
	if ix := s.deps.Items.Index(); ix != nil {
		catalogue = ix.Len()
	}
	out.Points = make([]OnlinePoint, 0, len(idx))
	for _, i := range idx {
		fields, err := o.cfg.Windows.Window(ctx, o.cfg.Group, kind, i)
		if err != nil {
			s.log.Warn("reading an online window", "index", i, "err", err)
			return errorf(http.StatusServiceUnavailable, CodeOnlineStoreDown, "", "the online metrics store is unavailable")
		}
		p := OnlinePoint{Index: i, Values: map[string]float64{}}
		if kind == cache.WindowByTime {
			start := i * o.cfg.Window.Milliseconds()
			p.StartMs = &start
		}
		get := eval.Getter(fields, out.Tag)
		for _, m := range metrics {
			if v, ok := m.Of(get, catalogue); ok {
				p.Values[m.Name] = v
			}
		}
		out.Points = append(out.Points, p)
	}
	if o.cfg.Drift != nil && kind == cache.WindowByTime && len(out.Points) > 0 {
		out.Markers = o.cfg.Drift.Markers(*out.Points[0].StartMs)
	}
	return c.JSON(http.StatusOK, &out)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// onlineCollector exports the last closed time window (two windows back from
// now, past the evaluator's grace period) to Prometheus at scrape time.
type onlineCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func (c *onlineCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *onlineCollector) Collect(ch chan<- prometheus.Metric) {
	o := c.s.online
	w := o.cfg.Window.Milliseconds()
	idx := floorDiv(c.s.now().UnixMilli(), w) - 2
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	fields, err := o.cfg.Windows.Window(ctx, o.cfg.Group, cache.WindowByTime, idx)
	if err != nil {
		return // the scrape shows the metric missing; /readyz reports Redis
	}
	catalogue := 0
	if ix := c.s.deps.Items.Index(); ix != nil {
		catalogue = ix.Len()
	}
	get := eval.Getter(fields, "")
	for _, m := range eval.Metrics {
		if v, ok := m.Of(get, catalogue); ok {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, m.Name)
		}
	}
}

// IndexScorer scores videos for the online evaluator's prequential metrics
// from the live item index (eval.Scorer). A vector whose dimension is not the
// index's (a list served under another model version) is not scored.
type IndexScorer struct{ Items ItemSource }

// Predict is the calibrated watch-ratio prediction mu + bias + <vec, v> + b_v.
func (s IndexScorer) Predict(vec []float32, bias float32, video uint32) (float64, bool) {
	ix := s.Items.Index()
	if ix == nil || len(vec) != ix.Dim() {
		return 0, false
	}
	sc, ok := ix.Score(vec, video, true)
	if !ok {
		return 0, false
	}
	return ix.Meta().Calibration.GlobalMean + float64(bias) + float64(sc), true
}

// Rank is 1 + the number of videos of the candidate set ("" for the
// catalogue) scoring above video under vec (a scan; the evaluator samples it).
func (s IndexScorer) Rank(vec []float32, video uint32, candidates string) (int, bool) {
	ix := s.Items.Index()
	if ix == nil || len(vec) != ix.Dim() {
		return 0, false
	}
	return rankAmong(ix, vec, video, candidates)
}

// rankAmong is 1 + the number of videos of ix's candidate set scoring
// above video under vec; false when the video or the set is not in ix.
func rankAmong(ix *cache.ItemIndex, vec []float32, video uint32, candidates string) (int, bool) {
	among := ix
	if candidates != "" {
		sub, ok := ix.Candidates(candidates)
		if !ok {
			return 0, false
		}
		among = sub
	}
	target, ok := among.Score(vec, video, true)
	if !ok {
		return 0, false
	}
	rank := 1
	for _, id := range among.IDs() {
		if sc, _ := among.Score(vec, id, true); sc > target {
			rank++
		}
	}
	return rank, true
}

// IndexPopularity gives a video's popularity percentile for the online
// evaluator (eval.Config.Popularity): its rank by the model's item bias (the
// order of the popularity fallback), 1 for the most popular and 0 for the
// least, recomputed once per model version. An unknown video is 0.
type IndexPopularity struct {
	Items ItemSource
	table atomic.Pointer[popTable]
}

type popTable struct {
	version string
	pct     map[uint32]float64
}

// Percentile implements eval.Config.Popularity.
func (p *IndexPopularity) Percentile(video uint32) float64 {
	ix := p.Items.Index()
	if ix == nil {
		return 0
	}
	t := p.table.Load()
	if t == nil || t.version != ix.Version() {
		ids := ix.IDs()
		type ib struct {
			id   uint32
			bias float32
		}
		all := make([]ib, len(ids))
		for i, id := range ids {
			_, b, _ := ix.Item(id)
			all[i] = ib{id, b}
		}
		slices.SortFunc(all, func(a, b ib) int {
			switch {
			case a.bias < b.bias:
				return -1
			case a.bias > b.bias:
				return 1
			}
			return int(int64(a.id) - int64(b.id))
		})
		t = &popTable{version: ix.Version(), pct: make(map[uint32]float64, len(all))}
		for i, x := range all {
			if len(all) > 1 {
				t.pct[x.id] = float64(i) / float64(len(all)-1)
			} else {
				t.pct[x.id] = 1
			}
		}
		p.table.Store(t)
	}
	return t.pct[video]
}
