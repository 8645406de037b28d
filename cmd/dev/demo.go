package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/devstack"
	"github.com/streamrec/streamrec/internal/promtext"
	"github.com/streamrec/streamrec/internal/stream"
)

// demo runs the whole pipeline, with the real binaries, on the embedded stack:
// synthetic KuaiRec -> ingestor train (publish to Redis) -> updater -> replay
// through Kafka -> online learning, and says what happened at each step.
func demo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev demo", flag.ContinueOnError)
	out := fs.String("out", "out/demo", "folder for the synthetic data, the model file and the training report")
	scale := fs.String("scale", "tiny", "synthetic scale: tiny or full")
	cut := fs.String("cut", "2020-08-27T00:00:00+08:00", "train before this time, replay from it")
	rate := fs.Int("max-rate", 2000, "replay rate limit in events/s (0: as fast as possible)")
	poison := fs.Int("poison", 3, "malformed messages to publish (they go to the dead-letter topic)")
	config.Usage(fs, "dev demo: the whole streamrec pipeline on the embedded Kafka + Redis")
	if err := config.Parse(fs, args, nil); err != nil {
		return &config.UsageError{Err: err}
	}
	if *scale != "tiny" && *scale != "full" {
		return config.Usagef("--scale %q: want tiny or full", *scale)
	}
	start := time.Now()
	st, err := devstack.Start(devstack.Config{})
	if err != nil {
		return err
	}
	defer st.Close()
	say("1/6 embedded stack: Kafka-protocol broker (kfake) on %s, Redis-protocol server (miniredis) on %s", st.KafkaAddr(), st.RedisAddr())

	bins := filepath.Join(*out, "bin")
	say("2/6 building the binaries (ingestor, updater, replay) into %s", bins)
	for _, b := range [][2]string{{"ingestor", "./cmd/ingestor"}, {"updater", "./cmd/updater"}, {"replay", "./replay"}} {
		if err := runCmd(ctx, "go", "build", "-o", filepath.Join(bins, b[0]), b[1]); err != nil {
			return fmt.Errorf("building %s: %w", b[0], err)
		}
	}
	data := filepath.Join(*out, "data")
	if _, err := os.Stat(filepath.Join(data, "KuaiRec 2.0", "data", "big_matrix.csv")); err != nil {
		say("3/6 generating a synthetic KuaiRec (%s) into %s", *scale, data)
		if err := runCmd(ctx, filepath.Join(bins, "ingestor"), "synth", "--out", data, "--scale", *scale, "--seed", "1"); err != nil {
			return err
		}
	} else {
		say("3/6 reusing the synthetic KuaiRec in %s", data)
	}
	report := filepath.Join(*out, "report.json")
	say("4/6 training the two-tower model on events before %s, evaluating on the small matrix, publishing to Redis", *cut)
	if err := runCmd(ctx, filepath.Join(bins, "ingestor"), "train", "--data", data, "--cut", *cut, "--report", report,
		"--model-out", filepath.Join(*out, "model.srm"), "--redis-addr", st.RedisAddr(), "--quiet", "--log-level", "warn"); err != nil {
		return err
	}

	// The updater reads every partition by manual assignment: the embedded
	// broker answers JoinGroup v1 (kafka-go's) without the member id.
	brokers := []string{st.KafkaAddr()}
	if err := stream.EnsureTopics(ctx, brokers, stream.InteractionsTopic(stream.DefaultTopic, 4)); err != nil {
		return err
	}
	metrics, err := freeAddr()
	if err != nil {
		return err
	}
	updLog, err := os.Create(filepath.Join(*out, "updater.log"))
	if err != nil {
		return err
	}
	defer updLog.Close()
	upd := exec.CommandContext(ctx, filepath.Join(bins, "updater"), "--brokers", st.KafkaAddr(), "--redis-addr", st.RedisAddr(),
		"--assign", "all", "--metrics-addr", metrics, "--log-level", "info")
	upd.Stderr = updLog
	if err := upd.Start(); err != nil {
		return err
	}
	defer func() {
		upd.Process.Signal(os.Interrupt) // graceful: drain, flush, commit
		upd.Wait()
	}()
	say("5/6 updater started (per-user SGD; changelog topic updater.user-state; metrics on http://%s/metrics; log %s)", metrics, updLog.Name())
	if err := waitMetrics(ctx, metrics); err != nil {
		return err
	}

	say("6/6 replaying the events after the cut through Kafka at up to %d events/s; the updater learns from each", *rate)
	rep := exec.CommandContext(ctx, filepath.Join(bins, "replay"), "--data", data, "--cut", *cut, "--brokers", st.KafkaAddr(),
		"--max-rate", strconv.Itoa(*rate), "--progress=false", "--log-level", "warn")
	repOut, err := rep.StdoutPipe()
	if err != nil {
		return err
	}
	rep.Stderr = os.Stderr
	if err := rep.Start(); err != nil {
		return err
	}
	published := 0
	sc := bufio.NewScanner(repOut)
	go func() {
		for sc.Scan() {
			line := sc.Text()
			fmt.Println("   replay: " + line)
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "published" {
				published, _ = strconv.Atoi(f[1])
			}
		}
	}()
	// The learning curve: prequential (test-then-train) MAE per second.
	fmt.Println("   second  events  online MAE in the window (prediction made before each update)")
	var lastN, lastErr float64
	tick := time.NewTicker(time.Second)
	repDone := make(chan error, 1)
	go func() { repDone <- rep.Wait() }()
	var repErr error
	running := true
	for sec := 1; running || scrape(metrics, "streamrec_updater_events_applied_total") > lastN; sec++ {
		select {
		case repErr = <-repDone:
			running = false
		case <-tick.C:
		}
		n := scrape(metrics, "streamrec_updater_events_applied_total")
		e := scrape(metrics, "streamrec_updater_prequential_abs_error_total")
		if n > lastN {
			fmt.Printf("   %6d  %6.0f  %.4f\n", sec, n-lastN, (e-lastErr)/(n-lastN))
		}
		lastN, lastErr = n, e
		if !running {
			time.Sleep(300 * time.Millisecond)
		}
	}
	tick.Stop()
	if repErr != nil {
		return fmt.Errorf("replay: %w", repErr)
	}
	if *poison > 0 {
		if err := publishPoison(ctx, brokers, *poison); err != nil {
			return err
		}
	}
	// Wait for the updater to account for everything.
	done := func() float64 {
		return scrape(metrics, "streamrec_updater_events_applied_total") + scrape(metrics, "streamrec_updater_cold_items_total") +
			scrape(metrics, "streamrec_updater_duplicates_skipped_total")
	}
	for end := time.Now().Add(60 * time.Second); (done() < float64(published) || scrape(metrics, "streamrec_updater_dead_letters_total") < float64(*poison)) && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
	}
	applied := scrape(metrics, "streamrec_updater_events_applied_total")
	say("updater: %.0f events applied, %.0f cold items (no embedding: counted, HWM advanced), %.0f duplicates skipped, %.0f dead letters, %.0f users held",
		applied, scrape(metrics, "streamrec_updater_cold_items_total"), scrape(metrics, "streamrec_updater_duplicates_skipped_total"),
		scrape(metrics, "streamrec_updater_dead_letters_total"), scrape(metrics, "streamrec_updater_users"))
	if applied > 0 {
		say("online MAE over the whole replay: %.4f; freshness (produced -> embedding in Redis): p50 %.1f ms, p99 %.1f ms",
			scrape(metrics, "streamrec_updater_prequential_abs_error_total")/applied,
			1000*scrape(metrics, "streamrec_updater_freshness_p50_seconds"), 1000*scrape(metrics, "streamrec_updater_freshness_p99_seconds"))
	}
	if err := showUser(ctx, st.RedisAddr()); err != nil {
		return err
	}
	say("done in %v. Not built yet: the HTTP API with online metrics and drift (see README, Status).", time.Since(start).Round(time.Second))
	return nil
}

func say(format string, args ...any) { fmt.Printf("demo: "+format+"\n", args...) }

func runCmd(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args[:min(1, len(args))], " "), err)
	}
	return nil
}

// showUser prints one active user's top-10 under the current model from Redis.
func showUser(ctx context.Context, addr string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	store, err := cache.NewStore(rdb, cache.DefaultConfig())
	if err != nil {
		return err
	}
	v, err := store.CurrentVersion(ctx)
	if err != nil {
		return err
	}
	idx, err := cache.LoadItemIndex(ctx, store, v)
	if err != nil {
		return err
	}
	for uid := uint32(0); uid < 10000; uid++ {
		rec, ok, err := store.GetUser(ctx, v, uid)
		if err != nil {
			return err
		}
		if !ok || rec.LastEventID == 0 || len(rec.Embedding) != idx.Dim() {
			continue
		}
		top := idx.TopK(nil, rec.Embedding, 10, cache.TopKOptions{})
		ids := make([]string, len(top))
		for i, s := range top {
			ids[i] = strconv.FormatUint(uint64(s.ID), 10)
		}
		say("user %d (model %s, embedding updated online, last event %d, age %v): top-10 videos %s",
			uid, v, rec.LastEventID, rec.Age(time.Now()).Round(time.Millisecond), strings.Join(ids, " "))
		return nil
	}
	say("no user with an online-updated embedding found")
	return nil
}

func publishPoison(ctx context.Context, brokers []string, n int) error {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: stream.DefaultTopic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	bad := []string{"not an event", "v1,1,2,3,4,5,6,NaN,replay,7", "v1,1,99999999999,3,4,5,6,0.5,api,7"}
	var msgs []kafka.Message
	for i := 0; i < n; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte("1"), Value: []byte(bad[i%len(bad)])})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publishing malformed messages: %w", err)
	}
	say("published %d malformed messages: the updater sends them to %s with their reasons", n, stream.DefaultDLQTopic)
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitMetrics(ctx context.Context, addr string) error {
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); {
		if scrape(addr, "streamrec_updater_users") >= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("the updater's metrics did not come up on %s", addr)
}

func scrape(addr, name string) float64 { return promtext.Scrape(addr, name) }
