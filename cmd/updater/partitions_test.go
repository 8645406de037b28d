package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/stream"
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
