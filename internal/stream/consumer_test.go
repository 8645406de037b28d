package stream

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// fakeSource yields a fixed list of items, then blocks until ctx ends, and
// records every commit.
type fakeSource struct {
	q *queue

	mu      sync.Mutex
	commits []map[int]int64
}

func newFakeSource(asg *assignment, msgs []kafka.Message) *fakeSource {
	s := &fakeSource{q: newQueue(len(msgs) + 1)}
	s.q.put(context.Background(), item{asg: asg, begin: true})
	for i := range msgs {
		s.q.put(context.Background(), item{m: msgs[i], asg: asg})
	}
	return s
}

func (s *fakeSource) queue() *queue { return s.q }

func (s *fakeSource) commit(_ context.Context, _ *assignment, last map[int]int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(map[int]int64, len(last))
	for p, o := range last {
		c[p] = o
	}
	s.commits = append(s.commits, c)
	return nil
}

func (s *fakeSource) committed() []map[int]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[int]int64(nil), s.commits...)
}

func (s *fakeSource) lag() map[int]int64 { return nil }
func (s *fakeSource) close() error       { return nil }

// fakeWriter accepts every dead letter.
type fakeWriter struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func (w *fakeWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msgs...)
	return nil
}
func (w *fakeWriter) Close() error { return nil }

func fakeConsumer(src source, maxBatch int) *Consumer {
	cfg := ConsumerConfig{Brokers: []string{"127.0.0.1:1"}, GroupID: "g", MaxBatch: maxBatch,
		FlushInterval: 50 * time.Millisecond, RetryBackoff: time.Millisecond}
	cfg.setDefaults()
	return &Consumer{cfg: cfg, src: src, dlq: newDeadLetters(&fakeWriter{}, "interactions")}
}

func goodMsg(t *testing.T, p int, off int64) kafka.Message {
	t.Helper()
	e := sampleEvent()
	return kafka.Message{Partition: p, Offset: off, Value: AppendEvent(nil, &e)}
}

func badMsg(p int, off int64) kafka.Message {
	return kafka.Message{Partition: p, Offset: off, Value: []byte("not an event")}
}

// A batch whose side effects fail to become durable, then a batch on the same
// partition made only of dead letters (which needs no wait): the second
// batch's commit would cover the first, lost one. Nothing may be committed.
func TestRunAsyncDeadLettersAfterLostBatch(t *testing.T) {
	asg := &assignment{partitions: []int{0}}
	src := newFakeSource(asg, []kafka.Message{goodMsg(t, 0, 0), goodMsg(t, 0, 1), badMsg(0, 2), badMsg(0, 3)})
	c := fakeConsumer(src, 2)
	calls := 0
	err := c.RunAsync(t.Context(), func(ctx context.Context, batch []Record) (func() error, error) {
		calls++
		return func() error { return errors.New("flush abandoned") }, nil
	})
	if err == nil {
		t.Fatal("RunAsync returned nil after a batch failed to become durable")
	}
	if calls != 1 {
		t.Fatalf("handler called %d times, want 1 (the second batch is dead letters only)", calls)
	}
	if got := src.committed(); len(got) != 0 {
		t.Fatalf("committed %v past a batch that never became durable", got)
	}
}

// The same with a second batch of valid events whose own writes succeed: its
// commit must not cover the lost batch either (neither in the loop nor in
// RunAsync's final settle).
func TestRunAsyncDurableAfterLostBatch(t *testing.T) {
	asg := &assignment{partitions: []int{0}}
	src := newFakeSource(asg, []kafka.Message{goodMsg(t, 0, 0), goodMsg(t, 0, 1), goodMsg(t, 0, 2), goodMsg(t, 0, 3)})
	c := fakeConsumer(src, 2)
	calls := 0
	err := c.RunAsync(t.Context(), func(ctx context.Context, batch []Record) (func() error, error) {
		calls++
		if calls == 1 {
			return func() error { return errors.New("flush abandoned") }, nil
		}
		return func() error { return nil }, nil
	})
	if err == nil {
		t.Fatal("RunAsync returned nil after a batch failed to become durable")
	}
	if got := src.committed(); len(got) != 0 {
		t.Fatalf("committed %v past a batch that never became durable", got)
	}
}

// Batches that do become durable are committed, in order, up to the last
// offset of each (the control for the two tests above).
func TestRunAsyncCommitsDurableBatches(t *testing.T) {
	asg := &assignment{partitions: []int{0}}
	src := newFakeSource(asg, []kafka.Message{goodMsg(t, 0, 0), goodMsg(t, 0, 1), badMsg(0, 2), badMsg(0, 3), goodMsg(t, 0, 4)})
	c := fakeConsumer(src, 2)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- c.RunAsync(ctx, func(ctx context.Context, batch []Record) (func() error, error) {
			return func() error { return nil }, nil
		})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := src.committed()
		if len(got) > 0 && got[len(got)-1][0] == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("commits %v never reached offset 4", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	prev := int64(-1)
	for _, c := range src.committed() {
		if c[0] <= prev {
			t.Fatalf("commits not increasing: %v", src.committed())
		}
		prev = c[0]
	}
}

// HandlerRetries counts the Handler's failed calls, and only those.
func TestRunAsyncCountsHandlerRetries(t *testing.T) {
	asg := &assignment{partitions: []int{0}}
	src := newFakeSource(asg, []kafka.Message{goodMsg(t, 0, 0), badMsg(0, 1)})
	c := fakeConsumer(src, 2)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	calls := 0
	done := make(chan error, 1)
	go func() {
		done <- c.RunAsync(ctx, func(ctx context.Context, batch []Record) (func() error, error) {
			calls++
			if calls <= 2 {
				return nil, errors.New("redis down")
			}
			return nil, nil
		})
	}()
	for deadline := time.Now().Add(5 * time.Second); len(src.committed()) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never committed")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.HandlerRetries != 2 || st.OtherRetries != 0 || st.DeadLettered != 1 {
		t.Fatalf("stats %+v, want 2 handler retries, 1 dead letter", st)
	}
}

// Several batches wait for their side effects at once: the handler gets the
// next batches while the first is not yet durable, a later batch that
// becomes durable first is not committed before it, and once it is, both
// are committed in order.
func TestRunAsyncBatchesInFlight(t *testing.T) {
	asg := &assignment{partitions: []int{0}}
	var msgs []kafka.Message
	for off := int64(0); off < 6; off++ {
		msgs = append(msgs, goodMsg(t, 0, off))
	}
	src := newFakeSource(asg, msgs)
	c := fakeConsumer(src, 2)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	release := []chan struct{}{make(chan struct{}), make(chan struct{}), make(chan struct{})}
	handled := make(chan int, 3)
	calls := 0
	done := make(chan error, 1)
	go func() {
		done <- c.RunAsync(ctx, func(ctx context.Context, batch []Record) (func() error, error) {
			i := calls
			calls++
			handled <- i
			return func() error { <-release[i]; return nil }, nil
		})
	}()
	for want := 0; want < 3; want++ {
		select {
		case i := <-handled:
			if i != want {
				t.Fatalf("handler call %d, want %d", i, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("batch %d not handled while the batches before it are in flight", want)
		}
	}
	close(release[1]) // the second batch is durable before the first
	time.Sleep(50 * time.Millisecond)
	if got := src.committed(); len(got) != 0 {
		t.Fatalf("committed %v while the first batch is not durable", got)
	}
	close(release[0])
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got := src.committed()
		if len(got) > 0 && got[len(got)-1][0] == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("commits %v never reached offset 3 (the second batch's last)", got)
		}
	}
	if got := src.committed(); got[0][0] != 1 {
		t.Fatalf("commits %v: the first batch's (offset 1) is not first", got)
	}
	close(release[2])
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := src.committed(); got[len(got)-1][0] != 5 {
		t.Fatalf("commits %v: the last batch (offset 5) not committed at the end", got)
	}
}
