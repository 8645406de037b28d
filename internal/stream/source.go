package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// assignment is one set of partitions owned by this consumer: one generation of
// the group, or the whole of a manual assignment. Records of one assignment are
// committed through it.
type assignment struct {
	partitions []int
	gen        *kafka.Generation // nil for a manual assignment

	mu      sync.Mutex
	readers []*kafka.Reader
}

func (a *assignment) lag() map[int]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[int]int64, len(a.readers))
	for _, r := range a.readers {
		out[r.Config().Partition] = max(r.Stats().Lag, 0)
	}
	return out
}

// item is what a source yields: a message of an assignment, or (begin) the
// notice that the assignment begins.
type item struct {
	m     kafka.Message
	asg   *assignment
	begin bool
}

// source is where a Consumer's messages come from and where its offsets go.
type source interface {
	// queue is where the items arrive, in order per partition, each
	// assignment's notice before its messages. The queue is closed when the
	// source can yield no more (a group that ended).
	queue() *queue
	// commit records, for each partition, that every offset up to and including
	// last[partition] is done.
	commit(ctx context.Context, asg *assignment, last map[int]int64) error
	lag() map[int]int64 // per owned partition
	close() error
}

// partitionReader reads one partition from offset (an absolute offset, or
// kafka.FirstOffset / kafka.LastOffset).
func partitionReader(cfg *ConsumerConfig, p int, offset int64) (*kafka.Reader, error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers, Topic: cfg.Topic, Partition: p,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: cfg.MaxWait, QueueCapacity: min(cfg.MaxBatch, 1024),
		ReadBatchTimeout: 10 * time.Second, ReadBackoffMin: 10 * time.Millisecond, ReadBackoffMax: 200 * time.Millisecond,
		ErrorLogger: kafkaLogger(cfg),
	})
	if err := r.SetOffset(offset); err != nil {
		r.Close()
		return nil, fmt.Errorf("seeking partition %d to %d: %w", p, offset, err)
	}
	return r, nil
}

// pump fetches from r into q until ctx ends.
func pump(ctx context.Context, r *kafka.Reader, asg *assignment, q *queue, log *slog.Logger) {
	backoff := 50 * time.Millisecond
	for {
		m, err := r.FetchMessage(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Warn("fetch failed; retrying", "component", "consumer", "partition", r.Config().Partition, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if !q.put(ctx, item{m: m, asg: asg}) {
			return
		}
	}
}

// groupSource is a member of a consumer group: the coordinator assigns partitions
// per generation, and each generation is announced before its first message so
// that the owner can restore per-partition state (as Kafka Streams does).
type groupSource struct {
	cfg    *ConsumerConfig
	cg     *kafka.ConsumerGroup
	q      *queue
	cancel context.CancelFunc
	done   chan struct{}
	cur    atomic.Pointer[assignment]
}

func newGroupSource(cfg *ConsumerConfig) (*groupSource, error) {
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                cfg.GroupID,
		Brokers:           cfg.Brokers,
		Topics:            []string{cfg.Topic},
		HeartbeatInterval: cfg.HeartbeatInterval,
		SessionTimeout:    cfg.SessionTimeout,
		RebalanceTimeout:  cfg.RebalanceTimeout,
		JoinGroupBackoff:  200 * time.Millisecond,
		StartOffset:       cfg.StartOffset,
		ErrorLogger:       kafkaLogger(cfg),
	})
	if err != nil {
		return nil, fmt.Errorf("consumer: joining group %q: %w", cfg.GroupID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &groupSource{cfg: cfg, cg: cg, q: newQueue(cfg.MaxBatch), cancel: cancel, done: make(chan struct{})}
	go s.loop(ctx)
	return s, nil
}

func (s *groupSource) loop(ctx context.Context) {
	defer close(s.done)
	defer s.q.close()
	for {
		gen, err := s.cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
			s.cfg.Logger.Warn("joining the group failed; retrying", "component", "consumer", "group", s.cfg.GroupID, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		asg := &assignment{gen: gen}
		for _, pa := range gen.Assignments[s.cfg.Topic] {
			asg.partitions = append(asg.partitions, pa.ID)
		}
		s.cur.Store(asg)
		s.cfg.Logger.Info("partitions assigned", "component", "consumer", "generation", gen.ID, "partitions", asg.partitions)
		if !s.q.put(ctx, item{asg: asg, begin: true}) {
			return
		}
		for _, pa := range gen.Assignments[s.cfg.Topic] {
			gen.Start(func(gctx context.Context) {
				r, err := partitionReader(s.cfg, pa.ID, pa.Offset)
				if err != nil {
					s.cfg.Logger.Error("opening partition reader", "component", "consumer", "err", err)
					return
				}
				defer r.Close()
				asg.mu.Lock()
				asg.readers = append(asg.readers, r)
				asg.mu.Unlock()
				pump(gctx, r, asg, s.q, s.cfg.Logger)
			})
		}
	}
}

func (s *groupSource) queue() *queue { return s.q }

func (s *groupSource) commit(_ context.Context, asg *assignment, last map[int]int64) error {
	offs := make(map[int]int64, len(last))
	for p, off := range last {
		offs[p] = off + 1 // the next offset to read
	}
	return asg.gen.CommitOffsets(map[string]map[int]int64{s.cfg.Topic: offs})
}

func (s *groupSource) lag() map[int]int64 {
	if a := s.cur.Load(); a != nil {
		return a.lag()
	}
	return nil
}

func (s *groupSource) close() error {
	err := s.cg.Close() // leaves the group; ends the generation and its readers
	s.cancel()
	<-s.done
	return err
}

// assignedSource reads a fixed set of partitions without joining the group (the
// Java client's assign()), and commits to the group's offsets as a standalone
// consumer (generation -1). Use it for a single instance that owns every
// partition, or for static splits; never run two instances over one partition.
type assignedSource struct {
	client *kafka.Client
	group  string
	topic  string
	asg    *assignment
	q      *queue
	cancel context.CancelFunc
	wg     sync.WaitGroup
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
	// A broker that is starting, or whose group coordinator moved, answers
	// with a retriable error (not coordinator, coordinator loading): retry
	// those for up to 30 s rather than fail the start.
	var resp *kafka.OffsetFetchResponse
	for attempt, deadline := 0, time.Now().Add(30*time.Second); ; attempt++ {
		var err error
		resp, err = client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: cfg.GroupID,
			Topics: map[string][]int{cfg.Topic: parts}})
		if err == nil && resp.Error != nil && !errors.Is(resp.Error, kafka.GroupIdNotFound) { // a new group has no offsets
			err = resp.Error
		}
		if err == nil {
			break
		}
		var ke kafka.Error
		if !(errors.As(err, &ke) && ke.Temporary()) || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("consumer: fetching committed offsets of group %q: %w", cfg.GroupID, err)
		}
		cfg.Logger.Warn("fetching committed offsets: retrying", "component", "consumer", "group", cfg.GroupID, "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
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
		asg: &assignment{partitions: parts}, q: newQueue(cfg.MaxBatch), cancel: cancel}
	s.q.put(rctx, item{asg: s.asg, begin: true})
	for _, p := range parts {
		start := cfg.StartOffset
		if off, ok := committed[p]; ok && off >= 0 {
			start = off
		}
		r, err := partitionReader(cfg, p, start)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("consumer: %w", err)
		}
		s.asg.readers = append(s.asg.readers, r)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			pump(rctx, r, s.asg, s.q, cfg.Logger)
		}()
	}
	return s, nil
}

func (s *assignedSource) queue() *queue { return s.q }

func (s *assignedSource) commit(ctx context.Context, _ *assignment, last map[int]int64) error {
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

func (s *assignedSource) lag() map[int]int64 { return s.asg.lag() }

func (s *assignedSource) close() error {
	s.cancel()
	s.wg.Wait()
	var errs []error
	for _, r := range s.asg.readers {
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
