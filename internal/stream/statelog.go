package stream

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	produceAPI "github.com/segmentio/kafka-go/protocol/produce"
)

// StateLog writes and reads a compacted Kafka topic of keyed state records,
// as Kafka Streams keeps a state store's changelog: the updater's per-user
// states (keyed by user id, co-partitioned with the interactions topic by
// murmur2 on the same key) and its dense checkpoints. It knows nothing of the
// values' encoding (internal/online owns that).
//
// Write sends its records itself rather than through a kafka.Writer: one
// produce request per leader for all the partitions a call touches, sent at
// once. The Writer sent one request per partition after waiting out its
// batch timeout, and allocated a BatchSize-long slice per partition and
// call; a flush of a few hundred users took 5-7 ms through it against under
// 1 ms this way.
type StateLog struct {
	brokers    []string
	topic      string
	batchBytes int64
	transport  *kafka.Transport // its own: metadata (leaders) cached for at most a second
	client     *kafka.Client

	mu    sync.Mutex // guards parts (read again after an error)
	parts []int      // 0..n-1, n the topic's partition count
}

// StateRecord is one record to write: a key and a value.
type StateRecord struct{ Key, Value []byte }

// NewStateLog returns a writer and reader of topic. batchBytes bounds one
// partition's records in one produce request (a record must fit in it).
func NewStateLog(brokers []string, topic string, batchBytes int64) *StateLog {
	tr := &kafka.Transport{MetadataTTL: time.Second}
	return &StateLog{brokers: brokers, topic: topic, batchBytes: batchBytes, transport: tr,
		client: &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: tr}}
}

// Topic returns the topic's name.
func (l *StateLog) Topic() string { return l.topic }

// Write writes the records and returns once every one is acknowledged by all
// in-sync replicas. Records of one key keep their order (one partition, and
// a partition's records go in order, one request at a time). It is not safe
// for concurrent use; the records' bytes must stay untouched until it
// returns. On an error some records may have been written: writing them
// again is harmless for a state log (the latest record of a key wins).
func (l *StateLog) Write(ctx context.Context, recs []StateRecord) error {
	if len(recs) == 0 {
		return nil
	}
	parts, err := l.partitions(ctx)
	if err != nil {
		return err
	}
	if err := l.produce(ctx, parts, recs); err != nil {
		l.mu.Lock()
		l.parts = nil // re-read the metadata at the next call
		l.mu.Unlock()
		return fmt.Errorf("writing %d records to %s: %w", len(recs), l.topic, err)
	}
	return nil
}

func (l *StateLog) partitions(ctx context.Context) ([]int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parts != nil {
		return l.parts, nil
	}
	counts, err := PartitionCounts(ctx, l.brokers, l.topic)
	if err != nil {
		return nil, err
	}
	n, ok := counts[l.topic]
	if !ok || n == 0 {
		return nil, fmt.Errorf("state log: topic %s does not exist", l.topic)
	}
	l.parts = make([]int, n)
	for i := range l.parts {
		l.parts[i] = i
	}
	return l.parts, nil
}

// produce partitions recs by murmur2 on the key (kafka.Murmur2Balancer, as
// the Java client's default partitioner) and writes them with acks=all, in
// rounds: each round carries, for every partition, the next run of its
// records of at most batchBytes.
func (l *StateLog) produce(ctx context.Context, parts []int, recs []StateRecord) error {
	bal := kafka.Murmur2Balancer{}
	byPart := make(map[int][]kafka.Record, len(parts))
	sizes := make(map[int][]int, len(parts))
	now := time.Now()
	for _, r := range recs {
		p := bal.Balance(kafka.Message{Key: r.Key}, parts...)
		// A nil Value is a tombstone (kafka.NewBytes(nil) is a null value).
		byPart[p] = append(byPart[p], kafka.Record{Time: now, Key: kafka.NewBytes(r.Key), Value: kafka.NewBytes(r.Value)})
		sizes[p] = append(sizes[p], len(r.Key)+len(r.Value)+64) // about a record with its framing
	}
	for len(byPart) > 0 {
		round := make(map[int][]kafka.Record, len(byPart))
		for p, rs := range byPart {
			n, size := 0, int64(0)
			for n < len(rs) {
				sz := int64(sizes[p][n])
				if n > 0 && size+sz > l.batchBytes {
					break
				}
				size += sz
				n++
			}
			round[p] = rs[:n]
			if n == len(rs) {
				delete(byPart, p)
			} else {
				byPart[p], sizes[p] = rs[n:], sizes[p][n:]
			}
		}
		if err := l.writeRound(ctx, round); err != nil {
			return err
		}
	}
	return nil
}

// writeAttempts bounds the tries of one round of a Write; a partition whose
// leader moved (or is not yet elected, on a new topic) fails until the
// transport's metadata catch up (MetadataTTL).
const writeAttempts = 8

// writeRound writes one round, retrying the partitions that failed (only
// those: the others' records are not written twice) with a backoff from
// 10 ms, doubling.
func (l *StateLog) writeRound(ctx context.Context, round map[int][]kafka.Record) error {
	backoff := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		failed, err := l.produceRound(ctx, round)
		if err == nil {
			return nil
		}
		if attempt == writeAttempts || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
		round = failed
	}
}

// produceRound writes one run of records per partition: all of them in one
// request when one broker leads every partition (the transport refuses a
// request whose partitions have different leaders), else one request per
// partition, sent concurrently. It returns the partitions that failed.
func (l *StateLog) produceRound(ctx context.Context, round map[int][]kafka.Record) (map[int][]kafka.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, l.client.Timeout)
	defer cancel()
	if len(round) > 1 {
		req := &produceAPI.Request{Acks: int16(kafka.RequireAll), Timeout: 10_000,
			Topics: []produceAPI.RequestTopic{{Topic: l.topic}}}
		for p, rs := range round {
			req.Topics[0].Partitions = append(req.Topics[0].Partitions, produceAPI.RequestPartition{
				Partition: int32(p), RecordSet: protocol.RecordSet{Records: kafka.NewRecordReader(rs...)}})
		}
		m, err := l.transport.RoundTrip(ctx, l.client.Addr, req)
		var split *produceAPI.Error
		if !errors.As(err, &split) {
			if err != nil {
				return round, err
			}
			return produceErrors(m, round)
		}
		// Different leaders: one request per partition.
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	failed := map[int][]kafka.Record{}
	for p, rs := range round {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := l.client.Produce(ctx, &kafka.ProduceRequest{Topic: l.topic, Partition: p,
				RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(rs...)})
			if err == nil && res.Error != nil {
				err = res.Error
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("partition %d: %w", p, err))
				failed[p] = rs
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed, errors.Join(errs...)
}

// produceErrors checks the answer to a multi-partition produce request: every
// partition sent must be in it, without an error. It returns the partitions
// that failed.
func produceErrors(m protocol.Message, round map[int][]kafka.Record) (map[int][]kafka.Record, error) {
	res, ok := m.(*produceAPI.Response)
	if !ok {
		return round, fmt.Errorf("unexpected answer %T to a produce request", m)
	}
	failed := maps.Clone(round)
	var errs []error
	for _, t := range res.Topics {
		for _, p := range t.Partitions {
			if _, ok := round[int(p.Partition)]; !ok {
				continue
			}
			if p.ErrorCode != 0 {
				errs = append(errs, fmt.Errorf("partition %d: %w", p.Partition, kafka.Error(p.ErrorCode)))
				continue
			}
			delete(failed, int(p.Partition))
		}
	}
	if len(failed) > 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("the broker did not answer for %d of %d partitions", len(failed), len(round)))
	}
	return failed, errors.Join(errs...)
}

// Close closes the writer's idle connections (Write returns only once its
// records are written: nothing is buffered).
func (l *StateLog) Close() error {
	l.transport.CloseIdleConnections()
	return nil
}

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
