package stream

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// The integration suite runs against a real Kafka broker, opt-in by environment:
// STREAMREC_TEST_KAFKA=127.0.0.1:19092 (the README's test command starts one).

func testBrokers(t *testing.T) []string {
	t.Helper()
	addr := os.Getenv("STREAMREC_TEST_KAFKA")
	if addr == "" || testing.Short() {
		t.Skip("integration: set STREAMREC_TEST_KAFKA to a broker address (and drop -short) to run")
	}
	return strings.Split(addr, ",")
}

// testTopic creates a fresh topic (and its DLQ) for one test.
func testTopic(t *testing.T, brokers []string, partitions int) string {
	t.Helper()
	name := fmt.Sprintf("test-%s-%08x", strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-"), rand.Uint32())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, brokers, InteractionsTopic(name, partitions), InteractionsTopic(name+".dlq", 1)); err != nil {
		t.Fatal(err)
	}
	return name
}

func testConsumer(t *testing.T, brokers []string, topic, group string) *Consumer {
	t.Helper()
	c, err := NewConsumer(ConsumerConfig{
		Brokers: brokers, GroupID: group, Topic: topic,
		SessionTimeout: 2 * time.Second, HeartbeatInterval: 300 * time.Millisecond,
		RebalanceTimeout: 2 * time.Second, MaxBatch: 256, FlushInterval: 10 * time.Millisecond,
		RetryBackoff: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func makeEvents(users, perUser int, t0 int64) []Event {
	var evs []Event
	for i := 0; i < perUser; i++ {
		for u := 0; u < users; u++ {
			ts := t0 + int64(i)*1000
			evs = append(evs, Event{
				EventID: MakeEventID(ts, 0), UserID: uint32(u*37 + 1), VideoID: uint32(i),
				PlayDurationMs: 500, VideoDurationMs: 1000, EventTimeMs: ts, WatchRatio: 0.5,
				Source: SourceReplay,
			})
		}
	}
	return evs
}

// collector is a Handler that records what it saw, safely.
type collector struct {
	mu   sync.Mutex
	recs []Record
}

func (c *collector) handle(_ context.Context, batch []Record) error {
	c.mu.Lock()
	c.recs = append(c.recs, batch...)
	c.mu.Unlock()
	return nil
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

func (c *collector) snapshot() []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs)
}

func runConsumer(t *testing.T, c *Consumer, h Handler) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, h) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consumer run: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("consumer close: %v", err)
		}
	}
}

func publish(t *testing.T, brokers []string, topic string, evs []Event) {
	t.Helper()
	p, err := NewProducer(ProducerConfig{Brokers: brokers, Topic: topic, BatchSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Publish(ctx, evs); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationKeyedOrder(t *testing.T) {
	brokers := testBrokers(t)
	const partitions = 4
	topic := testTopic(t, brokers, partitions)
	evs := makeEvents(40, 50, 1593878903438)
	publish(t, brokers, topic, evs)

	col := &collector{}
	stop := runConsumer(t, testConsumer(t, brokers, topic, topic+"-g"), col.handle)
	waitFor(t, 30*time.Second, "all events consumed", func() bool { return col.len() >= len(evs) })
	stop()

	recs := col.snapshot()
	if len(recs) != len(evs) {
		t.Fatalf("consumed %d events, published %d", len(recs), len(evs))
	}
	last := map[uint32]uint64{}
	for _, r := range recs {
		if want := PartitionFor(r.Event.UserID, partitions); r.Partition != want {
			t.Fatalf("user %d on partition %d, murmur2 says %d", r.Event.UserID, r.Partition, want)
		}
		if prev, ok := last[r.Event.UserID]; ok && r.Event.EventID <= prev {
			t.Fatalf("user %d: event %d after %d: out of order", r.Event.UserID, r.Event.EventID, prev)
		}
		last[r.Event.UserID] = r.Event.EventID
		if r.Event.ProducedAtUs == 0 || time.Since(r.Time) > time.Minute {
			t.Fatalf("message timestamp %v is not the wall-clock produce time", r.Time)
		}
	}
	if len(last) != 40 {
		t.Fatalf("saw %d users, want 40", len(last))
	}
}

// A consumer that fails before its commit (its handler never succeeds) leaves
// the offsets uncommitted: the next member of the group re-reads them.
func TestIntegrationRereadAfterNoCommit(t *testing.T) {
	brokers := testBrokers(t)
	topic := testTopic(t, brokers, 2)
	group := topic + "-g"
	first := makeEvents(10, 10, 1593878903438)
	publish(t, brokers, topic, first)

	col := &collector{}
	stop := runConsumer(t, testConsumer(t, brokers, topic, group), col.handle)
	waitFor(t, 30*time.Second, "first wave consumed and committed", func() bool { return col.len() >= len(first) })
	stop()

	second := makeEvents(10, 10, 1593978903438)
	publish(t, brokers, topic, second)
	// This member sees the second wave but dies before any side effect succeeds.
	var seen collector
	failing := func(ctx context.Context, batch []Record) error {
		seen.handle(ctx, batch)
		return fmt.Errorf("simulated crash before the side effect")
	}
	stop = runConsumer(t, testConsumer(t, brokers, topic, group), failing)
	waitFor(t, 30*time.Second, "the failing member to see the second wave", func() bool { return seen.len() > 0 })
	stop()
	for _, r := range seen.snapshot() {
		if r.Event.EventTimeMs < 1593978903438 {
			t.Fatalf("committed events were delivered again: %+v", r.Event)
		}
	}

	again := &collector{}
	stop = runConsumer(t, testConsumer(t, brokers, topic, group), again.handle)
	waitFor(t, 30*time.Second, "the second wave re-read", func() bool { return again.len() >= len(second) })
	stop()
	got := again.snapshot()
	if len(got) != len(second) {
		t.Fatalf("re-read %d events, want exactly the %d uncommitted ones", len(got), len(second))
	}
	for _, r := range got {
		if r.Event.EventTimeMs < 1593978903438 {
			t.Fatalf("re-read a committed event: %+v", r.Event)
		}
	}
}

// A second member of the group takes half of the partitions.
func TestIntegrationGroupSplit(t *testing.T) {
	brokers := testBrokers(t)
	const partitions = 4
	topic := testTopic(t, brokers, partitions)
	group := topic + "-g"

	a, b := &collector{}, &collector{}
	// Each member checks that it only gets records of the partitions it was
	// told it owns (OnAssign), and that it was told before the records.
	var violations atomic.Int64
	owned := func(c *Consumer) (Handler, *sync.Map) {
		var m sync.Map
		c.cfg.OnAssign = func(_ context.Context, parts []int) error {
			m.Clear()
			for _, p := range parts {
				m.Store(p, true)
			}
			return nil
		}
		return nil, &m
	}
	ca := testConsumer(t, brokers, topic, group)
	_, ownedA := owned(ca)
	stopA := runConsumer(t, ca, func(ctx context.Context, batch []Record) error {
		for _, r := range batch {
			if _, ok := ownedA.Load(r.Partition); !ok {
				violations.Add(1)
			}
		}
		return a.handle(ctx, batch)
	})
	defer stopA()
	publish(t, brokers, topic, makeEvents(40, 2, 1593878903438))
	waitFor(t, 30*time.Second, "member A consuming", func() bool { return a.len() >= 80 })

	cb := testConsumer(t, brokers, topic, group)
	_, ownedB := owned(cb)
	stopB := runConsumer(t, cb, func(ctx context.Context, batch []Record) error {
		for _, r := range batch {
			if _, ok := ownedB.Load(r.Partition); !ok {
				violations.Add(1)
			}
		}
		return b.handle(ctx, batch)
	})
	defer stopB()
	// Publish waves until both members receive data; the rebalance settles meanwhile.
	base := int64(1593978903438)
	var partsA, partsB map[int]bool
	waitFor(t, 45*time.Second, "both members to own two partitions each", func() bool {
		na, nb := a.len(), b.len()
		publish(t, brokers, topic, makeEvents(40, 1, base))
		base += 1000
		time.Sleep(300 * time.Millisecond)
		partsA, partsB = map[int]bool{}, map[int]bool{}
		for _, r := range a.snapshot()[na:] {
			partsA[r.Partition] = true
		}
		for _, r := range b.snapshot()[nb:] {
			partsB[r.Partition] = true
		}
		return len(partsA) == 2 && len(partsB) == 2
	})
	for p := range partsA {
		if partsB[p] {
			t.Fatalf("partition %d consumed by both members", p)
		}
	}
	if n := violations.Load(); n > 0 {
		t.Fatalf("%d records handed over for partitions not announced by OnAssign", n)
	}
}

// Poison messages land in the dead-letter topic with their reasons while the good
// messages around them are processed.
func TestIntegrationDeadLetters(t *testing.T) {
	brokers := testBrokers(t)
	topic := testTopic(t, brokers, 2)
	good := makeEvents(5, 4, 1593878903438)
	poison := []string{"", "garbage", "v1,1,2,3,4,5,6,NaN,replay,7", "v1,1,-2,3,4,5,6,0.5,replay,7", "v9,1,2"}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	var msgs []kafka.Message
	for i, e := range good {
		msgs = append(msgs, kafka.Message{Key: e.Key(), Value: AppendEvent(nil, ptr(withProduced(e)))})
		if i%4 == 0 {
			msgs = append(msgs, kafka.Message{Key: e.Key(), Value: []byte(poison[(i/4)%len(poison)])})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	col := &collector{}
	c := testConsumer(t, brokers, topic, topic+"-g")
	stop := runConsumer(t, c, col.handle)
	waitFor(t, 30*time.Second, "good events and dead letters", func() bool {
		return col.len() >= len(good) && c.Stats().DeadLettered >= uint64(len(poison))
	})
	reasons := c.DeadLetterReasons()
	stats := c.Stats()
	stop()
	if col.len() != len(good) || stats.DeadLettered != uint64(len(poison)) {
		t.Fatalf("handled %d (want %d), dead-lettered %d (want %d)", col.len(), len(good), stats.DeadLettered, len(poison))
	}
	for _, want := range []string{"empty message", "not a streamrec event", "not a finite decimal number", "out of range", "unsupported schema version"} {
		if reasons[want] != 1 {
			t.Fatalf("reason %q counted %d times, want 1 (all: %v)", want, reasons[want], reasons)
		}
	}
	// Read the DLQ back: original bytes, reason and source offset in headers.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic + ".dlq", Partition: 0, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	got := map[string]string{}
	for len(got) < len(poison) {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		h := map[string]string{}
		for _, kv := range m.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if h[HeaderSourceTopic] != topic || h[HeaderSourceOffset] == "" {
			t.Fatalf("dead letter without its source: %v", h)
		}
		got[string(m.Value)] = h[HeaderReason]
	}
	if got["v1,1,-2,3,4,5,6,0.5,replay,7"] != "out of range" {
		t.Fatalf("dead letters: %v", got)
	}
}

func withProduced(e Event) Event {
	e.ProducedAtUs = time.Now().UnixMicro()
	return e
}

// Manual assignment (no group membership) reads every partition and commits to
// the group as a standalone consumer; a restart resumes after the last commit.
func TestIntegrationAssignedResume(t *testing.T) {
	brokers := testBrokers(t)
	topic := testTopic(t, brokers, 3)
	group := topic + "-g"
	first := makeEvents(30, 5, 1593878903438)
	publish(t, brokers, topic, first)
	newAssigned := func() *Consumer {
		c, err := NewConsumer(ConsumerConfig{Brokers: brokers, GroupID: group, Topic: topic,
			Partitions: []int{AllPartitions}, MaxBatch: 64, FlushInterval: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	col := &collector{}
	stop := runConsumer(t, newAssigned(), col.handle)
	waitFor(t, 30*time.Second, "first wave", func() bool { return col.len() >= len(first) })
	stop()

	second := makeEvents(30, 5, 1593978903438)
	publish(t, brokers, topic, second)
	again := &collector{}
	stop = runConsumer(t, newAssigned(), again.handle)
	waitFor(t, 30*time.Second, "second wave", func() bool { return again.len() >= len(second) })
	time.Sleep(200 * time.Millisecond) // anything beyond the second wave would be a redelivery
	stop()
	if col.len() != len(first) || again.len() != len(second) {
		t.Fatalf("first run %d (want %d), second run %d (want %d): committed offsets not honoured",
			col.len(), len(first), again.len(), len(second))
	}
	for _, r := range again.snapshot() {
		if r.Event.EventTimeMs < 1593978903438 {
			t.Fatalf("resumed run re-read a committed event: %+v", r.Event)
		}
	}
}
