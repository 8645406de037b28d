package api

import (
	"context"
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

// deploy/prometheus/alerts.yml names only metrics that the binaries export
// (the API's, with the online evaluation and drift monitoring, and the
// updater's gauges and counters), and promtool accepts it when installed.
func TestPrometheusAlertRules(t *testing.T) {
	const path = "../../deploy/prometheus/alerts.yml"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
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
	// The updater's metrics are built from names in cmd/updater/metrics.go.
	src, err := os.ReadFile("../../cmd/updater/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?:counter|gauge)\("([a-z_0-9]+)"`).FindAllStringSubmatch(string(src), -1) {
		names["streamrec_updater_"+m[1]] = true
	}
	used := regexp.MustCompile(`streamrec_[a-z_0-9]+`).FindAllString(string(b), -1)
	if len(used) == 0 {
		t.Fatal("the rules name no metric")
	}
	for _, n := range used {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
		if !names[n] && !names[base] {
			t.Errorf("%s names %s, which no binary exports", path, n)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian's prometheus package ships it): the names were checked, the syntax was not")
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
