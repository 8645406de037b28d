// Package stream owns the interaction event: its versioned schema and codec, its
// validation, the Kafka producer and consumer wrappers around segmentio/kafka-go,
// topic creation, and the dead-letter topic.
//
// # Event schema v1
//
// One Kafka message is one interaction. The message key is the user id as a
// decimal string ("4242"), so every producer (replay, the API's intake, kcat)
// partitions alike with murmur2 (the Java client's and franz-go's default). The
// message timestamp is the wall-clock produce time, never the 2020 event time, so
// that time-based retention never deletes the log.
//
// The value is one line of ASCII text, fields separated by commas, in this order:
//
//	v1,<event_id>,<user_id>,<video_id>,<play_duration_ms>,<video_duration_ms>,<event_time_ms>,<watch_ratio>,<source>,<produced_at_us>
//
//	field              type     rule
//	v1                 literal  the schema version; any other version is rejected
//	event_id           uint64   > 0, unique per user; need not increase (replay uses MakeEventID, the API derives its own)
//	user_id            uint32   0..4294967295; new users are legal
//	video_id           uint32   0..4294967295; new videos are legal
//	play_duration_ms   int64    >= 0, milliseconds watched
//	video_duration_ms  int64    > 0, milliseconds, the video's length
//	event_time_ms      int64    > 0, Unix milliseconds of the interaction (the dataset's time on replay)
//	watch_ratio        float64  finite, >= 0 (KuaiRec: play/duration, outliers up to ~573 are legal)
//	source             enum     replay | api | simulator
//	produced_at_us     int64    > 0, Unix microseconds when the event was produced (for freshness)
//
// The format is text so that a message can be read and written by kcat and the
// Kafka console tools, and it is decoded without allocation by a strict hand-written
// parser: anything else (a missing or extra field, a sign other than a negative
// number's '-', a negative zero, a leading zero such as "007.5", a space, a value out
// of its type's range, event id 0, NaN, Inf, a negative duration, an unknown source) is an error that
// names the field and the reason (see DecodeError). Decoding is at least 2M events/s
// with encoding on one core (BenchmarkCodec).
//
// # Delivery
//
// Producer writes with acks=all and explicit batching. Consumer is a consumer-group
// reader that hands decoded events to a handler in batches and commits a partition's
// offset only after the handler returned success for every message up to it; a
// message that does not decode goes to the dead-letter topic with its reason (and
// is counted) before its offset is committed, so nothing is lost and nothing stops
// the consumer. Delivery is at least once; consumers make it exactly once in effect:
// the updater recognises a redelivered message by its input position (partition,
// offset) and a duplicate message (the same event id published twice) by its id in
// the user's ring of recent events (see internal/online).
package stream
