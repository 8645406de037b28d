package cache

import (
	"context"
	"slices"
	"strings"
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
	// A newer record replaces the ring's part; the long history (Seen) is
	// only added to. A ring video past the bitmap's bound is still returned.
	big := uint32(MaxSeenVideoID + 3)
	r12 := rec(12, []uint32{7, 4, 6, big})
	r12.Seen = []uint32{7, 6, big}
	if _, err := s.PutUsersIfNewer(ctx, "v1", []UserRecord{r12}); err != nil {
		t.Fatal(err)
	}
	if _, _, w, _ := s.GetUserWatched(ctx, "v1", 9); !slices.Equal(w, []uint32{4, 6, 7, big}) {
		t.Fatalf("after a newer history: %v", w)
	}
	r13 := rec(13, []uint32{7})
	r13.Seen = []uint32{5000, 1}
	if _, err := s.PutUsersIfNewer(ctx, "v1", []UserRecord{r13}); err != nil {
		t.Fatal(err)
	}
	if _, _, w, _ := s.GetUserWatched(ctx, "v1", 9); !slices.Equal(w, []uint32{1, 6, 7, 5000}) {
		t.Fatalf("after a second long-history write: %v", w)
	}
	// An older record adds nothing to the long history either.
	r11 := rec(11, []uint32{8})
	r11.Seen = []uint32{8}
	if skipped, err := s.PutUsersIfNewer(ctx, "v1", []UserRecord{r11}); skipped != 1 || err != nil {
		t.Fatalf("older: %d %v", skipped, err)
	}
	if _, _, w, _ := s.GetUserWatched(ctx, "v1", 9); !slices.Equal(w, []uint32{1, 6, 7, 5000}) {
		t.Fatalf("after an older record: %v", w)
	}
	// A corrupt part excludes nothing of its own and fails nothing.
	if err := s.rdb.Set(ctx, s.k.watched(9), "abc", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, found, w, err := s.GetUserWatched(ctx, "v1", 9); !found || !slices.Equal(w, []uint32{1, 6, 7, 5000}) || err != nil {
		t.Fatalf("corrupt ring: %v %v %v", found, w, err)
	}
	if err := s.rdb.Set(ctx, s.k.watched(9), string(appendWatched(nil, []uint32{3})), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.Set(ctx, s.k.seen(9), strings.Repeat("\xff", MaxSeenVideoID/8+1), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, found, w, err := s.GetUserWatched(ctx, "v1", 9); !found || !slices.Equal(w, []uint32{3}) || err != nil {
		t.Fatalf("corrupt bitmap: %v %v %v", found, w, err)
	}
}

// TestDecodeSeen: Redis's bit order (offset 0 is the first byte's high
// bit), ascending, and appendSeen's bound.
func TestDecodeSeen(t *testing.T) {
	got, err := decodeSeen(nil, "\x80\x00\x41")
	if err != nil || !slices.Equal(got, []uint32{0, 17, 23}) {
		t.Fatalf("decodeSeen: %v %v", got, err)
	}
	for _, id := range []uint32{0, 17, 23} {
		if !seenHas("\x80\x00\x41", id) {
			t.Fatalf("seenHas(%d) false", id)
		}
	}
	if seenHas("\x80\x00\x41", 1) || seenHas("\x80", 900) {
		t.Fatal("seenHas of an unset bit")
	}
	if p := appendSeen(nil, []uint32{1, MaxSeenVideoID, MaxSeenVideoID - 1}); len(p) != 8 {
		t.Fatalf("appendSeen kept %d bytes, want 8 (the id at the bound left out)", len(p))
	}
}
