package online

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/stream"
)

// DefaultLRControlDelay is how far after its produce time a control takes
// effect (LRControl.AtMs); the API and the updater must agree on it.
const DefaultLRControlDelay = 5 * time.Second

// LRControlTopic is the control topic of an interactions topic.
func LRControlTopic(interactions string) string { return interactions + ".control" }

// EnsureLRControlTopic creates the control topic: one partition, kept
// forever (the schedule is its whole history).
func EnsureLRControlTopic(ctx context.Context, brokers []string, topic string) error {
	return stream.EnsureTopics(ctx, brokers, stream.InteractionsTopic(topic, 1))
}

// FollowLRControls reads the control topic from its first offset into s
// until ctx ends: after reading everything up to the topic's end as of wall
// time W it marks the schedule covered up to W + delay (a control produced
// later takes effect after that), then looks again every poll. A malformed
// or out-of-bounds record is logged and skipped (it never changes a rate).
func FollowLRControls(ctx context.Context, brokers []string, topic string, s *LRSchedule, delay, poll time.Duration, log *slog.Logger) error {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MinBytes: 1, MaxBytes: 1 << 20,
		MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		return err
	}
	next := int64(-1)
	warned := time.Time{}
	for ctx.Err() == nil {
		t0 := time.Now()
		resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.FirstOffsetOf(0), kafka.LastOffsetOf(0)}}})
		var first, end int64
		if err == nil {
			for _, po := range resp.Topics[topic] {
				if po.Error != nil {
					err = po.Error
				}
				first, end = po.FirstOffset, po.LastOffset
			}
		}
		if err != nil {
			if time.Since(warned) > 10*time.Second {
				log.Warn("learning-rate controls: cannot read the control topic; events after the covered time wait", "topic", topic, "err", err)
				warned = time.Now()
			}
			sleepCtx(ctx, poll)
			continue
		}
		if next < first {
			next = first
		}
		for next < end && ctx.Err() == nil {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				break
			}
			next = m.Offset + 1
			var c LRControl
			if err := json.Unmarshal(m.Value, &c); err != nil {
				log.Warn("learning-rate controls: a malformed record skipped", "offset", m.Offset, "err", err)
				continue
			}
			if err := s.Add(c); err != nil {
				log.Warn("learning-rate controls: a record out of bounds skipped", "offset", m.Offset, "err", err)
				continue
			}
			log.Info("learning-rate control", "id", c.ID, "factor", c.Factor, "from", time.UnixMilli(c.AtMs).UTC(), "until", time.UnixMilli(c.UntilMs).UTC(), "reason", c.Reason)
		}
		if next >= end {
			s.SetCovered(t0.Add(delay).UnixMilli())
		}
		sleepCtx(ctx, poll)
	}
	return nil
}

// LRControlWriter produces control records (the API's drift action).
type LRControlWriter struct {
	w     *kafka.Writer
	delay time.Duration
}

// NewLRControlWriter writes to topic on brokers; delay is DefaultLRControlDelay
// unless given.
func NewLRControlWriter(brokers []string, topic string, delay time.Duration) *LRControlWriter {
	if delay <= 0 {
		delay = DefaultLRControlDelay
	}
	return &LRControlWriter{delay: delay, w: &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, WriteTimeout: 5 * time.Second}}
}

// Raise produces a control multiplying the rate by factor for span, from
// now + the delay; it returns the control written.
func (w *LRControlWriter) Raise(ctx context.Context, factor float64, span time.Duration, reason string) (LRControl, error) {
	at := time.Now().Add(w.delay)
	c := LRControl{ID: strconv.FormatInt(time.Now().UnixNano(), 36), AtMs: at.UnixMilli(), UntilMs: at.Add(span).UnixMilli(), Factor: factor, Reason: reason}
	if err := c.Validate(); err != nil {
		return c, err
	}
	js, _ := json.Marshal(c)
	if err := w.w.WriteMessages(ctx, kafka.Message{Key: []byte(c.ID), Value: js}); err != nil {
		return c, fmt.Errorf("writing a learning-rate control: %w", err)
	}
	return c, nil
}

// Close flushes and closes the writer.
func (w *LRControlWriter) Close() error { return w.w.Close() }

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
