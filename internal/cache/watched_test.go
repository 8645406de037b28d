package cache

import (
	"context"
	"slices"
	"testing"
)

// testWatchHistory: PutUsersIfNewer writes a record's Watched to the user's
// version-independent history key, only when it writes the record;
// GetUserWatched reads both in one call, the history under any version.
func testWatchHistory(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := context.Background()
	rec := func(next int64, watched []uint32) UserRecord {
		return UserRecord{UserID: 9, Embedding: []float32{1, 2}, InputPartition: 1, InputNext: next, Watched: watched}
	}
	if _, found, w, err := s.GetUserWatched(ctx, "v1", 9); found || w != nil || err != nil {
		t.Fatalf("empty: %v %v %v", found, w, err)
	}
	if _, err := s.PutUsersIfNewer(ctx, "v1", []UserRecord{rec(10, []uint32{4, 5})}); err != nil {
		t.Fatal(err)
	}
	r, found, w, err := s.GetUserWatched(ctx, "v1", 9)
	if !found || err != nil || r.InputNext != 10 || !slices.Equal(w, []uint32{4, 5}) {
		t.Fatalf("after a write: %+v %v %v %v", r, found, w, err)
	}
	// An older record is skipped, and so is its history.
	if skipped, err := s.PutUsersIfNewer(ctx, "v1", []UserRecord{rec(8, []uint32{1})}); skipped != 1 || err != nil {
		t.Fatalf("older: %d %v", skipped, err)
	}
	// The history is the user's, whatever the version: a user with no record
	// under v2 still has it.
	if _, found, w, err := s.GetUserWatched(ctx, "v2", 9); found || !slices.Equal(w, []uint32{4, 5}) || err != nil {
		t.Fatalf("under v2: %v %v %v", found, w, err)
	}
	// A record without Watched leaves the history alone; a newer one with an
	// empty history replaces it.
	if _, err := s.PutUsersIfNewer(ctx, "v1", []UserRecord{rec(11, nil)}); err != nil {
		t.Fatal(err)
	}
	if _, _, w, _ := s.GetUserWatched(ctx, "v1", 9); !slices.Equal(w, []uint32{4, 5}) {
		t.Fatalf("after a record without history: %v", w)
	}
	if _, err := s.PutUsersIfNewer(ctx, "v1", []UserRecord{rec(12, []uint32{7, 4, 6})}); err != nil {
		t.Fatal(err)
	}
	if _, _, w, _ := s.GetUserWatched(ctx, "v1", 9); !slices.Equal(w, []uint32{7, 4, 6}) {
		t.Fatalf("after a newer history: %v", w)
	}
	// A corrupt history excludes nothing and fails nothing.
	if err := s.rdb.Set(ctx, s.k.watched(9), "abc", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, found, w, err := s.GetUserWatched(ctx, "v1", 9); !found || w != nil || err != nil {
		t.Fatalf("corrupt history: %v %v %v", found, w, err)
	}
}
