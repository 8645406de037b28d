package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// Headers of a dead-lettered message. Its key and value are the original's.
const (
	HeaderReason          = "dlq-reason"           // DecodeError.Reason, or the error text
	HeaderField           = "dlq-field"            // DecodeError.Field, when known
	HeaderSourceTopic     = "dlq-source-topic"     // the topic it came from
	HeaderSourcePartition = "dlq-source-partition" // decimal
	HeaderSourceOffset    = "dlq-source-offset"    // decimal
)

type badMessage struct {
	msg *kafka.Message
	err error
}

// DeadLetters writes rejected messages, with their reason, to the dead-letter
// topic and counts them per reason. It is safe for concurrent use.
type DeadLetters struct {
	w      messageWriter
	topic  string
	source string
	count  atomic.Uint64

	mu      sync.Mutex
	reasons map[string]uint64
}

// NewDeadLetters returns a writer to topic for messages read from source.
func NewDeadLetters(brokers []string, topic, source string) (*DeadLetters, error) {
	if topic == "" {
		return nil, errors.New("dead letters: no topic")
	}
	return newDeadLetters(&kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    1000,
		BatchTimeout: time.Millisecond,
		WriteTimeout: 10 * time.Second,
	}, source), nil
}

// messageWriter is the part of *kafka.Writer that DeadLetters uses.
type messageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

func newDeadLetters(w messageWriter, source string) *DeadLetters {
	topic := ""
	if kw, ok := w.(*kafka.Writer); ok {
		topic = kw.Topic
	}
	return &DeadLetters{w: w, topic: topic, source: source, reasons: map[string]uint64{}}
}

// Send writes the messages and returns once the broker acknowledged them; only
// then are they counted.
func (d *DeadLetters) Send(ctx context.Context, bad []badMessage) error {
	out := make([]kafka.Message, len(bad))
	reasons := make([]string, len(bad))
	for i, b := range bad {
		reason, field := b.err.Error(), ""
		var de *DecodeError
		if errors.As(b.err, &de) {
			reason, field = de.Reason, de.Field
		}
		reasons[i] = reason
		out[i] = kafka.Message{
			Key:   b.msg.Key,
			Value: b.msg.Value,
			Time:  time.Now(),
			Headers: []kafka.Header{
				{Key: HeaderReason, Value: []byte(reason)},
				{Key: HeaderField, Value: []byte(field)},
				{Key: HeaderSourceTopic, Value: []byte(d.source)},
				{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(b.msg.Partition), 10)},
				{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, b.msg.Offset, 10)},
			},
		}
	}
	if err := d.w.WriteMessages(ctx, out...); err != nil {
		return fmt.Errorf("writing %d messages to dead-letter topic %s: %w", len(out), d.topic, err)
	}
	d.count.Add(uint64(len(bad)))
	d.mu.Lock()
	for _, r := range reasons {
		d.reasons[r]++
	}
	d.mu.Unlock()
	return nil
}

// Count returns how many messages were dead-lettered.
func (d *DeadLetters) Count() uint64 { return d.count.Load() }

// Reasons returns a copy of the count per reason.
func (d *DeadLetters) Reasons() map[string]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]uint64, len(d.reasons))
	for k, v := range d.reasons {
		out[k] = v
	}
	return out
}

// Close flushes and closes the writer.
func (d *DeadLetters) Close() error { return d.w.Close() }
