package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
)

func TestParseRestoreFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string // "" for none
	}{
		{args: nil},
		{args: []string{"--follow", "--every", "250ms", "--model-topic", "x.models"}},
		{args: []string{"extra"}, err: "unexpected arguments"},
		{args: []string{"--model-topic", "none"}, err: "restore needs the model log"},
		{args: []string{"--every", "1ms"}, err: "--every 1ms"},
		{args: []string{"--brokers", ""}, err: "--brokers must not be empty"},
		{args: []string{"--nope"}, err: "flag provided but not defined"},
	} {
		o, err := parseRestoreFlags(tc.args, io.Discard)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one with %q", tc.args, err, tc.err)
		case tc.err == "" && len(tc.args) > 0 && (!o.follow || o.every != 250*time.Millisecond || o.modelLog.topic != "x.models"):
			t.Errorf("%q: parsed %+v", tc.args, o)
		}
	}
}

// image reads every model and user key of namespace ns (strings and hashes)
// as key -> value.
func image(t *testing.T, rdb *redis.Client, ns string) map[string]string {
	t.Helper()
	ctx := t.Context()
	out := map[string]string{}
	for _, pattern := range []string{ns + ":model:*", ns + ":user:*"} {
		iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			switch rdb.Type(ctx, k).Val() {
			case "string":
				out[k] = rdb.Get(ctx, k).Val()
			case "hash":
				out[k] = fmt.Sprint(rdb.HGetAll(ctx, k).Val())
			case "zset":
				out[k] = fmt.Sprint(rdb.ZRangeWithScores(ctx, k, 0, -1).Val())
			}
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameImage(t *testing.T, what string, want, got map[string]string, keep func(string) bool) {
	t.Helper()
	n := 0
	for k, v := range want {
		if !keep(k) {
			continue
		}
		n++
		if got[k] != v {
			t.Fatalf("%s: key %s differs (%d vs %d bytes)", what, k, len(got[k]), len(v))
		}
	}
	if n == 0 {
		t.Fatalf("%s: no key compared", what)
	}
}

// TestIntegrationTrainModelLog: train --model-topic writes the version to
// the model log; after the namespace is lost, the next train restores the
// log's version first (so it becomes previous, bit-exact: items, tower,
// features, offline vectors, popularity, every user's record), then
// publishes; after a second loss, 'ingestor restore' brings both back.
// Real Kafka and Redis (opt-in); the namespace's keys are deleted, never
// FLUSHALL (the Redis is shared).
func TestIntegrationTrainModelLog(t *testing.T) {
	kafka, addr := os.Getenv("STREAMREC_TEST_KAFKA"), os.Getenv(envRedis)
	if kafka == "" || addr == "" || testing.Short() {
		t.Skip("integration: set STREAMREC_TEST_KAFKA and STREAMREC_TEST_REDIS (and drop -short) to run")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	ns := fmt.Sprintf("test-mlog-train-%08x", rand.Uint32())
	t.Cleanup(func() { deleteNamespace(t, rdb, ns) })
	root, out := genTiny(t), t.TempDir()
	train := func(version string) {
		runTrain(t, "--data", root, "--report", filepath.Join(out, "r.json"), "--model-out", filepath.Join(out, "model.srm"),
			"--redis-addr", addr, "--namespace", ns, "--model-version", version, "--budget", "3000", "--seed-epochs", "1",
			"--brokers", kafka, "--model-topic", "")
	}
	train("ml-v1")
	v1 := image(t, rdb, ns)
	deleteNamespace(t, rdb, ns)
	train("ml-v2")
	cfg := cache.DefaultConfig()
	cfg.Namespace = ns
	st, err := cache.NewStore(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cur, prev, err := st.Versions(t.Context()); cur != "ml-v2" || prev != "ml-v1" || err != nil {
		t.Fatalf("versions %q %q %v, want ml-v2 after the restored ml-v1", cur, prev, err)
	}
	isV1 := func(k string) bool {
		return strings.HasPrefix(k, ns+":model:ml-v1:") || strings.HasPrefix(k, ns+":user:ml-v1:")
	}
	both := image(t, rdb, ns)
	sameImage(t, "ml-v1 restored before the publish", v1, both, isV1)

	deleteNamespace(t, rdb, ns)
	var stdout bytes.Buffer
	if err := restoreMain(t.Context(), []string{"--redis-addr", addr, "--namespace", ns, "--brokers", kafka, "--log-level", "warn"}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Versions    []string `json:"versions"`
		PointersSet bool     `json:"pointers_set"`
		Users       int      `json:"users"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || !rep.PointersSet || !slices.Equal(rep.Versions, []string{"ml-v2", "ml-v1"}) || rep.Users == 0 {
		t.Fatalf("restore report %s (%v)", stdout.String(), err)
	}
	sameImage(t, "both versions restored", both, image(t, rdb, ns), func(string) bool { return true })
}
