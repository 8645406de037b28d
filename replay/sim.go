package main

import (
	"bytes"
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
	"strconv"
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

// simWindow accumulates the exact metrics of the lists served in one window.
type simWindow struct {
	Index                        int64
	StartMS                      int64
	VirtualFrom, VirtualTo       int64
	Lists, Fallbacks, TwinLists  int
	Interactions                 int
	LiveNDCG, LiveP08, LiveP2    float64 // sums over Lists
	TwinNDCG, TwinP08, TwinP2    float64 // sums over TwinLists
	PairedLiveNDCG, PairedLiveP2 float64 // live sums over the lists the twin also scored
	PairedLiveP08                float64
	// Explored slots (the API's --explore-rate) and the inverse-propensity
	// sums of the twin's precision estimated from them (see addIPS).
	Explored, ExpLists int
	// Per list position: explored slots, the explored lists whose walk
	// reached the position, and the sums y(v) / P(v shown) of the twin's
	// videos shown there and reached (see ips).
	ExpN, Reach []int
	ExpS08      []float64
	ExpS2       []float64
}

func (w *simWindow) grow(k int) {
	for len(w.ExpN) < k {
		w.ExpN, w.Reach = append(w.ExpN, 0), append(w.Reach, 0)
		w.ExpS08, w.ExpS2 = append(w.ExpS08, 0), append(w.ExpS2, 0)
	}
}

// ips is the inverse-propensity estimate of the twin's precision@K from the
// live traffic, the way a log of served lists allows (the simulator's truth is
// not used): for each list logged with exploration and each video v of the
// twin's list that the live list showed at a position i the user's walk
// reached, y(v) / (P(v shown) e_i), where y(v) is 1 for a relevant watch,
// P(v shown) is the logged propensity of a model slot (1 - e) or, for an
// explored slot, about K e / M (any of the K slots may draw v among M
// eligible), and e_i is the share of lists whose walk reached position i (the
// walk is logged, and it does not depend on what an explored slot shows);
// summed over the twin's list, divided by K and averaged over lists.
func (w *simWindow) ips(k int) (p08, p2 float64) {
	if w.ExpLists == 0 {
		return 0, 0
	}
	for i := range w.Reach {
		if w.Reach[i] == 0 {
			continue
		}
		e := float64(w.Reach[i]) / float64(w.ExpLists)
		p08 += w.ExpS08[i] / e
		p2 += w.ExpS2[i] / e
	}
	return p08 / float64(w.ExpLists*k), p2 / float64(w.ExpLists*k)
}

// simWindowOut is one window of the summary (means).
type simWindowOut struct {
	Index         int64   `json:"index"`
	StartMS       int64   `json:"start_ms"`
	VirtualFromMS int64   `json:"virtual_from_ms"`
	VirtualToMS   int64   `json:"virtual_to_ms"`
	Lists         int     `json:"lists"`
	Fallbacks     int     `json:"fallbacks"`
	TwinLists     int     `json:"twin_lists"`
	Interactions  int     `json:"interactions"`
	LiveNDCG      float64 `json:"live_ndcg"`
	LiveP08       float64 `json:"live_precision_08"`
	LiveP2        float64 `json:"live_precision_2"`
	TwinNDCG      float64 `json:"twin_ndcg"`
	TwinP08       float64 `json:"twin_precision_08"`
	TwinP2        float64 `json:"twin_precision_2"`
	LiftNDCG      float64 `json:"lift_ndcg"`
	LiftP2        float64 `json:"lift_precision_2"`
	LiftP08       float64 `json:"lift_precision_08"`
	// Explored slots and the inverse-propensity estimate of the twin's
	// precision from them (absent without exploration).
	Explored  int     `json:"explored_slots,omitempty"`
	TwinIPS08 float64 `json:"twin_ips_precision_08,omitempty"`
	TwinIPS2  float64 `json:"twin_ips_precision_2,omitempty"`
}

func (w *simWindow) out() simWindowOut {
	o := simWindowOut{Index: w.Index, StartMS: w.StartMS, VirtualFromMS: w.VirtualFrom, VirtualToMS: w.VirtualTo, Lists: w.Lists,
		Fallbacks: w.Fallbacks, TwinLists: w.TwinLists, Interactions: w.Interactions}
	if w.Lists > 0 {
		n := float64(w.Lists)
		o.LiveNDCG, o.LiveP08, o.LiveP2 = w.LiveNDCG/n, w.LiveP08/n, w.LiveP2/n
	}
	if w.TwinLists > 0 {
		n := float64(w.TwinLists)
		o.TwinNDCG, o.TwinP08, o.TwinP2 = w.TwinNDCG/n, w.TwinP08/n, w.TwinP2/n
		// The lift compares live and twin on the same lists.
		o.LiftNDCG = safeDiv(w.PairedLiveNDCG, w.TwinNDCG)
		o.LiftP2 = safeDiv(w.PairedLiveP2, w.TwinP2)
		o.LiftP08 = safeDiv(w.PairedLiveP08, w.TwinP08)
	}
	if w.Explored > 0 {
		o.Explored = w.Explored
		o.TwinIPS08, o.TwinIPS2 = w.ips(len(w.ExpN))
	}
	return o
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// simSummary is the summary of a run (printed, and written with --summary-out).
type simSummary struct {
	Truth          string         `json:"truth"`
	WallSeconds    float64        `json:"wall_seconds"`
	VirtualFromMS  int64          `json:"virtual_from_ms"`
	VirtualToMS    int64          `json:"virtual_to_ms"`
	Speedup        float64        `json:"speedup"`
	Users          int            `json:"users"`
	Lists          int64          `json:"lists"`
	Fallbacks      int64          `json:"fallbacks"`
	Interactions   int64          `json:"interactions"`
	RequestErrors  map[string]int `json:"request_errors"`
	RequestsPerSec float64        `json:"requests_per_second"`
	Windows        []simWindowOut `json:"windows"`
	Total          simWindowOut   `json:"total"`
	// PrefsDriftMS is the generator's preference drift (0: none); Before and
	// After aggregate the windows whose virtual time is entirely before it or
	// after it.
	PrefsDriftMS int64         `json:"prefs_drift_ms,omitempty"`
	Before       *simWindowOut `json:"before_drift,omitempty"`
	After        *simWindowOut `json:"after_drift,omitempty"`
	// Observed are the API's own online metrics over the simulator's
	// windows (lists weighted), beside the exact ones.
	Observed map[string]float64 `json:"observed,omitempty"`
	Probe    *probeResult       `json:"probe,omitempty"`
	// FeedbackToEffect is the API's feedback-to-effect series over the run.
	FeedbackToEffect map[string]float64 `json:"feedback_to_effect,omitempty"`
}

// simTwin scores the frozen twin from Redis: the model version's item index
// restricted to the candidate set, and its offline user vectors.
type simTwin struct {
	store      *cache.Store
	candidates string
	log        *slog.Logger

	mu      sync.Mutex
	version string
	ix      *cache.ItemIndex
	row     map[uint32]int
	off     cache.OfflineUsers
	failed  map[string]bool
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

// session runs one session of u. It stops walking the list once stop ends;
// the requests themselves are not cut short (an interaction in flight is
// completed, bounded by the client's timeout).
func (s *simulator) session(stop context.Context, u *simUser, rng *rand.Rand) {
	ctx := context.WithoutCancel(stop)
	vt := s.clock.now()
	q := "?k=" + strconv.Itoa(s.o.K)
	if s.o.Candidates != "" {
		q += "&candidates=" + s.o.Candidates
	}
	if s.o.ExcludeWatched {
		q += "&exclude_watched=true"
	}
	var rec api.Recommendations
	status, err := getJSON(ctx, s.client, s.o.API+"/v1/users/"+strconv.FormatUint(uint64(u.id), 10)+"/recommendations"+q, s.o.ClientID, &rec)
	if err != nil {
		s.fail(errKind("recommendations", status, err))
		return
	}
	items := make([]uint32, len(rec.Items))
	for i, it := range rec.Items {
		items[i] = it.VideoID
	}
	ratio := func(v uint32) (float64, bool) { return s.tr.Ratio(u.id, v, vt) }
	u.mu.Lock()
	var exclude []uint32
	if s.o.ExcludeWatched {
		exclude = slices.Clone(u.watched)
	}
	u.mu.Unlock()
	ideal := s.ideal.ideal(u.id, vt, exclude)
	live := exactMetrics(items, s.o.K, ratio, ideal)
	twinItems, twinOK := s.twin.list(ctx, rec.ModelVersion, u.id, s.o.K, exclude)
	var twin exact
	if twinOK {
		twin = exactMetrics(twinItems, s.o.K, ratio, ideal)
	}
	s.lists.Add(1)
	s.mu.Lock()
	w := s.window(rec.ServedAtMs)
	w.Lists++
	w.VirtualFrom, w.VirtualTo = min(w.VirtualFrom, vt), max(w.VirtualTo, vt)
	if rec.Fallback != "" {
		w.Fallbacks++
		s.fallbacks.Add(1)
	}
	w.LiveNDCG += live.NDCG
	w.LiveP08 += live.P08
	w.LiveP2 += live.P2
	if twinOK {
		w.TwinLists++
		w.TwinNDCG += twin.NDCG
		w.TwinP08 += twin.P08
		w.TwinP2 += twin.P2
		w.PairedLiveNDCG += live.NDCG
		w.PairedLiveP08 += live.P08
		w.PairedLiveP2 += live.P2
	}
	s.mu.Unlock()

	// Walk the list from the top.
	watched := 0
	seen := map[uint32]float64{} // watched in this session: true ratio
	reached := 0                 // slots the walk reached
	defer func() { s.addIPS(rec, twinItems, twinOK, seen, reached) }()
	for _, v := range items {
		if watched == s.o.SessionVideos || stop.Err() != nil {
			break
		}
		t := s.clock.now()
		reached++
		r, ok := s.tr.Ratio(u.id, v, t)
		if !ok {
			continue // unknown pair (real small matrix): skipped
		}
		if err := s.post(ctx, u.id, v, r, t); err != nil {
			s.fail(err.Error())
			break
		}
		watched++
		seen[v] = r
		s.interactions.Add(1)
		s.mu.Lock()
		s.window(time.Now().UnixMilli()).Interactions++
		s.mu.Unlock()
		u.mu.Lock()
		u.watched = append(u.watched, v)
		u.mu.Unlock()
		if rng.Float64() < s.o.Leave*math.Exp(-r) {
			break
		}
	}
}

// addIPS adds a list's walk and its shown twin videos to its window (see
// ips); lists served without exploration (no propensity below 1) are not
// counted.
func (s *simulator) addIPS(rec api.Recommendations, twin []uint32, twinOK bool, seen map[uint32]float64, reached int) {
	if !twinOK || len(rec.Items) == 0 || rec.Items[0].Propensity == nil {
		return
	}
	items := rec.Items[:min(len(rec.Items), s.o.K)]
	eps, m := 0.0, 0.0
	for _, it := range items {
		if p := float64(*it.Propensity); it.Explored {
			if m == 0 && p > 0 {
				m = -1 // from eps below
			}
		} else if eps == 0 {
			eps = 1 - p
		}
	}
	for _, it := range items {
		if it.Explored && eps > 0 {
			m = eps / float64(*it.Propensity)
			break
		}
	}
	if eps <= 0 {
		return // every slot explored, or no exploration: nothing to weigh
	}
	if m <= 0 {
		m = float64(max(1, len(s.tr.Videos())-len(items)))
	}
	in := make(map[uint32]bool, len(twin))
	for _, v := range twin {
		in[v] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.window(rec.ServedAtMs)
	w.grow(s.o.K)
	w.ExpLists++
	for i := range min(reached, s.o.K) {
		w.Reach[i]++
	}
	for i, it := range items {
		if it.Explored {
			w.Explored++
			w.ExpN[i]++
		}
		r, watched := seen[it.VideoID]
		if i >= reached || !watched || !in[it.VideoID] {
			continue
		}
		pi := 1 - eps
		if it.Explored {
			pi = min(1, float64(s.o.K)*eps/m)
		}
		if relevant08(r) {
			w.ExpS08[i] += 1 / pi
		}
		if relevant2(r) {
			w.ExpS2[i] += 1 / pi
		}
	}
}

func errKind(what string, status int, err error) string {
	if status != 0 {
		return what + " " + strconv.Itoa(status)
	}
	return what + ": " + strings.SplitN(err.Error(), ":", 2)[0]
}

// post sends one watch through the API intake (source simulator).
func (s *simulator) post(ctx context.Context, user, video uint32, ratio float64, eventMS int64) error {
	dur := s.tr.DurationMS(video)
	body, _ := json.Marshal(map[string]any{"user_id": user, "video_id": video, "video_duration_ms": dur,
		"play_duration_ms": int64(math.Round(ratio * float64(dur))), "watch_ratio": ratio, "event_time_ms": eventMS, "source": "simulator"})
	return postInteraction(ctx, s.client, s.o.API, s.o.ClientID, body)
}

func postInteraction(ctx context.Context, client *http.Client, base, clientID string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/interactions", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.ClientHeader, clientID)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("interactions: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("interactions %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
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

// getJSON GETs url as clientID ("" for no X-Client-Id) and decodes a 200
// answer into v; another status is an error with the answer's body.
func getJSON(ctx context.Context, client *http.Client, url, clientID string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if clientID != "" {
		req.Header.Set(api.ClientHeader, clientID)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(body))
	}
	return resp.StatusCode, json.Unmarshal(body, v)
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

func (s *simulator) summarise(wall time.Duration, from int64, speedup float64, users int) *simSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := &simSummary{Truth: s.tr.Describe(), WallSeconds: wall.Seconds(), VirtualFromMS: from, Speedup: speedup, Users: users,
		Lists: s.lists.Load(), Fallbacks: s.fallbacks.Load(), Interactions: s.interactions.Load(), RequestErrors: s.errs}
	sum.VirtualToMS = from + int64(float64(wall.Milliseconds())*speedup)
	sum.RequestsPerSec = float64(sum.Lists+sum.Interactions) / wall.Seconds()
	idx := make([]int64, 0, len(s.windows))
	for i := range s.windows {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	total := &simWindow{VirtualFrom: math.MaxInt64}
	for _, i := range idx {
		w := s.windows[i]
		if w.Lists == 0 {
			continue
		}
		sum.Windows = append(sum.Windows, w.out())
		total.add(w)
	}
	sum.Total = total.out()
	return sum
}

func (w *simWindow) add(x *simWindow) {
	if w.Lists == 0 && w.Index == 0 {
		w.Index, w.StartMS = x.Index, x.StartMS
	}
	w.VirtualFrom, w.VirtualTo = min(w.VirtualFrom, x.VirtualFrom), max(w.VirtualTo, x.VirtualTo)
	w.Lists += x.Lists
	w.Fallbacks += x.Fallbacks
	w.TwinLists += x.TwinLists
	w.Interactions += x.Interactions
	w.LiveNDCG += x.LiveNDCG
	w.LiveP08 += x.LiveP08
	w.LiveP2 += x.LiveP2
	w.TwinNDCG += x.TwinNDCG
	w.TwinP08 += x.TwinP08
	w.TwinP2 += x.TwinP2
	w.PairedLiveNDCG += x.PairedLiveNDCG
	w.PairedLiveP08 += x.PairedLiveP08
	w.PairedLiveP2 += x.PairedLiveP2
	w.Explored += x.Explored
	w.ExpLists += x.ExpLists
	w.grow(len(x.ExpN))
	for i := range x.ExpN {
		w.ExpN[i] += x.ExpN[i]
		w.Reach[i] += x.Reach[i]
		w.ExpS08[i] += x.ExpS08[i]
		w.ExpS2[i] += x.ExpS2[i]
	}
}

// splitByDrift aggregates the windows entirely before and entirely after
// the preference drift.
func (s *simulator) splitByDrift(sum *simSummary) {
	if sum.PrefsDriftMS == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	before, after := &simWindow{VirtualFrom: math.MaxInt64}, &simWindow{VirtualFrom: math.MaxInt64}
	for _, w := range s.windows {
		switch {
		case w.Lists == 0:
		case w.VirtualTo < sum.PrefsDriftMS:
			before.add(w)
		case w.VirtualFrom >= sum.PrefsDriftMS:
			after.add(w)
		}
	}
	if before.Lists > 0 {
		o := before.out()
		sum.Before = &o
	}
	if after.Lists > 0 {
		o := after.out()
		sum.After = &o
	}
}

// observe reads the API's online metrics over the run's windows, once they
// had time to close, weighting each window by its closed lists.
func (s *simulator) observe(ctx context.Context, sum *simSummary) {
	if len(sum.Windows) == 0 {
		return
	}
	first := sum.Windows[0].StartMS
	deadline := time.Now().Add(s.o.ObserveWait)
	var series api.OnlineSeries
	lastLists := -1.0
	for {
		if _, err := getJSON(ctx, s.client, s.o.API+"/v1/metrics/online?limit=1000&since="+strconv.FormatInt(first, 10), s.o.ClientID, &series); err != nil {
			s.log.Warn("the API's online metrics are unavailable: observed metrics not compared", "err", err)
			return
		}
		lists := 0.0
		for _, p := range series.Points {
			lists += p.Values["lists"]
		}
		if (lists == lastLists && lists >= float64(sum.Lists)) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		lastLists = lists
		time.Sleep(time.Second)
	}
	obs := map[string]float64{}
	weights := map[string]float64{}
	for _, p := range series.Points {
		n := p.Values["lists"]
		for _, m := range []string{"precision_08", "precision_2", "ndcg_graded", "ndcg_2", "hit_rate", "live_twin_abs_err_ratio", "live_twin_topk_ratio"} {
			if v, ok := p.Values[m]; ok {
				obs[m] += v * n
				weights[m] += n
			}
		}
		obs["lists"] += n
		obs["interactions"] += p.Values["interactions"]
	}
	for m, wt := range weights {
		if wt > 0 {
			obs[m] /= wt
		}
	}
	sum.Observed = obs
	f2e := map[string]float64{}
	var n, sumMS float64
	for _, p := range series.Points {
		if c, ok := p.Values["feedback_to_effect_n"]; ok && c > 0 {
			n += c
			sumMS += c * p.Values["feedback_to_effect_ms"]
			f2e["p99_ms_worst_window"] = max(f2e["p99_ms_worst_window"], p.Values["feedback_to_effect_p99_ms"])
		}
	}
	if n > 0 {
		f2e["n"], f2e["mean_ms"] = n, sumMS/n
		sum.FeedbackToEffect = f2e
	}
}

// fullWindows are the first and last windows holding at least half the
// lists of the busiest one (the run's ends are partial windows).
func (sum *simSummary) fullWindows() (first, last *simWindowOut) {
	most := 0
	for _, w := range sum.Windows {
		most = max(most, w.Lists)
	}
	for i := range sum.Windows {
		if w := &sum.Windows[i]; 2*w.Lists >= most {
			if first == nil {
				first = w
			}
			last = w
		}
	}
	return first, last
}

func (sum *simSummary) write(w io.Writer) {
	fmt.Fprintf(w, "sim summary\n")
	fmt.Fprintf(w, "  truth          %s\n", sum.Truth)
	fmt.Fprintf(w, "  run            %.1f s wall; virtual time %s .. %s (speed-up %.0fx); %d users\n", sum.WallSeconds, fmtMs(sum.VirtualFromMS), fmtMs(sum.VirtualToMS), sum.Speedup, sum.Users)
	fmt.Fprintf(w, "  traffic        %d lists (%d fallbacks), %d interactions posted; %.1f requests/s; errors %v\n", sum.Lists, sum.Fallbacks, sum.Interactions, sum.RequestsPerSec, sum.RequestErrors)
	fmt.Fprintf(w, "  %-14s %6s %6s  %-22s %-22s %-22s %s\n", "window", "lists", "twin", "NDCG@K live/twin", "P@K(>=0.8) live/twin", "P@K(>2) live/twin", "lift NDCG, P(>2)")
	row := func(name string, o *simWindowOut) {
		fmt.Fprintf(w, "  %-14s %6d %6d  %.4f / %.4f        %.4f / %.4f        %.4f / %.4f        %.3f, %.3f\n", name, o.Lists, o.TwinLists,
			o.LiveNDCG, o.TwinNDCG, o.LiveP08, o.TwinP08, o.LiveP2, o.TwinP2, o.LiftNDCG, o.LiftP2)
	}
	if first, last := sum.fullWindows(); first != nil {
		row("first", first)
		row("last", last)
	}
	row("all", &sum.Total)
	if sum.Before != nil {
		row("before drift", sum.Before)
	}
	if sum.After != nil {
		row("after drift", sum.After)
	}
	if sum.Observed != nil {
		o := sum.Observed
		fmt.Fprintf(w, "  observed (API) %0.f closed lists, %.0f interactions: precision@K(>=0.8) %.4f (exact %.4f), precision@K(>2) %.4f (exact %.4f), graded NDCG %.4f (exact %.4f)\n",
			o["lists"], o["interactions"], o["precision_08"], sum.Total.LiveP08, o["precision_2"], sum.Total.LiveP2, o["ndcg_graded"], sum.Total.LiveNDCG)
		fmt.Fprintf(w, "                 (observed gains are the watched slots only, and the observed NDCG's ideal is the list's own watched gains; exact: all K slots, against the K best candidates)\n")
	}
	if t := &sum.Total; t.Explored > 0 {
		fmt.Fprintf(w, "  exploration    %d explored slots: the twin's precision@K estimated by inverse propensity from the live traffic: (>=0.8) %.4f (exact %.4f), (>2) %.4f (exact %.4f)\n",
			t.Explored, t.TwinIPS08, t.TwinP08, t.TwinIPS2, t.TwinP2)
		fmt.Fprintf(w, "                 (each twin video the live list showed and the walk reached, weighted by 1 / (P(shown) x the share of walks reaching its position); P of an explored video is approximated by K e / M; positions the walk never reaches, beyond --session-videos, count 0: give the walk a budget of K for a consistent estimate)\n")
	}
	if f := sum.FeedbackToEffect; f != nil {
		fmt.Fprintf(w, "  feedback->effect (API) %.0f interactions seen in a later list: mean %.0f ms; worst window p99 <= %.0f ms\n", f["n"], f["mean_ms"], f["p99_ms_worst_window"])
	}
	if p := sum.Probe; p != nil {
		fmt.Fprintf(w, "  pipeline latency (probe: POST, poll every %v) %d probes: p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d timed out\n", p.Interval, p.N, p.P50MS, p.P99MS, p.MaxMS, p.Timeouts)
	}
}
