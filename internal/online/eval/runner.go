package eval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
)

// Store is what the runner needs of the shared store (cache.Store).
type Store interface {
	ListSource
	ApplyWindows(ctx context.Context, group string, ranges []cache.OffsetRange, deltas []cache.WindowDelta) (bool, error)
	WindowOffsets(ctx context.Context, group string) (map[int32]cache.PartitionPosition, error)
}

// RunnerConfig configures a Runner. Zero fields take the documented defaults.
type RunnerConfig struct {
	Brokers []string
	// Topic is the interactions topic.
	Topic string
	// Partitions are the partitions this runner evaluates (manual
	// assignment: a static split between replicas, each partition with exactly
	// one runner). Empty with KafkaGroup set: the consumer group assigns them.
	Partitions []int
	// KafkaGroup, if set, is a Kafka consumer group that assigns the
	// partitions between the runners that join it (group mode, real Kafka).
	// The group only assigns: positions live with the windows in the store,
	// and a runner that kept a partition too long (a paused process) is
	// refused by the store's offsets check.
	KafkaGroup string
	// SessionTimeout of the consumer group. Default: 6 s.
	SessionTimeout time.Duration
	// Group names the windows in the store; every replica of one deployment
	// uses the same group. Default: "online".
	Group string
	Eval  Config
	Store Store
	// Batch is the most messages of a partition applied in one atomic step.
	// Default: 1000.
	Batch int
	// FlushEvery applies a partial batch once it is this old. Default: 200 ms.
	FlushEvery time.Duration
	// FromFirst starts a partition with no recorded position at its first
	// offset instead of its newest (the default: a new evaluator does not
	// read an 11-million-event log from the beginning).
	FromFirst bool
	Log       *slog.Logger
	// Applied, if not nil, is called after each batch the store applied
	// (not one it had already recorded) with the batch's summed time-window
	// increments: a process-local view of what this runner added (the API
	// builds its Prometheus histograms from it). It must not keep deltas.
	Applied func(deltas []cache.WindowDelta)
}

// RunnerStats are the runner's counters since it started.
type RunnerStats struct {
	// Processed counts messages processed, Applied those whose increments
	// were applied (the rest rebuilt state after a restart), Undecodable the
	// messages that were not events (counted, skipped: the updater dead-letters
	// them), Batches the atomic steps applied, Repeats the steps the store had
	// already recorded, Restarts the partition restarts from the store's
	// position (after an offsets conflict).
	Processed, Applied, Undecodable, Batches, Repeats, Restarts int64
}

// Runner consumes the interactions topic, evaluates each partition with a
// Partition, and applies the increments, with the offsets they cover, to the
// shared windows. A runner killed at any point and restarted resumes from the
// positions the store recorded: nothing is lost or counted twice.
type Runner struct {
	cfg                                                         RunnerConfig
	processed, applied, undecodable, batches, repeats, restarts atomic.Int64
}

// NewRunner validates cfg.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Group == "" {
		cfg.Group = "online"
	}
	if cfg.Batch == 0 {
		cfg.Batch = 1000
	}
	if cfg.FlushEvery == 0 {
		cfg.FlushEvery = 200 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if len(cfg.Brokers) == 0 || cfg.Topic == "" || cfg.Store == nil {
		errs = append(errs, errors.New("eval runner: brokers, topic and store are required"))
	}
	if len(cfg.Partitions) == 0 && cfg.KafkaGroup == "" {
		errs = append(errs, errors.New("eval runner: no partitions to evaluate and no consumer group"))
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = 6 * time.Second
	}
	if cfg.Batch < 1 || cfg.FlushEvery < time.Millisecond {
		errs = append(errs, fmt.Errorf("eval runner: batch %d must be >= 1 and flush interval %v >= 1 ms", cfg.Batch, cfg.FlushEvery))
	}
	if err := cfg.Eval.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg}, nil
}

// Stats returns the counters.
func (r *Runner) Stats() RunnerStats {
	return RunnerStats{Processed: r.processed.Load(), Applied: r.applied.Load(), Undecodable: r.undecodable.Load(),
		Batches: r.batches.Load(), Repeats: r.repeats.Load(), Restarts: r.restarts.Load()}
}

// Run evaluates every configured partition (or those the consumer group
// assigns, generation by generation) until ctx ends (then it applies nothing
// more: what is not applied is processed again by the next run).
func (r *Runner) Run(ctx context.Context) error {
	if r.cfg.KafkaGroup != "" {
		return r.runGroup(ctx)
	}
	return r.runPartitions(ctx, r.cfg.Partitions)
}

func (r *Runner) runGroup(ctx context.Context) error {
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{ID: r.cfg.KafkaGroup, Brokers: r.cfg.Brokers, Topics: []string{r.cfg.Topic},
		SessionTimeout: r.cfg.SessionTimeout, HeartbeatInterval: r.cfg.SessionTimeout / 6, RebalanceTimeout: 2 * r.cfg.SessionTimeout,
		JoinGroupBackoff: 200 * time.Millisecond, StartOffset: kafka.LastOffset})
	if err != nil {
		return fmt.Errorf("joining consumer group %q: %w", r.cfg.KafkaGroup, err)
	}
	defer cg.Close()
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return nil
			}
			// A rebalance in progress, a coordinator moving: join again.
			r.cfg.Log.Info("consumer group: joining again", "group", r.cfg.KafkaGroup, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		var parts []int
		for _, a := range gen.Assignments[r.cfg.Topic] {
			parts = append(parts, a.ID)
		}
		r.cfg.Log.Info("consumer group generation", "generation", gen.ID, "partitions", parts)
		done := make(chan error, 1)
		gen.Start(func(gctx context.Context) {
			// Stop with the generation or with Run's context.
			pctx, cancel := context.WithCancel(gctx)
			stop := context.AfterFunc(ctx, cancel)
			defer stop()
			defer cancel()
			done <- r.runPartitions(pctx, parts)
		})
		if err := <-done; err != nil && ctx.Err() == nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (r *Runner) runPartitions(ctx context.Context, parts []int) error {
	if len(parts) == 0 {
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(parts))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				err := r.runPartition(ctx, int32(p))
				if errors.Is(err, errRestart) {
					r.restarts.Add(1)
					continue
				}
				if err != nil && ctx.Err() == nil {
					errc <- fmt.Errorf("evaluating partition %d: %w", p, err)
					cancel()
				}
				return
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

var errRestart = errors.New("restart the partition from the store's position")

type winKey struct {
	kind  byte
	index int64
	field string
}

type batch struct {
	from, to int64
	n        int
	sums     map[winKey]int64
	sets     map[winKey]map[uint32]struct{}
	since    time.Time
	deltas   []cache.WindowDelta
}

func (b *batch) reset() {
	b.n = 0
	clear(b.sums)
	clear(b.sets)
}

func (b *batch) add(incs []Increment) {
	for _, in := range incs {
		k := winKey{byte(in.Window.Kind), in.Window.Index, in.Field}
		if in.Distinct {
			s := b.sets[k]
			if s == nil {
				s = map[uint32]struct{}{}
				b.sets[k] = s
			}
			s[in.Video] = struct{}{}
			continue
		}
		b.sums[k] += in.Delta
	}
}

func (b *batch) toDeltas() []cache.WindowDelta {
	b.deltas = b.deltas[:0]
	for k, v := range b.sums {
		b.deltas = append(b.deltas, cache.WindowDelta{Kind: k.kind, Index: k.index, Field: k.field, Delta: v})
	}
	for k, s := range b.sets {
		for m := range s {
			b.deltas = append(b.deltas, cache.WindowDelta{Kind: k.kind, Index: k.index, Field: k.field, Distinct: true, Member: m})
		}
	}
	return b.deltas
}

func (r *Runner) runPartition(ctx context.Context, p int32) error {
	st := r.cfg.Store
	var pos cache.PartitionPosition
	var recorded bool
	if err := retry(ctx, r.cfg.Log, "reading the window offsets", func() error {
		all, err := st.WindowOffsets(ctx, r.cfg.Group)
		pos, recorded = all[p]
		return err
	}); err != nil {
		return err
	}
	start, wm, applyFrom := pos.Resume, pos.ResumeWatermark, pos.Next
	if !recorded {
		start, wm, applyFrom = kafka.LastOffset, 0, -1
		if r.cfg.FromFirst {
			start = kafka.FirstOffset
		}
	}
	pe, err := NewPartition(p, r.cfg.Eval, st, wm)
	if err != nil {
		return err
	}
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: r.cfg.Brokers, Topic: r.cfg.Topic, Partition: int(p),
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond, ReadBackoffMin: 10 * time.Millisecond, ReadBackoffMax: 200 * time.Millisecond})
	defer rd.Close()
	if err := rd.SetOffset(start); err != nil {
		return fmt.Errorf("seeking partition %d to %d: %w", p, start, err)
	}
	r.cfg.Log.Info("evaluating partition", "partition", p, "resume", start, "apply_from", applyFrom, "watermark", wm)
	b := &batch{sums: map[winKey]int64{}, sets: map[winKey]map[uint32]struct{}{}}
	flush := func() error {
		if b.n == 0 {
			return nil
		}
		resume, resumeWM := pe.Resume(b.to + 1)
		rg := []cache.OffsetRange{{Partition: p, From: b.from, To: b.to, Watermark: pe.Watermark(), Resume: resume, ResumeWatermark: resumeWM}}
		deltas := b.toDeltas()
		var ok bool
		err := retry(ctx, r.cfg.Log, "applying window increments", func() error {
			var err error
			ok, err = st.ApplyWindows(ctx, r.cfg.Group, rg, deltas)
			if errors.Is(err, cache.ErrOffsets) {
				return permanent{err}
			}
			return err
		})
		var perm permanent
		if errors.As(err, &perm) {
			r.cfg.Log.Warn("window offsets moved under this runner: restarting the partition from the store", "partition", p, "err", perm.err)
			return errRestart
		}
		if err != nil {
			return err
		}
		if ok {
			r.batches.Add(1)
			r.applied.Add(int64(b.n))
			if r.cfg.Applied != nil {
				r.cfg.Applied(deltas)
			}
		} else {
			r.repeats.Add(1)
		}
		b.reset()
		return nil
	}
	var ev stream.Event
	for {
		fctx, cancel := context.WithTimeout(ctx, r.cfg.FlushEvery)
		m, err := rd.FetchMessage(fctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				if err := flush(); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("reading partition %d: %w", p, err)
		}
		if applyFrom < 0 {
			applyFrom = m.Offset // a new partition applies from its first message
		}
		r.processed.Add(1)
		var incs []Increment
		if err := stream.DecodeEvent(m.Value, &ev); err != nil {
			r.undecodable.Add(1)
		} else {
			incs, err = pe.Process(ctx, m.Offset, Interaction{User: ev.UserID, Video: ev.VideoID, EventID: ev.EventID,
				WatchRatio: ev.WatchRatio, ProducedMS: ev.ProducedAtUs / 1000, Source: ev.Source.String()})
			if err != nil {
				// Loading lists failed (Redis down): rebuild from the store's
				// position once it answers again.
				r.cfg.Log.Warn("loading served lists", "partition", p, "err", err)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(500 * time.Millisecond):
				}
				return errRestart
			}
		}
		if m.Offset < applyFrom {
			continue // rebuilding state: these increments are applied already
		}
		if b.n == 0 {
			b.from, b.since = m.Offset, time.Now()
		}
		b.to = m.Offset
		b.n++
		b.add(incs)
		if b.n >= r.cfg.Batch || time.Since(b.since) >= r.cfg.FlushEvery {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }

// retry runs f until it succeeds, returns a permanent error, or ctx ends,
// backing off from 50 ms to 2 s.
func retry(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		var perm permanent
		if err == nil || errors.As(err, &perm) {
			return err
		}
		if attempt == 1 || attempt%20 == 0 {
			log.Warn("retrying", "what", what, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}
