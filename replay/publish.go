package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/stream"
)

// writerConfig holds the settings of the replay's kafka-go writer: those of
// stream.Producer (murmur2, acks=all, explicit batching) plus message headers,
// which stream.Producer does not support.
type writerConfig struct {
	Brokers      []string
	Topic        string
	BatchSize    int           // messages per partition batch (and per chunk)
	BatchBytes   int64         // Default: 1 MiB
	BatchTimeout time.Duration // partial-batch linger
	WriteTimeout time.Duration
	MaxAttempts  int
	Logger       *slog.Logger
}

func newKafkaWriter(c writerConfig) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(c.Brokers...),
		Topic:        c.Topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    c.BatchSize,
		BatchBytes:   c.BatchBytes,
		BatchTimeout: c.BatchTimeout,
		WriteTimeout: c.WriteTimeout,
		MaxAttempts:  c.MaxAttempts,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.Logger.Warn(fmt.Sprintf(msg, args...), "component", "replay-writer")
		}),
	}
}

// chunk is up to BatchSize events of one partition, in position order.
type chunk struct {
	events []stream.Event
	pos    []int32

	// encoding buffers, reused
	arena   []byte
	msgs    []kafka.Message
	headers []kafka.Header
}

func (c *chunk) reset() { c.events, c.pos = c.events[:0], c.pos[:0] }

// encode builds the messages of c (key, value, headers) stamped with now.
func (c *chunk) encode(run []byte, now time.Time) []kafka.Message {
	nowUs := now.UnixMicro()
	n := len(c.events)
	c.arena = c.arena[:0]
	if need := n * 128; cap(c.arena) < need {
		c.arena = make([]byte, 0, need)
	}
	if cap(c.msgs) < n {
		c.msgs = make([]kafka.Message, n)
		c.headers = make([]kafka.Header, 2*n)
	}
	offs := make([]int32, 0, 4*n)
	for i := range c.events {
		e := &c.events[i]
		e.ProducedAtUs = nowUs
		k0 := len(c.arena)
		c.arena = stream.AppendKey(c.arena, e.UserID)
		v0 := len(c.arena)
		c.arena = stream.AppendEvent(c.arena, e)
		p0 := len(c.arena)
		c.arena = strconv.AppendInt(c.arena, int64(c.pos[i]), 10)
		offs = append(offs, int32(k0), int32(v0), int32(p0), int32(len(c.arena)))
	}
	msgs := c.msgs[:n]
	for i := range msgs {
		k0, v0, p0, end := offs[4*i], offs[4*i+1], offs[4*i+2], offs[4*i+3]
		hs := c.headers[2*i : 2*i+2 : 2*i+2]
		hs[0] = kafka.Header{Key: HeaderPos, Value: c.arena[p0:end:end]}
		hs[1] = kafka.Header{Key: HeaderRun, Value: run}
		msgs[i] = kafka.Message{Key: c.arena[k0:v0:v0], Value: c.arena[v0:p0:p0], Headers: hs, Time: now}
	}
	return msgs
}

// publisher writes chunks with one goroutine per partition, each with at most one
// WriteMessages call (one batch) in flight and one chunk queued: a partition's
// events go out in position order, and partitions overlap each other's encoding
// and broker round trips.
type publisher struct {
	w     *kafka.Writer
	run   []byte
	parts []chan *chunk
	free  chan *chunk
	wg    sync.WaitGroup

	published   atomic.Int64
	firstTimeMs atomic.Int64 // event time of the earliest acknowledged event (0: none)
	lastTimeMs  atomic.Int64 // event time of the latest acknowledged event (any partition)
	errOnce     sync.Once
	err         error
	failed      chan struct{} // closed on the first write error
}

func newPublisher(w *kafka.Writer, run string, partitions, batch int) *publisher {
	p := &publisher{w: w, run: []byte(run), parts: make([]chan *chunk, partitions),
		free: make(chan *chunk, 3*partitions), failed: make(chan struct{})}
	for i := 0; i < 3*partitions; i++ {
		p.free <- &chunk{events: make([]stream.Event, 0, batch), pos: make([]int32, 0, batch)}
	}
	for i := range p.parts {
		p.parts[i] = make(chan *chunk, 1)
		p.wg.Add(1)
		go p.loop(p.parts[i])
	}
	return p
}

// get returns an empty chunk, waiting for one to be free (backpressure).
func (p *publisher) get(ctx context.Context) (*chunk, error) {
	select {
	case c := <-p.free:
		c.reset()
		return c, nil
	case <-p.failed:
		return nil, p.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// send hands a full chunk of partition part to its writer. It waits while the
// partition already has a chunk queued; on ctx's end the chunk is returned.
func (p *publisher) send(ctx context.Context, part int, c *chunk) error {
	select {
	case p.parts[part] <- c:
		return nil
	case <-p.failed:
		return p.err
	case <-ctx.Done():
		p.free <- c
		return ctx.Err()
	}
}

func (p *publisher) loop(in chan *chunk) {
	defer p.wg.Done()
	for c := range in {
		select {
		case <-p.failed:
			p.free <- c // drop: an earlier write failed, stop writing
			continue
		default:
		}
		msgs := c.encode(p.run, time.Now())
		// Writes are not cancelled by a signal: what is handed over is flushed.
		err := p.w.WriteMessages(context.Background(), msgs...)
		clear(msgs)
		if err != nil {
			p.fail(fmt.Errorf("writing %d events (positions %d..%d): %w", len(c.events), c.pos[0], c.pos[len(c.pos)-1], err))
		} else {
			p.published.Add(int64(len(c.events)))
			storeMax(&p.lastTimeMs, c.events[len(c.events)-1].EventTimeMs)
			storeMin(&p.firstTimeMs, c.events[0].EventTimeMs)
		}
		p.free <- c
	}
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		o := a.Load()
		if v <= o || a.CompareAndSwap(o, v) {
			return
		}
	}
}

func storeMin(a *atomic.Int64, v int64) {
	for {
		o := a.Load()
		if (o != 0 && o <= v) || a.CompareAndSwap(o, v) {
			return
		}
	}
}

func (p *publisher) fail(err error) {
	p.errOnce.Do(func() {
		p.err = err
		close(p.failed)
	})
}

// close waits until every handed-over chunk is written and acknowledged, then
// closes the writer. It returns the first write error.
func (p *publisher) close() error {
	for _, c := range p.parts {
		close(c)
	}
	p.wg.Wait()
	return errors.Join(p.err, p.w.Close())
}
