package cache

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

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

// gonumTopK is the reference of the benchmarks: the previous kernel,
// gonum's float32 GEMV (blas32.Gemv: SSE assembly, no FMA) over blocks of 256
// row-major rows, followed by the same selection as TopK (selector).
func gonumTopK(x *ItemIndex, dst []Scored, q []float32, k int, useBias bool, scores []float32) []Scored {
	dim, n := x.dim, len(x.ids)
	sel := selector{h: dst[:0], k: k, th: float32(math.Inf(-1)), ids: x.ids}
	qv := blas32.Vector{N: dim, Inc: 1, Data: q}
	for lo := 0; lo < n; lo += len(scores) {
		hi := min(n, lo+len(scores))
		out := scores[:hi-lo]
		blas32.Gemv(blas.NoTrans, 1, blas32.General{Rows: hi - lo, Cols: dim, Stride: dim, Data: x.vecs[lo*dim : hi*dim]},
			qv, 0, blas32.Vector{N: hi - lo, Inc: 1, Data: out})
		if useBias {
			for i := range out {
				out[i] += x.biases[lo+i]
			}
		}
		sel.add(out, lo)
	}
	return sel.sorted()
}

// benchSizes are the catalogue sizes of the kernel benchmarks: KuaiRec's
// small matrix (3,327 videos) and whole catalogue (10,728), 100k and 1M.
var benchSizes = []int{3327, kuaiItems, 100_000, 1_000_000}

// BenchmarkTopK runs, per size and dim, in the same process on the same
// index and queries (one of 64 random queries per call, in turn): TopK as
// served (kernel=own: the pre-scan + exact re-rank from prescanMinRows
// rows, int16, int8 or 4 bits by prescanWidth, else the exact float32
// scan), the same with the copy of the other width (kernel=other-width:
// int8 for 4 bits), the exact
// float32 scan
// alone (kernel=exact), and gonum GEMV + the same selection (kernel=gonum).
// With -tags noasm, own and exact are the pure-Go kernel. -short skips 1M.
func BenchmarkTopK(b *testing.B) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, n := range benchSizes {
		if n >= 1_000_000 && testing.Short() {
			continue
		}
		for _, dim := range []int{32, 64, 128} {
			// The index is built inside the parent b.Run, so that -bench
			// filters skip the sizes they do not select.
			b.Run(fmt.Sprintf("items=%d/dim=%d/k=25", n, dim), func(b *testing.B) {
				x, err := NewItemIndex(ModelMeta{Version: "v", Dim: dim}, randomItems(r, n, dim, false))
				if err != nil {
					b.Fatal(err)
				}
				qs := make([][]float32, 64)
				for i := range qs {
					qs[i] = randVec(r, dim)
				}
				dst := make([]Scored, 0, 25)
				scores := make([]float32, 256)
				// xo is x with the copy of the other width (int16 where x
				// has int8, and the reverse; int8 where x has 4 bits).
				xo := *x
				if x.pre != nil {
					xo.pre = buildPrescan(x.vecs, x.biases, n, dim, x.ntiles, map[int]int{4: 8, 8: 16, 16: 8}[x.pre.bits])
				}
				for _, kern := range []struct {
					name string
					run  func(q []float32)
				}{
					{"own", func(q []float32) { dst = x.TopK(dst, q, 25, TopKOptions{UseBias: true}) }},
					{"other-width", func(q []float32) { dst = xo.TopK(dst, q, 25, TopKOptions{UseBias: true}) }},
					{"exact", func(q []float32) { dst = x.TopK(dst, q, 25, TopKOptions{UseBias: true, Exact: true}) }},
					{"gonum", func(q []float32) { dst = gonumTopK(x, dst, q, 25, true, scores) }},
				} {
					b.Run("kernel="+kern.name, func(b *testing.B) {
						lat := make([]float64, 0, 1024)
						i := 0
						for b.Loop() {
							t0 := time.Now()
							kern.run(qs[i%len(qs)])
							lat = append(lat, float64(time.Since(t0).Nanoseconds())/1e3)
							i++
						}
						slices.Sort(lat)
						b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e3, "us/query")
						b.ReportMetric(lat[len(lat)/2], "p50-us")
						b.ReportMetric(lat[min(len(lat)-1, len(lat)*99/100)], "p99-us")
					})
				}
			})
		}
	}
}

// BenchmarkTopKExclude: the cost of excluding watched videos.
func BenchmarkTopKExclude(b *testing.B) {
	r := rand.New(rand.NewPCG(39, 40))
	x, err := NewItemIndex(ModelMeta{Version: "v", Dim: kuaiDim}, randomItems(r, kuaiItems, kuaiDim, false))
	if err != nil {
		b.Fatal(err)
	}
	q := randVec(r, kuaiDim)
	for _, nExcl := range []int{0, 100, 3000} {
		excl := make([]uint32, nExcl)
		for i, p := range r.Perm(kuaiItems)[:nExcl] {
			excl[i] = x.IDs()[p]
		}
		b.Run(fmt.Sprintf("items=%d/dim=%d/k=25/exclude=%d", kuaiItems, kuaiDim, nExcl), func(b *testing.B) {
			dst := make([]Scored, 0, 25)
			opts := TopKOptions{UseBias: true, Exclude: excl}
			for b.Loop() {
				dst = x.TopK(dst, q, 25, opts)
			}
		})
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

// BenchmarkScoreTiles: the scoring kernel alone (no selection) over a whole
// catalogue, in chunks of 256 rows as TopK calls it.
func BenchmarkScoreTiles(b *testing.B) {
	r := rand.New(rand.NewPCG(37, 38))
	for _, n := range []int{3327, kuaiItems} {
		const dim = kuaiDim
		tiles, ntiles := buildTiles(randVec(r, n*dim), n, dim)
		q := randVec(r, dim)
		out := make([]float32, chunkTiles*tileRows)
		b.Run(fmt.Sprintf("items=%d/dim=%d/kernel=%s", n, dim, kernelName()), func(b *testing.B) {
			for b.Loop() {
				for t0 := 0; t0 < ntiles; t0 += chunkTiles {
					nt := min(chunkTiles, ntiles-t0)
					scoreTiles(out, q, tiles[t0*tileRows*dim:(t0+nt)*tileRows*dim], nil, dim, nt)
				}
			}
			b.SetBytes(int64(len(tiles) * 4))
		})
	}
}

// BenchmarkPrescanKernel: the pre-scan kernels (4, 8, 16 bits) alone over a whole
// catalogue (as TopK calls it, in chunks of 256 rows), beside the float32
// kernel on the same rows; 320 rows stay in L1, 3,327 and 10,728 in L2.
func BenchmarkPrescanKernel(b *testing.B) {
	if !useFMA {
		b.Skip("no pre-scan kernel")
	}
	r := rand.New(rand.NewPCG(35, 36))
	for _, n := range []int{320, 3327, kuaiItems} {
		const dim = kuaiDim
		vecs := randVec(r, n*dim)
		tiles, ntiles := buildTiles(vecs, n, dim)
		q := randVec(r, dim)
		out := make([]float32, chunkTiles*tileRows)
		masks := make([]uint32, chunkTiles)
		for _, kern := range []struct {
			bits int
			vnni bool
			zmm  bool
		}{{4, useVNNI, false}, {4, false, false}, {8, false, false}, {8, false, true}, {16, false, false}, {16, false, true}} {
			bits := kern.bits
			if bits == 4 && !kern.vnni && useVNNI == kern.vnni {
				continue // no VNNI here: the AVX2 kernel is "i4"
			}
			if kern.zmm && !useZMM {
				continue // no AVX-512 VNNI here
			}
			pre := buildPrescan(vecs, nil, n, dim, ntiles, bits)
			z := make([]uint32, pre.zWords())
			_, sq, _ := pre.quantQuery(z, q, false)
			name := fmt.Sprintf("i%d", bits)
			if bits == 4 && kern.vnni {
				name = "i4-vnni"
			} else if bits == 4 {
				name = "i4-avx2"
			} else if kern.zmm {
				name += "-zmm"
			}
			b.Run(fmt.Sprintf("items=%d/dim=%d/kernel=%s", n, dim, name), func(b *testing.B) {
				saved, savedZ := useVNNI, useZMM
				useVNNI, useZMM = kern.vnni, kern.zmm
				defer func() { useVNNI, useZMM = saved, savedZ }()
				for b.Loop() {
					for t0 := 0; t0 < ntiles; t0 += chunkTiles {
						nt := min(chunkTiles, ntiles-t0)
						pre.scan(out, masks, z, t0*tileRows, nil, sq, 1e30, nt)
					}
				}
				b.SetBytes(int64(len(pre.h)*2 + len(pre.h8) + len(pre.h4)))
			})
		}
		b.Run(fmt.Sprintf("items=%d/dim=%d/kernel=f32", n, dim), func(b *testing.B) {
			for b.Loop() {
				for t0 := 0; t0 < ntiles; t0 += chunkTiles {
					nt := min(chunkTiles, ntiles-t0)
					scoreTiles(out, q, tiles[t0*tileRows*dim:(t0+nt)*tileRows*dim], nil, dim, nt)
				}
			}
			b.SetBytes(int64(len(tiles) * 4))
		})
	}
}

// BenchmarkGetUserWatched: the read of exclude_watched (record, ring and
// long history in one pipeline, decoded distinct and ascending) for a user
// whose history holds 0, 1,740 (KuaiRec's big matrix: 12.5M events over
// 7,176 users) and MaxHistory events of random KuaiRec videos, beside
// GetUser alone.
func BenchmarkGetUserWatched(b *testing.B) {
	r := rand.New(rand.NewPCG(55, 56))
	rec := benchUsers(r, 1)[0]
	benchBackends(b, func(b *testing.B, s *Store) {
		for _, n := range []int{0, 1740, MaxHistory} {
			rec := rec
			rec.UserID = uint32(n)
			rec.Watched = []uint32{1, 2, 3}
			rec.Seen = make([]uint32, n)
			for i := range rec.Seen {
				rec.Seen[i] = uint32(r.IntN(kuaiItems))
			}
			if _, err := s.PutUsersIfNewer(b.Context(), "v1", []UserRecord{rec}); err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("history=%d", n), func(b *testing.B) {
				for b.Loop() {
					if _, ok, _, err := s.GetUserWatched(b.Context(), "v1", rec.UserID); err != nil || !ok {
						b.Fatal(ok, err)
					}
				}
			})
		}
		b.Run("GetUser", func(b *testing.B) {
			for b.Loop() {
				if _, ok, err := s.GetUser(b.Context(), "v1", rec.UserID); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
		})
	})
}

// BenchmarkPrescan4Sizes: the 4-bit kernel alone over the whole copy at
// dim 64 from 200,000 to 1M rows (7.4 to 37 MB read per query), to find
// where the copy stops fitting in the cache this core gets (MB/s counts the
// nibbles and the 5 bytes of scale, bias and error per row).
func BenchmarkPrescan4Sizes(b *testing.B) {
	if !useFMA {
		b.Skip("no pre-scan kernel")
	}
	r := rand.New(rand.NewPCG(35, 36))
	for _, n := range []int{200000, 400000, 600000, 800000, 1000000} {
		const dim = 64
		vecs := randVec(r, n*dim)
		_, ntiles := buildTiles(vecs, n, dim)
		q := randVec(r, dim)
		out := make([]float32, chunkTiles*tileRows)
		masks := make([]uint32, chunkTiles)
		pre := buildPrescan(vecs, nil, n, dim, ntiles, 4)
		z := make([]uint32, pre.zWords())
		_, sq, _ := pre.quantQuery(z, q, false)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				for t0 := 0; t0 < ntiles; t0 += chunkTiles {
					nt := min(chunkTiles, ntiles-t0)
					pre.scan(out, masks, z, t0*tileRows, nil, sq, 1e30, nt)
				}
			}
			b.SetBytes(int64(len(pre.h4) + 5*n))
		})
	}
}
