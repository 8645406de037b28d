package main

import (
	"slices"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
)

// TestSimWithHistory: the videos a simulated user counts as watched are
// this run's posts plus the user's history in Redis (the replay's events,
// an earlier run's), each once; a user without one keeps the posts alone.
func TestSimWithHistory(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	store, err := cache.NewStore(rdb, cache.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rec := cache.UserRecord{UserID: 3, Embedding: []float32{1}, InputNext: 4, Watched: []uint32{9}, Seen: []uint32{7, 2, 9}}
	if _, err := store.PutUsersIfNewer(t.Context(), "v1", []cache.UserRecord{rec}); err != nil {
		t.Fatal(err)
	}
	s := &simulator{twin: &simTwin{store: store}, errs: map[string]int{}}
	if got := s.withHistory(t.Context(), "v1", 3, []uint32{5, 7}); !slices.Equal(got, []uint32{5, 7, 2, 9}) {
		t.Fatalf("with a history: %v", got)
	}
	if got := s.withHistory(t.Context(), "v1", 4, []uint32{5}); !slices.Equal(got, []uint32{5}) {
		t.Fatalf("without one: %v", got)
	}
	mr.Close()
	if got := s.withHistory(t.Context(), "v1", 3, []uint32{5}); !slices.Equal(got, []uint32{5}) || len(s.errs) != 1 {
		t.Fatalf("Redis down: %v, errors %v", got, s.errs)
	}
}
