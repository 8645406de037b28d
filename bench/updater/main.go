// Command updater is the updater's bench harness, on the real local Apache Kafka
// and Redis. It publishes a synthetic full-size model (7,176 users x 10,728
// videos, dim 64) under a fresh namespace, builds and runs the real updater
// binary in per-user mode, and prints:
//
//  1. max throughput: events/s to drain a pre-published backlog;
//
//  2. sustained rate: a producer at --rate for --duration while the updater
//     runs; consumer lag sampled each second, in seconds of input;
//
//  3. freshness at --fresh-rate: event produced -> embedding in Redis, p50/p99;
//
//  4. the updater's peak RSS (VmHWM) in each phase.
//
//     go run ./bench/updater --brokers 127.0.0.1:19092 --redis-addr 127.0.0.1:16379
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/bench/benchkit"
	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/promtext"
	"github.com/streamrec/streamrec/internal/stream"
)

const (
	users = 7176
	items = 10728
	dim   = 64
)

func main() { config.Main("bench-updater", run) }

type opts struct {
	brokers, redisAddr string
	backlog            int
	rate               int
	duration           time.Duration
	freshRate          int
	freshDuration      time.Duration
	partitions         int
	maxBatch           int
	phases             string
	cpuprofile         string
	freshFlush         time.Duration
	replayData         string
	updaterSrc         string
	updaterArgs        string
	poll               time.Duration
}

func run(ctx context.Context, args []string) error {
	var o opts
	fs := flag.NewFlagSet("bench-updater", flag.ContinueOnError)
	fs.StringVar(&o.brokers, "brokers", "127.0.0.1:19092", "Kafka broker")
	fs.StringVar(&o.redisAddr, "redis-addr", "127.0.0.1:16379", "Redis")
	fs.IntVar(&o.backlog, "backlog", 3_000_000, "events in the max-throughput backlog")
	fs.IntVar(&o.rate, "rate", 200_000, "sustained producer rate, events/s")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "sustained phase length")
	fs.IntVar(&o.freshRate, "fresh-rate", 10_000, "producer rate of the freshness phase, events/s")
	fs.DurationVar(&o.freshDuration, "fresh-duration", 20*time.Second, "freshness phase length")
	fs.IntVar(&o.partitions, "partitions", 8, "partitions of each bench topic")
	fs.IntVar(&o.maxBatch, "max-batch", 16384, "updater --max-batch")
	fs.StringVar(&o.phases, "phases", "max,sustained,fresh", "phases to run")
	fs.DurationVar(&o.freshFlush, "fresh-flush", 5*time.Millisecond, "updater --flush-interval in the freshness phase")
	fs.StringVar(&o.replayData, "replay-data", "", "phase 'replay': a KuaiRec folder the real replay tool publishes in full while the updater runs (peak RSS during a full-size replay)")
	fs.StringVar(&o.updaterSrc, "updater-src", ".", "the source tree whose ./cmd/updater is built and measured (for example a git worktree of another commit, to measure it beside this one with the same harness)")
	fs.StringVar(&o.updaterArgs, "updater-args", "", "extra updater flags, space-separated")
	fs.DurationVar(&o.poll, "poll", 100*time.Millisecond, "how often the harness scrapes the updater's /metrics (each scrape costs the updater CPU)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a 5s CPU profile of the updater during the max phase to this file")
	config.Usage(fs, "bench-updater: the updater's throughput, lag, freshness and RSS on real Kafka and Redis")
	if err := config.Parse(fs, args, nil); err != nil {
		return &config.UsageError{Err: err}
	}
	dir, err := os.MkdirTemp("", "bench-updater")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "updater")
	build := exec.Command("go", "build", "-o", bin, "./cmd/updater")
	build.Dir = o.updaterSrc
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the updater in %s: %v\n%s", o.updaterSrc, err, out)
	}
	if out, err := exec.Command("git", "-C", o.updaterSrc, "log", "-1", "--format=%h %s").Output(); err == nil {
		fmt.Printf("updater built from %s: %s", o.updaterSrc, out)
	}
	extraArgs = strings.Fields(o.updaterArgs)
	rdb := redis.NewClient(&redis.Options{Addr: o.redisAddr})
	defer rdb.Close()
	// Each phase gets its own namespace with a freshly published model, so that
	// no phase sees user records (input positions) left by another.
	fresh := func(phase string) (string, error) {
		ns := fmt.Sprintf("bench-upd-%s-%d", phase, time.Now().UnixNano())
		scfg := cache.DefaultConfig()
		scfg.Namespace = ns
		store, err := cache.NewStore(rdb, scfg)
		if err != nil {
			return "", err
		}
		if err := benchkit.PublishSyntheticModel(ctx, store, users, items, dim); err != nil {
			return "", err
		}
		fmt.Printf("\nmodel: %d users x %d videos, dim %d, namespace %s\n", users, items, dim, ns)
		return ns, nil
	}
	gen := newGen()
	phases := []struct {
		name string
		run  func(ns string) error
	}{
		{"max", func(ns string) error { return phaseMax(ctx, o, bin, ns, gen) }},
		{"sustained", func(ns string) error {
			return phaseRate(ctx, o, bin, ns, gen, o.rate, o.duration, "sustained", "--max-batch", strconv.Itoa(o.maxBatch))
		}},
		{"replay", func(ns string) error {
			if o.replayData == "" {
				return config.Usagef("phase replay needs --replay-data")
			}
			return phaseReplay(ctx, o, bin, ns)
		}},
		{"fresh", func(ns string) error {
			return phaseRate(ctx, o, bin, ns, gen, o.freshRate, o.freshDuration, "freshness",
				"--max-batch", strconv.Itoa(o.maxBatch), "--flush-interval", o.freshFlush.String())
		}},
	}
	for _, ph := range phases {
		if !strings.Contains(o.phases, ph.name) {
			continue
		}
		ns, err := fresh(ph.name)
		if err != nil {
			return err
		}
		err = ph.run(ns)
		cleanup(rdb, ns)
		if err != nil {
			return err
		}
	}
	return nil
}

// gen makes events (ids from stream.MakeEventID: unique per user).
type gen struct {
	r    *rand.Rand
	last []int64
	t    int64
}

func newGen() *gen {
	return &gen{r: rand.New(rand.NewPCG(2, 2)), last: make([]int64, users), t: 1593878903438}
}

func (g *gen) fill(evs []stream.Event) {
	for i := range evs {
		g.t++
		uid := uint32(g.r.IntN(users))
		ts := max(g.t, g.last[uid]+1)
		g.last[uid] = ts
		dur := int64(3000 + g.r.IntN(20000))
		play := g.r.Int64N(2 * dur)
		evs[i] = stream.Event{EventID: stream.MakeEventID(ts, 0), UserID: uid, VideoID: uint32(g.r.IntN(items)),
			PlayDurationMs: play, VideoDurationMs: dur, EventTimeMs: ts, WatchRatio: float64(play) / float64(dur),
			Source: stream.SourceReplay}
	}
}

type proc struct {
	cmd     *exec.Cmd
	metrics string
}

// extraArgs are --updater-args, passed to every updater run.
var extraArgs []string

func startUpdater(bin, brokers, redisAddr, ns, topic string, extra ...string) (*proc, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	args := append([]string{"--brokers", brokers, "--topic", topic, "--group", topic + "-g", "--changelog-topic", topic + ".state",
		"--redis-addr", redisAddr, "--namespace", ns, "--metrics-addr", addr, "--log-level", "warn", "--assign", "all"}, extra...)
	args = append(args, extraArgs...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &proc{cmd: cmd, metrics: addr}, nil
}

func (p *proc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
}

func (p *proc) metric(name string) float64 { return promtext.Scrape(p.metrics, name) }

// done is the number of messages the updater processed, from one scrape (a
// metric it does not export counts 0).
func (p *proc) done() float64 {
	body, ok := promtext.ScrapeBody(p.metrics)
	if !ok {
		return -1
	}
	n := 0.0
	for _, name := range []string{"streamrec_updater_events_applied_total", "streamrec_updater_cold_items_total",
		"streamrec_updater_duplicates_skipped_total", "streamrec_updater_redelivered_skipped_total"} {
		v, _ := promtext.Value(body, name)
		n += v
	}
	return n
}

func (p *proc) vmHWM() string { return benchkit.VmHWM(p.cmd.Process.Pid) }

func topicFor(o opts, phase string) (string, error) {
	t := fmt.Sprintf("bench-upd-%s-%d", phase, time.Now().UnixNano())
	return t, stream.EnsureTopics(context.Background(), []string{o.brokers}, stream.InteractionsTopic(t, o.partitions))
}

func phaseMax(ctx context.Context, o opts, bin, ns string, g *gen) error {
	topic, err := topicFor(o, "max")
	if err != nil {
		return err
	}
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: []string{o.brokers}, Topic: topic})
	if err != nil {
		return err
	}
	evs := make([]stream.Event, 100_000)
	for n := 0; n < o.backlog; n += len(evs) {
		g.fill(evs)
		if err := p.Publish(ctx, evs[:min(len(evs), o.backlog-n)]); err != nil {
			return err
		}
	}
	p.Close()
	fmt.Printf("\n== max throughput: %d events pre-published to %s\n", o.backlog, topic)
	u, err := startUpdater(bin, o.brokers, o.redisAddr, ns, topic, "--max-batch", strconv.Itoa(o.maxBatch))
	if err != nil {
		return err
	}
	defer u.stop()
	var first time.Time
	var startN float64
	deadline := time.Now().Add(10 * time.Minute)
	for {
		n := u.done()
		if n > 0 && first.IsZero() {
			first, startN = time.Now(), n
			if o.cpuprofile != "" {
				go profile(u.metrics, o.cpuprofile)
			}
		}
		if n >= float64(o.backlog) {
			el := time.Since(first)
			fmt.Printf("drained %d events in %v: %.0f events/s (per-user mode; from the first applied event)\n",
				o.backlog, el.Round(time.Millisecond), (n-startN)/el.Seconds())
			fmt.Printf("user writes: %.0f (coalesced), flushes: %.0f, peak RSS (VmHWM): %s\n",
				u.metric("streamrec_updater_user_writes_total"), u.metric("streamrec_updater_flushes_total"), u.vmHWM())
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("backlog not drained in 10 minutes (%v of %d)", n, o.backlog)
		}
		time.Sleep(o.poll)
	}
}

// phaseRate runs a producer at rate for d while the updater consumes, sampling
// its lag once a second.
func phaseRate(ctx context.Context, o opts, bin, ns string, g *gen, rate int, d time.Duration, name string, extra ...string) error {
	topic, err := topicFor(o, name)
	if err != nil {
		return err
	}
	fmt.Printf("\n== %s: producer at %d events/s for %v into %s; updater %v\n", name, rate, d, topic, extra)
	u, err := startUpdater(bin, o.brokers, o.redisAddr, ns, topic, extra...)
	if err != nil {
		return err
	}
	defer u.stop()
	for u.metric("streamrec_updater_users") < 0 { // wait for /metrics
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: []string{o.brokers}, Topic: topic, BatchTimeout: time.Millisecond})
	if err != nil {
		return err
	}
	defer p.Close()
	// Every tick, publish what is due by now (rate x elapsed), so that a slow
	// publish call is caught up at the next tick and the average rate holds.
	const tick = 10 * time.Millisecond
	evs := make([]stream.Event, 0, rate)
	published := 0
	start := time.Now()
	var lags []float64
	lastSample := start
	for time.Since(start) < d {
		due := int(float64(rate)*time.Since(start).Seconds()) - published
		if due > 0 {
			evs = evs[:min(due, cap(evs))]
			g.fill(evs)
			if err := p.Publish(ctx, evs); err != nil {
				return err
			}
			published += len(evs)
		}
		time.Sleep(tick)
		if time.Since(lastSample) >= time.Second { // one scrape a second
			lastSample = time.Now()
			backlog := float64(published) - u.done()
			lags = append(lags, backlog/float64(rate))
		}
	}
	achieved := float64(published) / time.Since(start).Seconds()
	for end := time.Now().Add(60 * time.Second); u.done() < float64(published) && time.Now().Before(end); {
		time.Sleep(o.poll)
	}
	caught := time.Since(start)
	s := slices.Clone(lags)
	slices.Sort(s)
	fmt.Printf("producer achieved %.0f events/s (%d events); updater done %.0f\n", achieved, published, u.done())
	if len(s) > 0 {
		fmt.Printf("lag in seconds of input, sampled each second: median %.3f, max %.3f (%d samples)\n", s[len(s)/2], s[len(s)-1], len(s))
	}
	fmt.Printf("all consumed %.1fs after the producer started (producer ran %v)\n", caught.Seconds(), d)
	fmt.Printf("freshness (event produced -> embedding in Redis), last 65536 events: p50 %.1f ms, p99 %.1f ms\n",
		1000*u.metric("streamrec_updater_freshness_p50_seconds"), 1000*u.metric("streamrec_updater_freshness_p99_seconds"))
	if n := u.metric("streamrec_updater_flush_seconds_count"); n > 0 {
		fmt.Printf("flushes: %.0f (%.0f/s), mean flush %.1f ms (changelog acks=all, then or beside the Redis write)\n",
			n, n/caught.Seconds(), 1000*u.metric("streamrec_updater_flush_seconds_sum")/n)
	}
	fmt.Printf("peak RSS (VmHWM): %s\n", u.vmHWM())
	return nil
}

func cleanup(rdb *redis.Client, ns string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, ns+":*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}

func profile(addr, file string) {
	resp, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=5")
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer f.Close()
	io.Copy(f, resp.Body)
}

// phaseReplay runs the real replay tool over a whole KuaiRec folder while the
// updater consumes, and reports the updater's peak RSS and rate.
func phaseReplay(ctx context.Context, o opts, bin, ns string) error {
	replayBin := filepath.Join(filepath.Dir(bin), "replay")
	if out, err := exec.Command("go", "build", "-o", replayBin, "./replay").CombinedOutput(); err != nil {
		return fmt.Errorf("building the replay: %v\n%s", err, out)
	}
	topic, err := topicFor(o, "replay")
	if err != nil {
		return err
	}
	fmt.Printf("\n== full replay of %s into %s while the updater runs\n", o.replayData, topic)
	u, err := startUpdater(bin, o.brokers, o.redisAddr, ns, topic, "--max-batch", strconv.Itoa(o.maxBatch))
	if err != nil {
		return err
	}
	defer u.stop()
	for u.metric("streamrec_updater_users") < 0 {
		time.Sleep(50 * time.Millisecond)
	}
	rep := exec.CommandContext(ctx, replayBin, "--data", o.replayData, "--brokers", o.brokers, "--topic", topic,
		"--progress=false", "--log-level", "warn")
	out, err := rep.Output()
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	published := 0
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "published" {
			published, _ = strconv.Atoi(f[1])
		}
		if strings.Contains(line, "rate") || strings.Contains(line, "published") {
			fmt.Println("   replay:" + strings.TrimPrefix(line, " "))
		}
	}
	start := time.Now()
	for end := time.Now().Add(10 * time.Minute); u.done() < float64(published) && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("updater done %.0f of %d events (%.1fs after the replay ended); applied %.0f, cold %.0f, duplicates %.0f\n",
		u.done(), published, time.Since(start).Seconds(), u.metric("streamrec_updater_events_applied_total"),
		u.metric("streamrec_updater_cold_items_total"), u.metric("streamrec_updater_duplicates_skipped_total"))
	fmt.Printf("updater peak RSS (VmHWM) during the full replay: %s\n", u.vmHWM())
	return nil
}
