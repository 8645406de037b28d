package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamrec/streamrec/internal/api"
	"github.com/streamrec/streamrec/internal/online/drift"
)

// replay report renders an API's series and drift statistics to PNG files
// of the asked size, with the alert as a marker.
func TestReport(t *testing.T) {
	series := api.OnlineSeries{Kind: "time", WindowMs: 60000, Markers: []drift.Alert{{AtMs: 1_700_000_300_000, Detector: "hit_adwin", Signal: "hit", Direction: "down"}}}
	for i := range 10 {
		start := int64(1_700_000_000_000 + i*60000)
		series.Points = append(series.Points, api.OnlinePoint{Index: start / 60000, StartMs: &start, Values: map[string]float64{
			"precision_2": 0.1 + 0.01*float64(i), "ndcg_graded": 0.6, "hit_rate": 0.4, "live_abs_err": 0.4, "twin_abs_err": 0.45,
			"live_twin_abs_err_ratio": 0.9, "feedback_to_effect_p50_ms": 20, "feedback_to_effect_p99_ms": 50, "interactions": 600}})
	}
	last := int64(0)
	rep := api.DriftReport{Detectors: []drift.DetectorState{{Name: "hit_adwin", Signal: "hit", Kind: "adwin", Statistic: 1.2, Threshold: 1, Alerts: 1, LastAlertAtMs: &last}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/metrics/online":
			json.NewEncoder(w).Encode(series)
		case "/v1/drift":
			json.NewEncoder(w).Encode(rep)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"report", "--from", srv.URL, "--out", dir, "--width", "800", "--height", "400"}, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "report: 5 charts from 10 windows") || !strings.Contains(out.String(), "1 alert markers") {
		t.Fatalf("output:\n%s", out.String())
	}
	for _, f := range []string{"quality.png", "twin.png", "latency.png", "sources.png", "drift.png"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if sz := img.Bounds().Size(); sz.X != 800 || sz.Y != 400 {
			t.Errorf("%s: %v, want 800x400", f, sz)
		}
	}
	if err := run(t.Context(), []string{"report", "--from", srv.URL}, &out, &errb); err == nil || !strings.Contains(fmt.Sprint(err), "--out") {
		t.Fatalf("without --out: %v", err)
	}
}
