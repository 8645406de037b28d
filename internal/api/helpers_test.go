package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
)

// fakePublisher records what it was asked to publish; err makes it fail.
type fakePublisher struct {
	mu     sync.Mutex
	events []stream.Event
	calls  int
	err    error
	// block, when set, holds every Publish until it is closed (entered is
	// signalled first).
	block, entered chan struct{}
}

func (p *fakePublisher) Publish(_ context.Context, events []stream.Event) error {
	p.mu.Lock()
	block, entered := p.block, p.entered
	p.mu.Unlock()
	if block != nil {
		entered <- struct{}{}
		<-block
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.err != nil {
		return p.err
	}
	for _, e := range events {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	p.events = append(p.events, events...)
	return nil
}

func (p *fakePublisher) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// fixture is a Server over miniredis with a small published model.
type fixture struct {
	t     testing.TB
	mr    *miniredis.Miniredis
	store *cache.Store
	items *cache.ItemCache
	pub   *fakePublisher
	srv   *Server
	reg   *prometheus.Registry
	model cache.Model
	users map[uint32]cache.UserRecord
	now   time.Time
}

const testMu = 0.75

// newFixture publishes a model of nItems random items of dim dim (the last
// coordinate of an item is its bias, of a user 1, as the ingestor writes
// them) and nUsers users with ids 1..nUsers, and builds a Server on it.
func newFixture(t testing.TB, nItems, dim, nUsers int, cfg Config) *fixture {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	f := newFixtureOn(t, rdb, nItems, dim, nUsers, cfg, nil)
	f.mr = mr
	return f
}

// realRedis returns a client of $STREAMREC_TEST_REDIS, or skips the test.
func realRedis(t testing.TB) *redis.Client {
	t.Helper()
	addr := os.Getenv("STREAMREC_TEST_REDIS")
	if addr == "" {
		t.Skip("set STREAMREC_TEST_REDIS=host:port to run this integration test on a real Redis")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("STREAMREC_TEST_REDIS=%s: %v", addr, err)
	}
	return rdb
}

// newFixtureOn is newFixture on rdb, under a fresh namespace (deleted at the
// end on a real Redis). before, if not nil, runs before the model is
// published (to store the version's cold-start data).
func newFixtureOn(t testing.TB, rdb *redis.Client, nItems, dim, nUsers int, cfg Config, before func(*cache.Store, *cache.Model)) *fixture {
	t.Helper()
	scfg := cache.DefaultConfig()
	scfg.Namespace = fmt.Sprintf("test-%016x", rand.Uint64())
	store, err := cache.NewStore(rdb, scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Its own client: the test may have closed rdb.
		c := redis.NewClient(&redis.Options{Addr: rdb.Options().Addr})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, scfg.Namespace+":*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	r := rand.New(rand.NewPCG(1, 2))
	m := cache.Model{Version: "v1", Dim: dim, CreatedAtMs: 1, Calibration: cache.Calibration{GlobalMean: testMu, Scale: 1.3},
		Items: cache.Items{IDs: make([]uint32, nItems), Vectors: make([]float32, nItems*dim)}}
	for i := range nItems {
		m.Items.IDs[i] = uint32(1000 + 7*i)
		for j := range dim {
			m.Items.Vectors[i*dim+j] = float32(r.NormFloat64() * 0.3)
		}
	}
	now := time.UnixMilli(1_764_000_000_000)
	users := map[uint32]cache.UserRecord{}
	var recs []cache.UserRecord
	for u := 1; u <= nUsers; u++ {
		e := make([]float32, dim)
		for j := range dim - 1 {
			e[j] = float32(r.NormFloat64())
		}
		e[dim-1] = 1
		rec := cache.UserRecord{UserID: uint32(u), ModelVersion: m.Version, Embedding: e, Bias: float32(r.NormFloat64() * 0.1),
			UpdatedAtMs: now.Add(-90 * time.Second).UnixMilli(), InputPartition: 3, InputNext: 1209}
		users[uint32(u)] = rec
		recs = append(recs, rec)
	}
	ctx := context.Background()
	if len(recs) > 0 {
		if err := store.PutUsers(ctx, m.Version, recs); err != nil {
			t.Fatal(err)
		}
	}
	if before != nil {
		before(store, &m)
	}
	if _, err := store.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	ic := &cache.ItemCache{Extend: ColdStartExtender(store, nil)}
	if _, err := ic.Refresh(ctx, store); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: store, items: ic, pub: &fakePublisher{}, model: m, users: users, now: now,
		reg: prometheus.NewRegistry()}
	f.srv, err = New(cfg, Deps{Items: ic, Store: store, Publisher: f.pub, Intake: store, Registry: f.reg, Now: func() time.Time { return f.now },
		Checks: []Check{{Name: "redis", Fn: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }}},
		Models: store, Videos: store, Reload: func(ctx context.Context) (bool, error) { return ic.Refresh(ctx, store) }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// do serves one request in-process, and checks it and its answer against
// the served OpenAPI document (checkAgainstDoc).
func (f *fixture) do(method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	return doOn(f.t, f.srv, method, target, body, hdr...)
}

// doOn serves one request in-process on srv; hdr are header name, value
// pairs (an empty value deletes the header). With t, the request and its
// answer are checked against the served OpenAPI document.
func doOn(t testing.TB, srv *Server, method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	w := httptest.NewRecorder()
	srv.Echo().ServeHTTP(w, req)
	if t != nil {
		t.Helper()
		check := httptest.NewRequest(method, target, nil)
		check.Header = req.Header.Clone()
		checkAgainstDoc(t, srv, check, []byte(body), w)
	}
	return w
}

// drainServed writes what the server queued for the asynchronous served-list
// writer (RunServedLog with an ended context drains its queue and returns).
func (f *fixture) drainServed() {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.srv.RunServedLog(ctx, 5*time.Second); err != nil {
		f.t.Fatal(err)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func decode[T any](t testing.TB, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %q: %v", w.Body.String(), err)
	}
	return v
}

// wantError checks status and the stable JSON error body.
func wantError(t *testing.T, w *httptest.ResponseRecorder, status int, code string) errorDetail {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	var b errorBody
	dec := json.NewDecoder(strings.NewReader(w.Body.String()))
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("error body %q: %v", w.Body.String(), err)
	}
	if b.Error.Code != code || b.Error.Message == "" {
		t.Fatalf("error %+v, want code %q and a message", b.Error, code)
	}
	return b.Error
}

func (f *fixture) metricsText() string {
	w := f.do(http.MethodGet, "/metrics", "")
	if w.Code != http.StatusOK {
		f.t.Fatalf("/metrics: %d", w.Code)
	}
	return w.Body.String()
}

// doChunked is do, with the body's length hidden from the server (as with
// chunked transfer encoding) when chunked is set.
func (f *fixture) doChunked(method, target, body string, chunked bool, hdr ...string) *httptest.ResponseRecorder {
	if !chunked {
		return f.do(method, target, body, hdr...)
	}
	req := httptest.NewRequest(method, target, io.NopCloser(strings.NewReader(body)))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	f.srv.Echo().ServeHTTP(w, req)
	return w
}
