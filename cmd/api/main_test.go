package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/api"
	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/stream"
)

func TestParse(t *testing.T) {
	o, err := parse([]string{"--listen", "127.0.0.1:0", "--max-k", "50"})
	if err != nil || o.api.MaxK != 50 || o.api.DefaultK != 25 || o.topic != "interactions" {
		t.Fatalf("%+v %v", o, err)
	}
	for _, args := range [][]string{
		{"--max-k", "0"},
		{"--default-k", "200"},
		{"--max-body-bytes", "1"},
		{"--listen", "nope"},
		{"--redis-timeout", "0s"},
		{"--topic", ""},
		{"--redis-read-timeout", "0s"},
		{"--redis-dial-timeout", "-1s"},
		{"--redis-addr", ""},
		{"extra"},
	} {
		if _, err := parse(args); !errors.As(err, new(*config.UsageError)) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

// TestIntegrationRealServices runs the binary's run() against real Kafka and
// Redis (opt-in: STREAMREC_TEST_KAFKA, STREAMREC_TEST_REDIS), on its own topic
// and Redis namespace: it publishes a model, waits for readiness, serves a
// recommendation, POSTs interactions (single, batch, retried with an
// Idempotency-Key), reads them back from the topic with stream.DecodeEvent, and
// shuts down gracefully on cancel.
func TestIntegrationRealServices(t *testing.T) {
	kafkaAddr, redisAddr := os.Getenv("STREAMREC_TEST_KAFKA"), os.Getenv("STREAMREC_TEST_REDIS")
	if kafkaAddr == "" || redisAddr == "" || testing.Short() {
		t.Skip("integration: set STREAMREC_TEST_KAFKA and STREAMREC_TEST_REDIS (and drop -short) to run")
	}
	brokers := strings.Split(kafkaAddr, ",")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	topic := fmt.Sprintf("test-api-%08x", rand.Uint32())
	if err := stream.EnsureTopics(ctx, brokers, stream.InteractionsTopic(topic, 2)); err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("test-api-%016x", rand.Uint64())
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	t.Cleanup(func() { deleteNamespace(t, rdb, ns) })
	scfg := cache.DefaultConfig()
	scfg.Namespace = ns
	store, err := cache.NewStore(rdb, scfg)
	if err != nil {
		t.Fatal(err)
	}
	const dim = 8
	m := cache.Model{Version: "it1", Dim: dim, Calibration: cache.Calibration{GlobalMean: 1, Scale: 1},
		Items: cache.Items{IDs: make([]uint32, 50), Vectors: make([]float32, 50*dim)}}
	for i := range m.Items.IDs {
		m.Items.IDs[i] = uint32(i + 1)
		for j := range dim {
			m.Items.Vectors[i*dim+j] = float32(rand.NormFloat64())
		}
	}
	ue := make([]float32, dim)
	for j := range ue {
		ue[j] = float32(rand.NormFloat64())
	}
	if err := store.PutUsers(ctx, m.Version, []cache.UserRecord{{UserID: 5, Embedding: ue, UpdatedAtMs: time.Now().UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}

	// Run the binary on a free port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := mln.Addr().String()
	mln.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"--listen", addr, "--brokers", kafkaAddr, "--redis-addr", redisAddr,
			"--namespace", ns, "--topic", topic, "--log-level", "warn", "--model-poll", "200ms",
			"--metrics-addr", metricsAddr, "--admin-token", "integration-admin-token", "--rate-limit", "1000"})
	}()
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not ready: %d %s", resp.StatusCode, b)
			}
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// /metrics and pprof on their own listener, not on the API's.
	for _, c := range []struct {
		url  string
		code int
	}{{"http://" + metricsAddr + "/metrics", 200}, {"http://" + metricsAddr + "/debug/pprof/", 200}, {base + "/metrics", 404}, {base + "/debug/pprof/", 404}} {
		resp, err := http.Get(c.url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Fatalf("GET %s: %d, want %d", c.url, resp.StatusCode, c.code)
		}
	}
	// The admin routes take the configured token; GET /v1/models is public.
	areq, _ := http.NewRequest(http.MethodGet, base+"/v1/admin/models", nil)
	areq.Header.Set("Authorization", "Bearer integration-admin-token")
	if resp, err := http.DefaultClient.Do(areq); err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin models: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if resp, err := http.Get(base + "/v1/models"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("models: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	var recs api.Recommendations
	getJSON(t, base+"/v1/users/5/recommendations?k=10", http.StatusOK, &recs)
	if recs.Fallback != "" || recs.ModelVersion != "it1" || len(recs.Items) != 10 {
		t.Fatalf("%+v", recs)
	}
	// The served list is written off the request path: poll for it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		sl, ok, err := store.GetServed(ctx, 5)
		if err == nil && ok && sl.Items[0] == recs.Items[0].VideoID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("served list %+v %v %v", sl, ok, err)
		}
	}
	getJSON(t, base+"/v1/users/6/recommendations", http.StatusOK, &recs)
	if recs.Fallback != api.FallbackPopularity || recs.FallbackReason != api.ReasonNoEmbedding {
		t.Fatalf("%+v", recs)
	}

	ev := func(user, video int) string {
		return fmt.Sprintf(`{"user_id":%d,"video_id":%d,"play_duration_ms":4000,"video_duration_ms":8000,"event_time_ms":1700000000000}`, user, video)
	}
	var ids []string
	var a api.Accepted
	postJSON(t, base+"/v1/interactions", ev(5, 1), "", &a)
	ids = append(ids, a.EventIDs...)
	postJSON(t, base+"/v1/interactions:batch", "["+ev(5, 2)+","+ev(6, 3)+","+ev(7, 4)+"]", "", &a)
	ids = append(ids, a.EventIDs...)
	postJSON(t, base+"/v1/interactions", ev(8, 9), "retry-me", &a)
	ids = append(ids, a.EventIDs...)
	var retry api.Accepted
	postJSON(t, base+"/v1/interactions", ev(8, 9), "retry-me", &retry)
	if retry.EventIDs[0] != a.EventIDs[0] {
		t.Fatalf("retry id %s, first %s", retry.EventIDs[0], a.EventIDs[0])
	}
	ids = append(ids, retry.EventIDs...)

	// Read every message back from both partitions.
	got := map[string]stream.Event{}
	var keys []string
	for p := range 2 {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		for {
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			msg, err := r.ReadMessage(rctx)
			rcancel()
			if err != nil {
				break
			}
			var e stream.Event
			if err := stream.DecodeEvent(msg.Value, &e); err != nil {
				t.Fatalf("message %q: %v", msg.Value, err)
			}
			if string(msg.Key) != strconv.FormatUint(uint64(e.UserID), 10) {
				t.Errorf("key %q for user %d", msg.Key, e.UserID)
			}
			if e.Source != stream.SourceAPI || e.ProducedAtUs <= 0 || e.EventTimeMs != 1700000000000 || e.WatchRatio != 0.5 {
				t.Errorf("event %+v", e)
			}
			if time.Since(msg.Time) > time.Minute {
				t.Errorf("message timestamp %v is not the produce time", msg.Time)
			}
			keys = append(keys, string(msg.Key))
			got[strconv.FormatUint(e.EventID, 10)] = e
		}
		r.Close()
	}
	if len(keys) != 5 {
		t.Fatalf("read %d messages, want 5 (the retry of a done request is answered from its intake record in Redis, not published)", len(keys))
	}
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			t.Errorf("event id %s not on the topic", id)
		}
	}

	// exclude_watched sees what was posted through this process.
	getJSON(t, base+"/v1/users/5/recommendations?k=50&exclude_watched=true", http.StatusOK, &recs)
	if recs.Excluded != 2 || len(recs.Items) != 48 {
		t.Fatalf("excluded %d, %d items", recs.Excluded, len(recs.Items))
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no graceful shutdown within 15s")
	}
}

func getJSON(t *testing.T, url string, status int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func postJSON(t *testing.T, url, body, key string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set(api.IdempotencyHeader, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// deleteNamespace removes the test's keys (never FLUSHALL a shared server).
func deleteNamespace(t *testing.T, rdb *redis.Client, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, ns+":*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		if err := rdb.Del(ctx, keys...).Err(); err != nil {
			t.Logf("cleaning namespace %s: %v", ns, err)
		}
	}
}

// TestShutdownWithoutServices: with Redis and Kafka unreachable the server
// still starts (liveness 200, readiness 503 naming Redis, recommendations 503
// no_model) and returns nil promptly once its context is cancelled (SIGTERM).
func TestShutdownWithoutServices(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", addr, "--brokers", "127.0.0.1:1", "--redis-addr", "127.0.0.1:1",
			"--log-level", "error", "--ready-timeout", "200ms"})
	}()
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no liveness: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var body struct {
		Error struct{ Code, Field string }
	}
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || body.Error.Code != "not_ready" || body.Error.Field != "redis" {
		t.Fatalf("readyz %d %+v", resp.StatusCode, body)
	}
	resp, err = http.Get(base + "/v1/users/1/recommendations")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || body.Error.Code != "no_model" {
		t.Fatalf("recommendations %d %+v", resp.StatusCode, body)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(12 * time.Second):
		t.Fatal("no shutdown within the deadline")
	}
}
