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
// Each user's state carries the high-water mark (HWM) of applied event ids. An
// event whose id is not above it (a redelivery after a crash, a duplicate from a
// producer retry) is skipped and counted. A batch's dirty users are written to
// the changelog topic (acks=all) and then to Redis before the consumer commits
// the batch's input offsets, so a crash at any point either replays events the
// restored state has not seen or skips those it has: the final vectors are bit
// for bit those of an uninterrupted run.
//
// Not built yet: online fine-tuning of the dense tower weights (the dense
// checkpoint topic); only the per-user vector learns online.
package online
