// Package online owns what happens per interaction after training: the
// updater's incremental SGD on the user tower with its durable per-user state
// (a compacted Kafka changelog, restored per assigned partition, as Kafka
// Streams restores a state store), and the online evaluation of served lists.
//
// # Per-user mode
//
// A user's serving embedding is built from a = base + vec, where base is the
// user's offline vector under the current model version (the tower's output
// plus the learned vector from training, recovered from the initial user record
// the ingestor published) and vec is the online residual that every event
// updates with towers.OnlineStep. The L2 term of the step pulls a back toward
// base: the offline model is the prior. A user the model never saw starts from
// base = 0 (the calibrated global mean plus item effects).
//
// # Exactly once in effect
//
// Each user's state (see UserState; format 2 in the changelog) carries the
// learned vector and its offline base, the input position (partition, offset)
// of the last message processed for the user, the newest event time applied,
// and a ring of the user's RingSize most recent events (event id, video, watch
// ratio, event time, input offset). Per message, in input order:
//
//   - at or before the state's position: a redelivery (after a crash, a
//     rebalance, a broker restart), skipped, counted as redelivered;
//   - an event id in the ring: a duplicate (the same event published twice: a
//     producer retry, a re-POST), skipped, counted as duplicate; the position
//     moves to it;
//   - anything else is applied, whatever its event time; an event older than
//     the newest applied one is late, counted, and its lateness observed.
//
// Event ids only need to be unique per user: nothing compares them for order.
// A batch's dirty users are written to the changelog topic (acks=all) and then
// to Redis before the consumer commits the batch's input offsets, so a crash at
// any point either replays messages past the restored state's position or skips
// those it covers: the final vectors are bit for bit those of an uninterrupted
// run. Redis's write guard (cache.Store.PutUsersIfNewer) and the restore's
// stale-writer guard compare input positions too.
//
// # Files
//
// updater.go holds the Updater's types, configuration and counters; apply.go
// the per-event semantics (redelivery, duplicate, late, the SGD step) and the
// materialisation of users from Redis; flush.go the flusher that writes dirty
// users to the changelog and Redis before a batch is committed; restore.go
// what a restore, a model switch and a Redis rebuild do to the held states;
// keeper.go the policy that calls them (on assignment, on a lost marker);
// changelog.go the encoding side of the Kafka state topics, whose Kafka
// reader and writer is stream.StateLog; state.go the per-user state format.
//
// Dense mode (DenseTower) also fine-tunes the user tower's weights online; see
// the README.
package online
