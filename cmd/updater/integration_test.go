package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online"
	"github.com/streamrec/streamrec/internal/promtext"
	"github.com/streamrec/streamrec/internal/stream"
)

// The updater's integration tests run against real Apache Kafka and Redis,
// opt-in by environment: STREAMREC_TEST_KAFKA and STREAMREC_TEST_REDIS.

type env struct {
	brokers   string
	redisAddr string
	ns        string
	topic     string
	group     string
	changelog string
	store     *cache.Store
	rdb       *redis.Client
}

func newEnv(t *testing.T, redisAddr string) *env {
	t.Helper()
	kafka := os.Getenv("STREAMREC_TEST_KAFKA")
	if redisAddr == "" {
		redisAddr = os.Getenv("STREAMREC_TEST_REDIS")
	}
	if kafka == "" || redisAddr == "" || testing.Short() {
		t.Skip("integration: set STREAMREC_TEST_KAFKA and STREAMREC_TEST_REDIS (and drop -short) to run")
	}
	id := fmt.Sprintf("%08x", rand.Uint32())
	e := &env{brokers: kafka, redisAddr: redisAddr, ns: "test-upd-" + id, topic: "test-upd-" + id,
		group: "test-upd-" + id, changelog: "test-upd-" + id + ".state"}
	e.rdb = redis.NewClient(&redis.Options{Addr: redisAddr})
	cfg := cache.DefaultConfig()
	cfg.Namespace = e.ns
	var err error
	if e.store, err = cache.NewStore(e.rdb, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		iter := e.rdb.Scan(ctx, 0, e.ns+":*", 1000).Iterator()
		for iter.Next(ctx) {
			e.rdb.Del(ctx, iter.Val())
		}
		e.rdb.Close()
	})
	if err := stream.EnsureTopics(t.Context(), []string{kafka}, stream.InteractionsTopic(e.topic, testPartitions)); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) args(extra ...string) []string {
	return append([]string{"--brokers", e.brokers, "--topic", e.topic, "--group", e.group,
		"--changelog-topic", e.changelog, "--redis-addr", e.redisAddr, "--namespace", e.ns,
		"--metrics-addr", "", "--log-level", "warn", "--session-timeout", "3s",
		"--flush-interval", "5ms", "--max-batch", "256", "--redis-check", "100ms"}, extra...)
}

const (
	testDim   = 16
	testItems = 300 // videos 300..319 in the events are cold
	testUsers = 80  // users 80..99 in the events are new
	// testPartitions is the partition count of the test topics.
	testPartitions = 4
)

// publishModel publishes a random model and initial user records.
func publishModel(t *testing.T, e *env) {
	t.Helper()
	r := rand.New(rand.NewPCG(11, 12))
	publishItems(t, e, r)
	publishOfflineUsers(t, e, r)
}

// publishOfflineUsers writes random offline records for users 0..testUsers-1.
func publishOfflineUsers(t *testing.T, e *env, r *rand.Rand) {
	t.Helper()
	var recs []cache.UserRecord
	for uid := uint32(0); uid < testUsers; uid++ {
		emb := make([]float32, testDim)
		for j := range emb {
			emb[j] = float32(r.NormFloat64() * 0.2)
		}
		emb[testDim-1] = 1
		recs = append(recs, cache.UserRecord{UserID: uid, Embedding: emb, Bias: 0.05, UpdatedAtMs: 1})
	}
	if err := e.store.PutUsers(t.Context(), "v1", recs); err != nil {
		t.Fatal(err)
	}
}

func makeEvents(n int, seed uint64) []stream.Event {
	r := rand.New(rand.NewPCG(seed, 3))
	last := map[uint32]int64{}
	evs := make([]stream.Event, n)
	for i := range evs {
		uid := uint32(r.IntN(testUsers + 20))
		ts := max(last[uid]+1+int64(r.IntN(3)), 1593878903438+int64(i))
		seq := uint32(0)
		if ts == last[uid] {
			seq = 1
		}
		last[uid] = ts
		dur := int64(1000 + r.IntN(20000))
		play := r.Int64N(2 * dur)
		evs[i] = stream.Event{EventID: stream.MakeEventID(ts, seq), UserID: uid, VideoID: uint32(r.IntN(testItems + 20)),
			PlayDurationMs: play, VideoDurationMs: dur, EventTimeMs: ts, WatchRatio: float64(play) / float64(dur),
			Source: stream.SourceReplay}
	}
	return evs
}

func publishEvents(t *testing.T, e *env, evs []stream.Event) {
	t.Helper()
	if err := publish(t.Context(), e, evs, 1000); err != nil {
		t.Fatal(err)
	}
}

func publish(ctx context.Context, e *env, evs []stream.Event, chunk int) error {
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: []string{e.brokers}, Topic: e.topic})
	if err != nil {
		return err
	}
	defer p.Close()
	for i := 0; i < len(evs); i += chunk {
		if err := p.Publish(ctx, evs[i:min(i+chunk, len(evs))]); err != nil {
			return err
		}
	}
	return nil
}

// expected applies the events in process, through the same Updater with
// in-memory stores seeded from the published initial records.
func expected(t *testing.T, e *env, evs []stream.Event) map[uint32]cache.UserRecord {
	t.Helper()
	return expectedDense(t, e, evs, 0)
}

// expectedDense is expected in dense mode at denseLR (0: per-user mode).
// It reads the offline records from Redis, so call it before any updater ran.
func expectedDense(t *testing.T, e *env, evs []stream.Event, denseLR float64) map[uint32]cache.UserRecord {
	t.Helper()
	return expectedFrom(t, e, offlineUsers(t, e), evs, denseLR)
}

// offlineUsers snapshots the published offline user records (before an
// updater overwrites them).
func offlineUsers(t *testing.T, e *env) map[uint32]cache.UserRecord {
	t.Helper()
	ids := make([]uint32, testUsers)
	for i := range ids {
		ids[i] = uint32(i)
	}
	recs, found, err := e.store.GetUsers(t.Context(), "v1", ids)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]cache.UserRecord{}
	for i, r := range recs {
		if found[i] {
			if r.InputNext != 0 {
				t.Fatalf("user %d's record was already written by an updater: not the offline one", r.UserID)
			}
			out[r.UserID] = r
		}
	}
	return out
}

// expectedFrom applies evs in process from the offline records offline.
func expectedFrom(t *testing.T, e *env, offline map[uint32]cache.UserRecord, evs []stream.Event, denseLR float64) map[uint32]cache.UserRecord {
	t.Helper()
	m, err := loadModel(t.Context(), e.store, "v1", denseLR)
	if err != nil {
		t.Fatal(err)
	}
	mem := &memUsers{recs: map[uint32]cache.UserRecord{}}
	for id, r := range offline {
		mem.recs[id] = r
	}
	u := online.NewUpdater(online.DefaultConfig(), m, mem, nopLog{})
	defer u.Close()
	if err := u.Handle(t.Context(), asRecords(evs, testPartitions)); err != nil {
		t.Fatal(err)
	}
	return mem.recs
}

// asRecords gives evs the input positions a single in-order producer gives
// them on a fresh topic of nparts partitions: a user's partition by murmur2,
// offsets counted per partition in publish order.
func asRecords(evs []stream.Event, nparts int) []stream.Record {
	next := make([]int64, nparts)
	out := make([]stream.Record, len(evs))
	for i := range evs {
		p := stream.PartitionFor(evs[i].UserID, nparts)
		out[i] = stream.Record{Event: evs[i], Partition: p, Offset: next[p]}
		next[p]++
	}
	return out
}

type memUsers struct{ recs map[uint32]cache.UserRecord }

func (m *memUsers) GetUsers(_ context.Context, _ string, ids []uint32) ([]cache.UserRecord, []bool, error) {
	recs, found := make([]cache.UserRecord, len(ids)), make([]bool, len(ids))
	for i, id := range ids {
		recs[i], found[i] = m.recs[id]
	}
	return recs, found, nil
}

func (m *memUsers) PutUsersIfNewer(_ context.Context, _ string, recs []cache.UserRecord) (int, error) {
	for _, r := range recs {
		r.Embedding = slices.Clone(r.Embedding)
		m.recs[r.UserID] = r
	}
	return 0, nil
}

type nopLog struct{}

func (nopLog) Write(context.Context, []*online.UserState) error { return nil }

// waitRedis polls Redis until every expected user's embedding and bias equal
// the in-process run's bit for bit (positions differ: a real topic's offsets
// are not the in-process ones when messages were written twice), then checks
// that each record names the user's partition.
func waitRedis(t *testing.T, e *env, want map[uint32]cache.UserRecord, within time.Duration) {
	t.Helper()
	waitRedisVersion(t, e, "v1", want, within)
}

// waitRedisVersion is waitRedis for the records of version.
func waitRedisVersion(t *testing.T, e *env, version string, want map[uint32]cache.UserRecord, within time.Duration) {
	t.Helper()
	ids := make([]uint32, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	deadline := time.Now().Add(within)
	for {
		recs, found, err := e.store.GetUsers(t.Context(), version, ids)
		n := 0
		if err == nil {
			for i, id := range ids {
				if found[i] && slices.Equal(recs[i].Embedding, want[id].Embedding) && recs[i].Bias == want[id].Bias {
					n++
				}
			}
		}
		if n == len(ids) {
			for i, id := range ids {
				if recs[i].InputNext == 0 || int(recs[i].InputPartition) != stream.PartitionFor(id, testPartitions) {
					t.Fatalf("user %d: Redis record at input position %d/%d, want an offset on partition %d", id,
						recs[i].InputPartition, recs[i].InputNext-1, stream.PartitionFor(id, testPartitions))
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, %d of %d users have the in-process embedding in Redis (err %v)", within, n, len(ids), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitCommittedEnd waits until the group's committed offsets reach the end
// of every partition of the topic: every message is durable in Redis.
func waitCommittedEnd(t *testing.T, e *env, within time.Duration) {
	t.Helper()
	client := &kafkago.Client{Addr: kafkago.TCP(e.brokers), Timeout: 5 * time.Second}
	parts := make([]int, testPartitions)
	req := map[string][]kafkago.OffsetRequest{}
	for p := range parts {
		parts[p] = p
		req[e.topic] = append(req[e.topic], kafkago.LastOffsetOf(p))
	}
	for deadline := time.Now().Add(within); ; {
		ends, err := client.ListOffsets(t.Context(), &kafkago.ListOffsetsRequest{Topics: req})
		if err != nil {
			t.Fatal(err)
		}
		end := map[int]int64{}
		for _, po := range ends.Topics[e.topic] {
			end[po.Partition] = po.LastOffset
		}
		resp, err := client.OffsetFetch(t.Context(), &kafkago.OffsetFetchRequest{GroupID: e.group,
			Topics: map[string][]int{e.topic: parts}})
		if err != nil {
			t.Fatal(err)
		}
		done := len(resp.Topics[e.topic]) == testPartitions
		for _, p := range resp.Topics[e.topic] {
			done = done && p.CommittedOffset == end[p.Partition]
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offsets %+v did not reach the ends %v in %v", resp.Topics[e.topic], end, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func runInProcess(t *testing.T, e *env, extra ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, e.args(extra...)) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("updater: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("updater did not stop within 30s of cancel")
		}
	}
}

// End to end: events through real Kafka into the updater, embeddings in real
// Redis equal to the in-process application, bit for bit; duplicates injected
// into the topic change nothing.
func TestIntegrationEndToEnd(t *testing.T) {
	e := newEnv(t, "")
	publishModel(t, e)
	evs := makeEvents(4000, 1)
	publishEvents(t, e, evs)
	want := expected(t, e, evs)

	metrics := freeAddr(t)
	stop := runInProcess(t, e, "--metrics-addr", metrics)
	waitRedis(t, e, want, 60*time.Second)
	// Duplicates: the last 200 events published again (a producer retry)
	// are recognised by event id in the users' rings (each copy is a few
	// events of its user after the original, well within online.RingSize),
	// skipped and counted, and change nothing.
	publishEvents(t, e, evs[len(evs)-200:])
	deadline := time.Now().Add(30 * time.Second)
	for scrape(t, metrics, "streamrec_updater_duplicates_skipped_total") < 200 {
		if time.Now().After(deadline) {
			t.Fatalf("duplicates counted: %v, want 200", scrape(t, metrics, "streamrec_updater_duplicates_skipped_total"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitRedis(t, e, want, 10*time.Second)
	if got := scrape(t, metrics, "streamrec_updater_events_applied_total") + scrape(t, metrics, "streamrec_updater_cold_items_total"); got != float64(len(evs)) {
		t.Fatalf("applied + cold = %v, want %d", got, len(evs))
	}
	if scrape(t, metrics, "streamrec_updater_cold_items_total") == 0 {
		t.Fatal("no cold item counted, though events name videos without embeddings")
	}
	stop()
}

// kill -9 at random points, restarts, and at the end the embeddings equal an
// uninterrupted run bit for bit: no event lost, none applied twice.
func TestIntegrationKill9(t *testing.T) {
	e := newEnv(t, "")
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STREAMREC_KILL_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("kill points seed: %d (rerun with STREAMREC_KILL_SEED=%d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 1))
	publishModel(t, e)
	evs := makeEvents(60000, 2)
	want := expected(t, e, evs)

	stop := killMidStream(t, e, buildUpdater(t), evs, 4, r, "--max-batch", "64")
	defer stop()
	waitRedis(t, e, want, 90*time.Second)
}

// A Redis flush mid-stream: the updater notices (its marker is gone), rebuilds
// every user from its changelog-backed state, and goes on; none is lost. The
// test runs its own Redis server, since it flushes it.
func TestIntegrationRedisFlush(t *testing.T) {
	addr := privateRedis(t)
	e := newEnv(t, addr)
	publishModel(t, e)
	evs := makeEvents(6000, 3)
	// After the flush only even users get events: odd users come back only
	// through the updater's rebuild from its changelog-backed state.
	second := slices.DeleteFunc(slices.Clone(evs[3000:]), func(ev stream.Event) bool { return ev.UserID%2 == 1 })
	evs = append(slices.Clone(evs[:3000]), second...)
	want := expected(t, e, evs)
	half := expected(t, e, evs[:3000])
	publishEvents(t, e, evs[:3000])
	stop := runInProcess(t, e)
	defer stop()
	// Wait until the first half is in, then flush everything.
	waitRedis(t, e, half, 60*time.Second)
	if err := e.rdb.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	// The ingestor republishes the model (items are a cache too); users come
	// back from the updater's rebuild, not from the ingestor.
	publishModelOnly(t, e)
	publishEvents(t, e, second)
	waitRedis(t, e, want, 60*time.Second)
}

// publishModelOnly publishes the same model items as publishModel, no users.
func publishModelOnly(t *testing.T, e *env) {
	t.Helper()
	publishItems(t, e, rand.New(rand.NewPCG(11, 12)))
}

func randomItems(r *rand.Rand) cache.Items {
	items := cache.Items{}
	for id := uint32(0); id < testItems; id++ {
		items.IDs = append(items.IDs, id)
		items.Biases = append(items.Biases, 0)
		for j := 0; j < testDim; j++ {
			items.Vectors = append(items.Vectors, float32(r.NormFloat64()*0.3))
		}
	}
	return items
}

func publishItems(t *testing.T, e *env, r *rand.Rand) {
	t.Helper()
	items := randomItems(r)
	if _, err := e.store.Publish(t.Context(), cache.Model{Version: "v1", Dim: testDim, CreatedAtMs: 1,
		Calibration: cache.Calibration{GlobalMean: 0.9, Scale: 1.3}, Items: items, TowerWeights: []byte("w")}); err != nil {
		t.Fatal(err)
	}
}

// privateRedis starts a redis-server of its own on a free port.
func privateRedis(t *testing.T) string {
	t.Helper()
	if os.Getenv("STREAMREC_TEST_REDIS") == "" || testing.Short() {
		t.Skip("integration: set STREAMREC_TEST_REDIS (a redis-server on PATH is also needed) to run")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH")
	}
	addr := freeAddr(t) // a port the kernel just handed out, so no other listener has it
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	for i := 0; ; i++ {
		if rdb.Ping(t.Context()).Err() == nil {
			return addr
		}
		if i > 100 {
			t.Fatalf("private redis-server on %s did not start", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type prefixWriter struct{ t *testing.T }

func (w *prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			w.t.Log("updater: " + line)
		}
	}
	return len(b), nil
}

// committed sums the group's committed offsets over the topic's partitions.
func committed(t *testing.T, e *env) int64 {
	t.Helper()
	client := &kafkago.Client{Addr: kafkago.TCP(e.brokers), Timeout: 5 * time.Second}
	resp, err := client.OffsetFetch(t.Context(), &kafkago.OffsetFetchRequest{GroupID: e.group,
		Topics: map[string][]int{e.topic: {0, 1, 2, 3}}}) // testPartitions
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range resp.Topics[e.topic] {
		if p.CommittedOffset > 0 {
			n += p.CommittedOffset
		}
	}
	return n
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func scrape(_ *testing.T, addr, name string) float64 { return promtext.Scrape(addr, name) }

// buildUpdater builds the updater binary into a temporary folder.
func buildUpdater(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "updater")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the updater: %v\n%s", err, out)
	}
	return bin
}

// killMidStream publishes evs while the updater binary runs with args, and
// kills it with SIGKILL kills times, each at a random moment after that run
// made progress (a restarted group member first waits for the dead one's
// session to expire). It fails the test unless at least two kills landed
// mid-stream, then starts a last run and waits for the publishing to end; stop
// ends that run with SIGINT.
func killMidStream(t *testing.T, e *env, bin string, evs []stream.Event, kills int, r *rand.Rand, args ...string) (stop func()) {
	t.Helper()
	return killMidStreamPaced(t, e, bin, evs, kills, r, 0, args...)
}

// killMidStreamPaced is killMidStream publishing one chunk of 500 events
// every pace (0: as fast as the broker takes them).
func killMidStreamPaced(t *testing.T, e *env, bin string, evs []stream.Event, kills int, r *rand.Rand, pace time.Duration, args ...string) (stop func()) {
	t.Helper()
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, e.args(args...)...)
		cmd.Stderr = &prefixWriter{t: t}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	pubErr := make(chan error, 1)
	go func() {
		if pace == 0 {
			pubErr <- publish(context.Background(), e, evs, 500)
			return
		}
		for i := 0; i < len(evs); i += 500 {
			if err := publish(context.Background(), e, evs[i:min(i+500, len(evs))], 500); err != nil {
				pubErr <- err
				return
			}
			time.Sleep(pace)
		}
		pubErr <- nil
	}()
	midStream := 0
	prev := int64(0)
	for k := 0; k < kills; k++ {
		cmd := start()
		for end := time.Now().Add(15 * time.Second); committed(t, e) <= prev && time.Now().Before(end); {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(r.IntN(150)) * time.Millisecond)
		cmd.Process.Kill() // SIGKILL: no drain, no flush, no commit
		cmd.Wait()
		c := committed(t, e)
		t.Logf("kill %d: %d of %d events committed", k+1, c, len(evs))
		if c > prev && c < int64(len(evs)) {
			midStream++
		}
		prev = c
	}
	if midStream < 2 {
		t.Fatal("fewer than two kills landed mid-stream: the test proved nothing")
	}
	cmd := start()
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	return func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
}
