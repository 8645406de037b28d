package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/api"
	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
	"github.com/streamrec/streamrec/internal/towers"
)

// TestIntegrationRegisteredVideo: a video registered through the API after
// training (embedded by the version's item tower) is picked up by the real
// updater, which applies the next events on it rather than counting them
// cold, and is recommended to a user whose vector points at it.
func TestIntegrationRegisteredVideo(t *testing.T) {
	e := newEnv(t, "")
	r := rand.New(rand.NewPCG(21, 22))
	const featDim = 4
	item := []towers.LayerWeights{{In: featDim, Out: testDim, W: make([]float32, featDim*testDim), B: make([]float32, testDim)}}
	for i := range item[0].W {
		item[0].W[i] = float32(r.NormFloat64())
	}
	if _, err := e.store.Publish(t.Context(), cache.Model{Version: "v1", Dim: testDim, CreatedAtMs: 1,
		Calibration: cache.Calibration{GlobalMean: 0.9, Scale: 1.3}, Items: randomItems(r),
		TowerWeights: towers.EncodeTowers([]towers.NamedTower{{Name: "item", Layers: item}})}); err != nil {
		t.Fatal(err)
	}
	publishOfflineUsers(t, e, r)
	metrics := freeAddr(t)
	stop := runInProcess(t, e, "--metrics-addr", metrics)
	defer stop()
	waitMetric := func(name string, want float64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for scrape(t, metrics, name) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s = %v, want %v", name, scrape(t, metrics, name), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitMetric("streamrec_updater_items", testItems)

	// Register video 9000 through the API.
	cfg := api.DefaultConfig()
	cfg.AdminToken = "integration-admin-token"
	items := &cache.ItemCache{Extend: api.ColdStartExtender(e.store, nil)}
	if _, err := items.Refresh(t.Context(), e.store); err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(cfg, api.Deps{Items: items, Store: e.store, Publisher: nopPublisher{}, Videos: e.store,
		Reload: func(ctx context.Context) (bool, error) { return items.Refresh(ctx, e.store) }})
	if err != nil {
		t.Fatal(err)
	}
	const vid = 9000
	req := httptest.NewRequest(http.MethodPost, "/v1/admin/videos", strings.NewReader(fmt.Sprintf(`{"video_id":%d,"features":[1,-0.5,0.25,2]}`, vid)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer integration-admin-token")
	w := httptest.NewRecorder()
	srv.Echo().ServeHTTP(w, req)
	if w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body.String())
	}
	// The updater picks it up (its poll), then applies events on it.
	waitMetric("streamrec_updater_items", testItems+1)
	var evs []stream.Event
	for i := range 5 {
		ts := int64(1593878903438 + 1000*i)
		evs = append(evs, stream.Event{EventID: stream.MakeEventID(ts, 0), UserID: uint32(i), VideoID: vid, PlayDurationMs: 900,
			VideoDurationMs: 1000, EventTimeMs: ts, WatchRatio: 0.9, Source: stream.SourceAPI})
	}
	publishEvents(t, e, evs)
	waitMetric("streamrec_updater_events_applied_total", float64(len(evs)))
	if cold := scrape(t, metrics, "streamrec_updater_cold_items_total"); cold != 0 {
		t.Fatalf("%v events counted cold", cold)
	}
	// A user whose vector points at it gets it first.
	vec, _, ok := items.Index().Item(vid)
	if !ok {
		t.Fatal("not in the API's index")
	}
	u := make([]float32, testDim)
	for j := range u {
		u[j] = 10 * vec[j]
	}
	if err := e.store.PutUsers(t.Context(), "v1", []cache.UserRecord{{UserID: 5000, Embedding: u}}); err != nil {
		t.Fatal(err)
	}
	w = httptest.NewRecorder()
	srv.Echo().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/users/5000/recommendations?k=5", nil))
	var rec api.Recommendations
	if err := jsonDecode(w.Body.Bytes(), &rec); err != nil || w.Code != 200 || len(rec.Items) == 0 || rec.Items[0].VideoID != vid {
		t.Fatalf("user 5000: %d %s", w.Code, w.Body.String())
	}
}
