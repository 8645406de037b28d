package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/stream"
	"github.com/streamrec/streamrec/internal/synth"
)

const kafkaEnv = "STREAMREC_TEST_KAFKA"

func testBroker(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("integration test: skipped with -short (it needs %s=host:port)", kafkaEnv)
	}
	b := os.Getenv(kafkaEnv)
	if b == "" {
		t.Skipf("set %s=host:port to run the replay against a real Kafka broker", kafkaEnv)
	}
	return b
}

var tinyUsed atomic.Bool

// tinyData generates a tiny synthetic KuaiRec folder once per test binary.
var tinyData = sync.OnceValues(func() (string, error) {
	tinyUsed.Store(true)
	dir, err := os.MkdirTemp("", "replay-tiny")
	if err != nil {
		return "", err
	}
	if _, err := synth.Generate(dir, synth.GenConfig{Scale: synth.Scales["tiny"], Seed: 3}); err != nil {
		return "", err
	}
	return dir, nil
})

func tiny(t *testing.T) (string, *plan) {
	t.Helper()
	dir, err := tinyData()
	if err != nil {
		t.Fatal(err)
	}
	ds, _, err := kuairec.Load(dir, kuairec.Options{SkipSmall: true, SkipDaily: true})
	if err != nil {
		t.Fatal(err)
	}
	return dir, newPlan(ds.Big)
}

func testTopic(t *testing.T, broker string) string {
	topic := fmt.Sprintf("replay-test-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
	t.Cleanup(func() {
		c := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
		c.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	})
	return topic
}

func runReplay(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(ctx, args, &out, &errb); err != nil {
		t.Fatalf("replay %q: %v\nstderr:\n%s", args, err, errb.String())
	}
	return out.String()
}

type got struct {
	rec stream.Record
	pos int64
	run string
}

// consume reads every message of every partition of topic.
func consume(t *testing.T, broker, topic string) []got {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	counts, err := stream.PartitionCounts(ctx, []string{broker}, topic)
	if err != nil {
		t.Fatal(err)
	}
	var all []got
	for p := 0; p < counts[topic]; p++ {
		first, last, err := partitionOffsets(ctx, []string{broker}, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		if first == last {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		r.SetOffset(first)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var g got
			if err := stream.DecodeEvent(m.Value, &g.rec.Event); err != nil {
				t.Fatalf("partition %d offset %d: %v", p, m.Offset, err)
			}
			g.rec.Partition, g.rec.Offset, g.rec.Time = m.Partition, m.Offset, m.Time
			h, ok, err := headFromMessage(m)
			if err != nil || !ok {
				t.Fatalf("partition %d offset %d: no replay head (%v)", p, m.Offset, err)
			}
			if string(m.Key) != fmt.Sprint(g.rec.Event.UserID) {
				t.Fatalf("key %q for user %d", m.Key, g.rec.Event.UserID)
			}
			g.pos, g.run = h.Pos, h.Run
			all = append(all, g)
			if m.Offset == last-1 {
				break
			}
		}
		r.Close()
	}
	return all
}

// checkExactlyOnce checks that the topic holds every event of positions
// [start, end) of p once, with the right fields, on its user's partition, in
// per-user event-time (and id) order.
func checkExactlyOnce(t *testing.T, p *plan, msgs []got, start, end, partitions int) {
	t.Helper()
	if len(msgs) != end-start {
		t.Errorf("%d messages, want %d", len(msgs), end-start)
	}
	seen := map[int64]bool{}
	type last struct {
		id   uint64
		part int
	}
	perUser := map[uint32]last{}
	// msgs are in partition then offset order: per user, that is publish order.
	for _, g := range msgs {
		e := g.rec.Event
		if seen[g.pos] {
			t.Fatalf("position %d twice", g.pos)
		}
		seen[g.pos] = true
		if g.pos < int64(start) || g.pos >= int64(end) {
			t.Fatalf("position %d outside [%d,%d)", g.pos, start, end)
		}
		var want stream.Event
		if err := p.event(int(g.pos), p.seqAt(int(g.pos)), &want); err != nil {
			t.Fatal(err)
		}
		want.ProducedAtUs = e.ProducedAtUs
		if e != want || e.ProducedAtUs <= 0 {
			t.Fatalf("position %d: %+v, want %+v", g.pos, e, want)
		}
		if pp := stream.PartitionFor(e.UserID, partitions); g.rec.Partition != pp {
			t.Fatalf("user %d on partition %d, want %d", e.UserID, g.rec.Partition, pp)
		}
		if time.Since(g.rec.Time) > time.Hour {
			t.Fatalf("message time %v is not the produce time", g.rec.Time)
		}
		if l, ok := perUser[e.UserID]; ok && e.EventID <= l.id {
			t.Fatalf("user %d: event id %d after %d", e.UserID, e.EventID, l.id)
		}
		perUser[e.UserID] = last{e.EventID, g.rec.Partition}
	}
}

func TestIntegrationReplayAll(t *testing.T) {
	broker := testBroker(t)
	dir, p := tiny(t)
	topic := testTopic(t, broker)
	out := runReplay(t, t.Context(), "--data", dir, "--brokers", broker, "--topic", topic, "--partitions", "4", "--progress=false", "--log-level", "warn")
	if !strings.Contains(out, fmt.Sprintf("published      %d events", p.Len())) {
		t.Fatalf("summary:\n%s", out)
	}
	checkExactlyOnce(t, p, consume(t, broker, topic), 0, p.Len(), 4)
	// A second run publishes nothing: everything is already there.
	out = runReplay(t, t.Context(), "--data", dir, "--brokers", broker, "--topic", topic, "--progress=false", "--log-level", "warn")
	if !strings.Contains(out, "published      0 events") || !strings.Contains(out, fmt.Sprintf("skipped        %d events", p.Len())) {
		t.Fatalf("second run summary:\n%s", out)
	}
	checkExactlyOnce(t, p, consume(t, broker, topic), 0, p.Len(), 4)
}

func TestIntegrationLimitThenResume(t *testing.T) {
	broker := testBroker(t)
	dir, p := tiny(t)
	topic := testTopic(t, broker)
	// A cut in the middle of the log; small batches so that the limit falls mid-chunk.
	cutMs := p.timeAt(p.Len() / 3)
	start, _ := p.window(cutMs, 0, 0)
	cut := fmt.Sprintf("%.3f", float64(cutMs)/1000)
	args := []string{"--data", dir, "--brokers", broker, "--topic", topic, "--cut", cut, "--batch", "97", "--progress=false", "--log-level", "warn"}
	runReplay(t, t.Context(), append(args, "--limit", "3001")...)
	if n := len(consume(t, broker, topic)); n != 3001 {
		t.Fatalf("%d messages after --limit 3001", n)
	}
	runReplay(t, t.Context(), append(args, "--limit", "1000")...)
	runReplay(t, t.Context(), args...)
	checkExactlyOnce(t, p, consume(t, broker, topic), start, p.Len(), 8)

	// Another cut is another run: refused on this topic.
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{"--data", dir, "--brokers", broker, "--topic", topic, "--progress=false"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "holds replay run") {
		t.Fatalf("another cut on the same topic: %v", err)
	}
}

func TestIntegrationSignalThenResume(t *testing.T) {
	broker := testBroker(t)
	dir, p := tiny(t)
	topic := testTopic(t, broker)
	args := []string{"--data", dir, "--brokers", broker, "--topic", topic, "--batch", "50", "--progress=false", "--log-level", "warn"}
	// Rate-limited so that the cancel falls in the middle (tiny has ~19k events).
	// Cancel once the topic holds 2000 events, polling its offsets.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
			total := int64(0)
			for part := 0; part < 8; part++ {
				if first, last, err := partitionOffsets(ctx, []string{broker}, topic, part); err == nil {
					total += last - first
				}
			}
			if total >= 2000 {
				cancel()
			}
		}
	}()
	t0 := time.Now()
	out := runReplay(t, ctx, append(args, "--max-rate", "10000")...)
	if !strings.Contains(out, "stopped        signal") {
		t.Fatalf("first run not stopped by the cancel (%v):\n%s", time.Since(t0), out)
	}
	n := len(consume(t, broker, topic))
	if n == 0 || n >= p.Len() {
		t.Fatalf("%d of %d events after the cancel", n, p.Len())
	}
	// The rate limit held: ~10k/s plus the burst.
	if el := time.Since(t0).Seconds(); float64(n) > 10000*el+200 {
		t.Fatalf("%d events in %.2fs exceeds --max-rate 10000", n, el)
	}
	runReplay(t, t.Context(), args...)
	checkExactlyOnce(t, p, consume(t, broker, topic), 0, p.Len(), 8)
}

func TestIntegrationSpeedup(t *testing.T) {
	broker := testBroker(t)
	dir, p := tiny(t)
	topic := testTopic(t, broker)
	// Replay 2 s of wall time: the event-time span of the first N events / speedup.
	from, until := p.timeAt(0), p.timeAt(0)+200_000 // 200 s of event time
	_, end := p.window(0, 0, until)
	t0 := time.Now()
	runReplay(t, t.Context(), "--data", dir, "--brokers", broker, "--topic", topic, "--speedup", "100",
		"--from", fmt.Sprint(from/1000), "--until", fmt.Sprintf("%.3f", float64(until)/1000), "--progress=false", "--log-level", "warn")
	el := time.Since(t0)
	span := time.Duration(p.timeAt(end-1)-from) * time.Millisecond / 100
	if el < span {
		t.Fatalf("replayed %v of event time at 100x in %v, want >= %v", time.Duration(p.timeAt(end-1)-from)*time.Millisecond, el, span)
	}
	start, _ := p.window(0, from/1000*1000, 0)
	checkExactlyOnce(t, p, consume(t, broker, topic), start, end, 8)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tinyUsed.Load() {
		if dir, err := tinyData(); err == nil {
			os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

// --with-requests: one recommendation request per session start of the log
// (more than 30 min of event time since the user's previous event), each
// answered before the session's first event was produced.
func TestIntegrationWithRequests(t *testing.T) {
	broker := testBroker(t)
	dir, p := tiny(t)
	topic := testTopic(t, broker)
	var mu sync.Mutex
	reqs := map[uint32][]time.Time{} // user -> when its requests were answered
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var u uint32
		if _, err := fmt.Sscanf(r.URL.Path, "/v1/users/%d/recommendations", &u); err != nil || r.URL.Query().Get("k") != "25" {
			http.Error(w, "bad request "+r.URL.String(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		reqs[u] = append(reqs[u], time.Now())
		mu.Unlock()
		w.Write([]byte(`{"items":[]}`))
	}))
	defer srv.Close()
	out := runReplay(t, t.Context(), "--data", dir, "--brokers", broker, "--topic", topic, "--partitions", "4", "--progress=false", "--log-level", "warn",
		"--with-requests", srv.URL, "--batch", "500")
	msgs := consume(t, broker, topic)
	// The sessions of the log, per user, in event-time order.
	slices.SortFunc(msgs, func(a, b got) int { return int(a.pos - b.pos) })
	last := map[uint32]int64{}
	starts := map[uint32][]got{}
	for _, m := range msgs {
		u, tm := m.rec.Event.UserID, m.rec.Event.EventTimeMs
		if prev, ok := last[u]; !ok || tm-prev > sessionGapMS {
			starts[u] = append(starts[u], m)
		}
		last[u] = tm
	}
	n := 0
	for u, ss := range starts {
		n += len(ss)
		if len(reqs[u]) != len(ss) {
			t.Fatalf("user %d: %d requests for %d sessions", u, len(reqs[u]), len(ss))
		}
		for i, s := range ss {
			if produced := time.UnixMicro(s.rec.Event.ProducedAtUs); !reqs[u][i].Before(produced) {
				t.Fatalf("user %d session %d: request answered at %v, its first event produced at %v", u, i, reqs[u][i], produced)
			}
		}
	}
	if want := fmt.Sprintf("requests       %d recommendation requests at session starts (0 failed)", n); !strings.Contains(out, want) || n < 10 || len(msgs) != p.Len() {
		t.Fatalf("%d sessions, %d of %d events; summary:\n%s", n, len(msgs), p.Len(), out)
	}
}
