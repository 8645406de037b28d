package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// StateLog writes and reads a compacted Kafka topic of keyed state records,
// as Kafka Streams keeps a state store's changelog: the updater's per-user
// states (keyed by user id, co-partitioned with the interactions topic by
// murmur2 on the same key) and its dense checkpoints. It knows nothing of the
// values' encoding (internal/online owns that).
type StateLog struct {
	brokers []string
	topic   string
	w       *kafka.Writer
	msgs    []kafka.Message
}

// StateRecord is one record to write: a key and a value.
type StateRecord struct{ Key, Value []byte }

// NewStateLog returns a writer and reader of topic. batchBytes bounds one
// produce request (a record must fit in it).
func NewStateLog(brokers []string, topic string, batchBytes int64) *StateLog {
	return &StateLog{brokers: brokers, topic: topic, w: &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    10000,
		BatchBytes:   batchBytes,
		BatchTimeout: time.Millisecond,
		WriteTimeout: 10 * time.Second,
		MaxAttempts:  5,
	}}
}

// Topic returns the topic's name.
func (l *StateLog) Topic() string { return l.topic }

// Write writes the records and returns once every one is acknowledged by all
// in-sync replicas. It is not safe for concurrent use; the records' bytes
// must stay untouched until it returns.
func (l *StateLog) Write(ctx context.Context, recs []StateRecord) error {
	l.msgs = l.msgs[:0]
	now := time.Now()
	for _, r := range recs {
		l.msgs = append(l.msgs, kafka.Message{Key: r.Key, Value: r.Value, Time: now})
	}
	if err := l.w.WriteMessages(ctx, l.msgs...); err != nil {
		return fmt.Errorf("writing %d records to %s: %w", len(recs), l.topic, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (l *StateLog) Close() error { return l.w.Close() }

// Read calls fn with every record of the given partitions, each partition
// from its start to the end it had when Read began, in offset order within a
// partition; partitions are read concurrently, fn calls are serialised. An
// error from fn ends Read with it.
func (l *StateLog) Read(ctx context.Context, partitions []int, fn func(partition int, offset int64, key, value []byte) error) error {
	spans, err := l.spans(ctx, partitions)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	errs := make([]error, len(partitions))
	var wg sync.WaitGroup
	for i, p := range partitions {
		sp, ok := spans[p]
		if !ok || sp[1] <= sp[0] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.readPartition(ctx, p, sp[0], sp[1], func(off int64, k, v []byte) error {
				mu.Lock()
				defer mu.Unlock()
				return fn(p, off, k, v)
			})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ReadLast returns the last record of a partition (nil when it is empty) and
// its offset.
func (l *StateLog) ReadLast(ctx context.Context, partition int) (value []byte, offset int64, err error) {
	spans, err := l.spans(ctx, []int{partition})
	if err != nil {
		return nil, 0, err
	}
	sp := spans[partition]
	if sp[1] <= sp[0] {
		return nil, 0, nil
	}
	err = l.readPartition(ctx, partition, sp[1]-1, sp[1], func(off int64, _, v []byte) error {
		value, offset = v, off
		return nil
	})
	return value, offset, err
}

// spans returns [first, end) of each partition.
func (l *StateLog) spans(ctx context.Context, partitions []int) (map[int][2]int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(l.brokers...), Timeout: 10 * time.Second}
	req := map[string][]kafka.OffsetRequest{}
	for _, p := range partitions {
		req[l.topic] = append(req[l.topic], kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return nil, fmt.Errorf("listing %s offsets: %w", l.topic, err)
	}
	out := map[int][2]int64{}
	for _, po := range resp.Topics[l.topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("listing %s offsets of partition %d: %w", l.topic, po.Partition, po.Error)
		}
		out[po.Partition] = [2]int64{po.FirstOffset, po.LastOffset}
	}
	return out, nil
}

func (l *StateLog) readPartition(ctx context.Context, p int, first, end int64, fn func(offset int64, key, value []byte) error) error {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: l.brokers, Topic: l.topic, Partition: p,
		MinBytes: 1, MaxBytes: 32 << 20, MaxWait: 500 * time.Millisecond}) // see ConsumerConfig.MaxWait
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return fmt.Errorf("seeking %s partition %d: %w", l.topic, p, err)
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return fmt.Errorf("reading %s partition %d at offset %d of %d: %w", l.topic, p, r.Offset(), end, err)
		}
		if err := fn(m.Offset, m.Key, m.Value); err != nil {
			return err
		}
		if m.Offset >= end-1 {
			return nil
		}
	}
}
