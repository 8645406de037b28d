// Command replay publishes KuaiRec interactions (real or synthetic) to the
// interactions topic in global event-time order, as fast as possible or at a
// speed-up of real time, optionally rate-limited, and resumably.
//
//	go run ./replay --data DIR [--cut TIME] [--from TIME] [--until TIME] [--limit N]
//	                [--speedup X] [--max-rate R] [--topic interactions] [--brokers host:port]
//
// # What is published
//
// The cleaned big matrix of the folder (kuairec.Load), in ds.Big.Order (ascending
// timestamp, ties by user, then file order), restricted to event time >= --cut
// (the events strictly before the cut were used for training), >= --from and
// < --until. Each event has source=replay, event_time_ms = the dataset's
// timestamp, the dataset's durations and watch ratio, produced_at_us = the wall
// clock when its chunk is encoded for publishing, and
// event_id = stream.MakeEventID(event_time_ms, tiebreak), where tiebreak counts the
// same user's earlier events in the same millisecond in the global order (those
// are adjacent in the order, so the tiebreak does not depend on where a run
// starts). The message key is the user id (murmur2, acks=all); the message
// timestamp is the wall-clock produce time.
//
// Every message carries two headers:
//
//	replay-pos  the event's position in ds.Big.Order (decimal; the whole order, before any filter)
//	replay-run  the run identity: 16 hex digits hashing the replayed events (position,
//	            user, video, durations, time, watch ratio of every event >= cut) and the cut
//
// # Ordering
//
// One goroutine per partition writes that partition's events, one kafka-go
// WriteMessages call (at most one batch) at a time, in position order. A user maps
// to one partition, so a user's events are never reordered; partitions progress
// independently (the planner keeps at most two chunks per partition ahead).
// Because a call never holds more than one batch per partition and the writer
// stops at the first failed call, a partition never holds a later position
// without every earlier position of that partition (no gaps).
//
// # Resume rule
//
// At start (unless --resume=false) replay reads, for each partition, the last
// message that carries a replay-run header (scanning back from the end of the
// partition at most --resume-scan messages, past messages of other producers such
// as the API). Its replay-pos is the partition's head H[p] (-1 if the partition
// holds no replay message). An event at position i on partition p is skipped as
// already published iff i <= H[p]. By the no-gap property above, this resumes
// exactly after a crash, a SIGINT or a --limit: the second run publishes every
// event the first did not, and none that it did. A partition whose last replay
// message has another replay-run (other data or another cut) is an error: use
// another topic. Positions only move forward: a resumed run with an earlier
// --from does not fill in events before the heads.
//
// SIGINT or SIGTERM stops planning, lets every chunk already handed to a
// partition writer be written and acknowledged, prints the summary and exits 0.
package main
