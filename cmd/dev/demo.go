package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/devstack"
	"github.com/streamrec/streamrec/internal/stream"
)

// demo starts the embedded stack and drives the streaming plumbing end to end:
// topics, keyed publishing, a consumer group that writes per-user state to Redis
// and commits after the write, and the dead-letter topic. It says what it did.
func demo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev demo", flag.ContinueOnError)
	events := fs.Int("events", 20000, "events to publish")
	users := fs.Int("users", 500, "distinct users")
	poison := fs.Int("poison", 3, "malformed messages to publish (they go to the dead-letter topic)")
	partitions := fs.Int("partitions", 4, "partitions of the interactions topic")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	config.Usage(fs, "dev demo: the streaming pipeline on the embedded Kafka + Redis")
	if err := config.Parse(fs, args, nil); err != nil {
		return &config.UsageError{Err: err}
	}
	if *events <= 0 || *users <= 0 || *poison < 0 || *partitions <= 0 {
		return config.Usagef("--events, --users and --partitions must be positive, --poison not negative")
	}
	log, err := config.NewLogger(os.Stderr, *logLevel)
	if err != nil {
		return &config.UsageError{Err: err}
	}
	st, err := devstack.Start(devstack.Config{})
	if err != nil {
		return err
	}
	defer st.Close()
	brokers := []string{st.KafkaAddr()}
	say("embedded Kafka-protocol broker on %s, Redis-protocol server on %s", st.KafkaAddr(), st.RedisAddr())

	if err := stream.EnsureTopics(ctx, brokers,
		stream.InteractionsTopic(stream.DefaultTopic, *partitions),
		stream.InteractionsTopic(stream.DefaultDLQTopic, 1)); err != nil {
		return err
	}
	say("created topics %q (%d partitions, retention.ms=-1) and %q", stream.DefaultTopic, *partitions, stream.DefaultDLQTopic)

	// Publish: users watch videos in event-time order.
	prod, err := stream.NewProducer(stream.ProducerConfig{Brokers: brokers, Logger: log})
	if err != nil {
		return err
	}
	defer prod.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	evs := make([]stream.Event, *events)
	t0 := time.Date(2020, 7, 5, 0, 0, 0, 0, time.FixedZone("UTC+8", 8*3600)).UnixMilli()
	for i := range evs {
		ts := t0 + int64(i)*250
		dur := int64(3000 + rng.IntN(20000))
		play := int64(rng.Float64() * 1.6 * float64(dur))
		evs[i] = stream.Event{
			EventID: stream.MakeEventID(ts, 0), UserID: uint32(rng.IntN(*users)), VideoID: uint32(rng.IntN(10728)),
			PlayDurationMs: play, VideoDurationMs: dur, EventTimeMs: ts,
			WatchRatio: float64(play) / float64(dur), Source: stream.SourceReplay,
		}
	}
	start := time.Now()
	for i := 0; i < len(evs); i += 5000 {
		if err := prod.Publish(ctx, evs[i:min(i+5000, len(evs))]); err != nil {
			return err
		}
	}
	say("published %d events from %d users in %v (%.0f events/s), key = user id, murmur2, acks=all",
		len(evs), *users, time.Since(start).Round(time.Millisecond), float64(len(evs))/time.Since(start).Seconds())

	if *poison > 0 {
		w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: stream.DefaultTopic, Balancer: &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
		bad := []string{"not an event", "v1,1,2,3,4,5,6,NaN,replay,7", "v1,1,99999999999,3,4,5,6,0.5,api,7"}
		var msgs []kafka.Message
		for i := 0; i < *poison; i++ {
			msgs = append(msgs, kafka.Message{Key: []byte("1"), Value: []byte(bad[i%len(bad)])})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return fmt.Errorf("publishing malformed messages: %w", err)
		}
		w.Close()
		say("published %d malformed messages", *poison)
	}

	// Consume as a group; per batch, write each user's count and last event id to
	// Redis in one pipeline, and only then let the consumer commit.
	rdb := redis.NewClient(&redis.Options{Addr: st.RedisAddr()})
	defer rdb.Close()
	// The embedded broker (kfake) answers JoinGroup v1, which kafka-go speaks,
	// without the member id, so the demo reads every partition by manual
	// assignment and commits to the group as a standalone consumer.
	cons, err := stream.NewConsumer(stream.ConsumerConfig{Brokers: brokers, GroupID: "demo", Logger: log,
		Partitions: []int{stream.AllPartitions}})
	if err != nil {
		return err
	}
	var handled atomic.Int64
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start = time.Now()
	go func() {
		done <- cons.Run(cctx, func(ctx context.Context, batch []stream.Record) error {
			p := rdb.Pipeline()
			for _, r := range batch {
				key := "demo:user:" + strconv.FormatUint(uint64(r.Event.UserID), 10)
				p.HIncrBy(ctx, key, "events", 1)
				p.HSet(ctx, key, "last_event_id", r.Event.EventID)
			}
			if _, err := p.Exec(ctx); err != nil {
				return err
			}
			handled.Add(int64(len(batch)))
			return nil
		})
	}()
	deadline := time.After(60 * time.Second)
	for handled.Load() < int64(len(evs)) || cons.Stats().DeadLettered < uint64(*poison) {
		select {
		case <-deadline:
			cancel()
			return fmt.Errorf("demo: consumed %d of %d events in 60s", handled.Load(), len(evs))
		case err := <-done:
			cancel()
			return fmt.Errorf("demo consumer stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	stats := cons.Stats()
	cancel()
	if err := <-done; err != nil {
		return err
	}
	if err := cons.Close(); err != nil {
		return err
	}
	n, err := rdb.Keys(ctx, "demo:user:*").Result()
	if err != nil {
		return err
	}
	say("consumed %d events in %v (%.0f events/s) for group %q, offsets committed after each Redis pipeline",
		stats.Handled, elapsed.Round(time.Millisecond), float64(stats.Handled)/elapsed.Seconds(), "demo")
	say("dead-lettered %d malformed messages, by reason: %v", stats.DeadLettered, cons.DeadLetterReasons())
	say("Redis holds state for %d users", len(n))
	say("not built yet: offline training, replay of KuaiRec, the updater's SGD and the API (see README, Status)")
	return nil
}

func say(format string, args ...any) { fmt.Printf("demo: "+format+"\n", args...) }
