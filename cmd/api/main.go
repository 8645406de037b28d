// Command api is streamrec's HTTP API (Echo v4): recommendations for a user
// from the in-memory item index and the user's embedding in Redis (the same
// model version), interaction intake to Kafka, the OpenAPI document, health,
// readiness and Prometheus metrics. See README.md in this directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/streamrec/streamrec/internal/api"
	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/modellog"
	"github.com/streamrec/streamrec/internal/online/eval"
	"github.com/streamrec/streamrec/internal/stream"
)

func main() { config.Main("api", run) }

type options struct {
	listen, namespace, brokers, topic string
	modelTopic                        string
	redis                             cache.ClientOptions
	partitions                        int
	api                               api.Config
	modelPoll, shutdownTimeout        time.Duration
	logLevel                          string
	pprofAddr, metricsAddr            string
	eval                              evalOptions
	retrain                           retrainOptions
}

// evalOptions configure the online evaluation (--eval).
type evalOptions struct {
	on                 bool
	partitions, group  string
	kafkaGroup         string
	cfg                eval.Config
	fromFirst, drift   bool
	lrFactor           float64
	lrFor, lrDelay     time.Duration
	lrDetectors        string
	batch, servedQueue int
	flushEvery         time.Duration
}

func parse(args []string) (*options, error) {
	o := &options{api: api.DefaultConfig(), redis: cache.DefaultClientOptions()}
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "HTTP listen address")
	cache.RegisterClientFlags(fs, &o.redis)
	fs.StringVar(&o.namespace, "namespace", cache.DefaultNamespace, "Redis key namespace")
	fs.StringVar(&o.brokers, "brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	fs.StringVar(&o.topic, "topic", stream.DefaultTopic, "interactions topic")
	fs.StringVar(&o.modelTopic, "model-topic", "none", "the model log (see 'ingestor restore'): the admin routes also write registered videos and rollbacks to it before answering ('' for <namespace>.models; none: off, the following restorer copies them)")
	fs.IntVar(&o.partitions, "partitions", 8, "partitions of the interactions topic if the API has to create it (the updater uses the same default)")
	fs.IntVar(&o.api.MaxK, "max-k", o.api.MaxK, "largest k a recommendation request may ask for")
	fs.IntVar(&o.api.DefaultK, "default-k", o.api.DefaultK, "k when a request gives none")
	fs.Int64Var(&o.api.MaxBodyBytes, "max-body-bytes", o.api.MaxBodyBytes, "largest request body in bytes (413 above)")
	fs.IntVar(&o.api.MaxBatch, "max-batch", o.api.MaxBatch, "most events in one batch POST (413 above)")
	fs.DurationVar(&o.api.RedisTimeout, "redis-timeout", o.api.RedisTimeout, "bound on each Redis call of a recommendation request (past it: popularity fallback)")
	fs.DurationVar(&o.api.PublishTimeout, "publish-timeout", o.api.PublishTimeout, "bound on the Kafka acknowledgement of an intake request (past it: 503)")
	fs.DurationVar(&o.api.ReadyTimeout, "ready-timeout", o.api.ReadyTimeout, "bound on each readiness check")
	fs.DurationVar(&o.api.IdempotencyTTL, "idempotency-ttl", o.api.IdempotencyTTL, "how long an intake idempotency record (per X-Client-Id and Idempotency-Key) is kept in Redis")
	fs.IntVar(&o.api.WatchedUsers, "watched-users", o.api.WatchedUsers, "users whose recent-watched sets are kept in memory (exclude_watched)")
	fs.IntVar(&o.api.WatchedPerUser, "watched-per-user", o.api.WatchedPerUser, "videos kept per user's recent-watched set")
	fs.Float64Var(&o.api.ExploreRate, "explore-rate", 0, "share of a model list's slots filled from a uniform sample of the candidates, with the propensity in the answer and the served list (0: off)")
	fs.BoolVar(&o.api.BenchReference, "bench-reference", false, "also serve the load harness's reference endpoint "+api.BenchReferencePath+" (bench/api; not part of the public API)")
	fs.DurationVar(&o.modelPoll, "model-poll", 2*time.Second, "how often to poll for a new model version (besides the pub/sub notice)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "deadline for draining in-flight requests on SIGINT/SIGTERM")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.eval.on, "eval", false, "run the online evaluation: write every served list to the served-list log, evaluate --eval-partitions, serve GET /v1/metrics/online")
	fs.StringVar(&o.eval.partitions, "eval-partitions", "all", "partitions of the interactions topic this replica evaluates: all, none, a comma-separated list (each partition must have exactly one evaluating replica), or group (a Kafka consumer group, --eval-kafka-group, shares them; real Kafka only)")
	fs.StringVar(&o.eval.kafkaGroup, "eval-kafka-group", "streamrec-evaluator", "the Kafka consumer group of --eval-partitions group")
	fs.StringVar(&o.eval.group, "eval-group", "online", "name of the evaluator's windows in Redis (the same for every replica)")
	fs.DurationVar(&o.eval.cfg.OpenFor, "eval-open-for", 30*time.Minute, "how long a served list stays open without a next list")
	fs.DurationVar(&o.eval.cfg.Grace, "eval-grace", 2*time.Second, "how late a served list may be written and still be joined")
	fs.DurationVar(&o.eval.cfg.Window, "eval-window", time.Minute, "span of a produce-time window")
	fs.IntVar(&o.eval.cfg.CountWindow, "eval-count-window", 10000, "messages of a partition per count window")
	fs.IntVar(&o.eval.cfg.RankEvery, "eval-rank-every", 100, "sample the prequential rank (a catalogue scan) 1 in this many no-list interactions")
	fs.BoolVar(&o.eval.fromFirst, "eval-from-first", false, "a partition the windows never saw starts at its first offset (default: its newest)")
	fs.IntVar(&o.eval.batch, "eval-batch", 1000, "most messages of a partition applied in one atomic step")
	fs.DurationVar(&o.eval.flushEvery, "eval-flush", 200*time.Millisecond, "apply a partial batch once it is this old")
	fs.Float64Var(&o.eval.lrFactor, "drift-lr-factor", 0, "the drift action: on an alert of --drift-lr-detectors, multiply the updater's learning rate by this (1..10) for --drift-lr-for, by a control record applied by message time; 0: off")
	fs.DurationVar(&o.eval.lrFor, "drift-lr-for", 10*time.Minute, "how long a raised learning rate lasts (at most 1h)")
	fs.DurationVar(&o.eval.lrDelay, "drift-lr-delay", 5*time.Second, "how long after its alert a raised rate takes effect (the updater's --lr-control-delay must be the same)")
	registerRetrainFlags(fs, &o.retrain)
	fs.StringVar(&o.eval.lrDetectors, "drift-lr-detectors", "abs_err_adwin,hit_adwin", "comma-separated detectors whose alerts raise the learning rate")
	fs.BoolVar(&o.eval.drift, "drift", true, "with --eval: run the drift monitor (detectors on the evaluator's streams and windows, GET /v1/drift, alerts)")
	fs.IntVar(&o.eval.servedQueue, "served-queue", 4096, "served lists waiting to be written off the request path, to the log with --eval, else as each user's last list (a full queue drops and counts)")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "serve /debug/pprof/ on this address (off when empty; never on the API's listener)")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve /metrics and /debug/pprof/ on this address, apart from the API's listener, and not /metrics on it (empty: /metrics on the API's listener, as before)")
	fs.Float64Var(&o.api.RateLimit, "rate-limit", o.api.RateLimit, "requests per second per client (X-Client-Id; absent: one shared 'anonymous' client) on the public routes; past it 429 rate_limited with Retry-After (0: no limit)")
	fs.IntVar(&o.api.RateBurst, "rate-burst", o.api.RateBurst, "burst of each client's token bucket (--rate-limit)")
	fs.IntVar(&o.api.RateClients, "rate-clients", o.api.RateClients, "most clients whose buckets are kept (past it idle buckets are dropped first)")
	fs.StringVar(&o.api.AdminToken, "admin-token", "", "bearer token of the admin routes /v1/admin/... (empty: they answer 403); prefer the environment variable STREAMREC_ADMIN_TOKEN, which no process listing shows")
	config.Usage(fs, "api: streamrec's HTTP API (recommendations, interaction intake, health, metrics)")
	if err := config.Parse(fs, args, nil); err != nil {
		return nil, &config.UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return nil, config.Usagef("unexpected arguments %q", fs.Args())
	}
	o.api.ServedQueue = o.eval.servedQueue
	if err := errors.Join(o.api.Validate(), o.redis.Validate()); err != nil {
		return nil, &config.UsageError{Err: err}
	}
	switch {
	case o.partitions <= 0 || o.modelPoll <= 0 || o.shutdownTimeout <= 0:
		return nil, config.Usagef("--partitions, --model-poll and --shutdown-timeout must be positive")
	case o.topic == "":
		return nil, config.Usagef("--topic must not be empty")
	}
	if o.eval.on {
		if err := o.eval.cfg.Validate(); err != nil {
			return nil, &config.UsageError{Err: err}
		}
		if o.eval.batch < 1 || o.eval.flushEvery < time.Millisecond || o.eval.servedQueue < 1 {
			return nil, config.Usagef("--eval-batch, --served-queue must be >= 1 and --eval-flush >= 1ms")
		}
		if o.eval.lrFactor != 0 && (o.eval.lrFactor < 1 || o.eval.lrFactor > 10 || o.eval.lrFor <= 0 || o.eval.lrFor > time.Hour || o.eval.lrDelay <= 0) {
			return nil, config.Usagef("--drift-lr-factor %v (0 or 1..10), --drift-lr-for %v (up to 1h) and --drift-lr-delay %v (> 0)", o.eval.lrFactor, o.eval.lrFor, o.eval.lrDelay)
		}
		if _, err := evalPartitions(o.eval.partitions, 1<<20); err != nil {
			return nil, config.Usagef("--eval-partitions: %v", err)
		}
	}
	for _, a := range []struct{ flag, addr string }{{"--listen", o.listen}, {"--metrics-addr", o.metricsAddr}, {"--pprof-addr", o.pprofAddr}} {
		if a.addr == "" && a.flag != "--listen" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return nil, config.Usagef("%s %q: %v", a.flag, a.addr, err)
		}
	}
	if o.api.AdminToken != "" && len(o.api.AdminToken) < 16 {
		return nil, config.Usagef("--admin-token: want at least 16 characters")
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
	log := base.With("component", "api-main")
	brokers := strings.Split(o.brokers, ",")

	rdb := o.redis.NewClient()
	defer rdb.Close()
	scfg := cache.DefaultConfig()
	scfg.Namespace = o.namespace
	store, err := cache.NewStore(rdb, scfg)
	if err != nil {
		return &config.UsageError{Err: err}
	}
	producer, err := stream.NewProducer(stream.ProducerConfig{Brokers: brokers, Topic: o.topic, Logger: base})
	if err != nil {
		return &config.UsageError{Err: err}
	}
	ensureTopic(ctx, brokers, o.topic, o.partitions, log)

	var models interface {
		api.ModelStore
		api.ItemRegistry
	} = store
	if o.modelTopic != "none" {
		topic := o.modelTopic
		if topic == "" {
			topic = modellog.DefaultTopic(o.namespace)
		}
		ml, err := modellog.New(brokers, topic)
		if err != nil {
			return &config.UsageError{Err: err}
		}
		defer ml.Close()
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := ml.Ensure(ectx); err != nil {
			log.Warn("ensuring the model log; admin registrations and rollbacks fail until Kafka is reachable", "topic", topic, "err", err)
		}
		cancel()
		models = &loggedModels{Store: store, log: ml, lg: log}
	}
	items := &cache.ItemCache{Extend: api.ColdStartExtender(store, base)}
	canaries := &api.Canaries{Store: store, Extend: api.ColdStartExtender(store, base)}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var online *api.Online
	var runner *eval.Runner
	rt := newRetrainer(o.retrain, store, base)
	var retrain api.Retrainer
	if rt != nil {
		retrain = rt
	}
	if o.eval.on {
		if online, runner, err = setupEval(ctx, o, brokers, store, items, reg, base, rt); err != nil {
			return err
		}
	}
	o.api.MetricsElsewhere = o.metricsAddr != ""
	srv, err := api.New(o.api, api.Deps{Items: items, Store: store, Publisher: producer, Intake: store, Registry: reg, Logger: base, Online: online,
		Models: models, Videos: models, Retrain: retrain, Canary: canaries, Reload: func(ctx context.Context) (bool, error) { return items.Refresh(ctx, store) },
		Checks: []api.Check{
			{Name: "redis", Fn: store.Ping},
			{Name: "model", Fn: func(context.Context) error {
				if items.Index() == nil {
					return errors.New("no model index loaded")
				}
				return nil
			}},
			{Name: "kafka", Fn: func(ctx context.Context) error { return topicReachable(ctx, brokers, o.topic) }},
		}})
	if err != nil {
		return &config.UsageError{Err: err}
	}
	e := srv.Echo()
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.listen, err)
	}
	e.Listener = ln
	e.Server.ReadHeaderTimeout = 5 * time.Second
	e.Server.ReadTimeout = 30 * time.Second
	e.Server.WriteTimeout = 30 * time.Second
	e.Server.IdleTimeout = 2 * time.Minute
	e.Server.ErrorLog = slog.NewLogLogger(base.Handler(), slog.LevelWarn)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return items.Follow(gctx, store, o.modelPoll, base) })
	g.Go(func() error { return srv.RunServedLog(gctx, o.shutdownTimeout) })
	g.Go(func() error { return srv.RunDriftWindows(gctx) })
	g.Go(func() error { return srv.RunCanary(gctx) })
	g.Go(func() error { return canaries.Follow(gctx, o.modelPoll, base.With("component", "canary")) })
	if runner != nil {
		g.Go(func() error { return runner.Run(gctx) })
	}
	side := func(addr, what string, mux *http.ServeMux) {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		ps := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := ps.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving %s: %w", what, err)
			}
			return nil
		})
		g.Go(func() error { <-gctx.Done(); return ps.Close() })
	}
	if o.pprofAddr != "" {
		side(o.pprofAddr, "pprof", http.NewServeMux())
	}
	if o.metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", srv.MetricsHandler())
		side(o.metricsAddr, "metrics", mux)
	}
	g.Go(func() error {
		if err := e.Start(""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving HTTP: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down: draining in-flight requests", "deadline", o.shutdownTimeout.String())
		sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
		defer cancel()
		if err := e.Shutdown(sctx); err != nil {
			return fmt.Errorf("shutting down HTTP: %w", err)
		}
		return nil
	})
	log.Info("api listening", "addr", ln.Addr().String(), "metrics_addr", o.metricsAddr, "rate_limit", o.api.RateLimit,
		"admin", o.api.AdminToken != "", "redis", o.redis.Addr, "namespace", o.namespace,
		"brokers", o.brokers, "topic", o.topic, "max_k", o.api.MaxK)
	err = g.Wait()
	// Every request has finished (or the deadline passed): flush the producer.
	err = errors.Join(err, producer.Close())
	log.Info("api stopped", "published", producer.Published())
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// ensureTopic creates the interactions topic if it is missing (as the updater
// does, with the same spec). Failure is logged, not fatal: the API still
// serves recommendations, and /readyz reports Kafka until it is reachable.
func ensureTopic(ctx context.Context, brokers []string, topic string, partitions int, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	counts, err := stream.PartitionCounts(ctx, brokers, topic)
	if err == nil {
		if _, ok := counts[topic]; ok {
			return
		}
		err = stream.EnsureTopics(ctx, brokers, stream.InteractionsTopic(topic, partitions), stream.InteractionsTopic(topic+".dlq", 1))
	}
	if err != nil {
		log.Warn("ensuring the interactions topic; intake fails until Kafka is reachable", "topic", topic, "err", err)
	}
}

// topicReachable is the Kafka readiness check: a metadata request answers and
// the topic exists.
func topicReachable(ctx context.Context, brokers []string, topic string) error {
	counts, err := stream.PartitionCounts(ctx, brokers, topic)
	if err != nil {
		return err
	}
	if _, ok := counts[topic]; !ok {
		return fmt.Errorf("topic %q does not exist", topic)
	}
	return nil
}
