// Package online owns what happens per interaction after training: the
// updater's incremental SGD on the user tower with its durable per-user state
// (a compacted Kafka changelog, restored per assigned partition, as Kafka
// Streams restores a state store), and the online evaluation of served lists.
//
// # Per-user mode
//
// A user's serving embedding is built from a = base + vec, where base is the
// user's offline vector under the current model version (the tower's output
// plus the learned vector from training, from the version's offline vectors,
// cache.OfflineUsers, which nothing online overwrites; a version published
// without them falls back to its initial serving records) and vec is the online residual that every event
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
//   - an event the current version was trained on (TrainedThrough: before
//     its cut, or at or before its trained log offset on the partition) is
//     recorded (position, ring) and not applied, counted as trained;
//   - anything else is applied, whatever its event time; an event older than
//     the newest applied one is late, counted, and its lateness observed.
//
// # Version handover
//
// On a switch to another version (a new one, a rollback, a switch back),
// each held user becomes that version's offline vector plus the online steps
// of exactly those events of its ring that the version did not train on, in
// input order (handover.go): as if the updater had run on that version since
// then, so nothing the user did between the version's training cut and the
// switch is lost, and nothing the version trained on is counted twice. The
// bound is the ring: a user with more than RingSize such events keeps only
// the last RingSize (counted as truncated).
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
// the per-event semantics (redelivery, duplicate, trained, late) and the
// materialisation of users; handover.go the SGD step, the offline vectors and
// what a version trained on; flush.go the flusher that writes dirty
// users to the changelog and Redis before a batch is committed; restore.go
// what a restore, a model switch and a Redis rebuild do to the held states;
// keeper.go the policy that calls them (on assignment, on a lost marker);
// changelog.go the encoding side of the Kafka state topics, whose Kafka
// reader and writer is stream.StateLog; state.go the per-user state format.
//
// Dense mode (DenseTower) also fine-tunes the user tower's weights online; see
// the README.
package online
