package eval

import (
	"context"
	"fmt"
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

// runnerEnv is one integration test's topic (2 partitions), store and
// producer.
type runnerEnv struct {
	kafka string
	topic string
	st    *cache.Store
	prod  *stream.Producer
	cfg   Config
	seed  uint64
}

func newRunnerEnv(t *testing.T) *runnerEnv {
	t.Helper()
	kafkaAddr, redisAddr := serviceAddrs(t)
	ctx := t.Context()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	topic := fmt.Sprintf("eval-runner-%d", seed%1e9)
	if err := stream.EnsureTopics(ctx, []string{kafkaAddr}, stream.InteractionsTopic(topic, 2)); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { rdb.Close() })
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
	t.Cleanup(func() { prod.Close() })
	return &runnerEnv{kafka: kafkaAddr, topic: topic, st: st, prod: prod, seed: seed,
		cfg: Config{OpenFor: 400 * time.Millisecond, Grace: 50 * time.Millisecond, Window: 250 * time.Millisecond, CountWindow: 200, RankEvery: 5,
			Popularity: func(v uint32) float64 { return float64(v) / 50 }, Scorer: &fixedScorer{}}}
}

// traffic runs in the background for about iterations*6 ms: lists served to
// some users, then their interactions (a few duplicated).
func (env *runnerEnv) traffic(ctx context.Context, iterations int) <-chan error {
	done := make(chan error, 1)
	go func() {
		r := rand.New(rand.NewPCG(env.seed, 2)) // the traffic's own generator
		var evs []stream.Event
		id := uint64(0)
		for i := range iterations {
			now := time.Now()
			u := uint32(r.IntN(25))
			if i%3 == 0 {
				rec := cache.ServedRecord{ID: fmt.Sprintf("s%d", i), User: u, Partition: int32(stream.PartitionFor(u, 2)), ServedMS: now.UnixMilli(), K: 5,
					UserVec: []float32{1}, LastPartition: -1, LastOffset: -1}
				for j := range 5 {
					rec.Slots = append(rec.Slots, cache.ServedSlot{Video: uint32((int(u) + j*7) % 50), PredictedWatchRatio: 1, Propensity: 1})
				}
				if _, err := env.st.PutServedRecord(ctx, &rec); err != nil {
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
			if err := env.prod.Publish(ctx, evs); err != nil {
				done <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		done <- nil
	}()
	return done
}

func (env *runnerEnv) ends(t *testing.T) map[int32]int64 {
	t.Helper()
	ends := map[int32]int64{}
	for p := range int32(2) {
		conn, err := kafka.DialLeader(t.Context(), "tcp", env.kafka, env.topic, int(p))
		if err != nil {
			t.Fatal(err)
		}
		ends[p], err = conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return ends
}

// runToEnd runs a runner of rcfg until the windows cover every message.
func (env *runnerEnv) runToEnd(t *testing.T, rcfg RunnerConfig) {
	t.Helper()
	ends := env.ends(t)
	run, err := NewRunner(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(t.Context())
	go func() {
		for rctx.Err() == nil {
			pos, err := env.st.WindowOffsets(rctx, rcfg.Group)
			if err == nil && pos[0].Next == ends[0] && pos[1].Next == ends[1] {
				cancel()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	deadline := time.AfterFunc(60*time.Second, cancel)
	_ = run.Run(rctx)
	deadline.Stop()
	pos, _ := env.st.WindowOffsets(t.Context(), rcfg.Group)
	if pos[0].Next != ends[0] || pos[1].Next != ends[1] {
		t.Fatalf("the runner did not cover the topic: %+v, ends %v", pos, ends)
	}
}

// check compares the store's windows of group with an in-process Partition
// per partition over the same messages and lists.
func (env *runnerEnv) check(t *testing.T, group string) {
	t.Helper()
	ends := env.ends(t)
	ref, err := Replay(t.Context(), []string{env.kafka}, env.topic, []int64{ends[0], ends[1]}, env.cfg, env.st)
	if err != nil {
		t.Fatal(err)
	}
	diffs, checked, err := ref.Diff(t.Context(), env.st, group)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Errorf("%d differences:\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
	hits, dups := ref.Total("hits"), ref.Total("duplicates")
	if checked < 5 || hits == 0 || dups == 0 {
		t.Fatalf("too little was checked: %d windows, %d hits, %d duplicates", checked, hits, dups)
	}
	t.Logf("%d windows equal, %d hits, %d duplicates, %d messages", checked, hits, dups, ends[0]+ends[1])
}

// The runner, stopped abruptly three times mid-run and restarted, leaves in
// Redis exactly the windows an in-process Partition computes over the same
// messages and lists: counts exactly, sums to the micro-unit.
func TestRunnerExactlyOnceAcrossRestarts(t *testing.T) {
	env := newRunnerEnv(t)
	done := env.traffic(t.Context(), 400)
	r := rand.New(rand.NewPCG(env.seed, 1))
	rcfg := RunnerConfig{Brokers: []string{env.kafka}, Topic: env.topic, Partitions: []int{0, 1}, Group: "g", Eval: env.cfg, Store: env.st,
		Batch: 50, FlushEvery: 30 * time.Millisecond, FromFirst: true}
	for stop := range 3 {
		run, err := NewRunner(rcfg)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(t.Context(), time.Duration(200+r.IntN(500))*time.Millisecond)
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
	env.runToEnd(t, rcfg)
	env.check(t, "g")
}

// Group mode: two runners in one Kafka consumer group share the partitions;
// one leaves mid-traffic (its partitions move to the other) and joins again.
// The windows are still exact.
func TestRunnerGroupRebalance(t *testing.T) {
	env := newRunnerEnv(t)
	rcfg := RunnerConfig{Brokers: []string{env.kafka}, Topic: env.topic, KafkaGroup: "eval-" + env.topic, SessionTimeout: time.Second,
		Group: "g", Eval: env.cfg, Store: env.st, Batch: 50, FlushEvery: 30 * time.Millisecond, FromFirst: true}
	// Both runners join before the traffic, so that the group's first
	// generation starts the partitions at their beginning.
	runB, err := NewRunner(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	bctx, stopB := context.WithCancel(t.Context())
	bdone := make(chan error, 1)
	go func() { bdone <- runB.Run(bctx) }()
	start := func() (context.CancelFunc, chan error) {
		run, err := NewRunner(rcfg)
		if err != nil {
			t.Fatal(err)
		}
		actx, stop := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- run.Run(actx) }()
		return stop, done
	}
	stopA, adone := start()
	time.Sleep(2 * time.Second) // the group settles
	traffic := env.traffic(t.Context(), 600)
	time.Sleep(1200 * time.Millisecond)
	stopA()
	if err := <-adone; err != nil {
		t.Fatalf("runner A: %v", err)
	}
	t.Log("runner A left the group")
	time.Sleep(800 * time.Millisecond)
	stopA, adone = start()
	t.Log("runner A joined again")
	if err := <-traffic; err != nil {
		t.Fatal(err)
	}
	ends := env.ends(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		pos, err := env.st.WindowOffsets(t.Context(), "g")
		if err == nil && pos[0].Next == ends[0] && pos[1].Next == ends[1] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group did not cover the topic: %+v, ends %v (B: %+v)", pos, ends, runB.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopA()
	stopB()
	for _, c := range []chan error{adone, bdone} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("runner B: %+v", runB.Stats())
	env.check(t, "g")
}
