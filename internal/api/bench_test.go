package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
)

// memStore is an in-memory UserStore: it isolates the handler's own cost
// (parsing, top-K, JSON) from the Redis round trips.
type memStore struct {
	mu     sync.Mutex
	users  map[uint32]cache.UserRecord
	served map[uint32]cache.ServedList
}

func (m *memStore) GetUser(_ context.Context, version string, id uint32) (cache.UserRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.users[id]
	if !ok || r.ModelVersion != version {
		return cache.UserRecord{}, false, nil
	}
	r.Embedding = append([]float32(nil), r.Embedding...) // the caller owns it, as with Redis
	return r, true, nil
}

func (m *memStore) PutServed(_ context.Context, id uint32, l cache.ServedList) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.served[id] = l
	return nil
}

// BenchmarkRecommendations: GET /v1/users/{id}/recommendations through Echo
// in-process (httptest), over KuaiRec's 10,728 items at dim 64, k=25.
//
//	go test -run '^$' -bench Recommendations -benchmem ./internal/api/
//
// model/miniredis and fallback/miniredis include two round trips to an
// in-process miniredis over loopback TCP (GetUser, PutServed); model/memstore
// is the handler alone; model/redis uses $STREAMREC_TEST_REDIS when set.
func BenchmarkRecommendations(b *testing.B) {
	const nItems, dim, nUsers = 10728, 64, 200
	f := newFixture(b, nItems, dim, nUsers, DefaultConfig())
	mem := &memStore{users: f.users, served: map[uint32]cache.ServedList{}}
	memSrv, err := New(DefaultConfig(), Deps{Items: f.items, Store: mem, Publisher: f.pub, Registry: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, srv *Server, userBase uint32) {
		b.ReportAllocs()
		i := 0
		start := time.Now()
		for b.Loop() {
			u := userBase + uint32(i%nUsers)
			i++
			req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/v1/users/%d/recommendations?k=25", u), nil)
			w := httptest.NewRecorder()
			srv.Echo().ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("%d %s", w.Code, w.Body.String())
			}
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "µs/op")
	}
	b.Run("model/memstore", func(b *testing.B) { run(b, memSrv, 1) })
	b.Run("model/miniredis", func(b *testing.B) { run(b, f.srv, 1) })
	b.Run("fallback/memstore", func(b *testing.B) { run(b, memSrv, 100_000) })
	b.Run("fallback/miniredis", func(b *testing.B) { run(b, f.srv, 100_000) })
	b.Run("model/redis", func(b *testing.B) {
		addr := os.Getenv("STREAMREC_TEST_REDIS")
		if addr == "" {
			b.Skip("set STREAMREC_TEST_REDIS to benchmark against a real Redis")
		}
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		defer rdb.Close()
		scfg := cache.DefaultConfig()
		scfg.Namespace = fmt.Sprintf("bench-api-%d", time.Now().UnixNano())
		st, err := cache.NewStore(rdb, scfg)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		var recs []cache.UserRecord
		for _, r := range f.users {
			recs = append(recs, r)
		}
		if err := st.PutUsers(ctx, f.model.Version, recs); err != nil {
			b.Fatal(err)
		}
		defer func() {
			iter := rdb.Scan(ctx, 0, scfg.Namespace+":*", 1000).Iterator()
			for iter.Next(ctx) {
				rdb.Del(ctx, iter.Val())
			}
		}()
		srv, err := New(DefaultConfig(), Deps{Items: f.items, Store: st, Publisher: f.pub, Registry: prometheus.NewRegistry()})
		if err != nil {
			b.Fatal(err)
		}
		run(b, srv, 1)
	})
}
