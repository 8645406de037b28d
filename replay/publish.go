package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/stream"
)

// writerConfig holds the settings of the replay's produce path: acks=all,
// partition = murmur2 of the key (stream.PartitionFor, as stream.Producer's
// kafka.Murmur2Balancer), explicit batching (a chunk of at most BatchSize
// messages and BatchBytes bytes per produce request), retries with backoff.
type writerConfig struct {
	Brokers      []string
	Topic        string
	BatchBytes   int64         // bound of one produce request's records; Default: 1 MiB
	WriteTimeout time.Duration // one produce request
	MaxAttempts  int           // tries of one request on temporary errors
	Logger       *slog.Logger
}

// partitionWriter produces record batches to explicit partitions through one
// kafka.Client (kafka-go's protocol-level client, which the kafka.Writer uses
// underneath). It replaces kafka.Writer here because the replay already knows
// each message's partition and chunks them itself, and kafka.Writer spends a
// quarter of the replay's CPU on per-message work it does not need (a metadata
// lookup and a balancer call per message, a timer goroutine per batch).
type partitionWriter struct {
	cfg    writerConfig
	client *kafka.Client
}

func newPartitionWriter(c writerConfig) *partitionWriter {
	if c.BatchBytes <= 0 {
		c.BatchBytes = 1 << 20
	}
	return &partitionWriter{cfg: c, client: &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: c.WriteTimeout}}
}

// write produces msgs to partition part, in order, in requests of at most
// BatchBytes, each acknowledged by all in-sync replicas before the next is sent.
// A request failing with a temporary error is retried (which may duplicate it if
// the broker had written it: delivery is at least once, and consumers skip
// event ids they have applied).
func (w *partitionWriter) write(part int, msgs []kafka.Message) error {
	for len(msgs) > 0 {
		n, size := 0, int64(0)
		for n < len(msgs) {
			s := recordSize(&msgs[n])
			if n > 0 && size+s > w.cfg.BatchBytes {
				break
			}
			size += s
			n++
		}
		if err := w.produce(part, msgs[:n]); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

// recordSize bounds the encoded size of a message in a record batch.
func recordSize(m *kafka.Message) int64 {
	n := 32 + len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += 10 + len(h.Key) + len(h.Value)
	}
	return int64(n)
}

func (w *partitionWriter) produce(part int, msgs []kafka.Message) error {
	var err error
	for attempt := 0; attempt < w.cfg.MaxAttempts; attempt++ {
		if attempt > 0 {
			d := min(time.Second, 50*time.Millisecond<<attempt)
			w.cfg.Logger.Warn("retrying a produce request", "component", "replay-writer", "partition", part,
				"messages", len(msgs), "attempt", attempt+1, "backoff", d.String(), "err", err)
			time.Sleep(d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.WriteTimeout)
		var res *kafka.ProduceResponse
		res, err = w.client.Produce(ctx, &kafka.ProduceRequest{Topic: w.cfg.Topic, Partition: part,
			RequiredAcks: kafka.RequireAll, Records: &messageRecords{msgs: msgs}})
		cancel()
		if err == nil && res.Error != nil {
			err = res.Error
		}
		if err == nil {
			return nil
		}
		if !retriable(err) {
			break
		}
	}
	return fmt.Errorf("producing %d messages to %s/%d: %w", len(msgs), w.cfg.Topic, part, err)
}

// retriable reports whether a produce error is worth another attempt: a
// temporary Kafka error (not leader, timeouts, ...) or a network error.
func retriable(err error) bool {
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary()
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded)
}

// messageRecords is a kafka.RecordReader over messages (as kafka.Writer's own).
type messageRecords struct {
	msgs       []kafka.Message
	i          int
	rec        kafka.Record
	key, value bytesRC
}

func (r *messageRecords) ReadRecord() (*kafka.Record, error) {
	if r.i >= len(r.msgs) {
		return nil, io.EOF
	}
	m := &r.msgs[r.i]
	r.i++
	r.key.Reset(m.Key)
	r.value.Reset(m.Value)
	r.rec = kafka.Record{Time: m.Time, Key: &r.key, Value: &r.value, Headers: m.Headers}
	return &r.rec, nil
}

type bytesRC struct{ bytes.Reader }

func (*bytesRC) Close() error { return nil }

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
// partWriter writes one partition's messages in order (partitionWriter; fakes in tests).
type partWriter interface {
	write(part int, msgs []kafka.Message) error
}

type publisher struct {
	w     partWriter
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

func newPublisher(w partWriter, run string, partitions, batch int) *publisher {
	p := &publisher{w: w, run: []byte(run), parts: make([]chan *chunk, partitions),
		free: make(chan *chunk, 3*partitions), failed: make(chan struct{})}
	for i := 0; i < 3*partitions; i++ {
		p.free <- &chunk{events: make([]stream.Event, 0, batch), pos: make([]int32, 0, batch)}
	}
	for i := range p.parts {
		p.parts[i] = make(chan *chunk, 1)
		p.wg.Add(1)
		go p.loop(i, p.parts[i])
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

func (p *publisher) loop(part int, in chan *chunk) {
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
		err := p.w.write(part, msgs)
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
	return p.err
}
