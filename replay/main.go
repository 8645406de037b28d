package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/stream"
)

func main() {
	config.Main("replay", func(ctx context.Context, args []string) error { return run(ctx, args, os.Stdout, os.Stderr) })
}

// options are the parsed flags.
type options struct {
	Data       string
	Cut        timeFlag
	From       timeFlag
	Until      timeFlag
	Limit      int64
	Topic      string
	Brokers    []string
	Partitions int
	Speedup    float64
	MaxRate    float64
	Burst      int
	Resume     bool
	ResumeScan int
	Batch      int
	Linger     time.Duration
	LogLevel   string
	Progress   bool
	CPUProfile string
	// WithRequests is the API base URL of --with-requests ("" off).
	WithRequests       string
	RequestConcurrency int
	RequestK           int
	RequestCandidates  string
}

func parseOptions(args []string, stderr io.Writer, lookup func(string) (string, bool)) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := "127.0.0.1:9092"
	fs.StringVar(&o.Data, "data", "", "KuaiRec folder: DIR, DIR/KuaiRec 2.0 or its data folder (real or synthetic); required")
	fs.Var(&o.Cut, "cut", "the ingestor's cut: replay events at or after it (RFC 3339 with offset, or Unix seconds); default: everything")
	fs.Var(&o.From, "from", "start at this event time (inclusive; RFC 3339 or Unix seconds)")
	fs.Var(&o.Until, "until", "stop before this event time (exclusive; RFC 3339 or Unix seconds)")
	fs.Int64Var(&o.Limit, "limit", 0, "publish at most N events in this run (already published events do not count); 0: no limit")
	fs.StringVar(&o.Topic, "topic", stream.DefaultTopic, "interactions topic")
	fs.StringVar(&brokers, "brokers", brokers, "Kafka brokers, comma-separated host:port")
	fs.IntVar(&o.Partitions, "partitions", 8, "partitions when creating a missing topic (an existing topic keeps its own)")
	fs.Float64Var(&o.Speedup, "speedup", 0, "event time runs X times faster than wall time (e.g. 1000); 0: as fast as possible")
	fs.Float64Var(&o.MaxRate, "max-rate", 0, "at most this many events/s (token bucket); 0: unlimited")
	fs.IntVar(&o.Burst, "burst", 0, "token-bucket size for --max-rate; 0: max-rate/100, at least 1")
	fs.BoolVar(&o.Resume, "resume", true, "skip events the topic already holds (see the resume rule); false publishes the whole selection")
	fs.IntVar(&o.ResumeScan, "resume-scan", 100000, "on resume, how many messages back from each partition's end to look for the last replay message (>= 1000)")
	fs.IntVar(&o.Batch, "batch", 5000, "messages per partition chunk: one produce request (split further to stay within 1 MiB)")
	fs.DurationVar(&o.Linger, "linger", 2*time.Millisecond, "paced mode: partial chunks are sent when the next event is due more than this ahead (the batch timeout)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.Progress, "progress", true, "draw a progress bar on stderr")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the publishing phase to this file (for benchmarks)")
	fs.StringVar(&o.WithRequests, "with-requests", "", "API base URL: at the start of each of a user's sessions in the log (a gap of more than 30 min), request the user's recommendations before its events are produced, so that the online metrics join the replay to served lists")
	fs.IntVar(&o.RequestConcurrency, "request-concurrency", 8, "--with-requests: requests in flight")
	fs.IntVar(&o.RequestK, "request-k", 25, "--with-requests: list length")
	fs.StringVar(&o.RequestCandidates, "request-candidates", "", "--with-requests: candidate set of the lists (\"\": the catalogue)")
	config.Usage(fs, "replay: publish KuaiRec interactions to Kafka in event-time order, resumably")
	if err := config.Parse(fs, args, lookup); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &config.UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return nil, config.Usagef("unexpected arguments %q", fs.Args())
	}
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			o.Brokers = append(o.Brokers, b)
		}
	}
	switch {
	case o.Data == "":
		return nil, config.Usagef("--data is required")
	case len(o.Brokers) == 0:
		return nil, config.Usagef("--brokers is empty")
	case o.Topic == "":
		return nil, config.Usagef("--topic is empty")
	case o.Partitions <= 0 || o.Partitions > 10000:
		return nil, config.Usagef("--partitions %d: want 1..10000", o.Partitions)
	case o.Speedup < 0:
		return nil, config.Usagef("--speedup %v: want >= 0", o.Speedup)
	case o.MaxRate < 0:
		return nil, config.Usagef("--max-rate %v: want >= 0", o.MaxRate)
	case o.Burst < 0:
		return nil, config.Usagef("--burst %d: want >= 0", o.Burst)
	case o.Limit < 0:
		return nil, config.Usagef("--limit %d: want >= 0", o.Limit)
	case o.ResumeScan < 1000:
		return nil, config.Usagef("--resume-scan %d: want >= 1000", o.ResumeScan)
	case o.Batch <= 0 || o.Batch > 1_000_000:
		return nil, config.Usagef("--batch %d: want 1..1000000", o.Batch)
	case o.Linger <= 0:
		return nil, config.Usagef("--linger %v: want > 0", o.Linger)
	case o.WithRequests != "" && !strings.HasPrefix(o.WithRequests, "http://") && !strings.HasPrefix(o.WithRequests, "https://"):
		return nil, config.Usagef("--with-requests %q: want an http:// or https:// URL", o.WithRequests)
	case o.RequestConcurrency < 1 || o.RequestConcurrency > 1024 || o.RequestK < 1:
		return nil, config.Usagef("--request-concurrency %d (1..1024) and --request-k %d (>= 1)", o.RequestConcurrency, o.RequestK)
	case o.Until.set && o.Until.ms <= max(o.From.ms, o.Cut.ms):
		return nil, config.Usagef("--until %s is not after --from/--cut", o.Until.raw)
	}
	if o.Burst == 0 && o.MaxRate > 0 {
		o.Burst = max(1, int(o.MaxRate/100))
	}
	return o, nil
}

// summary is what a run did; it is printed on stdout at the end.
type summary struct {
	Run               string
	Topic             string
	Partitions        int
	Load, Publish     time.Duration
	WindowStart       int // the positions selected by --cut, --from and --until
	WindowEnd         int
	Published         int64 // acknowledged by the broker in this run
	Skipped           int64 // already in the topic (resume rule)
	FirstMs, LastMs   int64 // event times of the first and last acknowledged event
	StartPos, StopPos int   // positions [StartPos, StopPos) walked
	Stop              string
	ResumedPartitions int
	// Requests and RequestErrors count --with-requests' recommendation requests.
	Requests, RequestErrors int64
	WithRequests            bool
}

func (s *summary) write(w io.Writer) {
	rate := 0.0
	if s.Publish > 0 {
		rate = float64(s.Published) / s.Publish.Seconds()
	}
	fmt.Fprintf(w, "replay summary\n")
	fmt.Fprintf(w, "  run            %s  topic %s (%d partitions)\n", s.Run, s.Topic, s.Partitions)
	fmt.Fprintf(w, "  stopped        %s; walked positions [%d, %d) of the window [%d, %d)\n", s.Stop, s.StartPos, s.StopPos, s.WindowStart, s.WindowEnd)
	fmt.Fprintf(w, "  published      %d events (acks=all)\n", s.Published)
	fmt.Fprintf(w, "  skipped        %d events already published (%d partitions resumed)\n", s.Skipped, s.ResumedPartitions)
	fmt.Fprintf(w, "  rate           %.0f events/s over %v publishing\n", rate, s.Publish.Round(time.Millisecond))
	fmt.Fprintf(w, "  loading        %v (not in the rate)\n", s.Load.Round(time.Millisecond))
	fmt.Fprintf(w, "  event time     %s .. %s\n", fmtMs(s.FirstMs), fmtMs(s.LastMs))
	if s.WithRequests {
		fmt.Fprintf(w, "  requests       %d recommendation requests at session starts (%d failed)\n", s.Requests, s.RequestErrors)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "sim":
			return runSim(ctx, args[1:], stdout, stderr)
		case "probe":
			return runProbe(ctx, args[1:], stdout, stderr)
		case "report":
			return runReport(ctx, args[1:], stdout, stderr)
		}
	}
	o, err := parseOptions(args, stderr, os.LookupEnv)
	if err != nil {
		return err
	}
	logger, err := config.NewLogger(stderr, o.LogLevel)
	if err != nil {
		return &config.UsageError{Err: err}
	}
	dir, err := kuairec.ResolveDataDir(o.Data)
	if err != nil {
		return &config.UsageError{Err: err}
	}

	// Loading, timed apart from publishing.
	t0 := time.Now()
	var prog io.Writer
	if o.Progress {
		prog = stderr
	}
	ds, _, err := kuairec.Load(dir, kuairec.Options{SkipSmall: true, SkipDaily: true, Progress: prog})
	if err != nil {
		return fmt.Errorf("loading %s: %w", dir, err)
	}
	pl := newPlan(ds.Big)
	runID := pl.runID(o.Cut.ms)
	start, end := pl.window(o.Cut.ms, o.From.ms, o.Until.ms)
	loadTime := time.Since(t0)
	logger.Info("loaded", "dir", dir, "events", pl.Len(), "window_start", start, "window_end", end, "run", runID, "elapsed", loadTime.String())

	// The topic: existing partition count wins; create if missing.
	counts, err := stream.PartitionCounts(ctx, o.Brokers, o.Topic)
	if err != nil {
		return err
	}
	parts, exists := counts[o.Topic]
	if !exists {
		if err := stream.EnsureTopics(ctx, o.Brokers, stream.InteractionsTopic(o.Topic, o.Partitions)); err != nil {
			return err
		}
		parts = o.Partitions
	} else if parts != o.Partitions {
		logger.Info("topic exists; using its partition count", "topic", o.Topic, "partitions", parts)
	}
	var heads []head
	if o.Resume {
		if heads, err = readHeads(ctx, o.Brokers, o.Topic, parts, o.ResumeScan); err != nil {
			return err
		}
		if err := checkHeads(heads, runID); err != nil {
			return err
		}
	}
	sum := &summary{Run: runID, Topic: o.Topic, Partitions: parts, Load: loadTime, WindowStart: start, WindowEnd: end}
	for _, h := range heads {
		if h.Pos >= 0 {
			sum.ResumedPartitions++
		}
	}

	w := newPartitionWriter(writerConfig{Brokers: o.Brokers, Topic: o.Topic, BatchBytes: 1 << 20,
		WriteTimeout: 10 * time.Second, MaxAttempts: 10, Logger: logger})
	r := &replayer{plan: pl, pt: newPartitioner(parts), heads: heads, limit: o.Limit, linger: o.Linger,
		pacer: newPacer(o.Speedup, o.MaxRate, o.Burst)}
	if o.WithRequests != "" {
		r.req = newRequester(strings.TrimRight(o.WithRequests, "/"), o.RequestK, o.RequestCandidates, o.RequestConcurrency, logger)
		sum.WithRequests = true
	}
	total := r.countToPublish(start, end)

	pub := newPublisher(w, runID, parts, o.Batch)
	var st *status
	if o.Progress {
		st = startStatus(stderr, total, pub)
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	tp := time.Now()
	rerr := r.run(ctx, pub, start, end, sum)
	cerr := pub.close()
	if r.req != nil {
		r.req.close()
		sum.Requests, sum.RequestErrors = r.req.sent.Load(), r.req.failed.Load()
	}
	sum.Publish = time.Since(tp)
	sum.Published = pub.published.Load()
	sum.FirstMs, sum.LastMs = pub.firstTimeMs.Load(), pub.lastTimeMs.Load()
	if st != nil {
		st.finish()
	}
	sum.write(stdout)
	if rerr != nil && !errors.Is(cerr, rerr) {
		return errors.Join(rerr, cerr)
	}
	if cerr != nil {
		return cerr
	}
	logger.Info("done", "published", sum.Published, "skipped", sum.Skipped, "stop", sum.Stop)
	return nil
}

// replayer walks the global order and hands events to the publisher.
type replayer struct {
	plan  *plan
	pt    *partitioner
	heads []head
	limit int64
	pacer *pacer
	// linger: a paced run sends its partial chunks before sleeping longer than this.
	linger time.Duration
	log    *slog.Logger
	// req, if not nil, requests recommendations at session starts (--with-requests).
	req *requester
}

// countToPublish is how many events of [start, end) this run will publish if
// nothing stops it (resume rule and --limit applied).
func (r *replayer) countToPublish(start, end int) int64 {
	n := int64(end - start)
	if r.heads != nil {
		n = 0
		for i := start; i < end; i++ {
			if !published(r.heads, r.pt.of(r.plan.userAt(i)), i) {
				n++
			}
		}
	}
	if r.limit > 0 {
		n = min(n, r.limit)
	}
	return n
}

// run hands events [start, end) to pub in order. On ctx's end it stops and hands
// over nothing more (what was handed over is still written by pub.close); on a
// normal end it flushes every partial chunk.
func (r *replayer) run(ctx context.Context, pub *publisher, start, end int, sum *summary) error {
	pending := make([]*chunk, len(pub.parts))
	flush := func() error {
		for p, c := range pending {
			// Taken out of pending first: a send cut short by ctx returns the
			// chunk to the free list itself, and the signal path below
			// returns what is still pending; a chunk in both overfilled the
			// free list, and a partition writer then blocked forever.
			pending[p] = nil
			if c != nil && len(c.events) > 0 {
				if r.req != nil {
					r.req.wait() // the sessions' lists are served before their events are produced
				}
				if err := pub.send(ctx, p, c); err != nil {
					return err
				}
			} else if c != nil {
				pub.free <- c
			}
		}
		return nil
	}
	sum.StartPos, sum.StopPos, sum.Stop = start, start, "end of the selection"
	var seq uint32
	if start < end {
		seq = r.plan.seqAt(start)
	}
	paced := r.pacer.active()
	var handed int64
	var err error
	i := start
	for ; i < end; i++ {
		if i > start {
			seq = r.plan.nextSeq(i, seq)
		}
		if i&1023 == 0 && ctx.Err() != nil {
			break
		}
		part := r.pt.of(r.plan.userAt(i))
		if published(r.heads, part, i) {
			sum.Skipped++
			continue
		}
		if r.limit > 0 && handed >= r.limit {
			sum.Stop = fmt.Sprintf("--limit %d", r.limit)
			break
		}
		if paced {
			now := time.Now()
			if at := r.pacer.next(r.plan.timeAt(i), now); at.Sub(now) > r.linger {
				if err = flush(); err != nil {
					break
				}
				if err = sleepUntil(ctx, at); err != nil {
					break
				}
			}
		}
		c := pending[part]
		if c == nil {
			if c, err = pub.get(ctx); err != nil {
				break
			}
			pending[part] = c
		}
		c.events = c.events[:len(c.events)+1]
		if err = r.plan.event(i, seq, &c.events[len(c.events)-1]); err != nil {
			break
		}
		c.pos = append(c.pos, int32(i))
		handed++
		if r.req != nil {
			r.req.observe(c.events[len(c.events)-1].UserID, r.plan.timeAt(i))
		}
		if len(c.events) == cap(c.events) {
			pending[part] = nil
			if r.req != nil {
				r.req.wait()
			}
			if err = pub.send(ctx, part, c); err != nil {
				break
			}
		}
	}
	sum.StopPos = i
	if err == nil && ctx.Err() == nil {
		err = flush()
	}
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		sum.Stop = "signal (in-flight chunks flushed)"
		for _, c := range pending {
			if c != nil {
				pub.free <- c
			}
		}
		return nil
	}
	return err
}

func sleepUntil(ctx context.Context, at time.Time) error {
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
