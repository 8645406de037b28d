package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/streamrec/streamrec/internal/cache"
)

// The dashboard's files are text: the document validator reads them as such.
func init() {
	for _, ct := range []string{"text/html", "text/javascript", "text/css"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
}

func TestDashboardFiles(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	for path, ct := range map[string]string{"/dashboard": "text/html", "/dashboard/app.js": "text/javascript", "/dashboard/style.css": "text/css"} {
		w := f.do(http.MethodGet, path, "")
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), ct) || w.Body.Len() < 100 {
			t.Errorf("%s: %d %q, %d bytes", path, w.Code, w.Header().Get("Content-Type"), w.Body.Len())
		}
	}
	if w := f.do(http.MethodGet, "/dashboard/secret.txt", ""); w.Code != http.StatusNotFound {
		t.Errorf("an unknown file: %d", w.Code)
	}
	// Nothing is fetched from outside the API.
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		b, _ := dashboardFS.ReadFile("dashboard/" + name)
		for _, u := range regexp.MustCompile(`https?://[^"' )]+`).FindAllString(string(b), -1) {
			if u != "http://www.w3.org/2000/svg" { // the SVG namespace name, not fetched
				t.Errorf("%s refers to another host: %s", name, u)
			}
		}
	}
}

// chromiumPath finds Debian's chromium (the test command installs it).
func chromiumPath() string {
	for _, p := range []string{os.Getenv("STREAMREC_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	p, _ := exec.LookPath("chromium")
	return p
}

// The dashboard in headless Chromium: an API with an online evaluation's
// windows (the last 12 one-minute windows) and a drift monitor that has fired
// once; the page fetches the documented endpoints and draws. The DOM that
// Chromium rendered must hold the charts' data points (SVG circles on the
// series' paths), one bar per detector, the model version, and the alert as
// a marker line on the quality chart. A screenshot goes to out/dashboard.png.
func TestDashboardInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("no Chromium (the test command installs Debian's chromium package)")
	}
	f := newFixture(t, 30, 4, 1, DefaultConfig())
	m := driftServer(t, f, time.Minute, time.Now)
	for i := range 4000 { // one alert episode on detector "step"
		x := 0.0
		if i >= 2000 {
			x = 1
		}
		m.Observe("x", x)
	}
	now := time.Now().UnixMilli() / 60000
	var deltas []cache.WindowDelta
	for i := now - 12; i <= now; i++ {
		k := int64(i - now + 12)
		for field, v := range map[string]int64{"interactions": 100 + 5*k, "hits": 40 + k, "lists": 20, "prec2_u": 20 * (100000 + 3000*k),
			"ndcg_graded_u": 20 * (600000 + 5000*k), "ndcg_graded_n": 20, "twin_n": 50, "live_abs_err_u": 50 * (400000 - 5000*k), "twin_abs_err_u": 50 * 450000,
			"interactions|source=simulator": 80, "interactions|source=api": 20 + 5*k, "f2e_n": 10, "f2e_sum_ms": 300, "f2e_le_20": 6, "f2e_le_50": 4} {
			deltas = append(deltas, cache.WindowDelta{Kind: cache.WindowByTime, Index: i, Field: field, Delta: v})
		}
	}
	if _, err := f.store.ApplyWindows(context.Background(), "g", []cache.OffsetRange{{Partition: 0, From: 0, To: 0}}, deltas); err != nil {
		t.Fatal(err)
	}
	if err := f.store.PutStatus(context.Background(), "updater", "u1", []byte(`{"member":"u1","group":"updater","at_ms":`+strconv.FormatInt(time.Now().UnixMilli(), 10)+
		`,"model_version":"v1","events_applied":5,"users":2,"lag_messages":3,"freshness_p50_seconds":0.02,"freshness_p99_seconds":0.05}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	// The versions timeline: v2, retrained from the log, then a rollback to v1.
	m2 := f.model
	m2.Version, m2.TrainedOffsets = "v2", map[int32]int64{0: 99}
	if _, err := f.store.Publish(context.Background(), m2); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A canary of a staged v3, rolled back.
	m3 := f.model
	m3.Version, m3.Staged = "v3", true
	if _, err := f.store.Publish(context.Background(), m3); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.StartCanary(context.Background(), cache.Canary{Version: "v3", Share: 0.1, Windows: 1, Threshold: 0.1}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.EndCanary(context.Background(), "v3", false); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.srv.Echo())
	defer srv.Close()
	args := func(extra ...string) []string {
		return append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
			"--disable-sync", "--no-first-run", "--disable-quic", "--user-data-dir=" + t.TempDir(), "--window-size=1400,1100",
			"--virtual-time-budget=4000"}, extra...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	dom, err := exec.CommandContext(ctx, chromium, args("--dump-dom", srv.URL+"/dashboard")...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	t.Logf("chromium rendered the dashboard in %v (process start included), %d bytes of DOM", time.Since(start).Round(time.Millisecond), len(dom))
	chart := func(id string) string {
		re := regexp.MustCompile(`(?s)<svg id="` + id + `"[^>]*>(.*?)</svg>`)
		m := re.FindSubmatch(dom)
		if m == nil {
			t.Fatalf("no svg #%s in the DOM", id)
		}
		return string(m[1])
	}
	count := func(s, pat string) int { return len(regexp.MustCompile(pat).FindAllString(s, -1)) }
	q := chart("quality")
	if n := count(q, `<circle[^>]*class="point"`); n < 3*13 {
		t.Errorf("quality chart: %d data points, want 3 series x 13 windows", n)
	}
	if count(q, `<path[^>]*d="M[0-9.]+,[0-9.]+ L`) < 3 {
		t.Errorf("quality chart: fewer than 3 drawn lines")
	}
	if count(q, `<line[^>]*class="marker"`) != 1 {
		t.Errorf("quality chart: the injected alert is not marked once:\n%s", q)
	}
	if n := count(chart("twin"), `<circle[^>]*class="point"`); n < 2*13 {
		t.Errorf("twin chart: %d points", n)
	}
	if n := count(chart("sources"), `<circle[^>]*class="point"`); n < 2*13 {
		t.Errorf("sources chart: %d points, want the api and simulator series", n)
	}
	if n := count(chart("latency"), `<circle[^>]*class="point"`); n < 13 {
		t.Errorf("latency chart: %d points", n)
	}
	d := chart("drift")
	if count(d, `<rect[^>]*class="bar"`) != len(m.State()) || !strings.Contains(d, `data-detector="step"`) {
		t.Errorf("drift chart: want one bar per detector (%d):\n%s", len(m.State()), d)
	}
	if n := count(chart("updaters"), `<circle[^>]*class="point"`); n < 2 {
		t.Errorf("updaters chart: %d points, want the lag and freshness of the one updater", n)
	}
	mc := chart("models")
	if count(mc, `<circle[^>]*class="version"`) != 2 || count(mc, `<circle[^>]*class="version retrained"[^>]*data-version="v2"`) != 1 {
		t.Errorf("models chart: want v1, v3 and v2 (marked retrained):\n%s", mc)
	}
	if count(mc, `<path[^>]*class="event rollback"[^>]*data-version="v1"`) != 1 {
		t.Errorf("models chart: the rollback to v1 is not marked:\n%s", mc)
	}
	if count(mc, `<path[^>]*class="event canary_start"`) != 1 || count(mc, `<path[^>]*class="event canary_rolled_back"`) != 1 {
		t.Errorf("models chart: the canary's start and rollback are not marked:\n%s", mc)
	}
	if ms := regexp.MustCompile(`id="first-chart-ms"[^>]*>([0-9]+)<`).FindSubmatch(dom); ms != nil {
		v, _ := strconv.Atoi(string(ms[1]))
		t.Logf("time to first chart (page start to the first charts drawn, Chromium's virtual time): %d ms", v)
	}
	shot, _ := filepath.Abs("../../out/dashboard.png")
	if err := os.MkdirAll(filepath.Dir(shot), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, chromium, args("--screenshot="+shot, srv.URL+"/dashboard")...).CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}
