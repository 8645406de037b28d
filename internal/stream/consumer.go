package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// Record is one decoded event with where it came from.
type Record struct {
	Event     Event
	Partition int
	Offset    int64
	Time      time.Time // the message timestamp (wall-clock produce time)
}

// Handler processes one batch of valid events in partition-offset order per
// partition. It returns nil only once its side effects are durable: the consumer
// then commits every offset in the batch. On error the consumer retries the same
// batch (with backoff) until it succeeds or the context ends, so a Handler must be
// idempotent (streamrec's are, through per-user event-id high-water marks).
// The batch slice is reused after the Handler returns: do not keep it.
type Handler func(ctx context.Context, batch []Record) error

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Brokers []string // required
	GroupID string   // required: the consumer group
	Topic   string   // Default: DefaultTopic
	// DLQTopic receives messages that do not decode. Default: Topic + ".dlq".
	DLQTopic string
	// MaxBatch is the most records handed to the Handler at once. Default: 4096.
	MaxBatch int
	// FlushInterval is the longest a fetched record waits before the Handler sees
	// it (the batch deadline). Default: 20ms.
	FlushInterval time.Duration
	// SessionTimeout of the group membership. Default: 10s (tests use ~2s).
	SessionTimeout time.Duration
	// HeartbeatInterval. Default: SessionTimeout/5.
	HeartbeatInterval time.Duration
	// RebalanceTimeout. Default: 5s.
	RebalanceTimeout time.Duration
	// MaxWait is how long an idle fetch waits on the broker for data (a fetch
	// returns as soon as there is any, so it costs no freshness). kafka-go
	// sets the socket's read deadline to MaxWait and asks the broker to wait
	// MaxWait minus a quarter of it (below 1s), so a short MaxWait leaves too
	// little slack for the answer on a busy machine: the read times out ("i/o
	// timeout"), and the reader drops its connection and backs off. Default:
	// 500ms (125ms of slack).
	MaxWait time.Duration
	// RetryBackoff is the first wait after a Handler error; it doubles up to 5s.
	// Default: 100ms.
	RetryBackoff time.Duration
	// Partitions, when set, reads exactly these partitions without joining the
	// group (manual assignment, like the Java client's assign()), committing to
	// GroupID as a standalone consumer; []int{AllPartitions} means every
	// partition of Topic. Nil (the default) uses the group protocol, which
	// balances partitions across members.
	Partitions []int
	// OnAssign, if set, is called with the partitions this consumer owns from
	// now on, before any of their records reaches the Handler: at start, and
	// after every rebalance (the batch of the previous assignment is handled
	// and committed first). Owners of per-partition state restore it here, as
	// Kafka Streams restores a state store. Errors are retried like the Handler's.
	OnAssign func(ctx context.Context, partitions []int) error
	// StartOffset for a group with no committed offset: kafka.FirstOffset (the
	// default) or kafka.LastOffset.
	StartOffset int64
	Logger      *slog.Logger
}

func (c *ConsumerConfig) setDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.DLQTopic == "" {
		c.DLQTopic = c.Topic + ".dlq"
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 4096
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 20 * time.Millisecond
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = c.SessionTimeout / 5
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = 5 * time.Second
	}
	if c.MaxWait == 0 {
		c.MaxWait = 500 * time.Millisecond
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.StartOffset == 0 {
		c.StartOffset = kafka.FirstOffset
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration error.
func (c *ConsumerConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("consumer: no brokers")
	}
	for _, b := range c.Brokers {
		if err := checkBroker(b); err != nil {
			return fmt.Errorf("consumer: %w", err)
		}
	}
	if c.GroupID == "" {
		return errors.New("consumer: no group id")
	}
	if c.MaxBatch < 0 || c.FlushInterval < 0 {
		return errors.New("consumer: negative batch size or flush interval")
	}
	if c.DLQTopic == c.Topic {
		return errors.New("consumer: the dead-letter topic must differ from the input topic")
	}
	return nil
}

// AllPartitions in ConsumerConfig.Partitions means every partition of the topic.
const AllPartitions = -1

// ConsumerStats are cumulative counters; read them with Consumer.Stats.
type ConsumerStats struct {
	Fetched        uint64 // messages fetched
	Handled        uint64 // valid events whose batch the Handler accepted
	DeadLettered   uint64 // messages written to the dead-letter topic
	Committed      uint64 // messages whose offsets were committed
	HandlerRetries uint64 // Handler calls that returned an error and were retried
	OtherRetries   uint64 // dead-letter writes and OnAssign calls that failed and were retried
	CommitErrors   uint64 // commits that failed (the next commit covers them)
	Lag            int64  // messages behind the end of the owned partitions (kafka-go's estimate)
	PartitionLag   map[int]int64
}

// Consumer reads the interactions topic as one member of a consumer group:
// fetch -> decode -> (dead-letter the malformed) -> Handler -> commit.
type Consumer struct {
	cfg ConsumerConfig
	src source
	dlq *DeadLetters

	fetched, handled, committed, retries, otherRetries, commitErrs atomic.Uint64
}

// NewConsumer builds a Consumer; Run starts it.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var src source
	if cfg.Partitions != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		as, err := newAssignedSource(ctx, &cfg)
		if err != nil {
			return nil, err
		}
		src = as
	} else {
		gs, err := newGroupSource(&cfg)
		if err != nil {
			return nil, err
		}
		src = gs
	}
	dlq, err := NewDeadLetters(cfg.Brokers, cfg.DLQTopic, cfg.Topic)
	if err != nil {
		src.close()
		return nil, err
	}
	return &Consumer{cfg: cfg, src: src, dlq: dlq}, nil
}

// Stats returns the counters so far.
func (c *Consumer) Stats() ConsumerStats {
	st := ConsumerStats{
		Fetched:        c.fetched.Load(),
		Handled:        c.handled.Load(),
		DeadLettered:   c.dlq.Count(),
		Committed:      c.committed.Load(),
		HandlerRetries: c.retries.Load(),
		OtherRetries:   c.otherRetries.Load(),
		CommitErrors:   c.commitErrs.Load(),
	}
	st.PartitionLag = c.src.lag()
	for _, l := range st.PartitionLag {
		st.Lag += l
	}
	return st
}

// DeadLetterReasons returns the dead-letter count per reason.
func (c *Consumer) DeadLetterReasons() map[string]uint64 { return c.dlq.Reasons() }

// Run consumes until ctx ends or a fatal error. On return every batch the Handler
// accepted has been committed (or its commit failed and was logged), and nothing
// the Handler did not accept was committed. Run closes nothing; call Close after.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	return c.RunAsync(ctx, func(ctx context.Context, batch []Record) (func() error, error) {
		return nil, h(ctx, batch)
	})
}

// AsyncHandler is a Handler whose side effects may become durable after it
// returns: it returns wait (nil when they already are), which the consumer
// calls on another goroutine, while it hands the next batches to the
// handler, and commits the batch once wait returned nil for it and every
// batch before it, so that batches' writes overlap later batches'
// processing. wait must be safe to call concurrently with the AsyncHandler.
// An error from the AsyncHandler itself is retried like a Handler's; an
// error from wait ends RunAsync with the batch (and every later one)
// uncommitted. The batch slice is reused once the AsyncHandler returns: do
// not keep it.
type AsyncHandler func(ctx context.Context, batch []Record) (wait func() error, err error)

// RunAsync is Run with an AsyncHandler: up to maxInFlight handled batches
// wait for their side effects at once, and each is committed once it and
// every batch before it are durable.
func (c *Consumer) RunAsync(ctx context.Context, h AsyncHandler) error {
	in := &inbox{q: c.src.queue()}
	raw := make([]kafka.Message, 0, c.cfg.MaxBatch)
	recs := make([]Record, 0, c.cfg.MaxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var cur *assignment // the assignment the Handler was told about
	var held *item      // an item that starts the next batch
	pl := newPipeline(ctx, c)
	defer func() {
		if err := pl.close(); err != nil {
			c.cfg.Logger.Warn("stopped with a batch not durable; it and the batches after it stay uncommitted", "component", "consumer", "err", err)
		}
	}()
	for {
		// Commit what became durable (on the committer's goroutine).
		if err := pl.settle(false); err != nil {
			return err
		}
		raw = raw[:0]
		var it item
		if held != nil {
			it, held = *held, nil
		} else {
			// Block for the first item, or until the oldest batch in
			// flight is durable (then commit it and wait again).
			x, st := in.recv(ctx, nil, pl.head())
			switch st {
			case recvWake:
				continue
			case recvStopped:
				return nil
			case recvClosed:
				return c.endErr(ctx)
			}
			it = x
		}
		if it.asg != cur {
			// A new assignment: settle the previous one's batches, then
			// announce the new one before any of its records.
			if err := pl.drain(); err != nil {
				return err
			}
			cur = it.asg
			if c.cfg.OnAssign != nil {
				parts := cur.partitions
				if err := c.retry(ctx, "assigning", func(ctx context.Context) error { return c.cfg.OnAssign(ctx, parts) }); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
			}
		}
		if it.begin {
			continue
		}
		raw = append(raw, it.m)
		// Fill until full, the deadline, or an item of another assignment.
		timer.Reset(c.cfg.FlushInterval)
		for len(raw) < c.cfg.MaxBatch {
			x, st := in.recv(ctx, timer.C, nil)
			if st != recvItem {
				break // the deadline; a shutdown or the end is seen at the next item
			}
			if x.asg != cur || x.begin {
				held = &x
				break
			}
			raw = append(raw, x.m)
		}
		timer.Stop()
		c.fetched.Add(uint64(len(raw)))

		var err error
		var next *pending
		recs, next, err = c.process(ctx, cur, raw, recs[:0], h)
		if err != nil {
			if ctx.Err() != nil {
				// Shut down mid-retry: the batch stays uncommitted and is
				// delivered again to whoever owns its partitions next.
				c.cfg.Logger.Warn("stopped with a batch not yet handled; it stays uncommitted",
					"component", "consumer", "records", len(raw), "err", err)
				return nil
			}
			return err
		}
		// In flight behind the batches before it: if one of those does not
		// become durable, nothing after it is committed (a later commit on
		// its partitions would cover it), and RunAsync ends.
		pl.add(next)
		if pl.full() {
			<-pl.head()
		}
	}
}

func (c *Consumer) endErr(ctx context.Context) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("fetching from %s: consumer group closed", c.cfg.Topic)
}

// process decodes a batch, dead-letters what does not decode, runs the Handler
// until it succeeds, then commits. It returns an error only when ctx ends before
// the Handler succeeded (nothing is committed then) or the DLQ cannot be written.
func (c *Consumer) process(ctx context.Context, asg *assignment, raw []kafka.Message, recs []Record, h AsyncHandler) ([]Record, *pending, error) {
	var bad []badMessage
	for i := range raw {
		m := &raw[i]
		recs = append(recs, Record{Partition: m.Partition, Offset: m.Offset, Time: m.Time})
		if err := DecodeEvent(m.Value, &recs[len(recs)-1].Event); err != nil {
			recs = recs[:len(recs)-1]
			bad = append(bad, badMessage{msg: m, err: err})
		}
	}
	if len(bad) > 0 {
		if err := c.retry(ctx, "dead-lettering", func(ctx context.Context) error { return c.dlq.Send(ctx, bad) }); err != nil {
			return recs, nil, err
		}
	}
	p := &pending{asg: asg, n: len(raw), last: make(map[int]int64, 8)}
	if len(recs) > 0 {
		if err := c.retry(ctx, "handling", func(ctx context.Context) error {
			var err error
			p.wait, err = h(ctx, recs)
			return err
		}); err != nil {
			return recs, nil, err
		}
		c.handled.Add(uint64(len(recs)))
	}
	// Commit the highest offset of each partition in the batch: every message up
	// to it was handled or dead-lettered above.
	for i := range raw {
		if prev, ok := p.last[raw[i].Partition]; !ok || raw[i].Offset > prev {
			p.last[raw[i].Partition] = raw[i].Offset
		}
	}
	return recs, p, nil
}

func (c *Consumer) commit(ctx context.Context, p *pending) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := c.src.commit(cctx, p.asg, p.last); err != nil {
		c.commitErrs.Add(1)
		c.cfg.Logger.Warn("commit failed; a later commit covers it, and a redelivery is deduplicated",
			"component", "consumer", "err", err)
	} else {
		c.committed.Add(uint64(p.n))
	}
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps an error of a Handler or of OnAssign that retrying cannot
// fix (a configuration that no longer matches the topic): the consumer does
// not retry it, and Run returns it, leaving the batch uncommitted.
func Permanent(err error) error { return &permanentError{err} }

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// retry runs f until it succeeds or ctx ends, backing off exponentially; an
// error marked Permanent ends it at once.
func (c *Consumer) retry(ctx context.Context, what string, f func(context.Context) error) error {
	backoff := c.cfg.RetryBackoff
	// The attempt itself runs uncancelled, so that a shutdown lets the batch in
	// flight finish (drain); only the retries stop when ctx ends.
	for {
		err := f(context.WithoutCancel(ctx))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: stopped before success: %w", what, ctx.Err())
		}
		if IsPermanent(err) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if what == "handling" {
			c.retries.Add(1)
		} else {
			c.otherRetries.Add(1)
		}
		c.cfg.Logger.Warn(what+" failed; retrying the batch", "component", "consumer", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: stopped before success: %w", what, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Close leaves the group and closes the reader and the dead-letter writer.
func (c *Consumer) Close() error {
	return errors.Join(c.src.close(), c.dlq.Close())
}
