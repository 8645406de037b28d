package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// newStoreFunc returns a Store over a fresh, isolated namespace (with cfg's
// other fields) on some Redis backend, cleaned up when the test ends.
type newStoreFunc func(t *testing.T, cfg Config) *Store

// runStoreSuite is the contract of Store, run against every backend
// (miniredis and real Redis): same tests, same expectations.
func runStoreSuite(t *testing.T, newStore newStoreFunc) {
	t.Run("EmptyStore", func(t *testing.T) { testEmptyStore(t, newStore) })
	t.Run("PublishAndRead", func(t *testing.T) { testPublishAndRead(t, newStore) })
	t.Run("PublishRejects", func(t *testing.T) { testPublishRejects(t, newStore) })
	t.Run("FlipKeepsPreviousAndCollectsOlder", func(t *testing.T) { testFlipAndGC(t, newStore) })
	t.Run("Rollback", func(t *testing.T) { testRollback(t, newStore) })
	t.Run("CrashedPublishIsCollected", func(t *testing.T) { testCrashedPublishCollected(t, newStore) })
	t.Run("ModelUpdateNotices", func(t *testing.T) { testNotices(t, newStore) })
	t.Run("Users", func(t *testing.T) { testUsers(t, newStore) })
	t.Run("UsersIfNewer", func(t *testing.T) { testUsersIfNewer(t, newStore) })
	t.Run("UsersFenced", func(t *testing.T) { testUsersFenced(t, newStore) })
	t.Run("UsersFencedMany", func(t *testing.T) { testUsersFencedMany(t, newStore) })
	t.Run("Lease", func(t *testing.T) { testLease(t, newStore) })
	t.Run("Intake", func(t *testing.T) { testIntake(t, newStore) })
	t.Run("UserTTL", func(t *testing.T) { testUserTTL(t, newStore) })
	t.Run("UsersConcurrent", func(t *testing.T) { testUsersConcurrent(t, newStore) })
	t.Run("UserCorrupt", func(t *testing.T) { testUserCorrupt(t, newStore) })
	t.Run("Served", func(t *testing.T) { testServed(t, newStore) })
	t.Run("ItemCacheFollow", func(t *testing.T) { testItemCacheFollow(t, newStore) })
	t.Run("Marker", func(t *testing.T) { testMarker(t, newStore) })
	t.Run("UserFeatures", func(t *testing.T) { testUserFeatures(t, newStore) })
	t.Run("Windows", func(t *testing.T) { testWindows(t, newStore) })
	t.Run("ServedLog", func(t *testing.T) { testServedLog(t, newStore) })
	t.Run("CandidateSets", func(t *testing.T) { testCandidateSetsPublished(t, newStore) })
	t.Run("OfflineUsers", func(t *testing.T) { testOfflineUsers(t, newStore) })
	t.Run("Statuses", func(t *testing.T) { testStatuses(t, newStore) })
	t.Run("WatchHistory", func(t *testing.T) { testWatchHistory(t, newStore) })
	t.Run("WatchHistoryTrim", func(t *testing.T) { testWatchHistoryTrim(t, newStore) })
}

// smallChunks forces many chunks and several pipelines on small models.
func smallChunks() Config {
	cfg := DefaultConfig()
	cfg.ChunkBytes = 2048
	cfg.PipelineBytes = 8192
	return cfg
}

func testModel(r *rand.Rand, version string, n, dim int) Model {
	return Model{
		Version:      version,
		Dim:          dim,
		CreatedAtMs:  1764180000000,
		Calibration:  Calibration{GlobalMean: 0.87, Scale: 1.5, Extra: map[string]float64{"clip": 5}},
		Items:        randomItems(r, n, dim, false),
		TowerWeights: []byte("tower:" + version + strings.Repeat("\x00\xff", 100)),
	}
}

func mustPublish(t *testing.T, s *Store, m Model) ModelMeta {
	t.Helper()
	meta, err := s.Publish(t.Context(), m)
	if err != nil {
		t.Fatalf("Publish(%s): %v", m.Version, err)
	}
	return meta
}

func wantVersions(t *testing.T, s *Store, cur, prev string) {
	t.Helper()
	c, p, err := s.Versions(t.Context())
	if err != nil || c != cur || p != prev {
		t.Fatalf("Versions() = %q, %q, %v; want %q, %q", c, p, err, cur, prev)
	}
}

// countKeys counts the keys matching pattern (test helper).
func countKeys(t *testing.T, s *Store, pattern string) int {
	t.Helper()
	n, cursor := 0, uint64(0)
	for {
		batch, next, err := s.rdb.Scan(t.Context(), cursor, pattern, 1000).Result()
		if err != nil {
			t.Fatal(err)
		}
		n += len(batch)
		if next == 0 {
			return n
		}
		cursor = next
	}
}

func testEmptyStore(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CurrentVersion(ctx); !errors.Is(err, ErrNoModel) {
		t.Fatalf("CurrentVersion: %v, want ErrNoModel", err)
	}
	wantVersions(t, s, "", "")
	if _, err := s.Meta(ctx, "nope"); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("Meta: %v, want ErrVersionNotFound", err)
	}
	if _, _, err := s.ItemEmbeddings(ctx, "nope"); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("ItemEmbeddings: %v, want ErrVersionNotFound", err)
	}
	if _, err := s.TowerWeights(ctx, "nope"); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("TowerWeights: %v, want ErrVersionNotFound", err)
	}
	if _, err := s.Rollback(ctx); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("Rollback: %v, want ErrNoPrevious", err)
	}
	if _, err := LoadItemIndex(ctx, s, "nope"); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("LoadItemIndex: %v, want ErrVersionNotFound", err)
	}
	if del, err := s.CollectGarbage(ctx); err != nil || len(del) != 0 {
		t.Fatalf("CollectGarbage on empty store = %v, %v", del, err)
	}
	for _, bad := range []string{"", "a:b", "a*", "a b", strings.Repeat("x", 65)} {
		if _, _, err := s.GetUser(ctx, bad, 1); !errors.Is(err, ErrInvalid) {
			t.Errorf("GetUser(version %q): %v, want ErrInvalid", bad, err)
		}
	}
}

func testPublishAndRead(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, smallChunks())
	ctx := t.Context()
	r := rand.New(rand.NewPCG(21, 22))
	for _, shape := range []struct{ n, dim int }{{1, 1}, {7, 3}, {1000, 64}, {333, 100}} {
		m := testModel(r, fmt.Sprintf("v-%d-%d", shape.n, shape.dim), shape.n, shape.dim)
		meta := mustPublish(t, s, m)
		if meta.Version != m.Version || meta.Dim != m.Dim || meta.ItemCount != shape.n || meta.TowerBytes != len(m.TowerWeights) ||
			meta.Chunks < 1 || meta.ChunkItems*meta.Chunks < shape.n || meta.CreatedAtMs != m.CreatedAtMs {
			t.Fatalf("meta %+v", meta)
		}
		if cur, err := s.CurrentVersion(ctx); err != nil || cur != m.Version {
			t.Fatalf("CurrentVersion = %q, %v", cur, err)
		}
		got, err := s.Meta(ctx, m.Version)
		if err != nil || got.Calibration.GlobalMean != 0.87 || got.Calibration.Extra["clip"] != 5 || got.PublishedAtMs != meta.PublishedAtMs {
			t.Fatalf("Meta = %+v, %v", got, err)
		}
		tw, err := s.TowerWeights(ctx, m.Version)
		if err != nil || string(tw) != string(m.TowerWeights) {
			t.Fatalf("TowerWeights = %d bytes, %v", len(tw), err)
		}
		_, items, err := s.ItemEmbeddings(ctx, m.Version)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(items.IDs, m.Items.IDs) ||
			!slices.Equal(floatBits(items.Biases), floatBits(m.Items.Biases)) ||
			!slices.Equal(floatBits(items.Vectors), floatBits(m.Items.Vectors)) {
			t.Fatalf("%s: items differ after the round trip", m.Version)
		}
		x, err := LoadItemIndex(ctx, s, m.Version)
		if err != nil || x.Len() != shape.n || x.Dim() != shape.dim || x.Version() != m.Version {
			t.Fatalf("LoadItemIndex = %v, %v", x, err)
		}
		q := randVec(r, shape.dim)
		if got, want := x.TopK(nil, q, 25, TopKOptions{UseBias: true}), bruteTopK(m.Items, shape.dim, q, 25, TopKOptions{UseBias: true}); !slices.Equal(got, want) {
			t.Fatalf("TopK on the loaded index differs from brute force")
		}
	}
	// Nil biases publish as zeros.
	m := testModel(r, "nobias", 10, 4)
	m.Items.Biases = nil
	mustPublish(t, s, m)
	_, items, err := s.ItemEmbeddings(ctx, "nobias")
	if err != nil || !slices.Equal(items.Biases, make([]float32, 10)) {
		t.Fatalf("biases %v, %v", items.Biases, err)
	}
}

func testPublishRejects(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	r := rand.New(rand.NewPCG(23, 24))
	mustPublish(t, s, testModel(r, "v1", 10, 4))
	if _, err := s.Publish(ctx, testModel(r, "v1", 10, 4)); !errors.Is(err, ErrVersionExists) {
		t.Fatalf("republish: %v, want ErrVersionExists", err)
	}
	bad := []func(m *Model){
		func(m *Model) { m.Version = "a:b" },
		func(m *Model) { m.Dim = 0 },
		func(m *Model) { m.Items.Vectors = m.Items.Vectors[1:] },
		func(m *Model) { m.Items.Biases = m.Items.Biases[1:] },
		func(m *Model) { m.Items.IDs[1] = m.Items.IDs[0] },
		func(m *Model) { m.Items = Items{} },
	}
	for i, mutate := range bad {
		m := testModel(r, fmt.Sprintf("bad%d", i), 10, 4)
		mutate(&m)
		if _, err := s.Publish(ctx, m); !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d: %v, want ErrInvalid", i, err)
		}
	}
	wantVersions(t, s, "v1", "")
}

func testFlipAndGC(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, smallChunks())
	ctx := t.Context()
	r := rand.New(rand.NewPCG(25, 26))
	user := UserRecord{UserID: 1, Embedding: []float32{1, 2, 3, 4}}
	for i, v := range []string{"v1", "v2", "v3"} {
		mustPublish(t, s, testModel(r, v, 100, 4))
		if err := s.PutUsers(ctx, v, []UserRecord{user, {UserID: 2, Embedding: []float32{4, 3, 2, 1}}}); err != nil {
			t.Fatal(err)
		}
		wantVersions(t, s, v, []string{"", "v1", "v2"}[i])
	}
	// v1 is gone, with its items, tower, meta and users; v2 and v3 stay.
	if _, err := s.Meta(ctx, "v1"); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("Meta(v1): %v, want ErrVersionNotFound", err)
	}
	if n := countKeys(t, s, s.k.modelPattern("v1")) + countKeys(t, s, s.k.userPattern("v1")); n != 0 {
		t.Fatalf("%d keys of v1 left after GC", n)
	}
	for _, v := range []string{"v2", "v3"} {
		if _, _, err := s.ItemEmbeddings(ctx, v); err != nil {
			t.Fatalf("ItemEmbeddings(%s): %v", v, err)
		}
		if _, ok, err := s.GetUser(ctx, v, 1); err != nil || !ok {
			t.Fatalf("GetUser(%s): %v %v", v, ok, err)
		}
	}
	if n := s.rdb.ZCard(ctx, s.k.versions()).Val(); n != 2 {
		t.Fatalf("%d registered versions, want 2", n)
	}
}

func testRollback(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	r := rand.New(rand.NewPCG(27, 28))
	mustPublish(t, s, testModel(r, "v1", 10, 4))
	if _, err := s.Rollback(ctx); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("Rollback with one version: %v, want ErrNoPrevious", err)
	}
	mustPublish(t, s, testModel(r, "v2", 10, 4))
	u, err := s.Rollback(ctx)
	if err != nil || u.Current != "v1" || u.Previous != "v2" || u.Reason != "rollback" {
		t.Fatalf("Rollback = %+v, %v", u, err)
	}
	wantVersions(t, s, "v1", "v2")
	if _, err := s.Rollback(ctx); err != nil { // rolls forward again
		t.Fatal(err)
	}
	wantVersions(t, s, "v2", "v1")
	if _, err := s.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Publishing after a rollback: v1 (current) becomes previous; v2 is collected.
	mustPublish(t, s, testModel(r, "v3", 10, 4))
	wantVersions(t, s, "v3", "v1")
	if _, err := s.Meta(ctx, "v2"); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("Meta(v2): %v, want ErrVersionNotFound", err)
	}
	// A previous version that vanished (e.g. deleted by hand) cannot be rolled back to.
	if err := s.rdb.Del(ctx, s.k.meta("v1")).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rollback(ctx); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("Rollback to a deleted version: %v, want ErrNoPrevious", err)
	}
	wantVersions(t, s, "v3", "v1")
}

func testCrashedPublishCollected(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	r := rand.New(rand.NewPCG(29, 30))
	// A publisher registered "crashed" and wrote a chunk, then died before the meta.
	seq := s.rdb.Incr(ctx, s.k.seq()).Val()
	s.rdb.ZAdd(ctx, s.k.versions(), redisZ(seq, "crashed"))
	s.rdb.Set(ctx, s.k.itemChunk("crashed", 0), "partial", 0)
	if _, err := s.Meta(ctx, "crashed"); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("incomplete version visible: %v", err)
	}
	mustPublish(t, s, testModel(r, "v1", 10, 4))
	if n := countKeys(t, s, s.k.modelPattern("crashed")); n != 0 {
		t.Fatalf("%d keys of the crashed publish left", n)
	}
	// A version registered after the current one (being written right now
	// by another publisher) is left alone.
	seq = s.rdb.Incr(ctx, s.k.seq()).Val()
	s.rdb.ZAdd(ctx, s.k.versions(), redisZ(seq, "inflight"))
	s.rdb.Set(ctx, s.k.itemChunk("inflight", 0), "partial", 0)
	if del, err := s.CollectGarbage(ctx); err != nil || len(del) != 0 {
		t.Fatalf("CollectGarbage = %v, %v; want nothing deleted", del, err)
	}
	if n := countKeys(t, s, s.k.modelPattern("inflight")); n != 1 {
		t.Fatalf("in-flight version collected")
	}
}

func testNotices(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	r := rand.New(rand.NewPCG(31, 32))
	sub, err := s.SubscribeModelUpdates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func() ModelUpdate {
		t.Helper()
		select {
		case u := <-sub.Updates():
			return u
		case <-time.After(5 * time.Second):
			t.Fatal("no model update notice within 5s")
		}
		return ModelUpdate{}
	}
	mustPublish(t, s, testModel(r, "v1", 10, 4))
	if u := next(); u.Current != "v1" || u.Previous != "" || u.Reason != "publish" || u.AtMs == 0 {
		t.Fatalf("notice %+v", u)
	}
	mustPublish(t, s, testModel(r, "v2", 10, 4))
	if u := next(); u.Current != "v2" || u.Previous != "v1" {
		t.Fatalf("notice %+v", u)
	}
	if _, err := s.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if u := next(); u.Current != "v1" || u.Previous != "v2" || u.Reason != "rollback" {
		t.Fatalf("notice %+v", u)
	}
	// Garbage on the channel is skipped.
	s.rdb.Publish(ctx, s.k.modelUpdates(), "not json")
	mustPublish(t, s, testModel(r, "v3", 10, 4))
	if u := next(); u.Current != "v3" {
		t.Fatalf("notice %+v", u)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	for range sub.Updates() { // closed after Close
	}
	if err := sub.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

func testUsers(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	r := rand.New(rand.NewPCG(33, 34))
	if rec, ok, err := s.GetUser(ctx, "v1", 5); err != nil || ok || rec.Embedding != nil {
		t.Fatalf("missing user = %+v, %v, %v; want zero, false, nil", rec, ok, err)
	}
	recs := make([]UserRecord, 1000)
	for i := range recs {
		recs[i] = UserRecord{
			UserID: uint32(i * 3), Embedding: randVec(r, 64), Bias: float32(i),
			UpdatedAtMs: 1764180000000 + int64(i), InputPartition: int32(i % 8), InputNext: int64(i) << 20, EventProducedAtMs: 1764170000000 + int64(i),
		}
	}
	recs[7].ModelVersion = "v1" // explicit and equal: accepted
	recs[8].Embedding = weirdFloats
	if err := s.PutUsers(ctx, "v1", recs); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 7, 8, 999} {
		got, ok, err := s.GetUser(ctx, "v1", recs[i].UserID)
		want := recs[i]
		want.ModelVersion = "v1"
		if err != nil || !ok || !equalUser(got, want) {
			t.Fatalf("GetUser(%d) = %+v, %v, %v; want %+v", want.UserID, got, ok, err, want)
		}
	}
	// Version isolation: the same user under another version is missing.
	if _, ok, err := s.GetUser(ctx, "v2", recs[0].UserID); err != nil || ok {
		t.Fatalf("user visible under another version: %v %v", ok, err)
	}
	ids := []uint32{recs[5].UserID, 1, recs[6].UserID, 4}
	got, found, err := s.GetUsers(ctx, "v1", ids)
	if err != nil || !slices.Equal(found, []bool{true, false, true, false}) {
		t.Fatalf("GetUsers found %v, %v", found, err)
	}
	if got[1].UserID != 1 || got[1].Embedding != nil || !equalUser(got[0], withVersion(recs[5], "v1")) || !equalUser(got[2], withVersion(recs[6], "v1")) {
		t.Fatalf("GetUsers records %+v", got)
	}
	if got, found, err := s.GetUsers(ctx, "v1", nil); err != nil || got != nil || found != nil {
		t.Fatalf("GetUsers(nil) = %v %v %v", got, found, err)
	}
	// Overwrite.
	upd := recs[0]
	upd.InputNext++
	upd.Embedding = []float32{9, 9}
	if err := s.PutUsers(ctx, "v1", []UserRecord{upd}); err != nil {
		t.Fatal(err)
	}
	if g, _, _ := s.GetUser(ctx, "v1", upd.UserID); !equalUser(g, withVersion(upd, "v1")) {
		t.Fatalf("overwrite: %+v", g)
	}
	// Mismatched record version, bad version name: rejected, nothing written.
	bad := UserRecord{UserID: 77, ModelVersion: "v2"}
	if err := s.PutUsers(ctx, "v1", []UserRecord{{UserID: 76}, bad}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("mismatched version: %v, want ErrInvalid", err)
	}
	if _, ok, _ := s.GetUser(ctx, "v1", 76); ok {
		t.Fatal("a rejected batch was partly written")
	}
	if err := s.PutUsers(ctx, "a:b", recs[:1]); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad version: %v, want ErrInvalid", err)
	}
	if err := s.PutUsers(ctx, "v1", nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	if age := (&UserRecord{UpdatedAtMs: 1000}).Age(time.UnixMilli(3500)); age != 2500*time.Millisecond {
		t.Fatalf("Age = %v", age)
	}
}

func withVersion(r UserRecord, v string) UserRecord { r.ModelVersion = v; return r }

func equalUser(a, b UserRecord) bool {
	return a.UserID == b.UserID && a.ModelVersion == b.ModelVersion && floatBits([]float32{a.Bias})[0] == floatBits([]float32{b.Bias})[0] &&
		a.UpdatedAtMs == b.UpdatedAtMs && a.InputPartition == b.InputPartition && a.InputNext == b.InputNext && a.EventProducedAtMs == b.EventProducedAtMs &&
		slices.Equal(floatBits(a.Embedding), floatBits(b.Embedding))
}

func testUsersConcurrent(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 35))
			for i := range 20 {
				batch := make([]UserRecord, 10)
				for j := range batch {
					batch[j] = UserRecord{UserID: uint32(g*1000 + i*10 + j), Embedding: randVec(r, 8), InputNext: int64(i)}
				}
				if err := s.PutUsers(ctx, "v1", batch); err != nil {
					t.Error(err)
					return
				}
				for _, rec := range batch {
					got, ok, err := s.GetUser(ctx, "v1", rec.UserID)
					if err != nil || !ok || !equalUser(got, withVersion(rec, "v1")) {
						t.Errorf("GetUser(%d) = %+v %v %v", rec.UserID, got, ok, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

func testUserCorrupt(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	s.rdb.Set(ctx, s.k.user("v1", 3), "\x01garbage", 0)
	if _, _, err := s.GetUser(ctx, "v1", 3); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetUser of garbage: %v, want ErrCorrupt", err)
	}
	if err := s.PutUsers(ctx, "v1", []UserRecord{{UserID: 1, Embedding: []float32{2}, InputNext: 5}}); err != nil {
		t.Fatal(err)
	}
	// GetUsers reports the corrupt record and still answers the others.
	recs, found, err := s.GetUsers(ctx, "v1", []uint32{1, 3, 2})
	var cue *CorruptUsersError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &cue) || len(cue.Users) != 1 || cue.Users[3] == nil {
		t.Fatalf("GetUsers of garbage: %v, want a CorruptUsersError naming user 3", err)
	}
	if !found[0] || recs[0].InputNext != 5 || found[1] || found[2] || recs[1].UserID != 3 {
		t.Fatalf("GetUsers beside a corrupt record: %+v %v", recs, found)
	}
	// A record stored under a key of another version is corrupt, never served.
	s.rdb.Set(ctx, s.k.user("v1", 4), appendUserRecord(nil, "v0", &UserRecord{}), 0)
	if _, _, err := s.GetUser(ctx, "v1", 4); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetUser of a v0 record under v1: %v, want ErrCorrupt", err)
	}
}

func testServed(t *testing.T, newStore newStoreFunc) {
	cfg := DefaultConfig()
	cfg.ServedTTL = time.Hour
	s := newStore(t, cfg)
	ctx := t.Context()
	if l, ok, err := s.GetServed(ctx, 9); err != nil || ok || l.Items != nil {
		t.Fatalf("missing served list = %+v %v %v", l, ok, err)
	}
	l := ServedList{ModelVersion: "v1", ServedAtMs: 1764180000000, Items: []uint32{3, 1, 2}, Scores: []float32{0.9, 0.5, 0.1}, Predicted: []float32{1.2, 0.8, 0.3}}
	if err := s.PutServed(ctx, 9, l); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.GetServed(ctx, 9)
	if err != nil || !ok || got.ModelVersion != l.ModelVersion || got.ServedAtMs != l.ServedAtMs ||
		!slices.Equal(got.Items, l.Items) || !slices.Equal(got.Scores, l.Scores) || !slices.Equal(got.Predicted, l.Predicted) {
		t.Fatalf("GetServed = %+v %v %v", got, ok, err)
	}
	if ttl := s.rdb.PTTL(ctx, s.k.served(9)).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("served list TTL %v, want (0, 1h]", ttl)
	}
	l2 := ServedList{ModelVersion: "v2", ServedAtMs: 5, Items: []uint32{7}}
	if err := s.PutServed(ctx, 9, l2); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.GetServed(ctx, 9); got.ModelVersion != "v2" || !slices.Equal(got.Items, l2.Items) || got.Scores != nil {
		t.Fatalf("replaced served list = %+v", got)
	}
	for _, bad := range []ServedList{
		{Items: []uint32{1, 2}, Scores: []float32{1}},
		{Items: []uint32{1, 2}, Predicted: []float32{1, 2, 3}},
		{Items: make([]uint32, maxServedItems+1)},
	} {
		if err := s.PutServed(ctx, 9, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutServed(%d items, %d scores, %d predicted): %v, want ErrInvalid", len(bad.Items), len(bad.Scores), len(bad.Predicted), err)
		}
	}
}

func testItemCacheFollow(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx, cancel := context.WithCancel(t.Context())
	r := rand.New(rand.NewPCG(37, 38))
	var c ItemCache
	done := make(chan error, 1)
	// A long poll interval: the swaps below must come from the notices.
	go func() { done <- c.Follow(ctx, s, time.Hour, nil) }()
	waitFor := func(v string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if x := c.Index(); x != nil && x.Version() == v {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("item cache did not reach version %s", v)
	}
	// Follow subscribes before it reads the current version, so v1 is seen
	// either by the start refresh or through its notice, never missed.
	mustPublish(t, s, testModel(r, "v1", 50, 8))
	waitFor("v1")
	mustPublish(t, s, testModel(r, "v2", 60, 8))
	waitFor("v2")
	if _, err := s.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor("v1")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Follow returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return after cancel")
	}
}

func testUsersIfNewer(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	put := func(recs ...UserRecord) int {
		t.Helper()
		skipped, err := s.PutUsersIfNewer(ctx, "v1", recs)
		if err != nil {
			t.Fatal(err)
		}
		return skipped
	}
	stored := func(uid uint32) int64 {
		t.Helper()
		r, ok, err := s.GetUser(ctx, "v1", uid)
		if err != nil || !ok {
			t.Fatalf("GetUser(%d): %v %v", uid, ok, err)
		}
		return r.InputNext
	}
	recAt := func(uid uint32, part int32, off int64) UserRecord {
		return UserRecord{UserID: uid, InputPartition: part, InputNext: off, Embedding: []float32{float32(off)}}
	}
	rec := func(uid uint32, off int64) UserRecord { return recAt(uid, 3, off) }
	tests := []struct {
		name        string
		stored, put int64
		wantWritten bool
	}{
		{"newer", 10, 11, true},
		{"equal rewrites", 10, 10, true},
		{"older skipped", 10, 9, false},
		{"older by a high byte", 1 << 40, 1<<40 - 1, false},
		{"newer by a high byte", 1<<8 - 1, 1 << 8, true},
		{"first event over none", 0, 1, true},
		{"none under an event", 1, 0, false},
		{"max", 1<<63 - 1, 1<<63 - 2, false},
	}
	for i, tc := range tests {
		uid := uint32(100 + i)
		if put(rec(uid, tc.stored)) != 0 {
			t.Fatalf("%s: first write skipped", tc.name)
		}
		skipped := put(rec(uid, tc.put))
		want := tc.stored
		if tc.wantWritten {
			want = tc.put
		}
		if (skipped == 0) != tc.wantWritten || stored(uid) != want {
			t.Errorf("%s: skipped=%d stored=%d, want written=%v stored=%d", tc.name, skipped, stored(uid), tc.wantWritten, want)
		}
	}
	// Another partition's record is replaced whatever its offset (the
	// partition count changed, which the updater refuses; the newest write wins).
	if put(recAt(50, 1, 100)) != 0 || put(recAt(50, 2, 5)) != 0 || stored(50) != 5 {
		t.Fatal("a record of another partition was not overwritten")
	}
	// A batch mixes written and skipped records; an unconditional PutUsers
	// (the rebuild path) still overwrites.
	if n := put(rec(100, 1), rec(1, 1), rec(101, 50)); n != 1 {
		t.Fatalf("batch skipped %d, want 1", n)
	}
	if err := s.PutUsers(ctx, "v1", []UserRecord{rec(100, 1)}); err != nil || stored(100) != 1 {
		t.Fatalf("PutUsers did not overwrite: %v, stored %d", err, stored(100))
	}
	// A format-1 record (before input positions) is overwritten.
	old := []byte{1, 2, 'v', '1'}
	old = append(old, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f) // event id
	old = append(old, make([]byte, 8+8+4+4)...)
	s.rdb.Set(ctx, s.k.user("v1", 8), old, 0)
	if r, ok, err := s.GetUser(ctx, "v1", 8); err != nil || !ok || r.InputNext != 0 {
		t.Fatalf("format-1 record: %+v %v %v, want position unknown", r, ok, err)
	}
	if put(rec(8, 0)) != 0 || stored(8) != 0 {
		t.Fatal("format-1 value not overwritten")
	}
	// A corrupt stored value is overwritten.
	s.rdb.Set(ctx, s.k.user("v1", 7), "\x09junk", 0)
	if put(rec(7, 3)) != 0 || stored(7) != 3 {
		t.Fatal("corrupt value not overwritten")
	}
	// So is one tagged format 2 whose length does not match its dim, even
	// when its bytes read as a huge offset on the same partition.
	junk := appendUserRecord(nil, "v1", &UserRecord{InputPartition: 3, InputNext: 1 << 60, Embedding: []float32{1, 2}})
	s.rdb.Set(ctx, s.k.user("v1", 6), junk[:len(junk)-1], 0)
	if put(rec(6, 3)) != 0 || stored(6) != 3 {
		t.Fatal("a truncated format-2 value blocked the write")
	}
	if _, err := s.PutUsersIfNewer(ctx, "v1", []UserRecord{{UserID: 1, ModelVersion: "v2"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("mismatched version: %v, want ErrInvalid", err)
	}
}

// The fencing epoch: a write from an older epoch than the stored record's
// is refused whatever its position (counted as fenced, apart from stale); a
// newer epoch still may not move a user's position back on its partition; a
// format-2 record (no epoch) counts as epoch 0.
func testUsersFenced(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := context.Background()
	at := func(uid uint32, off int64, epoch uint64) UserRecord {
		return UserRecord{UserID: uid, InputPartition: 2, InputNext: off, Epoch: epoch, Embedding: []float32{float32(off), float32(epoch)}}
	}
	stored := func(uid uint32) (int64, uint64) {
		r, ok, err := s.GetUser(ctx, "v1", uid)
		if err != nil || !ok {
			t.Fatalf("user %d: %v %v", uid, ok, err)
		}
		return r.InputNext, r.Epoch
	}
	tests := []struct {
		name          string
		stored, put   UserRecord
		fenced, stale int
		want          UserRecord
	}{
		{"older epoch at a later position", at(1, 10, 7), at(1, 20, 6), 1, 0, at(1, 10, 7)},
		{"older epoch by a high byte", at(2, 10, 1<<40), at(2, 20, 1<<40-1), 1, 0, at(2, 10, 1<<40)},
		{"newer epoch, later position", at(3, 10, 6), at(3, 11, 7), 0, 0, at(3, 11, 7)},
		{"newer epoch, same position", at(4, 10, 6), at(4, 10, 9), 0, 0, at(4, 10, 9)},
		{"newer epoch, earlier position", at(5, 10, 6), at(5, 9, 7), 0, 1, at(5, 10, 6)},
		{"same epoch, earlier position", at(6, 10, 6), at(6, 9, 6), 0, 1, at(6, 10, 6)},
		{"offline record (epoch 0) under an updater's", at(7, 10, 3), at(7, 0, 0), 1, 0, at(7, 10, 3)},
	}
	for _, tc := range tests {
		if r, err := s.PutUsersFenced(ctx, "v1", []UserRecord{tc.stored}); err != nil || r != (PutResult{}) {
			t.Fatalf("%s: first write: %+v %v", tc.name, r, err)
		}
		r, err := s.PutUsersFenced(ctx, "v1", []UserRecord{tc.put})
		if err != nil || r.Fenced != tc.fenced || r.Stale != tc.stale {
			t.Errorf("%s: %+v %v; want fenced %d stale %d", tc.name, r, err, tc.fenced, tc.stale)
		}
		if off, ep := stored(tc.put.UserID); off != tc.want.InputNext || ep != tc.want.Epoch {
			t.Errorf("%s: stored at %d epoch %d; want %d epoch %d", tc.name, off, ep, tc.want.InputNext, tc.want.Epoch)
		}
	}
	// A format-2 record (before epochs) is epoch 0: any epoch passes the
	// fence, and the position guard still holds.
	v2 := func(off int64) []byte {
		b := []byte{2, 2, 'v', '1', 2, 0, 0, 0}
		b = binary.LittleEndian.AppendUint64(b, uint64(off))
		b = append(b, make([]byte, 8+8+4)...)
		return binary.LittleEndian.AppendUint32(b, 0)
	}
	s.rdb.Set(ctx, s.k.user("v1", 8), v2(10), 0)
	if off, ep := stored(8); off != 10 || ep != 0 {
		t.Fatalf("format-2 record read at %d epoch %d", off, ep)
	}
	if r, _ := s.PutUsersFenced(ctx, "v1", []UserRecord{at(8, 9, 5)}); r.Stale != 1 {
		t.Fatalf("format-2 record at 10 let a write at 9 through: %+v", r)
	}
	if r, _ := s.PutUsersFenced(ctx, "v1", []UserRecord{at(8, 11, 1)}); r != (PutResult{}) {
		t.Fatalf("format-2 record at 10 refused a write at 11: %+v", r)
	}
}

// testUsersFencedMany: records with a watch history are written many to a
// script call; each user still gets its own verdict (written, fenced or
// stale), counted once, and its ring is written only with its record (its
// long-history videos whatever the verdict), across more users than one
// call takes.
func testUsersFencedMany(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := context.Background()
	const n = 2*putManyChunk + 5
	at := func(uid uint32, off int64, epoch uint64) UserRecord {
		return UserRecord{UserID: uid, InputPartition: 2, InputNext: off, Epoch: epoch,
			Embedding: []float32{float32(off), float32(epoch)}, Watched: []uint32{uid, uint32(off)}, Seen: []uint32{uint32(1000 + off)}}
	}
	// hist is the history GetUserWatched returns after recs were written
	// in order, kept the stored record: its ring and every record's
	// long-history videos (written whatever the verdict), ascending.
	hist := func(kept UserRecord, recs ...UserRecord) []uint32 {
		h := slices.Clone(kept.Watched)
		for _, r := range recs {
			h = append(h, r.Seen...)
		}
		slices.Sort(h)
		return slices.Compact(h)
	}
	first := make([]UserRecord, n)
	for i := range first {
		first[i] = at(uint32(i), 10, 6)
	}
	if r, err := s.PutUsersFenced(ctx, "v1", first); err != nil || r != (PutResult{}) {
		t.Fatalf("first write: %+v %v", r, err)
	}
	// Every third user fenced (older epoch), every third stale (earlier
	// position), the rest written.
	second := make([]UserRecord, n)
	want := make([]UserRecord, n)
	wantHist := make([][]uint32, n)
	wantFenced, wantStale := 0, 0
	for i := range second {
		switch uid := uint32(i); i % 3 {
		case 0:
			second[i], want[i] = at(uid, 20, 5), first[i]
			wantHist[i] = hist(first[i], first[i], second[i])
			wantFenced++
		case 1:
			second[i], want[i] = at(uid, 9, 6), first[i]
			wantHist[i] = hist(first[i], first[i], second[i])
			wantStale++
		default:
			second[i] = at(uid, 11, 7)
			want[i] = second[i]
			wantHist[i] = hist(second[i], first[i], second[i])
		}
	}
	r, err := s.PutUsersFenced(ctx, "v1", second)
	if err != nil || r.Fenced != wantFenced || r.Stale != wantStale {
		t.Fatalf("%+v %v; want fenced %d stale %d", r, err, wantFenced, wantStale)
	}
	for i := range want {
		got, found, w, err := s.GetUserWatched(ctx, "v1", uint32(i))
		if err != nil || !found || got.InputNext != want[i].InputNext || got.Epoch != want[i].Epoch || !slices.Equal(w, wantHist[i]) {
			t.Errorf("user %d: stored at %d epoch %d history %v (%v %v); want %d epoch %d history %v",
				i, got.InputNext, got.Epoch, w, found, err, want[i].InputNext, want[i].Epoch, wantHist[i])
		}
	}
}

func testUserTTL(t *testing.T, newStore newStoreFunc) {
	cfg := DefaultConfig()
	cfg.UserTTL = time.Hour
	s := newStore(t, cfg)
	ctx := t.Context()
	if err := s.PutUsers(ctx, "v1", []UserRecord{{UserID: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutUsersIfNewer(ctx, "v1", []UserRecord{{UserID: 2}}); err != nil {
		t.Fatal(err)
	}
	for _, uid := range []uint32{1, 2} {
		if ttl := s.rdb.PTTL(ctx, s.k.user("v1", uid)).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("user %d TTL %v, want (0, 1h]", uid, ttl)
		}
	}
	// Without UserTTL, records do not expire.
	s2 := newStore(t, DefaultConfig())
	if err := s2.PutUsers(ctx, "v1", []UserRecord{{UserID: 1}}); err != nil {
		t.Fatal(err)
	}
	if ttl := s2.rdb.PTTL(ctx, s2.k.user("v1", 1)).Val(); ttl != -1 {
		t.Errorf("TTL %v without UserTTL, want none (-1)", ttl)
	}
}

func testMarker(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	if _, ok, err := s.Marker(ctx, "updater.g"); err != nil || ok {
		t.Fatalf("fresh marker: ok=%v err=%v, want absent", ok, err)
	}
	if err := s.SetMarker(ctx, "updater.g", 42, time.Hour); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Marker(ctx, "updater.g"); err != nil || !ok || v != 42 {
		t.Fatalf("marker = %d %v %v, want 42 true nil", v, ok, err)
	}
	if ok, err := s.TouchMarker(ctx, "updater.g", time.Minute); err != nil || !ok {
		t.Fatalf("touching a present marker: %v %v", ok, err)
	}
	if ok, err := s.TouchMarker(ctx, "updater.other", time.Minute); err != nil || ok {
		t.Fatalf("touching an absent marker: %v %v, want false and no marker created", ok, err)
	}
	if _, ok, _ := s.Marker(ctx, "updater.other"); ok {
		t.Fatal("a touch created a marker")
	}
	if err := s.SetMarker(ctx, "bad:name", 1, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad marker name: %v, want ErrInvalid", err)
	}
}

func testUserFeatures(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := t.Context()
	if _, ok, err := s.GetUserFeatures(ctx, "v1"); err != nil || ok {
		t.Fatalf("absent features: ok=%v err=%v", ok, err)
	}
	want := UserFeatures{Dim: 3, IDs: []uint32{7, 1, 9}, Feats: []float32{1, 2, 3, -4, 5.5, 6, 0, 0, 1e-9}}
	if err := s.PutUserFeatures(ctx, "v1", want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.GetUserFeatures(ctx, "v1")
	if err != nil || !ok || got.Dim != 3 || !slices.Equal(got.IDs, want.IDs) || !slices.Equal(got.Feats, want.Feats) {
		t.Fatalf("round trip: %+v %v %v", got, ok, err)
	}
	if err := s.PutUserFeatures(ctx, "v1", UserFeatures{Dim: 2, IDs: []uint32{1}, Feats: []float32{1}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("mismatched shape: %v, want ErrInvalid", err)
	}
}

// Leases: one holder at a time; a renewal by a holder whose lease expired
// (and was taken) fails as lost; a release never deletes another's lease.
func testLease(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, DefaultConfig())
	ctx := context.Background()
	a, err := s.AcquireLease(ctx, "retrain", "a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(ctx, "retrain", "b", time.Second); !errors.Is(err, ErrLeaseHeld) || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("second acquire: %v, want ErrLeaseHeld naming a", err)
	}
	if err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if holder, left, err := s.LeaseHolder(ctx, "retrain"); err != nil || holder != "a" || left <= 0 {
		t.Fatalf("holder %q left %v err %v", holder, left, err)
	}
	// b takes over once the key is gone (as after the TTL).
	s.rdb.Del(ctx, s.k.lease("retrain"))
	b, err := s.AcquireLease(ctx, "retrain", "b", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renewal by the old holder: %v, want ErrLeaseLost", err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if holder, _, _ := s.LeaseHolder(ctx, "retrain"); holder != "b" {
		t.Fatalf("the old holder's release deleted b's lease (holder %q)", holder)
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if holder, _, _ := s.LeaseHolder(ctx, "retrain"); holder != "" {
		t.Fatalf("released lease still held by %q", holder)
	}
}
