package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/modellog"
)

func init() {
	commands["restore"] = command{
		summary: "write Redis's model back from the model log topic (--follow: keep Redis and the log in step)",
		run:     func(ctx context.Context, args []string) error { return restoreMain(ctx, args, os.Stdout, os.Stderr) },
	}
}

const restoreUsage = `usage: ingestor restore [--follow] [--brokers B] [--model-topic T] [redis flags]

The model log (--model-topic, default <namespace>.models) is a compacted Kafka topic
holding every model version Redis serves, as train --model-topic writes it. restore
writes back into Redis, from the log, what Redis lacks: the current and previous
versions (items, tower weights, user features, offline user vectors, popularity,
candidate sets, registered videos), the version pointers, and each version's offline
serving record of every user without one. Everything is written only where absent,
so an online embedding the updater rebuilt from its changelog is never replaced.
Then it prints a JSON report and exits.

--follow keeps running: whenever Redis loses the model (its marker key
<namespace>:marker:model-log is gone: a FLUSHALL, a restart without persistence) it
restores it at once; meanwhile it copies to the log what Redis gained (a version
published without --model-topic, videos registered through the API, the pointers
after a rollback) and deletes from the log the versions Redis no longer points at.`

// modelLogOpts are the model log flags of train and restore.
type modelLogOpts struct{ brokers, topic string }

func (m *modelLogOpts) register(fs *flag.FlagSet, defTopic string) {
	fs.StringVar(&m.brokers, "brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated: the model log's, and train --from-log's interactions topic's")
	fs.StringVar(&m.topic, "model-topic", defTopic, "the model log: a compacted topic holding every published model version, from which 'ingestor restore' rebuilds Redis ('' for <namespace>.models; none: off)")
}

// open returns the restorer over st and the log, creating the topic; nil
// when the log is off.
func (m *modelLogOpts) open(ctx context.Context, st *cache.Store, logger *slog.Logger) (*modellog.Restorer, error) {
	if m.topic == "none" {
		return nil, nil
	}
	topic := m.topic
	if topic == "" {
		topic = modellog.DefaultTopic(st.Namespace())
	}
	l, err := modellog.New(strings.Split(m.brokers, ","), topic)
	if err != nil {
		return nil, config.Usagef("%v", err)
	}
	ectx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := l.Ensure(ectx); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("%w (use --model-topic none to run without the model log)", err)
	}
	return &modellog.Restorer{Store: st, Log: l, Logger: logger.With("component", "model-log")}, nil
}

type restoreOpts struct {
	modelLog  modelLogOpts
	redis     cache.ClientOptions
	namespace string
	follow    bool
	every     time.Duration
	logLevel  string
}

func parseRestoreFlags(args []string, stderr io.Writer) (*restoreOpts, error) {
	o := &restoreOpts{redis: cache.DefaultClientOptions()}
	o.redis.ReadTimeout, o.redis.WriteTimeout = 30*time.Second, 30*time.Second
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config.Usage(fs, restoreUsage)
	o.modelLog.register(fs, "")
	cache.RegisterClientFlags(fs, &o.redis)
	fs.StringVar(&o.namespace, "namespace", cache.DefaultNamespace, "Redis key namespace")
	fs.BoolVar(&o.follow, "follow", false, "keep running: restore whenever Redis loses the model, and copy to the log what Redis gains")
	fs.DurationVar(&o.every, "every", time.Second, "with --follow: how often to check Redis (besides every model-update notice)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := config.Parse(fs, args, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, config.Usagef("%v", err)
	}
	switch {
	case fs.NArg() > 0:
		return nil, config.Usagef("restore: unexpected arguments %q", fs.Args())
	case o.modelLog.topic == "none":
		return nil, config.Usagef("restore: --model-topic none: restore needs the model log")
	case o.modelLog.brokers == "":
		return nil, config.Usagef("restore: --brokers must not be empty")
	case o.every < 10*time.Millisecond:
		return nil, config.Usagef("restore: --every %v: want at least 10ms", o.every)
	}
	if err := o.redis.Validate(); err != nil {
		return nil, config.Usagef("restore: %v", err)
	}
	return o, nil
}

func restoreMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseRestoreFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logger, err := config.NewLogger(stderr, o.logLevel)
	if err != nil {
		return config.Usagef("restore: %v", err)
	}
	st, rdb, err := openStore(ctx, o.redis, o.namespace)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer rdb.Close()
	r, err := o.modelLog.open(ctx, st, logger)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer r.Log.Close()
	r.Every = o.every
	if o.follow {
		logger.Info("following", "topic", r.Log.Topic(), "namespace", o.namespace, "redis", o.redis.Addr, "every", o.every.String())
		return r.Run(ctx)
	}
	rep, err := r.Restore(ctx)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := st.SetMarker(ctx, modellog.MarkerName, time.Now().UnixMilli(), time.Hour); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
