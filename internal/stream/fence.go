package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// FenceTopic is the topic of fencing records next to a changelog topic: one
// partition, compacted on a single key (so it stays one record long while
// its offsets keep growing).
func FenceTopic(changelog string) string { return changelog + ".fence" }

// FenceTopicSpec is the spec of a fence topic.
func FenceTopicSpec(name string) TopicSpec { return CompactedTopic(name, 1) }

// AcquireEpoch writes one fencing record to the fence topic (acks=all) and
// returns its offset + 1: an epoch greater than any acquired before it on
// that topic, by any process, in group mode or under manual assignment
// alike (the broker orders the records; it survives a Redis flush and a
// deleted consumer group, which a group generation does not). An updater
// takes a new epoch at every partition assignment and stamps every state it
// writes with it; Redis refuses a write from an older epoch than the one it
// holds for the user (cache.Store.PutUsersFenced).
func AcquireEpoch(ctx context.Context, brokers []string, topic, member string) (uint64, error) {
	if len(brokers) == 0 {
		return 0, errors.New("acquiring an epoch: no brokers")
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	value := fmt.Appendf(nil, `{"member":%q,"at_ms":%d}`, member, time.Now().UnixMilli())
	resp, err := client.Produce(ctx, &kafka.ProduceRequest{Topic: topic, Partition: 0, RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(kafka.Record{Key: kafka.NewBytes([]byte("epoch")), Value: kafka.NewBytes(value)})})
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	if err != nil {
		return 0, fmt.Errorf("acquiring an epoch on %s: %w", topic, err)
	}
	return uint64(resp.BaseOffset) + 1, nil
}
