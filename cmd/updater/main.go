// Command updater is the streaming learner: a consumer-group member over the
// interactions topic that applies incremental SGD to each user's vector per
// event, keeps per-user state in a compacted Kafka changelog, and writes fresh
// user embeddings to Redis before committing its input offsets.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/online"
	"github.com/streamrec/streamrec/internal/stream"
)

func main() { config.Main("updater", run) }

type options struct {
	brokers, topic, group, changelog, assign string
	testPauseFile                            string
	partitions                               int
	namespace                                string
	redis                                    cache.ClientOptions
	flush                                    time.Duration
	maxBatch                                 int
	lr, l2, targetCap, denseLR               float64
	metricsAddr                              string
	markerEvery, modelWait                   time.Duration
	sessionTimeout, fetchMaxWait             time.Duration
	memLimitMiB                              int
	shutdownTimeout                          time.Duration
	logLevel                                 string
	lrControlTopic                           string
	lrControlDelay                           time.Duration
}

func parse(args []string) (*options, error) {
	o := &options{redis: cache.DefaultClientOptions()}
	o.redis.ReadTimeout, o.redis.WriteTimeout = 5*time.Second, 5*time.Second
	fs := flag.NewFlagSet("updater", flag.ContinueOnError)
	fs.StringVar(&o.brokers, "brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	fs.StringVar(&o.topic, "topic", stream.DefaultTopic, "interactions topic")
	fs.StringVar(&o.group, "group", "updater", "consumer group")
	fs.StringVar(&o.lrControlTopic, "lr-control-topic", "", "the learning-rate control topic (the drift monitor's raised rate, applied by each event's message time); empty: <topic>.control; none: off")
	fs.DurationVar(&o.lrControlDelay, "lr-control-delay", online.DefaultLRControlDelay, "how long after its produce time a control takes effect (the API's --drift-lr-delay must be the same)")
	fs.StringVar(&o.changelog, "changelog-topic", "updater.user-state", "compacted per-user state topic (created co-partitioned with the input)")
	fs.StringVar(&o.testPauseFile, "test-pause-flush", "", "testing only: while this file exists, each flush waits before its writes (the fencing test's pause)")
	fs.StringVar(&o.assign, "assign", "group", "partition assignment: 'group' (the group protocol balances partitions across instances) or 'all' (this instance reads every partition; one instance only)")
	fs.IntVar(&o.partitions, "partitions", 8, "partitions of the interactions topic when the updater has to create it")
	cache.RegisterClientFlags(fs, &o.redis)
	fs.StringVar(&o.namespace, "namespace", cache.DefaultNamespace, "Redis key namespace")
	fs.DurationVar(&o.flush, "flush-interval", 20*time.Millisecond, "longest an event waits before its user is flushed (batch deadline)")
	fs.IntVar(&o.maxBatch, "max-batch", 8192, "most events per batch")
	fs.Float64Var(&o.lr, "lr", 0.05, "online SGD learning rate on the user vector")
	fs.Float64Var(&o.l2, "l2", 0.001, "online L2 pull toward the offline user vector")
	fs.Float64Var(&o.targetCap, "target-cap", 0, "cap of the target watch ratio; 0: the model version's own (from its metadata, as trained; 5 if it has none); another value overrides it")
	fs.Float64Var(&o.denseLR, "dense-lr", 0, "dense mode: also fine-tune the user tower online at this SGD learning rate (0: per-user mode only); needs --assign all and a model published with user features")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:9101", "address of /metrics and /healthz ('' disables)")
	fs.DurationVar(&o.markerEvery, "redis-check", time.Second, "how often to check that Redis still holds our data (rebuilt from the changelog if not)")
	fs.DurationVar(&o.modelWait, "model-wait", 10*time.Minute, "how long to wait at start for a published model version")
	fs.DurationVar(&o.sessionTimeout, "session-timeout", 10*time.Second, "consumer-group session timeout")
	fs.DurationVar(&o.fetchMaxWait, "fetch-max-wait", 500*time.Millisecond, "how long an idle fetch waits on the broker (a fetch returns as soon as there is data; below ~200ms kafka-go's reads time out under load)")
	fs.IntVar(&o.memLimitMiB, "memory-limit-mib", 256, "soft memory limit of the Go runtime in MiB (GC works harder near it; at 96 it ran nearly continuously at the bench's 7,176 users and batches of 16,384); 0 disables")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long SIGINT/SIGTERM waits for the batch in flight to become durable and be committed before giving it up (it stays uncommitted)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	config.Usage(fs, "updater: incremental SGD on the user tower from the interactions topic; user embeddings to Redis")
	if err := config.Parse(fs, args, nil); err != nil {
		return nil, &config.UsageError{Err: err}
	}
	switch {
	case o.assign != "group" && o.assign != "all":
		return nil, config.Usagef("--assign %q: want group or all", o.assign)
	case o.flush <= 0 || o.maxBatch <= 0 || o.partitions <= 0 || o.shutdownTimeout <= 0:
		return nil, config.Usagef("--flush-interval, --max-batch, --partitions and --shutdown-timeout must be positive")
	case o.lr <= 0 || o.l2 < 0 || o.targetCap < 0 || o.denseLR < 0:
		return nil, config.Usagef("--lr must be positive, --l2, --target-cap and --dense-lr not negative")
	case o.denseLR > 0 && o.assign != "all":
		return nil, config.Usagef("--dense-lr needs --assign all: the dense weights have one writer")
	case o.lrControlDelay <= 0:
		return nil, config.Usagef("--lr-control-delay %v: want > 0", o.lrControlDelay)
	case o.topic == o.changelog:
		return nil, config.Usagef("--changelog-topic must differ from --topic")
	}
	if err := o.redis.Validate(); err != nil {
		return nil, &config.UsageError{Err: err}
	}
	return o, nil
}

func run(ctx context.Context, args []string) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	base, err := config.NewLogger(os.Stderr, o.logLevel)
	if err != nil {
		return &config.UsageError{Err: err}
	}
	log := base.With("component", "updater")
	if o.memLimitMiB > 0 {
		debug.SetMemoryLimit(int64(o.memLimitMiB) << 20)
	}
	brokers := strings.Split(o.brokers, ",")

	rdb := o.redis.NewClient()
	defer rdb.Close()
	scfg := cache.DefaultConfig()
	scfg.Namespace = o.namespace
	store, err := cache.NewStore(rdb, scfg)
	if err != nil {
		return &config.UsageError{Err: err}
	}
	model, err := waitModel(ctx, store, o.modelWait, o.denseLR, log)
	if err != nil {
		return err
	}

	// Topics: the input (created if missing), its dead-letter topic, and the
	// changelog co-partitioned with the input.
	counts, err := stream.PartitionCounts(ctx, brokers, o.topic, o.changelog)
	if err != nil {
		return err
	}
	nparts, ok := counts[o.topic]
	if !ok {
		nparts = o.partitions
	}
	if err := checkPartitions(o.topic, nparts, o.changelog, counts); err != nil {
		return err
	}
	if err := stream.EnsureTopics(ctx, brokers, stream.InteractionsTopic(o.topic, nparts),
		stream.InteractionsTopic(o.topic+".dlq", 1), stream.CompactedTopic(o.changelog, nparts),
		stream.CompactedTopic(online.DenseTopic(o.changelog), 1), stream.FenceTopicSpec(stream.FenceTopic(o.changelog))); err != nil {
		return err
	}

	changelog := online.NewChangelog(brokers, o.changelog)
	defer changelog.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	flushHist, lateHist := newFlushHistogram(reg), newLatenessHistogram(reg)
	if o.targetCap > 0 {
		if model.TargetCap > 0 && model.TargetCap != float32(o.targetCap) {
			log.Warn("--target-cap overrides the model's own cap", "flag", o.targetCap, "model", model.TargetCap)
		}
	}
	var sched *online.LRSchedule
	if o.lrControlTopic != "none" {
		if o.lrControlTopic == "" {
			o.lrControlTopic = online.LRControlTopic(o.topic)
		}
		if err := online.EnsureLRControlTopic(ctx, brokers, o.lrControlTopic); err != nil {
			return err
		}
		sched = online.NewLRSchedule()
	}
	upd := online.NewUpdater(online.Config{LR: float32(o.lr), L2: float32(o.l2), TargetCap: float32(o.targetCap), Logger: log,
		ObserveFlush: flushHist.Observe, ObserveLateness: lateHist.Observe, LRSchedule: sched,
		BeforeWrite: pauseWhileExists(o.testPauseFile, log)}, model, store, changelog)
	changelog.Poison, changelog.Logger = upd.Poison(), log
	member := markerName(o.group)
	keeper := &online.Keeper{Updater: upd, State: changelog, Markers: store, Marker: member,
		MarkerTTL: time.Hour, Partitions: nparts, Dense: o.denseLR > 0, Logger: log,
		Fence: func(ctx context.Context) (uint64, error) {
			return stream.AcquireEpoch(ctx, brokers, stream.FenceTopic(o.changelog), member)
		},
		CountPartitions: func(ctx context.Context) (int, error) {
			counts, err := stream.PartitionCounts(ctx, brokers, o.topic)
			return counts[o.topic], err
		}}
	ccfg := stream.ConsumerConfig{Brokers: brokers, GroupID: o.group, Topic: o.topic, MaxBatch: o.maxBatch,
		FlushInterval: o.flush, SessionTimeout: o.sessionTimeout, MaxWait: o.fetchMaxWait, Logger: base, OnAssign: keeper.OnAssign}
	if o.assign == "all" {
		ccfg.Partitions = []int{stream.AllPartitions}
	}
	cons, err := stream.NewConsumer(ccfg)
	if err != nil {
		return err
	}

	newMetrics(reg, upd, cons, sched)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := cons.RunAsync(gctx, upd.HandleAsync)
		if err == nil && ctx.Err() == nil {
			err = errors.New("consumer stopped")
		}
		return err
	})
	g.Go(func() error { return keeper.WatchRedis(gctx, o.markerEvery) })
	g.Go(func() error { return followModel(gctx, store, upd, o.denseLR, log) })
	g.Go(func() error { return publishStatus(gctx, store, upd, cons, "", o.group, time.Second, log) })
	if sched != nil {
		g.Go(func() error {
			return online.FollowLRControls(gctx, brokers, o.lrControlTopic, sched, o.lrControlDelay, 200*time.Millisecond, log.With("component", "lr-controls"))
		})
	}
	if o.metricsAddr != "" {
		srv, err := serveMetrics(o.metricsAddr, reg)
		if err != nil {
			return err
		}
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	log.Info("updater running", "brokers", o.brokers, "topic", o.topic, "group", o.group, "assign", o.assign,
		"partitions", nparts, "model", model.Items.Version(), "redis", o.redis.Addr)
	// A shutdown that cannot finish (Kafka or Redis unreachable, so the batch
	// in flight never becomes durable) is abandoned after its deadline: the
	// batch stays uncommitted and is delivered again to the next owner.
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-finished:
			return
		case <-ctx.Done():
		}
		select {
		case <-finished:
			return
		case <-time.After(o.shutdownTimeout):
		}
		log.Warn("graceful shutdown exceeded its deadline; the batch in flight stays uncommitted", "deadline", o.shutdownTimeout)
		upd.Close() // fails the flush in flight, so the consumer stops
		select {
		case <-finished:
		case <-time.After(5 * time.Second):
			log.Error("still not stopped 5s after abandoning the batch in flight; exiting")
			os.Exit(1)
		}
	}()
	err = g.Wait()
	// Graceful: the consumer drained its batches (handled, flushed, committed).
	cerr := cons.Close()
	upd.Close()
	c := upd.Counters()
	log.Info("updater stopped", "applied", c.Applied, "redelivered", c.Redelivered, "duplicates", c.Duplicates, "late", c.Late, "cold_items", c.ColdItems,
		"flushes", c.Flushes, "dead_letters", cons.Stats().DeadLettered)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return cerr
}

// checkPartitions refuses to start when the interactions topic and its
// changelog (which was created co-partitioned with it) differ in partition
// count: partitions were added to the input, so users moved partitions, and
// neither their input positions nor the changelog's layout say what was
// applied any more. Rather than skip or re-apply events silently, the updater
// stops with what to do.
func checkPartitions(topic string, nparts int, changelog string, counts map[string]int) error {
	if n, ok := counts[changelog]; ok && n != nparts {
		return fmt.Errorf("the interactions topic %s has %d partitions but its changelog %s has %d: the partition count changed "+
			"since the changelog was made, so users moved partitions and their input positions no longer say what was applied; "+
			"refusing to start (restore the partition count, or rebuild the state: a new --changelog-topic and --group replay the log from the start)",
			topic, nparts, changelog, n)
	}
	return nil
}

// markerName is this process's Redis marker: one per instance, so that every
// instance notices a flush and rebuilds its own users.
func markerName(group string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return "updater." + group + "." + hex.EncodeToString(b)
}

// pauseWhileExists is the --test-pause-flush hook: it blocks while path
// exists (nil when path is empty).
func pauseWhileExists(path string, log *slog.Logger) func(ctx context.Context) {
	if path == "" {
		return nil
	}
	return func(ctx context.Context) {
		if _, err := os.Stat(path); err != nil {
			return
		}
		log.Warn("flush paused by --test-pause-flush", "file", path)
		for ctx.Err() == nil {
			if _, err := os.Stat(path); err != nil {
				log.Warn("flush resumed", "file", path)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
