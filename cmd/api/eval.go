package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamrec/streamrec/internal/api"
	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/online"
	"github.com/streamrec/streamrec/internal/online/drift"
	"github.com/streamrec/streamrec/internal/online/eval"
	"github.com/streamrec/streamrec/internal/stream"
)

// evalPartitions parses --eval-partitions for a topic of n partitions.
func evalPartitions(spec string, n int) ([]int, error) {
	switch spec {
	case "all":
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out, nil
	case "none", "group":
		return nil, nil
	}
	seen := map[int]bool{}
	var out []int
	for _, f := range strings.Split(spec, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p < 0 || p >= n {
			return nil, fmt.Errorf("%q: want all, none or partitions in [0, %d)", f, n)
		}
		if seen[p] {
			return nil, fmt.Errorf("partition %d given twice", p)
		}
		seen[p] = true
		out = append(out, p)
	}
	return out, nil
}

// setupEval reads the interactions topic's partition count (a served list is
// indexed under its user's partition, so it must be the real one) and builds
// the served-list writer's configuration and the runner of this replica's
// partitions (nil for --eval-partitions none).
func setupEval(ctx context.Context, o *options, brokers []string, store *cache.Store, items *cache.ItemCache, reg prometheus.Registerer, log *slog.Logger, rt *retrainer) (*api.Online, *eval.Runner, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	counts, err := stream.PartitionCounts(cctx, brokers, o.topic)
	cancel()
	n, ok := counts[o.topic]
	if err != nil || !ok {
		return nil, nil, fmt.Errorf("--eval needs the partition count of topic %q: %v", o.topic, err)
	}
	parts, err := evalPartitions(o.eval.partitions, n)
	if err != nil {
		return nil, nil, &config.UsageError{Err: fmt.Errorf("--eval-partitions: %w", err)}
	}
	cfg := o.eval.cfg
	cfg.Scorer = api.IndexScorer{Items: items}
	cfg.Popularity = (&api.IndexPopularity{Items: items}).Percentile
	// The drift monitor's served popularity is by what users watch now (the
	// last 20,000 interactions this replica evaluates), re-ranked every 1,000.
	live, err := eval.NewLivePopularity(20000, 1000, func() int {
		if ix := items.Index(); ix != nil {
			return ix.Len()
		}
		return 0
	})
	if err != nil {
		return nil, nil, err
	}
	cfg.ServedPopularity, cfg.Watched = live.Percentile, live.Add
	cfg.Twin = &api.TwinScorer{Items: items, Offline: store, Log: log.With("component", "twin")}
	online := &api.Online{Log: store, Windows: store, Group: o.eval.group, Window: cfg.Window, CountWindow: cfg.CountWindow,
		Partitions: n, Queue: o.eval.servedQueue}
	if o.eval.drift {
		alerts := api.NewDriftAlerts()
		if err := reg.Register(alerts); err != nil {
			return nil, nil, err
		}
		actions := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrec_drift_actions_total",
			Help: "Drift actions taken, by action and result."}, []string{"action", "result"})
		if err := reg.Register(actions); err != nil {
			return nil, nil, err
		}
		raise := raiseLR(ctx, o, brokers, actions, log)
		if rt != nil {
			rt.actions = actions
		}
		retrain := rt.onAlert(ctx, o.retrain.detectors, o.retrain.minInterval, o.retrain.delay)
		dets, dists := drift.DefaultSpecs()
		m, err := drift.NewMonitor(dets, dists, log.With("component", "drift"), func(a drift.Alert) {
			alerts.WithLabelValues(a.Detector, a.Signal).Inc()
			raise(a)
			retrain(a)
		})
		if err != nil {
			return nil, nil, err
		}
		online.Drift, cfg.Observe, cfg.ObserveKeyed = m, m.Observe, m.ObserveKeyed
	}
	group := ""
	if o.eval.partitions == "group" {
		group = o.eval.kafkaGroup
	} else if len(parts) == 0 {
		return online, nil, nil
	}
	effect := api.NewEffectHistogram()
	r, err := eval.NewRunner(eval.RunnerConfig{Brokers: brokers, Topic: o.topic, Partitions: parts, KafkaGroup: group, Group: o.eval.group, Eval: cfg,
		Store: store, Batch: o.eval.batch, FlushEvery: o.eval.flushEvery, FromFirst: o.eval.fromFirst, Log: log.With("component", "eval"),
		Applied: effect.Observe})
	if err != nil {
		return nil, nil, &config.UsageError{Err: err}
	}
	if err := reg.Register(effect); err != nil {
		return nil, nil, err
	}
	log.Info("online evaluation on", "partitions", parts, "kafka_group", group, "of", n, "group", o.eval.group, "window", cfg.Window.String(), "open_for", cfg.OpenFor.String())
	return online, r, nil
}

// raiseLR is the drift action "raise the learning rate": with
// --drift-lr-factor, an alert of one of --drift-lr-detectors writes a control
// record to the updater's control topic (online.LRControlWriter), off the
// alert's goroutine; logged and counted. Without it, a no-op.
func raiseLR(ctx context.Context, o *options, brokers []string, actions *prometheus.CounterVec, log *slog.Logger) func(drift.Alert) {
	if o.eval.lrFactor == 0 {
		return func(drift.Alert) {}
	}
	topic := online.LRControlTopic(o.topic)
	if err := online.EnsureLRControlTopic(ctx, brokers, topic); err != nil {
		log.Warn("drift action: the control topic could not be created; raising the learning rate is off", "topic", topic, "err", err)
		return func(drift.Alert) {}
	}
	w := online.NewLRControlWriter(brokers, topic, o.eval.lrDelay)
	go func() { <-ctx.Done(); w.Close() }()
	on := map[string]bool{}
	for _, d := range strings.Split(o.eval.lrDetectors, ",") {
		on[strings.TrimSpace(d)] = true
	}
	return func(a drift.Alert) {
		if !on[a.Detector] || !drift.Worse(a) {
			return
		}
		go func() {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			c, err := w.Raise(wctx, o.eval.lrFactor, o.eval.lrFor, "drift alert "+a.Detector+" on "+a.Signal)
			if err != nil {
				actions.WithLabelValues("raise_lr", "error").Inc()
				log.Warn("drift action: raising the learning rate failed", "detector", a.Detector, "err", err)
				return
			}
			actions.WithLabelValues("raise_lr", "ok").Inc()
			log.Warn("drift action: learning rate raised", "detector", a.Detector, "signal", a.Signal, "factor", c.Factor,
				"from", time.UnixMilli(c.AtMs).UTC(), "until", time.UnixMilli(c.UntilMs).UTC(), "control", c.ID)
		}()
	}
}
