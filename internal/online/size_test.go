package online

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
)

// BenchmarkStateBytes reports the bytes per user of the updater's state at
// the bench's shape (dim 64, 7,176 users, every ring full): in the process's
// heap (map entry, state, vectors, ring), in the changelog (one encoded
// record, key included) and in Redis (one encoded serving record, value only).
//
//	go test -run '^$' -bench StateBytes -benchtime 1x ./internal/online/
func BenchmarkStateBytes(b *testing.B) {
	const users, bdim = 7176, 64
	items := &fakeItems{version: "bench", vecs: map[uint32][]float32{}}
	r := rand.New(rand.NewPCG(3, 3))
	for id := uint32(0); id < 100; id++ {
		v := make([]float32, bdim)
		for j := range v {
			v[j] = float32(r.NormFloat64() * 0.1)
		}
		items.vecs[id] = v
	}
	for b.Loop() {
		users0 := &fakeUsers{recs: map[string]cache.UserRecord{}}
		m := Model{Items: bdimItems{items}, GlobalMean: 0.9, Scale: 1}
		u := NewUpdater(DefaultConfig(), m, users0, nopChangelog{})
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		batch := make([]stream.Record, 0, 4096)
		off := int64(0)
		flush := func() {
			if err := u.Handle(b.Context(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
		for round := 0; round < RingSize; round++ {
			for uid := uint32(0); uid < users; uid++ {
				batch = append(batch, stream.Record{Offset: off, Event: stream.Event{EventID: uint64(off + 1), UserID: uid,
					VideoID: uint32(off % 100), PlayDurationMs: 1, VideoDurationMs: 2, EventTimeMs: 1593878903438 + off,
					WatchRatio: 0.5, Source: stream.SourceReplay, ProducedAtUs: 1}})
				off++
				if len(batch) == cap(batch) {
					flush()
				}
			}
		}
		flush()
		rec0 := users0.recs[ukey("bench", 0)]
		clear(users0.recs) // the fake Redis is not the updater's memory
		runtime.GC()
		runtime.ReadMemStats(&after)
		s, _ := u.State(0)
		users0.recs[ukey("bench", 0)] = rec0
		if len(s.Ring) != RingSize || u.Users() != users {
			b.Fatal(fmt.Sprintf("ring %d, users %d", len(s.Ring), u.Users()))
		}
		heap := float64(after.HeapAlloc-before.HeapAlloc) / users
		b.ReportMetric(heap, "heap-B/user")
		b.ReportMetric(float64(StateSize(&s)+len(stream.AppendKey(nil, s.UserID))), "changelog-B/user")
		b.ReportMetric(float64(redisRecordBytes(b, users0, s)), "redis-B/user")
		u.Close()
	}
}

// bdimItems is fakeItems at the bench's dim.
type bdimItems struct{ *fakeItems }

func (bdimItems) Dim() int { return 64 }

type nopChangelog struct{}

func (nopChangelog) Write(_ context.Context, _ []*UserState) error { return nil }

// redisRecordBytes writes user 0's serving record to a miniredis through
// cache.Store and returns the length of the value stored.
func redisRecordBytes(b *testing.B, users *fakeUsers, s UserState) int {
	mr := miniredis.RunT(b)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	store, err := cache.NewStore(rdb, cache.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	rec := users.recs[ukey(s.ModelVersion, 0)]
	if err := store.PutUsers(b.Context(), s.ModelVersion, []cache.UserRecord{rec}); err != nil {
		b.Fatal(err)
	}
	keys := mr.Keys()
	if len(keys) != 1 {
		b.Fatalf("keys %v", keys)
	}
	v, err := mr.Get(keys[0])
	if err != nil {
		b.Fatal(err)
	}
	return len(v)
}

// BenchmarkVersionSwitch measures the switch cost at KuaiRec's scale (7,176
// users, dim 64, every ring full): one Rematerialize onto a version that
// trained on none of the ring's events (the worst case: 16 SGD steps per
// user) or on all of them (0 steps), with in-memory stores (the Redis and
// changelog writes are not timed).
//
//	go test -run '^$' -bench VersionSwitch -benchtime 20x -count 5 ./internal/online/
func BenchmarkVersionSwitch(b *testing.B) {
	const users, bdim = 7176, 64
	items := &fakeItems{version: "v1", vecs: map[uint32][]float32{}}
	r := rand.New(rand.NewPCG(3, 4))
	for id := uint32(0); id < 100; id++ {
		v := make([]float32, bdim)
		for j := range v {
			v[j] = float32(r.NormFloat64() * 0.1)
		}
		items.vecs[id] = v
	}
	off := cache.OfflineUsers{Dim: bdim}
	for uid := uint32(0); uid < users; uid++ {
		off.IDs, off.Biases = append(off.IDs, uid), append(off.Biases, 0.1)
		for j := 0; j < bdim; j++ {
			off.Vectors = append(off.Vectors, float32(r.NormFloat64()*0.1))
		}
	}
	table := NewOfflineTable(off)
	users0 := &fakeUsers{recs: map[string]cache.UserRecord{}}
	u := NewUpdater(DefaultConfig(), Model{Items: bdimItems{items}, GlobalMean: 0.9, Scale: 1, Offline: table}, users0, nopChangelog{})
	defer u.Close()
	batch := make([]stream.Record, 0, users)
	pos := int64(0)
	for round := 0; round < RingSize; round++ {
		batch = batch[:0]
		for uid := uint32(0); uid < users; uid++ {
			batch = append(batch, stream.Record{Offset: pos, Event: stream.Event{EventID: uint64(pos + 1), UserID: uid,
				VideoID: uint32(pos % 100), PlayDurationMs: 1, VideoDurationMs: 2, EventTimeMs: 1593878903438 + pos,
				WatchRatio: 0.5, Source: stream.SourceReplay, ProducedAtUs: 1}})
			pos++
		}
		if err := u.Handle(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		tt   TrainedThrough
	}{{"ring-not-trained", TrainedThrough{}}, {"ring-trained", TrainedThrough{CutMs: 1593878903438 + pos}}} {
		b.Run(tc.name, func(b *testing.B) {
			i := 0
			before := u.Counters().HandoverReplayed
			for b.Loop() {
				i++
				v := fmt.Sprintf("v%d", i+1)
				u.SetModel(Model{Items: bdimItems{&fakeItems{version: v, vecs: items.vecs}}, GlobalMean: 0.9, Scale: 1,
					Offline: table, Trained: tc.tt})
				if n, err := u.Rematerialize(b.Context()); err != nil || n != users {
					b.Fatalf("Rematerialize = %d, %v", n, err)
				}
			}
			b.ReportMetric(float64(u.Counters().HandoverReplayed-before)/float64(i)/users, "replayed/user")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(i)/users, "us/user")
		})
	}
}
