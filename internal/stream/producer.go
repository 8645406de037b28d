package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// ProducerConfig configures a Producer. Every latency knob is explicit: a zero
// value is replaced by the documented default here, never by kafka-go's (which
// turns a zero BatchTimeout into 1 s).
type ProducerConfig struct {
	Brokers []string // required, host:port
	Topic   string   // Default: DefaultTopic
	// BatchSize is the most messages sent to one partition in one request.
	// Default: 5000.
	BatchSize int
	// BatchBytes bounds one batch's size; keep it within the broker's
	// message.max.bytes (1 MiB by default). Default: 1 MiB.
	BatchBytes int64
	// BatchTimeout is how long a partial batch waits for more messages.
	// Default: 2ms.
	BatchTimeout time.Duration
	// WriteTimeout bounds one produce request. Default: 10s.
	WriteTimeout time.Duration
	// MaxAttempts is how often a failed write is tried. Default: 10.
	MaxAttempts int
	Logger      *slog.Logger // Default: discard
}

func (c *ProducerConfig) setDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.BatchSize == 0 {
		c.BatchSize = 5000
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = 1 << 20
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = 2 * time.Millisecond
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration error.
func (c *ProducerConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("producer: no brokers")
	}
	for _, b := range c.Brokers {
		if err := checkBroker(b); err != nil {
			return fmt.Errorf("producer: %w", err)
		}
	}
	if c.BatchSize < 0 || c.BatchBytes < 0 || c.BatchTimeout < 0 || c.MaxAttempts < 0 {
		return errors.New("producer: negative batch size, bytes, timeout or attempts")
	}
	return nil
}

// Producer publishes events keyed by user id with murmur2 partitioning and
// acks=all. It is safe for concurrent use.
type Producer struct {
	cfg  ProducerConfig
	w    *kafka.Writer
	pool sync.Pool // *encodeBuf
	now  func() time.Time

	published atomic.Uint64
}

type encodeBuf struct {
	arena []byte
	msgs  []kafka.Message
}

// NewProducer builds a Producer; it does not dial until the first Publish.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Topic:        cfg.Topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    cfg.BatchSize,
		BatchBytes:   cfg.BatchBytes,
		BatchTimeout: cfg.BatchTimeout,
		WriteTimeout: cfg.WriteTimeout,
		MaxAttempts:  cfg.MaxAttempts,
		ErrorLogger:  kafka.LoggerFunc(func(msg string, args ...any) { cfg.Logger.Warn(fmt.Sprintf(msg, args...), "component", "producer") }),
	}
	return &Producer{cfg: cfg, w: w, now: time.Now}, nil
}

// Publish validates every event, then writes them all and returns once the broker
// acknowledged each (acks=all), or the first error. It never writes part of a
// batch that holds an invalid event. An event with ProducedAtUs == 0 gets the
// current time. The message timestamp is the wall-clock produce time.
// Publish does not keep or modify events.
func (p *Producer) Publish(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	now := p.now()
	nowUs := now.UnixMicro()
	for i := range events {
		e := events[i]
		if e.ProducedAtUs == 0 {
			e.ProducedAtUs = nowUs
		}
		if err := e.Validate(); err != nil {
			return fmt.Errorf("publishing event %d of %d (user %d): %w", i, len(events), e.UserID, err)
		}
	}
	buf, _ := p.pool.Get().(*encodeBuf)
	if buf == nil {
		buf = &encodeBuf{}
	}
	defer p.pool.Put(buf)
	buf.arena = buf.arena[:0]
	if need := len(events) * 96; cap(buf.arena) < need {
		buf.arena = make([]byte, 0, need)
	}
	if cap(buf.msgs) < len(events) {
		buf.msgs = make([]kafka.Message, len(events))
	}
	msgs := buf.msgs[:len(events)]
	// Encode every key and value into one arena, then slice: the arena may grow
	// while encoding, so slice only after all appends.
	offs := make([]int32, 0, 3*len(events))
	for i := range events {
		e := events[i]
		if e.ProducedAtUs == 0 {
			e.ProducedAtUs = nowUs
		}
		k0 := len(buf.arena)
		buf.arena = AppendKey(buf.arena, e.UserID)
		v0 := len(buf.arena)
		buf.arena = AppendEvent(buf.arena, &e)
		offs = append(offs, int32(k0), int32(v0), int32(len(buf.arena)))
	}
	for i := range msgs {
		k0, v0, end := offs[3*i], offs[3*i+1], offs[3*i+2]
		msgs[i] = kafka.Message{Key: buf.arena[k0:v0:v0], Value: buf.arena[v0:end:end], Time: now}
	}
	err := p.w.WriteMessages(ctx, msgs...)
	clear(msgs)
	if err != nil {
		return fmt.Errorf("publishing %d events to %s: %w", len(events), p.cfg.Topic, err)
	}
	p.published.Add(uint64(len(events)))
	return nil
}

// Published returns how many events were acknowledged so far.
func (p *Producer) Published() uint64 { return p.published.Load() }

// Close flushes and closes the writer.
func (p *Producer) Close() error { return p.w.Close() }
