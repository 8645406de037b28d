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
// # Item cache
//
// [ItemIndex] holds one model version's items in one contiguous row-major
// []float32 and answers exact top-K by inner product with a bounded min-heap
// ([ItemIndex.TopK]). It is immutable, so any number of goroutines may read it.
// [ItemCache] holds the current *ItemIndex behind an atomic pointer and swaps
// the whole index when a new version is published.
//
// The API's read path is therefore:
//
//	idx := itemCache.Index()                          // one version, immutable
//	u, ok, err := store.GetUser(ctx, idx.Version(), userID)
//	top := idx.TopK(buf[:0], u.Embedding, 25, TopKOptions{UseBias: true, Exclude: watched})
//
// which never mixes a user vector and item vectors of different versions.
package cache
