package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/api"
	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online/eval"
	"github.com/streamrec/streamrec/internal/stream"
)

func TestEvalPartitions(t *testing.T) {
	for _, c := range []struct {
		spec string
		want string
		ok   bool
	}{{"all", "[0 1 2 3]", true}, {"none", "[]", true}, {"group", "[]", true}, {"2, 0", "[2 0]", true}, {"4", "", false}, {"1,1", "", false}, {"x", "", false}, {"", "", false}} {
		got, err := evalPartitions(c.spec, 4)
		if (err == nil) != c.ok || (c.ok && fmt.Sprint(got) != c.want) {
			t.Errorf("%q: %v, %v", c.spec, got, err)
		}
	}
}

// Two API processes split the partitions of the interactions topic and
// evaluate them; users are served by either, their interactions produced to
// Kafka; one process is killed with SIGKILL mid-run and started again. The
// windows in Redis then equal an in-process evaluation of the same messages
// and the same served lists (counts exactly, sums to the micro-unit).
func TestOnlineEvaluationSurvivesKill9(t *testing.T) {
	kafkaAddr, redisAddr := os.Getenv("STREAMREC_TEST_KAFKA"), os.Getenv("STREAMREC_TEST_REDIS")
	if kafkaAddr == "" || redisAddr == "" || testing.Short() {
		t.Skip("integration: set STREAMREC_TEST_KAFKA and STREAMREC_TEST_REDIS (and drop -short) to run")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	brokers := []string{kafkaAddr}
	topic := fmt.Sprintf("test-eval-%08x", r.Uint32())
	if err := stream.EnsureTopics(ctx, brokers, stream.InteractionsTopic(topic, 4)); err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("test-eval-%016x", r.Uint64())
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	t.Cleanup(func() { deleteNamespace(t, rdb, ns) })
	scfg := cache.DefaultConfig()
	scfg.Namespace = ns
	store, err := cache.NewStore(rdb, scfg)
	if err != nil {
		t.Fatal(err)
	}
	const dim, nItems, nUsers = 8, 60, 40
	m := cache.Model{Version: "ev1", Dim: dim, Calibration: cache.Calibration{GlobalMean: 1, Scale: 1},
		Items: cache.Items{IDs: make([]uint32, nItems), Vectors: make([]float32, nItems*dim)}}
	for i := range m.Items.IDs {
		m.Items.IDs[i] = uint32(i + 1)
		for j := range dim {
			m.Items.Vectors[i*dim+j] = float32(r.NormFloat64())
		}
	}
	var users []cache.UserRecord
	for u := range uint32(nUsers / 2) { // the other half falls back to popularity
		e := make([]float32, dim)
		for j := range e {
			e[j] = float32(r.NormFloat64())
		}
		users = append(users, cache.UserRecord{UserID: u, Embedding: e, UpdatedAtMs: time.Now().UnixMilli()})
	}
	if err := store.PutUsers(ctx, m.Version, users); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(t.TempDir(), "api")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the api: %v\n%s", err, out)
	}
	evalFlags := []string{"--eval", "--eval-open-for", "1500ms", "--eval-grace", "300ms", "--eval-window", "1s", "--eval-count-window", "50",
		"--eval-rank-every", "3", "--eval-from-first", "--eval-batch", "40", "--eval-flush", "50ms"}
	start := func(parts string) (*exec.Cmd, string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cmd := exec.Command(bin, append([]string{"--listen", addr, "--brokers", kafkaAddr, "--redis-addr", redisAddr, "--namespace", ns,
			"--topic", topic, "--log-level", "warn", "--model-poll", "200ms", "--eval-partitions", parts}, evalFlags...)...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return cmd, "http://" + addr
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("api (%s) not ready: %v", parts, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	a, baseA := start("0,1")
	_, baseB := start("2,3")
	prod, err := stream.NewProducer(stream.ProducerConfig{Brokers: brokers, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	// Traffic for about 4 s: a user asks either replica for a list, then
	// watches some of it (and other videos); replica A is killed at 1.5 s and
	// started again 0.5 s later.
	var id uint64
	killed, restarted := false, false
	t0 := time.Now()
	for time.Since(t0) < 4*time.Second {
		if !killed && time.Since(t0) > 1500*time.Millisecond {
			if err := a.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_, _ = a.Process.Wait()
			killed = true
			t.Logf("killed replica A at %v", time.Since(t0).Round(time.Millisecond))
		}
		if killed && !restarted && time.Since(t0) > 2*time.Second {
			a, baseA = start("0,1")
			restarted = true
			t.Logf("restarted replica A at %v", time.Since(t0).Round(time.Millisecond))
		}
		u := uint32(r.IntN(nUsers))
		base := baseB
		if !killed || restarted {
			if r.IntN(2) == 0 {
				base = baseA
			}
		}
		var recs api.Recommendations
		getJSON(t, base+fmt.Sprintf("/v1/users/%d/recommendations?k=6", u), http.StatusOK, &recs)
		var evs []stream.Event
		for j := range 1 + r.IntN(4) {
			video := uint32(1 + r.IntN(nItems))
			if j < len(recs.Items) && r.IntN(2) == 0 {
				video = recs.Items[r.IntN(len(recs.Items))].VideoID
			}
			id++
			now := time.Now()
			evs = append(evs, stream.Event{EventID: id, UserID: u, VideoID: video, PlayDurationMs: 1000, VideoDurationMs: 1000,
				EventTimeMs: now.UnixMilli(), WatchRatio: float64(r.IntN(30)) / 10, Source: stream.SourceAPI, ProducedAtUs: now.UnixMicro()})
		}
		if err := prod.Publish(ctx, evs); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(2+r.IntN(6)) * time.Millisecond)
	}
	if !restarted {
		t.Fatal("the traffic ended before replica A was restarted")
	}
	// Wait until the windows cover every partition's end.
	ends := map[int32]int64{}
	for p := range int32(4) {
		conn, err := kafka.DialLeader(ctx, "tcp", kafkaAddr, topic, int(p))
		if err != nil {
			t.Fatal(err)
		}
		ends[p], err = conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		pos, err := store.WindowOffsets(ctx, "online")
		if err != nil {
			t.Fatal(err)
		}
		covered := true
		for p, end := range ends {
			if pos[p].Next != end {
				covered = false
			}
		}
		if covered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("windows cover %+v, partition ends %v", pos, ends)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The reference, in process: the same messages, lists and model.
	items := &cache.ItemCache{}
	if _, err := items.Refresh(ctx, store); err != nil {
		t.Fatal(err)
	}
	cfg := eval.Config{OpenFor: 1500 * time.Millisecond, Grace: 300 * time.Millisecond, Window: time.Second, CountWindow: 50, RankEvery: 3,
		Scorer: api.IndexScorer{Items: items}, Popularity: (&api.IndexPopularity{Items: items}).Percentile}
	ref, err := eval.Replay(ctx, brokers, topic, []int64{ends[0], ends[1], ends[2], ends[3]}, cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	diffs, checked, err := ref.Diff(ctx, store, "online")
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Errorf("%d differences:\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
	hits, lists := ref.Total("hits"), ref.Total("lists")
	if checked < 5 || hits == 0 || lists == 0 {
		t.Fatalf("too little checked: %d windows, %d hits, %d lists", checked, hits, lists)
	}
	t.Logf("%d windows equal over %d messages: %d hits, %d closed lists", checked, ends[0]+ends[1]+ends[2]+ends[3], hits, lists)

	// The series endpoint of either replica serves those windows.
	var s api.OnlineSeries
	getJSON(t, baseB+"/v1/metrics/online?metric=interactions&limit=1000", http.StatusOK, &s)
	var n float64
	for _, p := range s.Points {
		n += p.Values["interactions"]
	}
	if want := ref.Total("interactions"); int64(n) != want {
		t.Errorf("GET /v1/metrics/online: %v interactions, in process %d", n, want)
	}
}
