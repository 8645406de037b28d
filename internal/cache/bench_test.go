package cache

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// KuaiRec 2.0's catalogue: 10,728 videos; the serving dim is 64.
const (
	kuaiItems = 10728
	kuaiDim   = 64
)

// benchBackends are the Redis backends of the store benchmarks: miniredis
// always, real Redis when STREAMREC_TEST_REDIS is set (skipped otherwise).
func benchBackends(b *testing.B, run func(b *testing.B, s *Store)) {
	b.Run("backend=miniredis", func(b *testing.B) {
		mr := miniredis.RunT(b)
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		defer rdb.Close()
		cfg := DefaultConfig()
		cfg.Namespace = randomNamespace()
		s, err := NewStore(rdb, cfg)
		if err != nil {
			b.Fatal(err)
		}
		run(b, s)
	})
	b.Run("backend=redis", func(b *testing.B) {
		run(b, newRealRedisStore(b, DefaultConfig()))
	})
}

func BenchmarkTopK(b *testing.B) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, size := range []struct{ n, dim int }{{kuaiItems, kuaiDim}, {100_000, kuaiDim}, {kuaiItems, 128}} {
		x, err := NewItemIndex(ModelMeta{Version: "v", Dim: size.dim}, randomItems(r, size.n, size.dim, false))
		if err != nil {
			b.Fatal(err)
		}
		q := randVec(r, size.dim)
		for _, nExcl := range []int{0, 100, 3000} {
			excl := make([]uint32, nExcl)
			for i, p := range r.Perm(size.n)[:nExcl] {
				excl[i] = x.IDs()[p]
			}
			b.Run(fmt.Sprintf("items=%d/dim=%d/k=25/exclude=%d", size.n, size.dim, nExcl), func(b *testing.B) {
				dst := make([]Scored, 0, 25)
				opts := TopKOptions{UseBias: true, Exclude: excl}
				for b.Loop() {
					dst = x.TopK(dst, q, 25, opts)
				}
				b.ReportMetric(float64(size.n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mitems/s")
			})
		}
	}
}

// BenchmarkTopKParallel: concurrent readers of one index (2 cores here).
func BenchmarkTopKParallel(b *testing.B) {
	r := rand.New(rand.NewPCG(43, 44))
	x, err := NewItemIndex(ModelMeta{Version: "v", Dim: kuaiDim}, randomItems(r, kuaiItems, kuaiDim, false))
	if err != nil {
		b.Fatal(err)
	}
	q := randVec(r, kuaiDim)
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]Scored, 0, 25)
		for pb.Next() {
			dst = x.TopK(dst, q, 25, TopKOptions{UseBias: true, Exclude: []uint32{1, 2, 3}})
		}
	})
}

// BenchmarkDotKernels compares, over 1024 rows of dim 64, the pure-Go
// unrolled loop (dot), the production kernel (scoreBlock: gonum GEMV per
// block of rows), gonum's blas32.Dot per row and one GEMV over all rows.
func BenchmarkDotKernels(b *testing.B) {
	r := rand.New(rand.NewPCG(45, 46))
	const rows = 1024
	q, m := randVec(r, kuaiDim), randVec(r, rows*kuaiDim)
	var sink float32
	b.Run("kernel=dot/dim=64/rows=1024", func(b *testing.B) {
		for b.Loop() {
			for i := range rows {
				sink += dot(q, m[i*kuaiDim:(i+1)*kuaiDim])
			}
		}
	})
	b.Run("kernel=scoreBlock/dim=64/rows=1024", func(b *testing.B) {
		out := make([]float32, scoreBlockRows)
		for b.Loop() {
			for lo := 0; lo < rows; lo += scoreBlockRows {
				scoreBlock(out, q, m[lo*kuaiDim:(lo+scoreBlockRows)*kuaiDim], kuaiDim)
			}
		}
		sink += out[0]
	})
	b.Run("kernel=gonum-blas32/dim=64/rows=1024", func(b *testing.B) {
		qv := blas32.Vector{N: kuaiDim, Inc: 1, Data: q}
		for b.Loop() {
			for i := range rows {
				sink += blas32.Dot(qv, blas32.Vector{N: kuaiDim, Inc: 1, Data: m[i*kuaiDim : (i+1)*kuaiDim]})
			}
		}
	})
	b.Run("kernel=gonum-blas32-gemv/dim=64/rows=1024", func(b *testing.B) {
		qv := blas32.Vector{N: kuaiDim, Inc: 1, Data: q}
		a := blas32.General{Rows: rows, Cols: kuaiDim, Stride: kuaiDim, Data: m}
		out := blas32.Vector{N: rows, Inc: 1, Data: make([]float32, rows)}
		for b.Loop() {
			blas32.Gemv(blas.NoTrans, 1, a, qv, 0, out)
		}
		sink += out.Data[0]
	})
	_ = sink
}

func BenchmarkLoadItemIndex(b *testing.B) {
	r := rand.New(rand.NewPCG(47, 48))
	m := testModel(r, "bench", kuaiItems, kuaiDim)
	benchBackends(b, func(b *testing.B, s *Store) {
		if _, err := s.Publish(b.Context(), m); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("items=%d/dim=%d", kuaiItems, kuaiDim), func(b *testing.B) {
			b.SetBytes(int64(kuaiItems * (kuaiDim + 2) * 4))
			for b.Loop() {
				x, err := LoadItemIndex(b.Context(), s, "bench")
				if err != nil || x.Len() != kuaiItems {
					b.Fatal(err)
				}
			}
		})
	})
}

func BenchmarkPublish(b *testing.B) {
	r := rand.New(rand.NewPCG(49, 50))
	m := testModel(r, "bench", kuaiItems, kuaiDim)
	benchBackends(b, func(b *testing.B, s *Store) {
		b.Run(fmt.Sprintf("items=%d/dim=%d", kuaiItems, kuaiDim), func(b *testing.B) {
			b.SetBytes(int64(kuaiItems * (kuaiDim + 2) * 4))
			i := 0
			for b.Loop() {
				m.Version = "bench" + strconv.Itoa(i)
				i++
				if _, err := s.Publish(b.Context(), m); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

func benchUsers(r *rand.Rand, n int) []UserRecord {
	recs := make([]UserRecord, n)
	for i := range recs {
		recs[i] = UserRecord{UserID: uint32(i), Embedding: randVec(r, kuaiDim), Bias: 0.1, UpdatedAtMs: 1764180000000, InputPartition: int32(i % 8), InputNext: int64(i) << 20, EventProducedAtMs: 1764179999000}
	}
	return recs
}

func BenchmarkPutUsers(b *testing.B) {
	recs := benchUsers(rand.New(rand.NewPCG(51, 52)), 1000)
	benchBackends(b, func(b *testing.B, s *Store) {
		b.Run("batch=1000/dim=64", func(b *testing.B) {
			for b.Loop() {
				if err := s.PutUsers(b.Context(), "v1", recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "users/s")
		})
	})
}

func BenchmarkPutUsersIfNewer(b *testing.B) {
	recs := benchUsers(rand.New(rand.NewPCG(51, 52)), 1000)
	benchBackends(b, func(b *testing.B, s *Store) {
		b.Run("batch=1000/dim=64", func(b *testing.B) {
			for b.Loop() {
				for i := range recs {
					recs[i].InputNext++
				}
				if _, err := s.PutUsersIfNewer(b.Context(), "v1", recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "users/s")
		})
	})
}

func BenchmarkGetUser(b *testing.B) {
	recs := benchUsers(rand.New(rand.NewPCG(53, 54)), 1000)
	benchBackends(b, func(b *testing.B, s *Store) {
		if err := s.PutUsers(b.Context(), "v1", recs); err != nil {
			b.Fatal(err)
		}
		b.Run("dim=64", func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, ok, err := s.GetUser(b.Context(), "v1", uint32(i%len(recs))); err != nil || !ok {
					b.Fatal(ok, err)
				}
				i++
			}
		})
		b.Run("GetUsers/batch=100/dim=64", func(b *testing.B) {
			ids := make([]uint32, 100)
			for i := range ids {
				ids[i] = uint32(i * 7)
			}
			for b.Loop() {
				if _, _, err := s.GetUsers(b.Context(), "v1", ids); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkItemLayoutHash measures the layout this package did not pick:
// one hash per version (field = video id, value = 64 float32 LE), read with
// HGETALL and decoded into the same contiguous arrays. Compare with
// BenchmarkLoadItemIndex (chunked string values).
func BenchmarkItemLayoutHash(b *testing.B) {
	r := rand.New(rand.NewPCG(55, 56))
	it := randomItems(r, kuaiItems, kuaiDim, false)
	benchBackends(b, func(b *testing.B, s *Store) {
		key := s.k.modelPrefix("hashlayout") + "items"
		pipe := s.rdb.Pipeline()
		for i, id := range it.IDs {
			v := appendFloats(nil, it.Vectors[i*kuaiDim:(i+1)*kuaiDim])
			pipe.HSet(b.Context(), key, strconv.FormatUint(uint64(id), 10), v)
		}
		if _, err := pipe.Exec(b.Context()); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("items=%d/dim=%d", kuaiItems, kuaiDim), func(b *testing.B) {
			b.SetBytes(int64(kuaiItems * kuaiDim * 4))
			for b.Loop() {
				m, err := s.rdb.HGetAll(b.Context(), key).Result()
				if err != nil || len(m) != kuaiItems {
					b.Fatal(err)
				}
				ids, vecs := make([]uint32, 0, len(m)), make([]float32, 0, len(m)*kuaiDim)
				for f, v := range m {
					id, err := strconv.ParseUint(f, 10, 32)
					if err != nil || len(v) != 4*kuaiDim {
						b.Fatal(err)
					}
					ids = append(ids, uint32(id))
					for j := 0; j < len(v); j += 4 {
						vecs = append(vecs, math.Float32frombits(binary.LittleEndian.Uint32([]byte(v[j:j+4]))))
					}
				}
			}
		})
	})
}
