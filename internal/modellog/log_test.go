package modellog

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
)

// The model log's tests run against real Kafka and Redis, opt-in by
// environment (STREAMREC_TEST_KAFKA, STREAMREC_TEST_REDIS). They never flush
// the shared Redis: they delete their own namespace's keys instead.

type env struct {
	ns    string
	rdb   *redis.Client
	store *cache.Store
	log   *Log
}

func newEnv(t *testing.T) *env {
	t.Helper()
	kafka, addr := os.Getenv("STREAMREC_TEST_KAFKA"), os.Getenv("STREAMREC_TEST_REDIS")
	if kafka == "" || addr == "" || testing.Short() {
		t.Skip("integration: set STREAMREC_TEST_KAFKA and STREAMREC_TEST_REDIS (and drop -short) to run")
	}
	e := &env{ns: fmt.Sprintf("test-mlog-%08x", rand.Uint32()), rdb: redis.NewClient(&redis.Options{Addr: addr})}
	cfg := cache.DefaultConfig()
	cfg.Namespace = e.ns
	cfg.ChunkBytes = 4096 // several item chunks
	cfg.PipelineBytes = 8192
	var err error
	if e.store, err = cache.NewStore(e.rdb, cfg); err != nil {
		t.Fatal(err)
	}
	if e.log, err = New([]string{kafka}, DefaultTopic(e.ns)); err != nil {
		t.Fatal(err)
	}
	if err := e.log.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.deleteNamespace(t)
		e.log.Close()
		e.rdb.Close()
	})
	return e
}

// deleteNamespace deletes every key of the namespace (the test's "flush").
func (e *env) deleteNamespace(t *testing.T) {
	ctx := context.Background()
	iter := e.rdb.Scan(ctx, 0, e.ns+":*", 1000).Iterator()
	for iter.Next(ctx) {
		e.rdb.Del(ctx, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
}

func publish(t *testing.T, e *env, version string, users int, seed uint64) {
	t.Helper()
	ctx := t.Context()
	r := rand.New(rand.NewPCG(seed, 1))
	const dim = 8
	items := cache.Items{}
	for id := uint32(1); id <= 300; id++ {
		items.IDs = append(items.IDs, id)
		for range dim {
			items.Vectors = append(items.Vectors, float32(r.NormFloat64()))
		}
	}
	off := cache.OfflineUsers{Dim: dim}
	var recs []cache.UserRecord
	for uid := range uint32(users) {
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		off.IDs, off.Biases, off.Vectors = append(off.IDs, uid), append(off.Biases, float32(uid)/10), append(off.Vectors, v...)
		recs = append(recs, cache.UserRecord{UserID: uid, Embedding: v, Bias: float32(uid) / 10, UpdatedAtMs: 42})
	}
	tower := make([]byte, PieceBytes*2+17) // three pieces
	for i := range tower {
		tower[i] = byte(r.Uint32())
	}
	if err := e.store.PutUsers(ctx, version, recs); err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutOfflineUsers(ctx, version, off); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Publish(ctx, cache.Model{Version: version, Dim: dim, CreatedAtMs: 42, Items: items,
		TowerWeights: tower, CandidateSets: map[string][]uint32{"s": {1, 2, 3}}}); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationBackupRestore: a version written to the log and read back
// is the Redis dump byte for byte (pieces over 512 KiB reassembled); after
// the namespace is deleted, Restore brings back the versions, pointers,
// registered video and offline users, and never overwrites a record that is
// there (write if absent); versions the pointers left are deleted from the
// log.
func TestIntegrationBackupRestore(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	publish(t, e, "a", 50, 1)
	publish(t, e, "b", 60, 2)
	vec := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	if err := e.store.RegisterItem(ctx, "b", 9999, 0.5, vec); err != nil {
		t.Fatal(err)
	}
	r := &Restorer{Store: e.store, Log: e.log}
	if err := r.Backup(ctx, 0); err != nil {
		t.Fatal(err)
	}
	fresh := &Restorer{Store: e.store, Log: e.log}
	if err := fresh.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fresh.Held(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("log holds %v, want [a b]", got)
	}
	dumps := map[string]cache.VersionDump{}
	for _, v := range []string{"a", "b"} {
		want, err := e.store.DumpVersion(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		got, m, err := fresh.state.Dump(v)
		if err != nil {
			t.Fatal(err)
		}
		if m.UsersUpdatedAtMs != 42 || got.Seq != want.Seq || len(got.Strings) != len(want.Strings) {
			t.Fatalf("%s: manifest %+v, %d strings, want %d", v, m, len(got.Strings), len(want.Strings))
		}
		for k, b := range want.Strings {
			if !bytes.Equal(got.Strings[k], b) {
				t.Fatalf("%s: key %s differs after the log (%d vs %d bytes)", v, k, len(got.Strings[k]), len(b))
			}
		}
		if v == "b" && (len(got.Hashes["newitems"]) != 1 || !bytes.Equal(got.Hashes["newitems"]["9999"], want.Hashes["newitems"]["9999"])) {
			t.Fatalf("registered video not in the log: %v", got.Hashes)
		}
		dumps[v] = want
	}
	if m, _, _ := fresh.state.Manifest("b"); m.Strings["tower"].Pieces != 3 {
		t.Fatalf("tower in %d pieces, want 3", m.Strings["tower"].Pieces)
	}

	// A corrupt piece is refused, not restored.
	bad := State{raw: map[string][]byte{}}
	for k, v := range fresh.state.raw {
		bad.raw[k] = v
	}
	bad.raw[pieceKey("b", "tower", 1)] = []byte("x")
	if _, _, err := bad.Dump("b"); err == nil {
		t.Fatal("a corrupt piece was accepted")
	}

	// Lose Redis; one user of b already has a newer record when the restore runs.
	e.deleteNamespace(t)
	newer := cache.UserRecord{UserID: 3, Embedding: vec, Bias: 9, UpdatedAtMs: 99, InputPartition: 1, InputNext: 7}
	if err := e.store.PutUsers(ctx, "b", []cache.UserRecord{newer}); err != nil {
		t.Fatal(err)
	}
	rep, err := fresh.Restore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.PointersSet || rep.Users != 50+60-1 || !slices.Equal(rep.Versions, []string{"b", "a"}) {
		t.Fatalf("restore report %+v, want pointers set, 109 users, versions [b a]", rep)
	}
	if cur, prev, _ := e.store.Versions(ctx); cur != "b" || prev != "a" {
		t.Fatalf("pointers %q %q, want b a", cur, prev)
	}
	for v, want := range dumps {
		got, err := e.store.DumpVersion(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != want.Seq || len(got.Strings) != len(want.Strings) {
			t.Fatalf("%s restored with seq %d and %d keys, want %d and %d", v, got.Seq, len(got.Strings), want.Seq, len(want.Strings))
		}
		for k, b := range want.Strings {
			if !bytes.Equal(got.Strings[k], b) {
				t.Fatalf("%s: key %s differs after the restore", v, k)
			}
		}
	}
	if got, ok, _ := e.store.GetUser(ctx, "b", 3); !ok || got.InputNext != 7 || got.Bias != 9 {
		t.Fatalf("the newer record of user 3 was replaced: %+v", got)
	}
	if got, ok, _ := e.store.GetUser(ctx, "a", 7); !ok || got.UpdatedAtMs != 42 || got.Bias != 0.7 {
		t.Fatalf("offline record of user 7 under a: %+v %v", got, ok)
	}
	// Restoring again writes nothing.
	if rep, err := fresh.Restore(ctx); err != nil || rep.Keys != 0 || rep.Users != 0 || rep.PointersSet {
		t.Fatalf("second restore: %+v %v, want nothing written", rep, err)
	}

	// A newer version: a is left by the pointers, so it leaves the log.
	publish(t, e, "c", 10, 3)
	if err := r.Backup(ctx, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		check := &Restorer{Store: e.store, Log: e.log}
		if err := check.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		p, _, _ := check.state.Pointers()
		held := check.Held()
		if slices.Equal(held, []string{"b", "c"}) && p == (Pointers{Current: "c", Previous: "b"}) {
			for k := range check.state.raw {
				if len(k) > 2 && k[:2] == "v/" && k[2] == 'a' && k[3] == '/' {
					t.Fatalf("record %s of the deleted version a is still read", k)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log holds %v, pointers %+v; want [b c], c/b", held, p)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A version in the log but not (yet) in the pointers, registered after
	// the current one (an ingestor between its flip and its log write, seen
	// with older pointers), is not deleted; an older one is.
	for _, z := range []struct {
		v   string
		seq int64
	}{{"late", 1000}, {"early", 1}} {
		d := dumps["b"]
		d.Version, d.Seq = z.v, z.seq
		if _, err := e.log.WriteVersion(ctx, d, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Backup(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if held := r.Held(); !slices.Equal(held, []string{"b", "c", "late"}) {
		t.Fatalf("log holds %v, want [b c late]", held)
	}
}
