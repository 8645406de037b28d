package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamrec/streamrec/internal/cache"
)

func TestDecideCanary(t *testing.T) {
	c := cache.Canary{Threshold: 0.1}
	arm := func(joined, hits int64, mae float64) canaryArm {
		return canaryArm{joined: joined, hits: hits, absErrU: int64(mae * 1e6 * float64(hits)), absErrN: hits, wrU: joined * 800000}
	}
	for _, tc := range []struct {
		name          string
		can, base     canaryArm
		promote, done bool
	}{
		{"too few hits", arm(100, 10, 0.1), arm(100, 50, 0.5), false, false},
		{"worse error only (not decided on)", arm(100, 40, 0.6), arm(100, 40, 0.5), true, true},
		{"worse hit rate", arm(100, 30, 0.5), arm(100, 40, 0.5), false, true},
		{"within the threshold", arm(100, 38, 0.54), arm(100, 40, 0.5), true, true},
		{"better", arm(100, 50, 0.4), arm(100, 40, 0.5), true, true},
		{"less engagement", canaryArm{joined: 100, hits: 40, absErrU: 40 * 500000, absErrN: 40, wrU: 100 * 600000}, arm(100, 40, 0.5), false, true},
	} {
		promote, reason, done := decideCanary(c, tc.can, tc.base)
		if promote != tc.promote || done != tc.done {
			t.Errorf("%s: promote %v done %v (%s); want %v %v", tc.name, promote, done, reason, tc.promote, tc.done)
		}
	}
}

// A canary end to end in the API: the admin starts it; the users of its
// share are served by its version (their records under it); the controller
// reads the evaluator's version-tagged windows and rolls back a canary whose
// users watch less, then promotes one whose users watch more.
func TestCanaryServedAndDecided(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AdminToken = "tok-canary-000001"
	f := newFixture(t, 30, 4, 40, cfg)
	tok := []string{"Authorization", "Bearer tok-canary-000001"}
	ctx := context.Background()
	m2 := f.model
	m2.Version = "v2"
	var recs []cache.UserRecord
	for uid, r := range f.users {
		r.ModelVersion, r.Embedding = "v2", append([]float32(nil), r.Embedding...)
		r.Embedding[0] += 0.5
		recs = append(recs, r)
		_ = uid
	}
	if err := f.store.PutUsers(ctx, "v2", recs); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Publish(ctx, m2); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Rollback(ctx); err != nil { // v1 current, v2 published beside it
		t.Fatal(err)
	}
	const window = 100 * time.Millisecond
	canaries := &Canaries{Store: f.store, Extend: ColdStartExtender(f.store, nil)}
	f.reg = prometheus.NewRegistry()
	srv, err := New(cfg, Deps{Items: f.items, Store: f.store, Publisher: f.pub, Models: f.store, Canary: canaries, Registry: f.reg,
		Online: &Online{Log: f.store, Windows: f.store, Group: "g", Window: window, CountWindow: 100, Partitions: 4}})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv

	start := func() cache.Canary {
		t.Helper()
		w := f.do(http.MethodPost, "/v1/admin/canary", `{"version":"v2","share":0.5,"windows":2,"threshold":0.1}`, append(tok, "Content-Type", "application/json")...)
		if w.Code != http.StatusCreated {
			t.Fatalf("start: %d %s", w.Code, w.Body)
		}
		if err := canaries.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		c, err := f.store.CurrentCanary(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := start()
	wantError(t, f.do(http.MethodPost, "/v1/admin/canary", `{"version":"v2","share":0.5,"windows":2,"threshold":0.1}`, append(tok, "Content-Type", "application/json")...),
		http.StatusConflict, CodeCanaryRejected)
	wantError(t, f.do(http.MethodPost, "/v1/admin/canary", `{"version":"v2","share":0.9,"windows":2,"threshold":0.1}`, append(tok, "Content-Type", "application/json")...),
		http.StatusBadRequest, CodeInvalidField)
	if l := decode[ModelList](t, f.do(http.MethodGet, "/v1/models", "")); l.Canary == nil || l.Canary.Version != "v2" || l.Canary.Baseline != "v1" {
		t.Fatalf("/v1/models canary %+v", l.Canary)
	}
	in := 0
	for uid := uint32(1); uid <= 40; uid++ {
		r := decode[Recommendations](t, f.do(http.MethodGet, fmt.Sprintf("/v1/users/%d/recommendations?k=3", uid), ""))
		want := "v1"
		if cache.InCanary(uid, 0.5) {
			want, in = "v2", in+1
		}
		if r.ModelVersion != want || r.Canary != (want == "v2") || r.Fallback != "" {
			t.Fatalf("user %d: served %s canary %v fallback %q; want %s", uid, r.ModelVersion, r.Canary, r.Fallback, want)
		}
	}
	if in == 0 || in == 40 {
		t.Fatalf("%d of 40 users in the canary: the test proves nothing", in)
	}

	// The evaluator's windows after the start, tagged by version.
	next := int64(0)
	fill := func(c cache.Canary, canEngagement float64) {
		t.Helper()
		w := window.Milliseconds()
		var deltas []cache.WindowDelta
		for i := c.StartedAtMs/w + 1; i <= c.StartedAtMs/w+3; i++ {
			for v, wr := range map[string]float64{"v2": canEngagement, "v1": 0.8} {
				for field, n := range map[string]int64{"joined": 100, "hits": 40, "abs_err_n": 40, "abs_err_u": 40 * 500000, "joined_wr_u": int64(100 * wr * 1e6)} {
					deltas = append(deltas, cache.WindowDelta{Kind: cache.WindowByTime, Index: i, Field: field + "|version=" + v, Delta: n})
				}
			}
		}
		ok, err := f.store.ApplyWindows(ctx, "g", []cache.OffsetRange{{Partition: 0, From: next, To: next}}, deltas)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		next++
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.RunCanary(rctx) }()
	defer func() { cancel(); <-done }()
	waitEnded := func() {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := f.store.CurrentCanary(ctx); errors.Is(err, cache.ErrNoCanary) {
				return
			}
			if time.Now().After(end) {
				t.Fatal("the controller did not decide in 10s")
			}
		}
	}
	fill(c, 0.6) // worse: less engagement
	waitEnded()
	if cur, _ := f.store.CurrentVersion(ctx); cur != "v1" {
		t.Fatalf("a worse canary: current %s, want v1 (rolled back)", cur)
	}
	if n := counterOf(t, f, "streamrec_canary_decisions_total", "rolled_back"); n != 1 {
		t.Fatalf("rolled_back counted %v", n)
	}
	if err := canaries.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if r := decode[Recommendations](t, f.do(http.MethodGet, "/v1/users/1/recommendations?k=3", "")); r.ModelVersion != "v1" || r.Canary {
		t.Fatalf("after the rollback: %s canary %v", r.ModelVersion, r.Canary)
	}
	time.Sleep(2 * window) // the next canary's windows are after the first's
	c = start()
	fill(c, 0.85) // better
	waitEnded()
	if cur, _ := f.store.CurrentVersion(ctx); cur != "v2" {
		t.Fatalf("a better canary: current %s, want v2 (promoted)", cur)
	}
	var reasons []string
	evs, _ := f.store.ModelEvents(ctx)
	for _, e := range evs {
		reasons = append(reasons, e.Reason)
	}
	if got := fmt.Sprint(reasons); got != "[publish publish rollback canary_start canary_rolled_back canary_start canary_promoted]" {
		t.Fatalf("events %s", got)
	}
}

// counterOf reads a counter with one label value from the fixture's registry.
func counterOf(t *testing.T, f *fixture, name, label string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
