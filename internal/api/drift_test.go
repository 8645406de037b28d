package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online/drift"
)

func driftServer(t *testing.T, f *fixture, window time.Duration, now func() time.Time) *drift.Monitor {
	t.Helper()
	return driftServerCfg(t, f, DefaultConfig(), window, now)
}

// driftServerCfg is driftServer with the server's Config.
func driftServerCfg(t *testing.T, f *fixture, cfg Config, window time.Duration, now func() time.Time) *drift.Monitor {
	t.Helper()
	dets, dists := drift.DefaultSpecs()
	dets = append(dets, drift.DetectorSpec{Name: "step", Signal: "x", Kind: drift.KindPageHinkley, PH: drift.PageHinkleyConfig{Scale: 5}, Cooldown: 1 << 30})
	m, err := drift.NewMonitor(dets, dists, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, Deps{Items: f.items, Store: f.store, Publisher: f.pub, Now: now, Models: f.store,
		Online: &Online{Log: f.store, Windows: f.store, Group: "g", Window: window, CountWindow: 100, Partitions: 4, Drift: m}})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	return m
}

// GET /v1/drift: 503 without monitoring, 400 on a query parameter, and the
// state of every detector with its alert episodes; alerts are markers in the
// online series.
func TestDriftEndpoint(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	if w := f.do(http.MethodGet, "/v1/drift", ""); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), CodeDriftOff) {
		t.Fatalf("without monitoring: %d %s", w.Code, w.Body)
	}
	f.now = time.Now()
	m := driftServer(t, f, time.Minute, func() time.Time { return f.now })
	if w := f.do(http.MethodGet, "/v1/drift?x=1", ""); w.Code != http.StatusBadRequest {
		t.Fatalf("unknown parameter: %d %s", w.Code, w.Body)
	}
	for i := range 4000 {
		x := 0.0
		if i >= 2000 {
			x = 1
		}
		m.Observe("x", x)
	}
	w := f.do(http.MethodGet, "/v1/drift", "")
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var rep struct {
		Detectors []map[string]any `json:"detectors"`
		Alerts    []drift.Alert    `json:"alerts"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	byName := map[string]map[string]any{}
	for _, d := range rep.Detectors {
		for _, k := range []string{"name", "signal", "statistic", "threshold", "alerts", "last_alert_at_ms"} {
			if _, ok := d[k]; !ok {
				t.Fatalf("detector %v lacks %s", d, k)
			}
		}
		byName[d["name"].(string)] = d
	}
	if d := byName["step"]; d == nil || d["alerts"].(float64) != 1 || d["last_alert_at_ms"] == nil {
		t.Fatalf("the stepped detector: %v", d)
	}
	if d := byName["hit_ph"]; d == nil || d["alerts"].(float64) != 0 || d["last_alert_at_ms"] != nil {
		t.Fatalf("an idle detector: %v (want 0 alerts and a null last_alert_at_ms)", d)
	}
	if len(rep.Alerts) != 1 || rep.Alerts[0].Detector != "step" {
		t.Fatalf("alerts %+v", rep.Alerts)
	}
	// A window holding the alert's time shows it as a marker.
	idx := rep.Alerts[0].AtMs / 60000
	if _, err := f.store.ApplyWindows(context.Background(), "g", []cache.OffsetRange{{Partition: 0, From: 0, To: 0}},
		[]cache.WindowDelta{{Kind: cache.WindowByTime, Index: idx, Field: "interactions", Delta: 1}}); err != nil {
		t.Fatal(err)
	}
	w = f.do(http.MethodGet, "/v1/metrics/online?metric=interactions", "")
	var series OnlineSeries
	if err := json.Unmarshal(w.Body.Bytes(), &series); err != nil || len(series.Points) != 1 || len(series.Markers) != 1 || series.Markers[0].Detector != "step" {
		t.Fatalf("series %s (%v)", w.Body, err)
	}
}

// The admin pins the drift reference (and unpins it): behind the token, the
// report says so.
func TestAdminDriftPin(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AdminToken = "tok-drift-pin-0001"
	f := newFixture(t, 10, 4, 1, cfg)
	tok := []string{"Authorization", "Bearer tok-drift-pin-0001"}
	wantError(t, f.do(http.MethodPost, "/v1/admin/drift:pin", "", tok...), http.StatusServiceUnavailable, CodeDriftOff)
	f.now = time.Now()
	m := driftServerCfg(t, f, cfg, time.Minute, func() time.Time { return f.now })
	wantError(t, f.do(http.MethodPost, "/v1/admin/drift:pin", ""), http.StatusUnauthorized, CodeUnauthorized)
	if rep := decode[DriftReport](t, f.do(http.MethodPost, "/v1/admin/drift:pin", "", tok...)); !rep.ReferencePinned || !m.Pinned() {
		t.Fatalf("after pin: %+v", rep.ReferencePinned)
	}
	if rep := decode[DriftReport](t, f.do(http.MethodGet, "/v1/drift", "")); !rep.ReferencePinned {
		t.Fatal("GET /v1/drift does not say the reference is pinned")
	}
	if rep := decode[DriftReport](t, f.do(http.MethodPost, "/v1/admin/drift:unpin", "", tok...)); rep.ReferencePinned || m.Pinned() {
		t.Fatal("unpin left it pinned")
	}
}

// RunDriftWindows feeds each closed window's metrics once.
func TestRunDriftWindows(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	const win = 20 * time.Millisecond
	m := driftServer(t, f, win, time.Now)
	first := time.Now().UnixMilli() / win.Milliseconds()
	var deltas []cache.WindowDelta
	for i := first; i < first+20; i++ {
		deltas = append(deltas, cache.WindowDelta{Kind: cache.WindowByTime, Index: i, Field: "hits", Delta: 3},
			cache.WindowDelta{Kind: cache.WindowByTime, Index: i, Field: "interactions", Delta: 4})
	}
	if _, err := f.store.ApplyWindows(context.Background(), "g", []cache.OffsetRange{{Partition: 0, From: 0, To: 0}}, deltas); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := f.srv.RunDriftWindows(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range m.State() {
		if d.Signal == drift.WindowPrefix+"hit_rate" {
			// About 300 ms / 20 ms windows closed; each fed once.
			if d.Samples < 5 || d.Samples > 20 {
				t.Fatalf("hit_rate window detector: %d samples, want one per closed window", d.Samples)
			}
			return
		}
	}
	t.Fatal("no hit_rate window detector")
}

// GET /v1/status serves the updaters' status records, sorted by member.
func TestStatusEndpoint(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	if w := f.do(http.MethodGet, "/v1/status", ""); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"updaters":[]`) {
		t.Fatalf("no updater: %d %s", w.Code, w.Body)
	}
	for _, m := range []string{"b", "a"} {
		js := `{"member":"` + m + `","group":"updater","at_ms":1,"model_version":"v1","events_applied":5,"users":2,"lag_messages":0,"freshness_p50_seconds":0.02,"freshness_p99_seconds":0.05}`
		if err := f.store.PutStatus(context.Background(), "updater", m, []byte(js), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	w := f.do(http.MethodGet, "/v1/status", "")
	var rep struct {
		Updaters []struct{ Member string } `json:"updaters"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil || len(rep.Updaters) != 2 || rep.Updaters[0].Member != "a" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if w := f.do(http.MethodGet, "/v1/status?x=1", ""); w.Code != http.StatusBadRequest {
		t.Fatalf("unknown parameter: %d", w.Code)
	}
}
