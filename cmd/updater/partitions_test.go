package main

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
	"github.com/streamrec/streamrec/internal/towers"
)

func TestCheckPartitions(t *testing.T) {
	if err := checkPartitions("in", 8, "cl", map[string]int{"in": 8, "cl": 8}); err != nil {
		t.Fatalf("equal counts: %v", err)
	}
	if err := checkPartitions("in", 8, "cl", map[string]int{"in": 8}); err != nil {
		t.Fatalf("no changelog yet: %v", err)
	}
	err := checkPartitions("in", 12, "cl", map[string]int{"in": 12, "cl": 8})
	if err == nil || !strings.Contains(err.Error(), "refusing to start") || !strings.Contains(err.Error(), "12") {
		t.Fatalf("changed count: %v", err)
	}
}

// An interactions topic whose partition count no longer matches its
// changelog's (partitions were added): the updater refuses to start.
func TestIntegrationRefusesChangedPartitionCount(t *testing.T) {
	e := newEnv(t, "")
	publishModel(t, e)
	if err := stream.EnsureTopics(t.Context(), []string{e.brokers}, stream.CompactedTopic(e.changelog, testPartitions-2)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := run(ctx, e.args())
	if err == nil || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("run = %v, want a refusal naming the changed partition count", err)
	}
}

// The target cap comes from the model's metadata (as the ingestor publishes
// it), so --target-cap need not be kept equal to it by hand.
func TestLoadModelTargetCap(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	store, err := cache.NewStore(rdb, cache.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	items := randomItems(rand.New(rand.NewPCG(1, 2)))
	if _, err := store.Publish(t.Context(), cache.Model{Version: "v1", Dim: testDim, CreatedAtMs: 1,
		Calibration: cache.Calibration{GlobalMean: 0.9, Scale: 1.3, Extra: map[string]float64{towers.MetaTargetCap: 3.5}},
		Items:       items, TowerWeights: []byte("w")}); err != nil {
		t.Fatal(err)
	}
	m, err := loadModel(t.Context(), store, "v1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.TargetCap != 3.5 {
		t.Fatalf("model target cap %v, want the metadata's 3.5", m.TargetCap)
	}
}
