// Package cache is the Redis-backed embedding store and the in-process
// item-embedding cache with exact top-K. It has one responsibility: keep the
// derived serving state (model versions, user embeddings, served lists) in Redis
// and answer "the K best items for this user vector" from memory.
//
// Redis is a serving cache of derived state, never the source of truth (Kafka
// is; see DESIGN.md, "Delivery and failure model"). Everything here may be lost
// by a Redis flush and rebuilt by the ingestor and the updater.
//
// # Store
//
// [Store] wraps an injected *redis.Client under a key namespace (all key names
// are in keys.go, one separator ":"). It holds:
//
//   - model versions, published whole by [Store.Publish]: item embeddings and
//     biases, the user-tower weights blob and a small JSON [ModelMeta]. The
//     version's keys are written first, then the "current" pointer flips
//     atomically (the old current becomes "previous", for [Store.Rollback]), a
//     [ModelUpdate] notice is PUBLISHed on "<ns>:model-updates", and versions
//     other than current and previous are garbage collected;
//   - user embeddings ([UserRecord]), one binary value per (model version,
//     user), so a user vector can never be read against items of another
//     version: [Store.GetUser] takes the version;
//   - served lists ([ServedList]), one per user with a TTL, shared by API
//     replicas for online metrics.
//
// A version's keys can be read as stored ([Store.DumpVersion]) and written
// back where absent ([Store.RestoreVersion], [Store.RestorePointers],
// [Store.PutUsersIfAbsent]): internal/modellog keeps them in Kafka so that
// Redis can be rebuilt after a flush (dump.go).
//
// # Item layout in Redis
//
// A version's items are stored as a few large string values ("chunks" of
// about Config.ChunkBytes, 512 KiB by default: ~1,985 items at dim 64, so 6
// chunks for KuaiRec's 10,728 videos), each holding its rows' ids, biases and
// little-endian float32 vectors back to back. Loading is one pipelined GET
// per chunk, decoded straight into the index's contiguous arrays: no
// per-item reply parsing, no per-item strings or map entries, and Redis
// answers with a handful of bulk strings instead of a 21k-element reply. The
// alternative, one hash per version with field = video id (HGETALL), was
// measured at about 15 ms and 21,500 allocations for 10,728 x 64 against
// about 4 ms and 80 allocations for chunks (BenchmarkItemLayoutHash vs
// BenchmarkLoadItemIndex, local Redis 7.0). Chunks, not one value, keep each
// Redis command short (a single multi-MB value would block the server
// longer and hits the 512 MB string limit at scale). What chunks give up is
// reading one item alone, which serving never needs: versions are loaded
// whole, and items new since training are embedded in-process from their
// features.
//
// # Item cache
//
// [ItemIndex] holds one model version's items and answers exact top-K by
// inner product ([ItemIndex.TopK]). It is immutable, so any number of
// goroutines may read it. [ItemCache] holds the current *ItemIndex behind an
// atomic pointer and swaps the whole index when a new version is published.
// NewItemIndex rejects NaN and Inf in vectors and biases, so a score can be
// NaN only for a non-finite query (and a NaN score is never returned).
//
// Layout: three copies of the vectors. The row-major []float32 the caller
// handed over serves [ItemIndex.Item] and the re-rank below. The scoring
// copy is "tiled": rows in groups of 32, each group column-major (32 floats
// of coordinate j, then of j+1, ...), padded with zero rows, so the kernel
// multiplies 4 YMM registers of 8 rows by one broadcast query coordinate
// and never reduces horizontally (kernel.go). From 6,144 rows on, a third
// copy quantises each row to int16 (per-row scale) in the same tiles with
// coordinate pairs interleaved for VPMADDWD, or to int8 once the int16 copy
// would not fit in a 2 MB L2 (above about 16,000 rows at dim 64; the scan
// is then bound by memory bandwidth), sign-extended on the way into the
// same VPMADDWD (prescan.go); where the CPU has AVX-512 VNNI both copies
// are scanned on ZMM by VPDPWSSD (prescanz_amd64.s, the same integers) and
// the int8 copy is built from 6,144 rows, as fast alone and half the bytes
// from L3 under load; or to 4 bits once the int8 copy passes 16 MB
// (about 260,000 rows at dim 64): nibbles in blocks of 8 coordinates for
// VPMADDUBSW or VPDPBUSD, float16 scales and biases, and one error byte per
// row for the kernel's own filter (prescan4.go). Memory per item: 4d
// (row-major) + 4d (tiles) + 2d (int16), d (int8) or d/2 + 9 (4 bits)
// bytes, about 6.9 MB for KuaiRec's 10,728 x 64.
//
// Scores: one definition (kernel.go) - two fused multiply-add chains over
// the even and the odd coordinates, then their sum, then the bias - computed
// by AVX2+FMA assembly when the CPU has it (golang.org/x/sys/cpu, at start)
// or by pure Go that performs the same IEEE operations in the same order
// (a float32 FMA emulated exactly with round-to-odd), so both return the
// same scores bit for bit and the same top-K. Build with -tags noasm for
// the pure-Go kernel on amd64.
//
// Selection: a bounded min-heap of the k best (score, id), ties to the lower
// id, fed 256 scores at a time; a row below the heap's worst is rejected by
// one compare. From 6,144 rows and k <= n/8, TopK first scans the quantised
// copy (KuaiRec's catalogue in int16 fits in L2; 1M x 64 in 4 bits is 37
// MB per query where int8 is 72 and float32 256) for approximate scores
// with a proven per-row error bound E_r, keeps every row whose upper bound
// reaches the larger of the k-th best lower bound and the k-th best exact
// score re-ranked so far, and re-scores only those candidates with the
// float32 kernel (the k best lower bounds first, so that the exact
// threshold rises early): the result equals the exact scan's, bit for bit
// (the derivation and the proof are in prescan.go; queries the bound does
// not cover, such as ones that could overflow, take the exact scan). Up to
// 32,768 rows (int16 and int8 copies) the pre-scan takes two passes
// (prescan2.go): the kernel scores every row into one L1/L2-resident
// buffer, the m-th largest of the tiles' maxima (m = k + excluded + 1)
// gives a proven lower bound of the k-th best score before any row is
// looked at, and only the rows that can reach it are collected, about 30
// at 10,728 x 64 where a streaming threshold lets about 230 through.
//
// TopK does not allocate when cap(dst) >= k: its working memory comes from
// a sync.Pool.
//
// The API's read path is therefore:
//
//	idx := itemCache.Index()                          // one version, immutable
//	u, ok, err := store.GetUser(ctx, idx.Version(), userID)
//	top := idx.TopK(buf[:0], u.Embedding, 25, TopKOptions{UseBias: true, Exclude: watched})
//
// which never mixes a user vector and item vectors of different versions.
package cache
