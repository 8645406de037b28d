package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Without --eval, a request queues its list and returns; the writer stores
// it while it runs, and the lists queued as it stops are drained.
func TestLastServedWrittenOffTheRequestPath(t *testing.T) {
	f := newFixture(t, 40, 4, 3, DefaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.RunServedLog(ctx, 5*time.Second) }()
	for _, u := range []string{"1", "2"} {
		if w := f.do(http.MethodGet, "/v1/users/"+u+"/recommendations?k=4", ""); w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, ok1, err1 := f.store.GetServed(context.Background(), 1)
		_, ok2, err2 := f.store.GetServed(context.Background(), 2)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if ok1 && ok2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the running writer did not store the lists (user 1 %v, user 2 %v)", ok1, ok2)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Queued as the writer stops: still written (the drain).
	cancel()
	w := f.do(http.MethodGet, "/v1/users/3/recommendations?k=4", "")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.drainServed()
	sl, ok, err := f.store.GetServed(context.Background(), 3)
	if err != nil || !ok || len(sl.Items) != 4 || !strings.Contains(w.Body.String(), `"video_id":`) {
		t.Fatalf("user 3: %+v %v %v", sl, ok, err)
	}
	if m := f.metricsText(); !strings.Contains(m, `streamrec_api_served_lists_stored_total{result="ok"} 3`) {
		t.Errorf("metrics:\n%s", grepLines(m, "served_lists_stored"))
	}
}

// A full queue drops the list and counts it; the request is served.
func TestLastServedQueueFullDrops(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ServedQueue = 1
	f := newFixture(t, 40, 4, 2, cfg)
	for range 3 {
		if w := f.do(http.MethodGet, "/v1/users/1/recommendations", ""); w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	m := f.metricsText()
	if !strings.Contains(m, `streamrec_api_served_lists_stored_total{result="dropped"} 2`) {
		t.Errorf("metrics:\n%s", grepLines(m, "served_lists_stored"))
	}
	f.drainServed()
	if _, ok, err := f.store.GetServed(context.Background(), 1); !ok || err != nil {
		t.Fatalf("the queued list was not written: %v %v", ok, err)
	}
}
