package api

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online/drift"
)

// exportedMetricNames lists the metric names the binaries export: a
// gathered API registry with the online evaluation and drift monitoring (the
// collectors made at scrape time), every Name of internal/api/metrics.go,
// and the updater's counters and gauges (cmd/updater/metrics.go).
func exportedMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	reg := prometheus.NewRegistry()
	dets, dists := drift.DefaultSpecs()
	m, err := drift.NewMonitor(dets, dists, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := New(DefaultConfig(), Deps{Items: f.items, Store: f.store, Publisher: f.pub, Registry: reg, Now: func() time.Time { return now },
		Online: &Online{Log: f.store, Windows: f.store, Group: "g", Window: time.Minute, CountWindow: 100, Partitions: 4, Drift: m}}); err != nil {
		t.Fatal(err)
	}
	alerts := NewDriftAlerts()
	alerts.WithLabelValues("d", "s").Inc() // a vector shows once it has a child
	reg.MustRegister(alerts, NewEffectHistogram())
	// The last closed window, so that streamrec_online_last_window has a sample.
	if _, err := f.store.ApplyWindows(context.Background(), "g", []cache.OffsetRange{{Partition: 0, From: 0, To: 0}},
		[]cache.WindowDelta{{Kind: cache.WindowByTime, Index: now.UnixMilli()/60000 - 2, Field: "interactions", Delta: 1}}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"streamrec_online_last_window", "streamrec_drift_statistic", "streamrec_feedback_to_effect_seconds"} {
		if !names[want] {
			t.Fatalf("the registry lacks %s: %v", want, names)
		}
	}
	api, err := os.ReadFile("metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`Name: "(streamrec_[a-z_0-9]+)"`).FindAllStringSubmatch(string(api), -1) {
		names[m[1]] = true
	}
	// The updater's metrics are built from names in cmd/updater/metrics.go.
	src, err := os.ReadFile("../../cmd/updater/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?:counter|gauge)\("([a-z_0-9]+)"`).FindAllStringSubmatch(string(src), -1) {
		names["streamrec_updater_"+m[1]] = true
	}
	return names
}

// checkNames fails t for every streamrec metric in text that no binary exports.
func checkNames(t *testing.T, what, text string, names map[string]bool) {
	t.Helper()
	used := regexp.MustCompile(`streamrec_[a-z_0-9]+`).FindAllString(text, -1)
	if len(used) == 0 {
		t.Fatalf("%s names no metric", what)
	}
	for _, n := range used {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
		if !names[n] && !names[base] {
			t.Errorf("%s names %s, which no binary exports", what, n)
		}
	}
}

// deploy/prometheus/alerts.yml names only metrics that the binaries export
// (the API's, with the online evaluation and drift monitoring, and the
// updater's gauges and counters), and promtool accepts it when installed.
func TestPrometheusAlertRules(t *testing.T) {
	const path = "../../deploy/prometheus/alerts.yml"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkNames(t, path, string(b), exportedMetricNames(t))
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian's prometheus package ships it): the names were checked, the syntax was not")
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// The Grafana dashboard that docker-compose provisions parses, every panel
// has queries, and every metric they name is one the binaries export.
func TestGrafanaDashboard(t *testing.T) {
	const path = "../../deploy/grafana/provisioning/dashboards/streamrec.json"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.Title == "" || len(d.Panels) < 5 {
		t.Fatalf("dashboard %q with %d panels", d.Title, len(d.Panels))
	}
	names := exportedMetricNames(t)
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			checkNames(t, "panel "+p.Title, q.Expr, names)
		}
	}
}
