package cache

import (
	"context"
	"slices"
	"testing"
	"time"
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
	// only added to.
	r12 := rec(12, []uint32{7, 4, 6})
	r12.Seen = []uint32{7, 6, 1 << 30}
	if _, err := s.PutUsersIfNewer(ctx, "v1", []UserRecord{r12}); err != nil {
		t.Fatal(err)
	}
	if _, _, w, _ := s.GetUserWatched(ctx, "v1", 9); !slices.Equal(w, []uint32{4, 6, 7, 1 << 30}) {
		t.Fatalf("after a newer history: %v", w)
	}
	r13 := rec(13, []uint32{7})
	r13.Seen = []uint32{5000, 1}
	if _, err := s.PutUsersIfNewer(ctx, "v1", []UserRecord{r13}); err != nil {
		t.Fatal(err)
	}
	if _, _, w, _ := s.GetUserWatched(ctx, "v1", 9); !slices.Equal(w, []uint32{1, 6, 7, 5000, 1 << 30}) {
		t.Fatalf("after a second long-history write: %v", w)
	}
	// An older record is skipped, but its long-history videos are added:
	// the user did watch them, whichever writer says so.
	r11 := rec(11, []uint32{8})
	r11.Seen = []uint32{8}
	if skipped, err := s.PutUsersIfNewer(ctx, "v1", []UserRecord{r11}); skipped != 1 || err != nil {
		t.Fatalf("older: %d %v", skipped, err)
	}
	want := []uint32{1, 6, 7, 8, 5000, 1 << 30}
	if _, _, w, _ := s.GetUserWatched(ctx, "v1", 9); !slices.Equal(w, want) {
		t.Fatalf("after an older record: %v", w)
	}
	// A corrupt part excludes nothing of its own and fails nothing.
	if err := s.rdb.Set(ctx, s.k.watched(9), "abc", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, found, w, err := s.GetUserWatched(ctx, "v1", 9); !found || !slices.Equal(w, want) || err != nil {
		t.Fatalf("corrupt ring: %v %v %v", found, w, err)
	}
	if err := s.rdb.Set(ctx, s.k.watched(9), string(appendWatched(nil, []uint32{3})), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.Set(ctx, s.k.seen(9), "\x01\x02"+string(appendWatched(nil, []uint32{2})), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, found, w, err := s.GetUserWatched(ctx, "v1", 9); !found || !slices.Equal(w, []uint32{2, 3}) || err != nil {
		t.Fatalf("misaligned history: %v %v %v", found, w, err)
	}
}

// testWatchHistoryTrim: a long history is trimmed to its last MaxHistory
// events once it holds twice as many, and read as its last MaxHistory
// before that; nothing appended is lost to the trim, and the key keeps the
// users' TTL across it.
func testWatchHistoryTrim(t *testing.T, newStore newStoreFunc) {
	cfg := DefaultConfig()
	cfg.UserTTL = time.Hour
	s := newStore(t, cfg)
	ctx := context.Background()
	seen := make([]uint32, MaxHistory/2)
	for off := int64(1); off <= 5; off++ {
		for i := range seen {
			seen[i] = uint32(off-1)*MaxHistory/2 + uint32(i)
		}
		rec := UserRecord{UserID: 4, Embedding: []float32{1}, InputPartition: 0, InputNext: off, Watched: []uint32{}, Seen: seen}
		if _, err := s.PutUsersIfNewer(ctx, "v1", []UserRecord{rec}); err != nil {
			t.Fatal(err)
		}
		n, err := s.rdb.StrLen(ctx, s.k.seen(4)).Result()
		total := off * MaxHistory / 2
		switch {
		case err != nil:
			t.Fatal(err)
		case total <= 2*MaxHistory && n != 4*total:
			t.Fatalf("after %d events: %d bytes, want %d (no trim yet)", total, n, 4*total)
		case total > 2*MaxHistory && n != 4*MaxHistory:
			t.Fatalf("after %d events: %d bytes, want the last %d events", total, n, MaxHistory)
		}
		_, _, w, err := s.GetUserWatched(ctx, "v1", 4)
		lo := uint32(max(0, total-MaxHistory))
		if err != nil || len(w) != int(uint32(total)-lo) || w[0] != lo || w[len(w)-1] != uint32(total)-1 {
			t.Fatalf("after %d events: %d videos read, %v..%v; want %d..%d", total, len(w), w[:1], w[len(w)-1:], lo, total-1)
		}
		if ttl, err := s.rdb.PTTL(ctx, s.k.seen(4)).Result(); err != nil || ttl <= 0 || ttl > time.Hour {
			t.Fatalf("after %d events: TTL %v %v, want the users' hour", total, ttl, err)
		}
	}
}

// TestDecodeHistory: distinct and ascending, with the ring, dense or
// sparse ids, and only the last MaxHistory events.
func TestDecodeHistory(t *testing.T) {
	h := string(appendWatched(nil, []uint32{9, 3, 9, 70, 3}))
	if got, err := decodeHistory(nil, h, []uint32{70, 1}); err != nil || !slices.Equal(got, []uint32{1, 3, 9, 70}) {
		t.Fatalf("dense: %v %v", got, err)
	}
	if got, err := decodeHistory(nil, h, []uint32{1 << 31}); err != nil || !slices.Equal(got, []uint32{3, 9, 70, 1 << 31}) {
		t.Fatalf("sparse: %v %v", got, err)
	}
	long := make([]uint32, MaxHistory+5)
	for i := range long {
		long[i] = uint32(i)
	}
	got, _ := decodeHistory(nil, string(appendWatched(nil, long)), nil)
	if len(got) != MaxHistory || got[0] != 5 {
		t.Fatalf("long: %d videos from %d", len(got), got[0])
	}
	if got, err := decodeHistory(nil, "", nil); got != nil || err != nil {
		t.Fatalf("empty: %v %v", got, err)
	}
}
