package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRateLimit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RateLimit, cfg.RateBurst = 1, 2
	f := newFixture(t, 10, 4, 1, cfg)
	get := func(hdr ...string) int {
		return f.do(http.MethodGet, "/v1/users/1/recommendations?k=3", "", hdr...).Code
	}
	if a, b := get(ClientHeader, "phone-1"), get(ClientHeader, "phone-1"); a != 200 || b != 200 {
		t.Fatalf("within the burst: %d %d", a, b)
	}
	w := f.do(http.MethodGet, "/v1/users/1/recommendations?k=3", "", ClientHeader, "phone-1")
	wantError(t, w, http.StatusTooManyRequests, CodeRateLimited)
	if ra := w.Header().Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After %q", ra)
	}
	// Intake is limited by the same bucket; nothing is published.
	calls := f.pub.Calls()
	wantError(t, f.do(http.MethodPost, "/v1/interactions", okEvent, ClientHeader, "phone-1"), http.StatusTooManyRequests, CodeRateLimited)
	if f.pub.Calls() != calls {
		t.Fatal("a limited request was published")
	}
	// Other clients, anonymous included, have their own buckets; health,
	// readiness and the document are not limited.
	if c := get(ClientHeader, "phone-2"); c != 200 {
		t.Fatalf("another client: %d", c)
	}
	if a, b := get(), get(); a != 200 || b != 200 {
		t.Fatalf("anonymous: %d %d", a, b)
	}
	wantError(t, f.do(http.MethodGet, "/v1/users/1/recommendations", ""), http.StatusTooManyRequests, CodeRateLimited)
	for range 5 {
		if w := f.do(http.MethodGet, "/healthz", "", ClientHeader, "phone-1"); w.Code != 200 {
			t.Fatalf("healthz %d", w.Code)
		}
	}
	wantError(t, f.do(http.MethodGet, "/v1/users/1/recommendations", "", ClientHeader, "bad id"), http.StatusBadRequest, CodeInvalidClientID)
	// A second later the bucket holds one more token.
	f.now = f.now.Add(time.Second)
	if a := get(ClientHeader, "phone-1"); a != 200 {
		t.Fatalf("after a second: %d", a)
	}
	wantError(t, f.do(http.MethodGet, "/v1/models", "", ClientHeader, "phone-1"), http.StatusTooManyRequests, CodeRateLimited)
	if m := f.metricsText(); !strings.Contains(m, `streamrec_api_rate_limited_total{route="/v1/users/{id}/recommendations"} 2`) {
		t.Errorf("rate-limited requests not counted:\n%s", grepLines(m, "rate_limited"))
	}
}

// The limiter keeps at most maxClients buckets.
func TestRateLimiterBound(t *testing.T) {
	l := newRateLimiter(10, 5, rateShards*2)
	now := time.Unix(1000, 0)
	for i := range 10_000 {
		if ok, _ := l.take(string(rune('a'+i%26))+strings.Repeat("x", i%97)+string(rune(i)), now); !ok {
			t.Fatal("a new client was refused")
		}
	}
	n := 0
	for i := range l.shards {
		n += len(l.shards[i].buckets)
	}
	if n > rateShards*2 {
		t.Fatalf("%d buckets kept, bound %d", n, rateShards*2)
	}
	// A client at its limit is told when its next token comes.
	for range 5 {
		l.take("busy", now)
	}
	if ok, wait := l.take("busy", now); ok || wait != 100*time.Millisecond {
		t.Fatalf("over the limit: %v, wait %v", ok, wait)
	}
}

func TestConfigValidateRateLimit(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.RateLimit = -1 },
		func(c *Config) { c.RateBurst = 0 },
		func(c *Config) { c.RateClients = 0 },
	} {
		c := DefaultConfig()
		mod(&c)
		if c.Validate() == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

func TestAdminAndModels(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AdminToken = "s3cret-admin-token"
	f := newFixture(t, 10, 4, 1, cfg)
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	// Public: the versions with their publish times, and which is live.
	l := decode[ModelList](t, f.do(http.MethodGet, "/v1/models", ""))
	if l.ServingVersion != "v1" || len(l.Versions) != 1 || !l.Versions[0].Live || l.Versions[0].PublishedAtMs <= 0 ||
		l.Versions[0].Calibration != nil || l.Versions[0].Items != 10 {
		t.Fatalf("public list %+v", l)
	}
	// Admin: the bearer token, compared exactly.
	for _, hdr := range [][]string{nil, bearer("wrong"), bearer(""), {"Authorization", "s3cret-admin-token"}, bearer("s3cret-admin-token ")} {
		w := f.do(http.MethodGet, "/v1/admin/models", "", hdr...)
		wantError(t, w, http.StatusUnauthorized, CodeUnauthorized)
		if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("no WWW-Authenticate: %v", w.Header())
		}
		if strings.Contains(w.Body.String(), "s3cret") {
			t.Fatal("the token is in the answer")
		}
	}
	tok := bearer(cfg.AdminToken)
	al := decode[ModelList](t, f.do(http.MethodGet, "/v1/admin/models", "", tok...))
	if len(al.Versions) != 1 || al.Versions[0].Calibration == nil || al.Versions[0].Calibration.GlobalMean != testMu {
		t.Fatalf("admin list %+v", al)
	}
	wantError(t, f.do(http.MethodPost, "/v1/admin/models:rollback", "", tok...), http.StatusConflict, CodeNoPrevious)
	if ch := decode[AdminModelChange](t, f.do(http.MethodPost, "/v1/admin/models:reload", "", tok...)); ch.Swapped || ch.ServingVersion != "v1" {
		t.Fatalf("reload without a new version: %+v", ch)
	}

	// A second version: reload swaps to it, rollback goes back to v1.
	m2 := f.model
	m2.Version = "v2"
	if _, err := f.store.Publish(context.Background(), m2); err != nil {
		t.Fatal(err)
	}
	if ch := decode[AdminModelChange](t, f.do(http.MethodPost, "/v1/admin/models:reload", "", tok...)); !ch.Swapped || ch.ServingVersion != "v2" {
		t.Fatalf("reload: %+v", ch)
	}
	l = decode[ModelList](t, f.do(http.MethodGet, "/v1/models", ""))
	if len(l.Versions) != 2 || l.Versions[0].Version != "v1" || !l.Versions[0].Previous || !l.Versions[1].Live || l.ServingVersion != "v2" {
		t.Fatalf("after v2: %+v", l)
	}
	ch := decode[AdminModelChange](t, f.do(http.MethodPost, "/v1/admin/models:rollback", "", tok...))
	if ch.Current != "v1" || ch.Previous != "v2" || !ch.Swapped || ch.ServingVersion != "v1" {
		t.Fatalf("rollback: %+v", ch)
	}
	if r := decode[Recommendations](t, f.do(http.MethodGet, "/v1/users/1/recommendations?k=2", "")); r.ModelVersion != "v1" {
		t.Fatalf("served %s after the rollback", r.ModelVersion)
	}
	// The timeline: every flip, oldest first; a version retrained from the
	// log says so.
	l = decode[ModelList](t, f.do(http.MethodGet, "/v1/models", ""))
	var reasons []string
	for _, e := range l.Events {
		reasons = append(reasons, e.Reason+":"+e.Current)
	}
	if strings.Join(reasons, ",") != "publish:v1,publish:v2,rollback:v1" || l.Events[2].Previous != "v2" || l.Events[2].AtMs <= 0 {
		t.Fatalf("events %+v", l.Events)
	}
	m3 := f.model
	m3.Version, m3.TrainedOffsets = "v3", map[int32]int64{0: 41}
	if _, err := f.store.Publish(context.Background(), m3); err != nil {
		t.Fatal(err)
	}
	l = decode[ModelList](t, f.do(http.MethodGet, "/v1/models", ""))
	for _, v := range l.Versions {
		if v.RetrainedFromLog != (v.Version == "v3") {
			t.Fatalf("version %s: retrained_from_log %v", v.Version, v.RetrainedFromLog)
		}
	}
	// Redis down: 503, not raw errors.
	f.mr.Close()
	w := f.do(http.MethodGet, "/v1/models", "")
	wantError(t, w, http.StatusServiceUnavailable, CodeModelStoreDown)
	if strings.Contains(w.Body.String(), "127.0.0.1") {
		t.Fatalf("address in %s", w.Body.String())
	}
}

func TestAdminDisabledWithoutToken(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	for _, r := range []struct{ method, path string }{{http.MethodGet, "/v1/admin/models"},
		{http.MethodPost, "/v1/admin/models:rollback"}, {http.MethodPost, "/v1/admin/models:reload"}} {
		wantError(t, f.do(r.method, r.path, "", "Authorization", "Bearer "), http.StatusForbidden, CodeAdminDisabled)
	}
}

// With MetricsElsewhere, /metrics is not on the API's routes nor in its
// document, and MetricsHandler serves the registry.
func TestMetricsElsewhere(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MetricsElsewhere = true
	f := newFixture(t, 10, 4, 1, cfg)
	wantError(t, f.do(http.MethodGet, "/metrics", ""), http.StatusNotFound, CodeNotFound)
	if strings.Contains(string(f.srv.doc), `"/metrics"`) {
		t.Fatal("/metrics still in the served document")
	}
	for _, r := range f.srv.Routes() {
		if strings.HasSuffix(r, " /metrics") {
			t.Fatal("/metrics still routed")
		}
	}
}
