package main

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online"
	"github.com/streamrec/streamrec/internal/stream"
)

// The raised learning rate on the real stack under kill -9: a control record
// (factor 3 for 2 s, from 2 s after it was written) on the control topic,
// events published over about 6 s (before, inside and after its span), the
// updater killed at random points. The rate is decided by each event's
// message time, so the redeliveries after each kill take the same steps: the
// final embeddings equal, bit for bit, an in-process run over the same
// messages (read back with their timestamps) with the same schedule; and
// they differ from a run without it (the raise mattered), with events after
// the span at the base rate (it expired).
func TestIntegrationRaisedRateKill9(t *testing.T) {
	e := newEnv(t, "")
	publishModel(t, e)
	offline := offlineUsers(t, e)
	control := online.LRControlTopic(e.topic)
	if err := online.EnsureLRControlTopic(t.Context(), []string{e.brokers}, control); err != nil {
		t.Fatal(err)
	}
	bin := buildUpdater(t) // before the control: its span starts 2 s after it is written
	w := online.NewLRControlWriter([]string{e.brokers}, control, 2*time.Second)
	c, err := w.Raise(t.Context(), 3, 2*time.Second, "test")
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	evs := makeEvents(12000, 31)
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill seed %d", seed)
	stop := killMidStreamPaced(t, e, bin, evs, 3, rand.New(rand.NewPCG(seed, 7)), 250*time.Millisecond,
		"--max-batch", "64", "--lr-control-delay", "2s")
	defer stop()
	waitCommittedEnd(t, e, 90*time.Second)

	recs := readBack(t, e)
	var before, inside, after int
	for _, r := range recs {
		switch ms := r.Time.UnixMilli(); {
		case ms < c.AtMs:
			before++
		case ms < c.UntilMs:
			inside++
		default:
			after++
		}
	}
	t.Logf("messages before / inside / after the raised span: %d / %d / %d", before, inside, after)
	if before == 0 || inside == 0 || after == 0 {
		t.Fatal("the stream does not span the control: the test proves nothing")
	}
	sched := online.NewLRSchedule()
	if err := sched.Add(c); err != nil {
		t.Fatal(err)
	}
	sched.SetCovered(recs[len(recs)-1].Time.UnixMilli() + 1<<40)
	want := replayInProcess(t, e, offline, recs, sched)
	flat := replayInProcess(t, e, offline, recs, nil)
	differ := 0
	for id, r := range want {
		if !slices.Equal(r.Embedding, flat[id].Embedding) {
			differ++
		}
	}
	if differ == 0 {
		t.Fatal("the raised rate changed no embedding: the test proves nothing")
	}
	waitRedis(t, e, want, 60*time.Second)
}

// replayInProcess applies recs (real positions and message times) through an
// in-process Updater seeded from the offline records, with sched (nil: none).
func replayInProcess(t *testing.T, e *env, offline map[uint32]cache.UserRecord, recs []stream.Record, sched *online.LRSchedule) map[uint32]cache.UserRecord {
	t.Helper()
	m, err := loadModel(t.Context(), e.store, "v1", 0)
	if err != nil {
		t.Fatal(err)
	}
	mem := &memUsers{recs: map[uint32]cache.UserRecord{}}
	for id, r := range offline {
		mem.recs[id] = r
	}
	cfg := online.DefaultConfig()
	cfg.LRSchedule = sched
	u := online.NewUpdater(cfg, m, mem, nopLog{})
	defer u.Close()
	if err := u.Handle(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	return mem.recs
}

// readBack reads every message of the interactions topic with its position
// and timestamp, partition by partition in offset order.
func readBack(t *testing.T, e *env) []stream.Record {
	t.Helper()
	var out []stream.Record
	client := &kafkago.Client{Addr: kafkago.TCP(e.brokers), Timeout: 5 * time.Second}
	for p := 0; p < testPartitions; p++ {
		resp, err := client.ListOffsets(t.Context(), &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{e.topic: {kafkago.LastOffsetOf(p)}}})
		if err != nil {
			t.Fatal(err)
		}
		end := resp.Topics[e.topic][0].LastOffset
		if end == 0 {
			continue
		}
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{e.brokers}, Topic: e.topic, Partition: p, MaxWait: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		for {
			m, err := r.ReadMessage(ctx)
			if errors.Is(err, io.EOF) || err != nil {
				cancel()
				r.Close()
				t.Fatalf("reading back partition %d: %v", p, err)
			}
			var ev stream.Event
			if err := stream.DecodeEvent(m.Value, &ev); err != nil {
				t.Fatal(err)
			}
			out = append(out, stream.Record{Event: ev, Partition: p, Offset: m.Offset, Time: m.Time})
			if m.Offset == end-1 {
				break
			}
		}
		cancel()
		r.Close()
	}
	return out
}
