package eval

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
)

func serviceAddrs(t *testing.T) (string, string) {
	t.Helper()
	k, r := os.Getenv("STREAMREC_TEST_KAFKA"), os.Getenv("STREAMREC_TEST_REDIS")
	if k == "" || r == "" {
		t.Skip("set STREAMREC_TEST_KAFKA and STREAMREC_TEST_REDIS (make test does) for the runner's integration test")
	}
	return k, r
}

// The runner, stopped abruptly three times mid-run and restarted, leaves in
// Redis exactly the windows an in-process Partition computes over the same
// messages and lists: counts exactly, sums to the micro-unit.
func TestRunnerExactlyOnceAcrossRestarts(t *testing.T) {
	kafkaAddr, redisAddr := serviceAddrs(t)
	ctx := t.Context()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	topic := fmt.Sprintf("eval-runner-%d", seed%1e9)
	if err := stream.EnsureTopics(ctx, []string{kafkaAddr}, stream.InteractionsTopic(topic, 2)); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	ccfg := cache.DefaultConfig()
	ccfg.Namespace = fmt.Sprintf("evalrunner%d", seed%1e9)
	st, err := cache.NewStore(rdb, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := stream.NewProducer(stream.ProducerConfig{Brokers: []string{kafkaAddr}, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	cfg := Config{OpenFor: 400 * time.Millisecond, Grace: 50 * time.Millisecond, Window: 250 * time.Millisecond, CountWindow: 200, RankEvery: 5,
		Popularity: func(v uint32) float64 { return float64(v) / 50 }, Scorer: &fixedScorer{}}

	// Traffic, in the background: lists served to some users, then their
	// interactions (a few duplicated), for about 2 s.
	done := make(chan error, 1)
	go func() {
		r := rand.New(rand.NewPCG(seed, 2)) // the traffic's own generator
		var evs []stream.Event
		id := uint64(0)
		for i := range 400 {
			now := time.Now()
			u := uint32(r.IntN(25))
			if i%3 == 0 {
				rec := cache.ServedRecord{ID: fmt.Sprintf("s%d", i), User: u, Partition: int32(stream.PartitionFor(u, 2)), ServedMS: now.UnixMilli(), K: 5,
					UserVec: []float32{1}, LastPartition: -1, LastOffset: -1}
				for j := range 5 {
					rec.Slots = append(rec.Slots, cache.ServedSlot{Video: uint32((int(u) + j*7) % 50), PredictedWatchRatio: 1, Propensity: 1})
				}
				if _, err := st.PutServedRecord(ctx, &rec); err != nil {
					done <- err
					return
				}
			}
			evs = evs[:0]
			for range 8 {
				id++
				e := stream.Event{EventID: id, UserID: u, VideoID: uint32(r.IntN(50)), PlayDurationMs: 5000, VideoDurationMs: 5000,
					EventTimeMs: now.UnixMilli(), WatchRatio: float64(r.IntN(30)) / 10, Source: stream.SourceAPI, ProducedAtUs: time.Now().UnixMicro()}
				evs = append(evs, e)
				if r.IntN(10) == 0 {
					evs = append(evs, e) // a producer retry
				}
			}
			if err := prod.Publish(ctx, evs); err != nil {
				done <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		done <- nil
	}()

	rcfg := RunnerConfig{Brokers: []string{kafkaAddr}, Topic: topic, Partitions: []int{0, 1}, Group: "g", Eval: cfg, Store: st,
		Batch: 50, FlushEvery: 30 * time.Millisecond, FromFirst: true}
	for stop := range 3 {
		run, err := NewRunner(rcfg)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, time.Duration(200+r.IntN(500))*time.Millisecond)
		err = run.Run(rctx)
		cancel()
		if err != nil && rctx.Err() == nil {
			t.Fatalf("run %d: %v", stop, err)
		}
		t.Logf("run %d stopped: %+v", stop, run.Stats())
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The last run goes until every message is covered.
	ends := map[int32]int64{}
	for p := range int32(2) {
		conn, err := kafka.DialLeader(ctx, "tcp", kafkaAddr, topic, int(p))
		if err != nil {
			t.Fatal(err)
		}
		ends[p], err = conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	run, _ := NewRunner(rcfg)
	rctx, cancel := context.WithCancel(ctx)
	go func() {
		for rctx.Err() == nil {
			pos, err := st.WindowOffsets(rctx, "g")
			if err == nil && pos[0].Next == ends[0] && pos[1].Next == ends[1] {
				cancel()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	deadline := time.AfterFunc(30*time.Second, cancel)
	_ = run.Run(rctx)
	deadline.Stop()
	pos, _ := st.WindowOffsets(ctx, "g")
	if pos[0].Next != ends[0] || pos[1].Next != ends[1] {
		t.Fatalf("the runner did not cover the topic: %+v, ends %v", pos, ends)
	}

	// The reference: each partition's messages, in process.
	ref := NewWindows()
	for p := range int32(2) {
		pe, err := NewPartition(p, cfg, st, 0)
		if err != nil {
			t.Fatal(err)
		}
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{kafkaAddr}, Topic: topic, Partition: int(p), MaxWait: 50 * time.Millisecond})
		var ev stream.Event
		for off := int64(0); off < ends[p]; off++ {
			m, err := rd.ReadMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.DecodeEvent(m.Value, &ev); err != nil {
				t.Fatal(err)
			}
			incs, err := pe.Process(ctx, m.Offset, Interaction{User: ev.UserID, Video: ev.VideoID, EventID: ev.EventID, WatchRatio: ev.WatchRatio,
				ProducedMS: ev.ProducedAtUs / 1000, Source: ev.Source.String()})
			if err != nil {
				t.Fatal(err)
			}
			ref.Apply(incs)
		}
		rd.Close()
	}
	checked := 0
	for _, kind := range []WindowKind{ByTime, ByCount} {
		for _, k := range ref.Keys(kind) {
			got, err := st.Window(ctx, "g", byte(kind), k.Index)
			if err != nil {
				t.Fatal(err)
			}
			want := maps.Clone(ref.Fields(k))
			if want == nil {
				want = map[string]int64{}
			}
			if n := ref.Get(k, "served_videos"); n > 0 {
				want["served_videos"] = n
			}
			if !maps.Equal(got, want) {
				var diff []string
				for f, v := range want {
					if got[f] != v {
						diff = append(diff, fmt.Sprintf("%s: store %d, in process %d", f, got[f], v))
					}
				}
				for f, v := range got {
					if _, ok := want[f]; !ok {
						diff = append(diff, fmt.Sprintf("%s: store %d, in process absent", f, v))
					}
				}
				t.Errorf("window %c%d:\n%s", kind, k.Index, strings.Join(diff, "\n"))
			}
			checked++
		}
	}
	var hits, dups int64
	for _, k := range ref.Keys(ByTime) {
		hits += ref.Get(k, "hits")
		dups += ref.Get(k, "duplicates")
	}
	if checked < 5 || hits == 0 || dups == 0 {
		t.Fatalf("too little was checked: %d windows, %d hits, %d duplicates", checked, hits, dups)
	}
	t.Logf("%d windows equal, %d hits, %d duplicates, %d messages", checked, hits, dups, ends[0]+ends[1])
}
