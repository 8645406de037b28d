package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/api"
	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/config"
	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/towers"
)

// simOptions are the flags of `replay sim`.
type simOptions struct {
	API, Data, RedisAddr, Namespace string
	Users, Sessions, Concurrency    int
	Rate                            float64
	Seed                            uint64
	Duration                        time.Duration
	From, Until                     timeFlag
	Speedup                         float64
	K                               int
	Candidates                      string
	SessionVideos                   int
	Leave                           float64
	ExcludeWatched                  bool
	Window                          time.Duration
	Probes                          int
	ObserveWait                     time.Duration
	ClientID                        string
	SummaryOut                      string
	LogLevel                        string
	Progress                        bool
}

const simUsage = `replay sim: a closed-loop simulation against a running API.

Simulated users, drawn from the small matrix's users, request recommendations
over HTTP (candidates=small_matrix, k=25), "watch" what they are served and send
each interaction through the API intake with source "simulator". The user
model: a session requests one list and walks it from the top; each video walked
is watched with its true watch ratio (one POST each); after each video the user
leaves with probability leave * exp(-ratio) (a poor video makes leaving likely),
and at the latest after session-videos videos. True ratios: on synthetic data
the generator's expected watch ratio at the virtual time (it follows the
injected drifts); on the real KuaiRec the small matrix (an unobserved pair is
skipped by the user and counts as gain 0). A virtual clock maps wall time to
event time: event time = from + (wall time since the start) x speed-up.

The simulator holds the truth, so it computes each served list's exact NDCG@K
(graded by the true ratios of all K videos against the K best of the
candidates) and precision@K at both labels (>= 0.8, > 2), and the same for the
list the frozen twin would have served (the model version's offline user
vectors, read from Redis, never updated online), per window of wall time.`

func parseSimOptions(args []string, stderr io.Writer, lookup func(string) (string, bool)) (*simOptions, error) {
	o := &simOptions{}
	fs := flag.NewFlagSet("replay sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.API, "api", "http://127.0.0.1:8080", "base URL of the API")
	fs.StringVar(&o.Data, "data", "", "KuaiRec folder (real or synthetic); required: the truth and the small matrix's users")
	fs.StringVar(&o.RedisAddr, "redis-addr", "127.0.0.1:6379", "Redis, for the frozen twin's offline vectors and the model's cut")
	fs.StringVar(&o.Namespace, "namespace", cache.DefaultNamespace, "Redis key namespace")
	fs.IntVar(&o.Users, "users", 0, "simulated users, drawn from the small matrix's users (0: all of them)")
	fs.IntVar(&o.Sessions, "sessions", 0, "sessions per user (0: until --duration)")
	fs.IntVar(&o.Concurrency, "concurrency", 8, "users in a session at the same time")
	fs.Float64Var(&o.Rate, "rate", 0, "at most this many sessions/s (0: unlimited)")
	fs.Uint64Var(&o.Seed, "seed", 1, "random seed (users drawn, leaving)")
	fs.DurationVar(&o.Duration, "duration", time.Minute, "stop after this wall time")
	fs.Var(&o.From, "from", "virtual event time at the start (RFC 3339 or Unix seconds); default: the live model's training cut")
	fs.Var(&o.Until, "until", "virtual event time at the end of --duration: sets the speed-up (with --from)")
	fs.Float64Var(&o.Speedup, "speedup", 0, "virtual time runs X times faster than wall time (0: from --until, else 1)")
	fs.IntVar(&o.K, "k", 25, "list length")
	fs.StringVar(&o.Candidates, "candidates", "small_matrix", "candidate set of the lists")
	fs.IntVar(&o.SessionVideos, "session-videos", 8, "most videos watched per session")
	fs.Float64Var(&o.Leave, "leave", 0.5, "leaving probability scale: after a video of ratio r the user leaves with probability leave*exp(-r)")
	fs.BoolVar(&o.ExcludeWatched, "exclude-watched", true, "request lists without the user's watched videos")
	fs.DurationVar(&o.Window, "window", 0, "window of wall time for the exact metrics (0: the API's online evaluation window, else 10s)")
	fs.IntVar(&o.Probes, "probes", 20, "pipeline latency probes after the traffic (POST, then poll every 5 ms until the list reflects it)")
	fs.DurationVar(&o.ObserveWait, "observe-wait", 10*time.Second, "how long to wait for the API's windows to close before comparing observed and exact metrics (0: skip)")
	fs.StringVar(&o.ClientID, "client-id", "simulator", "X-Client-Id of the requests")
	fs.StringVar(&o.SummaryOut, "summary-out", "", "also write the summary as JSON to this file")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.Progress, "progress", true, "print a progress line per window on stderr")
	config.Usage(fs, simUsage)
	if err := config.Parse(fs, args, lookup); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &config.UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return nil, config.Usagef("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.Data == "":
		return nil, config.Usagef("--data is required")
	case !strings.HasPrefix(o.API, "http://") && !strings.HasPrefix(o.API, "https://"):
		return nil, config.Usagef("--api %q: want an http:// or https:// URL", o.API)
	case o.Users < 0 || o.Sessions < 0:
		return nil, config.Usagef("--users %d and --sessions %d: want >= 0", o.Users, o.Sessions)
	case o.Concurrency < 1 || o.Concurrency > 1024:
		return nil, config.Usagef("--concurrency %d: want 1..1024", o.Concurrency)
	case o.Rate < 0 || o.Speedup < 0 || math.IsNaN(o.Rate) || math.IsNaN(o.Speedup):
		return nil, config.Usagef("--rate %v and --speedup %v: want >= 0", o.Rate, o.Speedup)
	case o.Duration <= 0:
		return nil, config.Usagef("--duration %v: want > 0", o.Duration)
	case o.K < 1 || o.K > 1000:
		return nil, config.Usagef("--k %d: want 1..1000", o.K)
	case o.SessionVideos < 1:
		return nil, config.Usagef("--session-videos %d: want >= 1", o.SessionVideos)
	case o.Leave < 0 || o.Leave > 1 || math.IsNaN(o.Leave):
		return nil, config.Usagef("--leave %v: want in [0, 1]", o.Leave)
	case o.Window < 0 || o.ObserveWait < 0 || o.Probes < 0:
		return nil, config.Usagef("--window, --observe-wait and --probes: want >= 0")
	case o.Until.set && o.From.set && o.Until.ms <= o.From.ms:
		return nil, config.Usagef("--until %s is not after --from %s", o.Until.raw, o.From.raw)
	}
	return o, nil
}

func (t *simTwin) load(ctx context.Context, version string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.version == version {
		return t.ix != nil
	}
	if t.failed[version] {
		return false
	}
	fail := func(msg string, err error) bool {
		t.log.Warn("frozen twin unavailable for version: its lists are not scored", "version", version, "why", msg, "err", err)
		t.failed[version] = true
		return false
	}
	ix, err := cache.LoadItemIndex(ctx, t.store, version)
	if err != nil {
		return fail("item index", err)
	}
	sub, ok := ix.Candidates(t.candidates)
	if !ok && t.candidates != "" {
		return fail("no candidate set "+t.candidates, nil)
	}
	if t.candidates == "" {
		sub = ix
	}
	off, found, err := t.store.GetOfflineUsers(ctx, version)
	if err != nil || !found {
		return fail("no offline user vectors (published before they were kept?)", err)
	}
	if off.Dim != ix.Dim() {
		return fail("offline vectors of another dimension", nil)
	}
	t.version, t.ix, t.off, t.row = version, sub, off, make(map[uint32]int, len(off.IDs))
	for i, id := range off.IDs {
		t.row[id] = i
	}
	return true
}

// list is the twin's top-k for user among the candidates, without exclude.
func (t *simTwin) list(ctx context.Context, version string, user uint32, k int, exclude []uint32) ([]uint32, bool) {
	if !t.load(ctx, version) {
		return nil, false
	}
	t.mu.Lock()
	ix, off, row, cur := t.ix, t.off, t.row, t.version
	t.mu.Unlock()
	if cur != version {
		return nil, false
	}
	i, ok := row[user]
	if !ok {
		return nil, false
	}
	top := ix.TopK(nil, off.Vectors[i*off.Dim:(i+1)*off.Dim], k, cache.TopKOptions{UseBias: true, Exclude: exclude})
	ids := make([]uint32, len(top))
	for j, s := range top {
		ids[j] = s.ID
	}
	return ids, true
}

// simClock is the virtual clock: event time = from + wall elapsed x speed-up.
type simClock struct {
	wall0   time.Time
	from    int64
	speedup float64
}

func (c *simClock) now() int64 {
	return c.from + int64(float64(time.Since(c.wall0).Milliseconds())*c.speedup)
}

type simUser struct {
	id       uint32
	mu       sync.Mutex
	watched  []uint32
	sessions int
}

// simulator runs the closed loop.
type simulator struct {
	o      *simOptions
	tr     simTruth
	ideal  *idealCache
	twin   *simTwin
	client *http.Client
	clock  *simClock
	log    *slog.Logger
	winMS  int64
	t0     time.Time

	mu      sync.Mutex
	windows map[int64]*simWindow
	errs    map[string]int

	lists, fallbacks, interactions atomic.Int64
}

func (s *simulator) window(servedMS int64) *simWindow {
	i := servedMS / s.winMS
	w := s.windows[i]
	if w == nil {
		w = &simWindow{Index: i, StartMS: i * s.winMS, VirtualFrom: math.MaxInt64}
		s.windows[i] = w
	}
	return w
}

func (s *simulator) fail(kind string) {
	s.mu.Lock()
	s.errs[kind]++
	s.mu.Unlock()
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseSimOptions(args, stderr, os.LookupEnv)
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
	tr, err := loadSimTruth(dir)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: o.RedisAddr})
	defer rdb.Close()
	ccfg := cache.DefaultConfig()
	ccfg.Namespace = o.Namespace
	store, err := cache.NewStore(rdb, ccfg)
	if err != nil {
		return &config.UsageError{Err: err}
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency + 4, IdleConnTimeout: 30 * time.Second}}
	if err := waitReady(ctx, client, o.API, 30*time.Second); err != nil {
		return err
	}
	// The virtual clock starts at --from, or the live model's training cut.
	from := o.From.ms
	if !o.From.set {
		cur, err := store.CurrentVersion(ctx)
		if err != nil {
			return fmt.Errorf("--from not given and the live model version is unknown: %w", err)
		}
		meta, err := store.Meta(ctx, cur)
		if err != nil {
			return err
		}
		cut, ok := meta.Calibration.Extra[towers.MetaCutMS]
		if !ok || cut <= 0 {
			return config.Usagef("--from not given and model version %s records no training cut", cur)
		}
		from = int64(cut)
	}
	speedup := o.Speedup
	if speedup == 0 {
		speedup = 1
		if o.Until.set {
			if o.Until.ms <= from {
				return config.Usagef("--until %s is not after the start %s", o.Until.raw, fmtMs(from))
			}
			speedup = float64(o.Until.ms-from) / float64(o.Duration.Milliseconds())
		}
	}
	winMS := o.Window.Milliseconds()
	if winMS == 0 {
		var series api.OnlineSeries
		if _, err := getJSON(ctx, client, o.API+"/v1/metrics/online?limit=1", o.ClientID, &series); err == nil && series.WindowMs > 0 {
			winMS = series.WindowMs
		} else {
			winMS = 10000
		}
	}
	users := tr.Users()
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	if o.Users > 0 && o.Users < len(users) {
		users = slices.Clone(users)
		rng.Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
		users = users[:o.Users]
		slices.Sort(users)
	}
	if len(users) == 0 {
		return fmt.Errorf("%s: the small matrix has no users", dir)
	}
	s := &simulator{o: o, tr: tr, ideal: newIdealCache(tr, tr.Videos(), o.K), client: client, log: logger, winMS: winMS,
		twin:    &simTwin{store: store, candidates: o.Candidates, log: logger, failed: map[string]bool{}},
		windows: map[int64]*simWindow{}, errs: map[string]int{}}
	logger.Info("closed-loop simulation", "truth", tr.Describe(), "users", len(users), "from", fmtMs(from), "speedup", speedup,
		"duration", o.Duration.String(), "window_ms", winMS, "concurrency", o.Concurrency)

	runCtx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	s.t0 = time.Now()
	s.clock = &simClock{wall0: s.t0, from: from, speedup: speedup}
	queue := make(chan *simUser, len(users))
	for _, id := range users {
		queue <- &simUser{id: id}
	}
	var pace sync.Mutex
	next := time.Now()
	var remaining atomic.Int64 // sessions left with --sessions
	remaining.Store(int64(o.Sessions) * int64(len(users)))
	var wg sync.WaitGroup
	for w := range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wr := rand.New(rand.NewPCG(o.Seed, uint64(w)+1))
			for {
				var u *simUser
				select {
				case u = <-queue:
				case <-runCtx.Done():
					return
				}
				if o.Rate > 0 {
					pace.Lock()
					wait := time.Until(next)
					if now := time.Now(); next.Before(now) {
						next = now
					}
					next = next.Add(time.Duration(float64(time.Second) / o.Rate))
					pace.Unlock()
					if wait > 0 {
						select {
						case <-time.After(wait):
						case <-runCtx.Done():
							return
						}
					}
				}
				s.session(runCtx, u, wr)
				u.sessions++
				if o.Sessions == 0 || u.sessions < o.Sessions {
					queue <- u
				}
				if o.Sessions > 0 && remaining.Add(-1) == 0 {
					cancel()
				}
			}
		}()
	}
	stopProgress := s.progress(runCtx, stderr)
	wg.Wait()
	stopProgress()
	wall := time.Since(s.t0)
	sum := s.summarise(wall, from, speedup, len(users))
	if pt, ok := tr.(*synthTruth); ok {
		sum.PrefsDriftMS = pt.tr.Manifest.PrefsDriftMS
		s.splitByDrift(sum)
	}
	if ctx.Err() == nil && o.ObserveWait > 0 {
		s.observe(ctx, sum)
	}
	if ctx.Err() == nil && o.Probes > 0 {
		pr, err := probe(ctx, client, o.API, o.ClientID, users[0], tr.Videos(), o.Probes, 5*time.Millisecond, 10*time.Second)
		if err != nil {
			logger.Warn("latency probe failed", "err", err)
		} else {
			sum.Probe = &pr
		}
	}
	sum.write(stdout)
	if o.SummaryOut != "" {
		b, _ := json.MarshalIndent(sum, "", "  ")
		if err := os.WriteFile(o.SummaryOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if sum.Lists == 0 {
		return fmt.Errorf("no list was served (request errors: %v)", sum.RequestErrors)
	}
	return ctx.Err()
}

func waitReady(ctx context.Context, client *http.Client, base string, within time.Duration) error {
	end := time.Now().Add(within)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(end) || ctx.Err() != nil {
			return fmt.Errorf("the API at %s was not ready within %v (last: %v)", base, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// progress prints a line per closed window until stop is called.
func (s *simulator) progress(ctx context.Context, w io.Writer) (stop func()) {
	if !s.o.Progress {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		printed := int64(math.MinInt64)
		lastLists, lastT := int64(0), time.Now()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			cur := time.Now().UnixMilli() / s.winMS
			s.mu.Lock()
			var closed *simWindowOut
			best := printed
			for i := range s.windows {
				if i < cur && i > best {
					best = i
				}
			}
			if best > printed {
				o := s.windows[best].out()
				closed, printed = &o, best
			}
			s.mu.Unlock()
			if closed == nil {
				continue
			}
			n := s.lists.Load()
			rate := float64(n-lastLists) / time.Since(lastT).Seconds()
			lastLists, lastT = n, time.Now()
			fmt.Fprintf(w, "sim: %5.0fs  %6.1f lists/s  virtual %s  window %d: %d lists  exact NDCG@%d live %.4f twin %.4f (lift %.3f)  P@%d(>2) live %.4f twin %.4f (lift %.3f)\n",
				time.Since(s.t0).Seconds(), rate, fmtMs(closed.VirtualToMS), closed.Index, closed.Lists, s.o.K, closed.LiveNDCG, closed.TwinNDCG, closed.LiftNDCG,
				s.o.K, closed.LiveP2, closed.TwinP2, closed.LiftP2)
		}
	}()
	return func() { close(done); <-finished }
}
