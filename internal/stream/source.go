package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// source is where a Consumer's messages come from and where its offsets go: the
// group protocol (the default) or a manual partition assignment.
type source interface {
	// fetch returns the next message; safe to call from one goroutine only.
	fetch(ctx context.Context) (kafka.Message, error)
	// commit records, for each partition, that every offset up to and including
	// last[partition] is done.
	commit(ctx context.Context, last map[int]int64) error
	lag() int64
	close() error
}

// groupSource is a kafka-go consumer-group reader: partitions are assigned by the
// group coordinator and rebalanced as members come and go.
type groupSource struct {
	r     *kafka.Reader
	topic string
}

func newGroupSource(cfg *ConsumerConfig) *groupSource {
	return &groupSource{topic: cfg.Topic, r: kafka.NewReader(kafka.ReaderConfig{
		Brokers:           cfg.Brokers,
		GroupID:           cfg.GroupID,
		Topic:             cfg.Topic,
		MinBytes:          1,
		MaxBytes:          8 << 20,
		MaxWait:           cfg.MaxWait,
		ReadBatchTimeout:  10 * time.Second,
		QueueCapacity:     cfg.MaxBatch,
		CommitInterval:    0, // synchronous commits, issued by the Consumer
		SessionTimeout:    cfg.SessionTimeout,
		HeartbeatInterval: cfg.HeartbeatInterval,
		RebalanceTimeout:  cfg.RebalanceTimeout,
		JoinGroupBackoff:  200 * time.Millisecond,
		StartOffset:       cfg.StartOffset,
		ReadBackoffMin:    10 * time.Millisecond,
		ReadBackoffMax:    200 * time.Millisecond,
		ErrorLogger:       kafkaLogger(cfg),
	})}
}

func (g *groupSource) fetch(ctx context.Context) (kafka.Message, error) { return g.r.FetchMessage(ctx) }

func (g *groupSource) commit(ctx context.Context, last map[int]int64) error {
	msgs := make([]kafka.Message, 0, len(last))
	for p, off := range last {
		msgs = append(msgs, kafka.Message{Topic: g.topic, Partition: p, Offset: off})
	}
	return g.r.CommitMessages(ctx, msgs...)
}

func (g *groupSource) lag() int64   { return g.r.Stats().Lag }
func (g *groupSource) close() error { return g.r.Close() }

// assignedSource reads a fixed set of partitions without joining the group (the
// Java client's assign()), and commits to the group's offsets as a standalone
// consumer (generation -1). Use it for a single instance that owns every
// partition, or for static splits; never run two instances over one partition.
type assignedSource struct {
	client  *kafka.Client
	group   string
	topic   string
	readers []*kafka.Reader
	msgs    chan fetched
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type fetched struct {
	m   kafka.Message
	err error
}

func newAssignedSource(ctx context.Context, cfg *ConsumerConfig) (*assignedSource, error) {
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second}
	parts := cfg.Partitions
	if len(parts) == 1 && parts[0] == AllPartitions {
		counts, err := PartitionCounts(ctx, cfg.Brokers, cfg.Topic)
		if err != nil {
			return nil, err
		}
		n, ok := counts[cfg.Topic]
		if !ok {
			return nil, fmt.Errorf("consumer: topic %q does not exist", cfg.Topic)
		}
		parts = make([]int, n)
		for i := range parts {
			parts[i] = i
		}
	}
	resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: cfg.GroupID,
		Topics: map[string][]int{cfg.Topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("consumer: fetching committed offsets of group %q: %w", cfg.GroupID, err)
	}
	if resp.Error != nil && !errors.Is(resp.Error, kafka.GroupIdNotFound) { // a new group has no offsets
		return nil, fmt.Errorf("consumer: fetching committed offsets of group %q: %w", cfg.GroupID, resp.Error)
	}
	committed := map[int]int64{}
	for _, p := range resp.Topics[cfg.Topic] {
		if p.Error != nil && !errors.Is(p.Error, kafka.GroupIdNotFound) {
			return nil, fmt.Errorf("consumer: committed offset of partition %d: %w", p.Partition, p.Error)
		}
		committed[p.Partition] = p.CommittedOffset
	}
	rctx, cancel := context.WithCancel(context.Background())
	s := &assignedSource{client: client, group: cfg.GroupID, topic: cfg.Topic,
		msgs: make(chan fetched, cfg.MaxBatch), cancel: cancel}
	for _, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: cfg.Brokers, Topic: cfg.Topic, Partition: p,
			MinBytes: 1, MaxBytes: 8 << 20, MaxWait: cfg.MaxWait, QueueCapacity: cfg.MaxBatch,
			ReadBatchTimeout: 10 * time.Second, ReadBackoffMin: 10 * time.Millisecond, ReadBackoffMax: 200 * time.Millisecond,
			ErrorLogger: kafkaLogger(cfg),
		})
		start := cfg.StartOffset
		if off, ok := committed[p]; ok && off >= 0 {
			start = off
		}
		if err := r.SetOffset(start); err != nil {
			cancel()
			r.Close()
			s.close()
			return nil, fmt.Errorf("consumer: seeking partition %d to %d: %w", p, start, err)
		}
		s.readers = append(s.readers, r)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				m, err := r.FetchMessage(rctx)
				if rctx.Err() != nil {
					return
				}
				select {
				case s.msgs <- fetched{m, err}:
				case <-rctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	return s, nil
}

func (s *assignedSource) fetch(ctx context.Context) (kafka.Message, error) {
	select {
	case f := <-s.msgs:
		return f.m, f.err
	case <-ctx.Done():
		return kafka.Message{}, ctx.Err()
	}
}

func (s *assignedSource) commit(ctx context.Context, last map[int]int64) error {
	req := &kafka.OffsetCommitRequest{GroupID: s.group, GenerationID: -1}
	oc := make([]kafka.OffsetCommit, 0, len(last))
	for p, off := range last {
		oc = append(oc, kafka.OffsetCommit{Partition: p, Offset: off + 1}) // the next offset to read
	}
	req.Topics = map[string][]kafka.OffsetCommit{s.topic: oc}
	resp, err := s.client.OffsetCommit(ctx, req)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range resp.Topics[s.topic] {
		if p.Error != nil {
			errs = append(errs, fmt.Errorf("partition %d: %w", p.Partition, p.Error))
		}
	}
	return errors.Join(errs...)
}

func (s *assignedSource) lag() int64 {
	var n int64
	for _, r := range s.readers {
		if l := r.Stats().Lag; l > 0 {
			n += l
		}
	}
	return n
}

func (s *assignedSource) close() error {
	s.cancel()
	s.wg.Wait()
	var errs []error
	for _, r := range s.readers {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}

func kafkaLogger(cfg *ConsumerConfig) kafka.Logger {
	return kafka.LoggerFunc(func(msg string, args ...any) {
		text := fmt.Sprintf(msg, args...)
		level := slog.LevelWarn
		if strings.Contains(text, "message set size = -1") || strings.Contains(text, "context canceled") {
			// kfake (the embedded dev broker) answers an empty fetch at the end of
			// a partition with a null record set that kafka-go reports and retries;
			// a cancelled context is a shutdown.
			level = slog.LevelDebug
		}
		cfg.Logger.Log(context.Background(), level, text, "component", "consumer")
	})
}
