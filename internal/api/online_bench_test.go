package api

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
)

// BenchmarkPrequentialRank: the cost of one sampled prequential rank (a scan
// of the catalogue, 10,728 x 64 as KuaiRec), which the evaluator pays 1 in
// --eval-rank-every no-list interactions; BenchmarkPrequentialPredict: the
// error term it pays for each.
func BenchmarkPrequentialRank(b *testing.B)    { benchScorer(b, true) }
func BenchmarkPrequentialPredict(b *testing.B) { benchScorer(b, false) }

func benchScorer(b *testing.B, rank bool) {
	const n, dim = 10728, 64
	mr := miniredis.RunT(b)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	st, err := cache.NewStore(rdb, cache.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	m := cache.Model{Version: "bench", Dim: dim, Items: cache.Items{IDs: make([]uint32, n), Vectors: make([]float32, n*dim)}}
	for i := range m.Items.IDs {
		m.Items.IDs[i] = uint32(i)
	}
	for i := range m.Items.Vectors {
		m.Items.Vectors[i] = float32(r.NormFloat64())
	}
	ctx := context.Background()
	if _, err := st.Publish(ctx, m); err != nil {
		b.Fatal(err)
	}
	items := &cache.ItemCache{}
	if _, err := items.Refresh(ctx, st); err != nil {
		b.Fatal(err)
	}
	sc := IndexScorer{Items: items}
	q := make([]float32, dim)
	for i := range q {
		q[i] = float32(r.NormFloat64())
	}
	b.ResetTimer()
	for i := range b.N {
		v := uint32(i % n)
		if rank {
			if _, ok := sc.Rank(q, v, ""); !ok {
				b.Fatal("not ranked")
			}
		} else if _, ok := sc.Predict(q, 0, v); !ok {
			b.Fatal("not scored")
		}
	}
}
