package eval

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
)

// The shared store, fed the evaluator's increments batch by batch with the
// offsets they cover (and every batch sent twice, as a restarted replica
// would), holds exactly the in-process windows: counts and micro-unit sums.
func TestStoreMatchesInProcessWindows(t *testing.T) {
	addrs := map[string]string{"miniredis": miniredis.RunT(t).Addr()}
	if a := os.Getenv("STREAMREC_TEST_REDIS"); a != "" {
		addrs["redis"] = a
	}
	for name, addr := range addrs {
		t.Run(name, func(t *testing.T) {
			rdb := redis.NewClient(&redis.Options{Addr: addr})
			defer rdb.Close()
			cfg := cache.DefaultConfig()
			cfg.Namespace = fmt.Sprintf("evaltest-%d", time.Now().UnixNano())
			st, err := cache.NewStore(rdb, cfg)
			if err != nil {
				t.Fatal(err)
			}
			e, err := New(Config{OpenFor: 5 * time.Second, Grace: 200 * time.Millisecond, Window: 2 * time.Second, CountWindow: 50, RankEvery: 3,
				Popularity: func(v uint32) float64 { return float64(v%100) / 100 }, Scorer: &fixedScorer{}})
			if err != nil {
				t.Fatal(err)
			}
			w := NewWindows()
			r := rand.New(rand.NewPCG(3, 4))
			now, offset := int64(1_000_000), int64(0)
			var deltas []cache.WindowDelta
			for b := range 40 {
				from := offset
				for range 25 {
					now += int64(r.IntN(200))
					u := uint32(r.IntN(20))
					if r.IntN(6) == 0 {
						slots := make([]Slot, 10)
						for i := range slots {
							slots[i] = Slot{Video: uint32(r.IntN(60)), Predicted: float32(r.Float64() * 2)}
						}
						e.AddList(List{User: u, ServedMS: now - int64(r.IntN(300)), Slots: slots, UserVec: []float32{1}})
					}
					e.AddInteraction(Interaction{User: u, Video: uint32(r.IntN(60)), EventID: uint64(r.IntN(400) + 1), WatchRatio: r.Float64() * 3,
						ProducedMS: now, Source: []string{"replay", "api", "simulator"}[r.IntN(3)]})
					offset++
				}
				incs := e.Advance(now)
				w.Apply(incs)
				deltas = Deltas(deltas[:0], incs)
				rg := []cache.OffsetRange{{Partition: 0, From: from, To: offset - 1, Watermark: now}}
				for try := range 2 {
					ok, err := st.ApplyWindows(t.Context(), "eval", rg, deltas)
					if err != nil || ok != (try == 0) {
						t.Fatalf("batch %d try %d: applied %v, %v", b, try, ok, err)
					}
				}
			}
			keys := w.Keys(ByTime)
			if len(keys) < 5 {
				t.Fatalf("only %d time windows", len(keys))
			}
			for _, kind := range []WindowKind{ByTime, ByCount} {
				for _, k := range w.Keys(kind) {
					got, err := st.Window(t.Context(), "eval", byte(kind), k.Index)
					if err != nil {
						t.Fatal(err)
					}
					want := maps.Clone(w.Fields(k))
					if want == nil {
						want = map[string]int64{}
					}
					if n := w.Get(k, "served_videos"); n > 0 {
						want["served_videos"] = n
					}
					if !maps.Equal(got, want) {
						t.Errorf("window %c%d: store %v\nin process %v", kind, k.Index, got, want)
					}
				}
			}
		})
	}
}
