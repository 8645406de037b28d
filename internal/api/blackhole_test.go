package api

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
)

// blackHole is a TCP listener that accepts connections and never answers
// (nor closes them until the test ends): a hung Redis.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// TestRedisBlackHole: against a Redis that accepts and never answers, a
// recommendation returns its fallback within the Redis timeout plus 500 ms
// (slack for a loaded 2-core machine, where +10 ms failed at 80-85 ms; the
// bound still tells a call cut at its context from one that waits out the
// client's read timeout), although the client's read timeout is 5 s (the timeout is the call's
// context, enforced by ContextTimeoutEnabled). Each request after the first
// also finds the pool's connections hung.
func TestRedisBlackHole(t *testing.T) {
	f := newFixture(t, 50, 8, 3, DefaultConfig())
	ro := cache.DefaultClientOptions()
	ro.Addr, ro.ReadTimeout, ro.WriteTimeout, ro.DialTimeout = blackHole(t), 5*time.Second, 5*time.Second, 5*time.Second
	rdb := ro.NewClient()
	t.Cleanup(func() { _ = rdb.Close() })
	cfg := cache.DefaultConfig()
	cfg.Namespace = f.store.Namespace()
	hung, err := cache.NewStore(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	acfg := DefaultConfig()
	acfg.RedisTimeout = 50 * time.Millisecond
	srv, err := New(acfg, Deps{Items: f.items, Store: hung, Publisher: f.pub})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		// Timed: the server alone (doOn(nil, ...): no document check).
		start := time.Now()
		w := doOn(nil, srv, http.MethodGet, "/v1/users/1/recommendations?k=5", "")
		took := time.Since(start)
		if w.Code != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, w.Code, w.Body.String())
		}
		r := decode[Recommendations](t, w)
		if r.Fallback != FallbackPopularity || r.FallbackReason != ReasonRedisError || len(r.Items) != 5 {
			t.Fatalf("request %d: %+v", i, r)
		}
		if limit := acfg.RedisTimeout + 500*time.Millisecond; took > limit {
			t.Fatalf("request %d took %v, want <= %v", i, took, limit)
		}
	}
	// The fallback's answer agrees with the document (untimed).
	if w := doOn(t, srv, http.MethodGet, "/v1/users/1/recommendations?k=5", ""); w.Code != http.StatusOK {
		t.Fatalf("%d", w.Code)
	}
	// A bare call under a deadline is bounded the same way.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := hung.GetUser(ctx, "v1", 1); err == nil {
		t.Fatal("no error from a hung Redis")
	}
	if took := time.Since(start); took > 530*time.Millisecond { // the same slack
		t.Fatalf("GetUser took %v", took)
	}
}
