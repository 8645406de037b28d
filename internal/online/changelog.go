package online

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/stream"
)

// Changelog is the compacted Kafka topic of user states, keyed by user id and
// co-partitioned with the interactions topic (same partition count, murmur2 on
// the same key), so the owner of an input partition restores exactly the
// changelog partition of the same number.
type Changelog struct {
	// Poison, if set, counts the records Read and ReadDense skip as
	// undecodable; Logger, if set, logs each once with its position.
	Poison *Poison
	Logger *slog.Logger

	brokers []string
	topic   string
	w       *kafka.Writer
	dense   *kafka.Writer // dense checkpoints, opened on first use
	buf     []byte
	msgs    []kafka.Message
}

// NewChangelog returns a writer and reader of topic.
func NewChangelog(brokers []string, topic string) *Changelog {
	return &Changelog{brokers: brokers, topic: topic, w: &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    10000,
		BatchBytes:   1 << 20,
		BatchTimeout: time.Millisecond,
		WriteTimeout: 10 * time.Second,
		MaxAttempts:  5,
	}}
}

// Write writes the states and returns once every record is acknowledged by all
// in-sync replicas. It is not safe for concurrent use (the Updater serialises).
func (c *Changelog) Write(ctx context.Context, states []*UserState) error {
	c.buf = c.buf[:0]
	offs := make([]int, 0, 2*len(states)+1)
	for _, s := range states {
		offs = append(offs, len(c.buf))
		c.buf = stream.AppendKey(c.buf, s.UserID)
		offs = append(offs, len(c.buf))
		c.buf = AppendState(c.buf, s)
	}
	offs = append(offs, len(c.buf))
	c.msgs = c.msgs[:0]
	now := time.Now()
	for i := range states {
		k0, v0, end := offs[2*i], offs[2*i+1], offs[2*i+2]
		c.msgs = append(c.msgs, kafka.Message{Key: c.buf[k0:v0:v0], Value: c.buf[v0:end:end], Time: now})
	}
	if err := c.w.WriteMessages(ctx, c.msgs...); err != nil {
		return fmt.Errorf("writing %d user states to %s: %w", len(states), c.topic, err)
	}
	return nil
}

// Close flushes and closes the writers.
func (c *Changelog) Close() error {
	if c.dense != nil {
		return errors.Join(c.w.Close(), c.dense.Close())
	}
	return c.w.Close()
}

// Read returns the latest state of every user on the given partitions, reading
// each from its start to the end it had when Read began.
func (c *Changelog) Read(ctx context.Context, partitions []int) (map[uint32]*UserState, error) {
	client := &kafka.Client{Addr: kafka.TCP(c.brokers...), Timeout: 10 * time.Second}
	req := map[string][]kafka.OffsetRequest{}
	for _, p := range partitions {
		req[c.topic] = append(req[c.topic], kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return nil, fmt.Errorf("listing changelog offsets: %w", err)
	}
	type span struct{ first, last int64 }
	spans := map[int]span{}
	for _, po := range resp.Topics[c.topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("listing changelog offsets of partition %d: %w", po.Partition, po.Error)
		}
		spans[po.Partition] = span{po.FirstOffset, po.LastOffset}
	}
	out := map[uint32]*UserState{}
	var mu sync.Mutex
	errs := make([]error, len(partitions))
	var wg sync.WaitGroup
	for i, p := range partitions {
		sp, ok := spans[p]
		if !ok || sp.last <= sp.first {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := c.readPartition(ctx, p, sp.first, sp.last)
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			for uid, s := range got {
				out[uid] = s
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Changelog) readPartition(ctx context.Context, p int, first, last int64) (map[uint32]*UserState, error) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.brokers, Topic: c.topic, Partition: p,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return nil, fmt.Errorf("seeking changelog partition %d: %w", p, err)
	}
	out := map[uint32]*UserState{}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading changelog partition %d at offset %d of %d: %w", p, r.Offset(), last, err)
		}
		uid, err := strconv.ParseUint(string(m.Key), 10, 32)
		if err != nil {
			c.poison(PoisonChangelogKey, p, m.Offset, fmt.Errorf("key %q is not a user id", truncateKey(m.Key)))
		} else {
			s := &UserState{UserID: uint32(uid), durable: true}
			if err := DecodeState(m.Value, s); err != nil {
				// The user's state is unknown past this record: drop any
				// earlier one (it would silently regress the user); a later
				// good record restores it, else the user is materialised
				// from its Redis record at its next event.
				c.poison(PoisonChangelogState, p, m.Offset, fmt.Errorf("user %d: %w", uid, err))
				delete(out, uint32(uid))
			} else if prev, ok := out[s.UserID]; !ok || !staleAfter(prev, s) {
				out[s.UserID] = s
			}
		}
		if m.Offset >= last-1 {
			return out, nil
		}
	}
}

func (c *Changelog) poison(reason string, partition int, offset int64, err error) {
	if c.Poison != nil {
		c.Poison.Add(reason)
	}
	if c.Logger != nil {
		c.Logger.Warn("skipping a poison changelog record", "reason", reason, "topic", c.topic,
			"partition", partition, "offset", offset, "err", err)
	}
}

func truncateKey(k []byte) string {
	if len(k) > 32 {
		return string(k[:32]) + "..."
	}
	return string(k)
}

// DenseTopic is the topic of dense checkpoints next to a changelog topic.
func DenseTopic(changelog string) string { return changelog + ".dense" }

// WriteDense writes a dense checkpoint (key = model version) to the dense
// topic and returns once it is acknowledged (acks=all).
func (c *Changelog) WriteDense(ctx context.Context, cp *DenseCheckpoint) error {
	if c.dense == nil {
		c.dense = &kafka.Writer{Addr: kafka.TCP(c.brokers...), Topic: DenseTopic(c.topic), Balancer: &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll, BatchSize: 1, BatchBytes: 16 << 20, BatchTimeout: time.Millisecond,
			WriteTimeout: 10 * time.Second, MaxAttempts: 5}
	}
	if err := c.dense.WriteMessages(ctx, kafka.Message{Key: []byte(cp.Version), Value: AppendDense(nil, cp), Time: time.Now()}); err != nil {
		return fmt.Errorf("writing the dense checkpoint to %s: %w", DenseTopic(c.topic), err)
	}
	return nil
}

// ReadDense returns the latest dense checkpoint (the last record of the dense
// topic's single partition), or nil when there is none.
func (c *Changelog) ReadDense(ctx context.Context) (*DenseCheckpoint, error) {
	topic := DenseTopic(c.topic)
	client := &kafka.Client{Addr: kafka.TCP(c.brokers...), Timeout: 10 * time.Second}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		topic: {kafka.FirstOffsetOf(0), kafka.LastOffsetOf(0)}}})
	if err != nil {
		return nil, fmt.Errorf("listing %s offsets: %w", topic, err)
	}
	var first, last int64
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("listing %s offsets: %w", topic, po.Error)
		}
		first, last = po.FirstOffset, po.LastOffset
	}
	if last <= first {
		return nil, nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.brokers, Topic: topic, Partition: 0, MinBytes: 1, MaxBytes: 32 << 20,
		MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(last - 1); err != nil {
		return nil, err
	}
	m, err := r.ReadMessage(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the last dense checkpoint: %w", err)
	}
	cp, err := DecodeDense(m.Value)
	if err != nil {
		// The tower then restarts from the version's published weights.
		c.poison(PoisonDense, 0, m.Offset, err)
		return nil, nil
	}
	return cp, nil
}

// staleAfter reports whether next, a record after prev in the changelog, is a
// stale write to ignore: one at an earlier input position on the same
// partition (a writer that lost its partitions and still flushed, before
// fencing). Equal positions take the later record (a re-materialisation under
// a new model version keeps the position). Event ids say nothing here: they
// need not increase. Log compaction keeps only the latest record per user, so
// this guards the restore only until compaction runs; the changelog is not
// fenced.
func staleAfter(prev, next *UserState) bool {
	return next.Pos.Partition == prev.Pos.Partition && next.Pos.Offset < prev.Pos.Offset
}
