// Package driftsim measures the drift detectors on the calibrated generator's
// injected drifts: it generates a synthetic KuaiRec folder with one drift
// (internal/synth), reads its big matrix exactly as the real one is read
// (internal/kuairec) and streams the interactions around the change, in
// replay order, through the drift monitor with the API's default detectors
// and distribution checks (drift.DefaultSpecs).
//
// # What is simulated
//
// The served lists come from a frozen model that is as good as a model can
// be before the change: each user's list is the generator's true top-25 by
// expected watch ratio at one day before the change, among the videos
// released by then; its predicted watch ratio of a video is the true
// expected one at that time. The big matrix gives who interacts when (in
// replay order), and its logged video is what the user would watch from the
// rest of the app. Before each interaction its user is served that list (25
// served_score and served_popularity samples, one served_norm). The user
// then watches from the list with probability a / (a + b), where a is
// SlotWeight x the sum of the generator's exposure weights
// (synth.Truth.Exposure, at the interaction's time) of the listed videos and
// b the sum over the whole catalogue: a video of the list drawn in
// proportion to its weight, with a watch ratio drawn from the generator's
// model at that time (synth.Truth.SampleWatchRatio). Otherwise the logged
// video and watch ratio stand. The interaction gives watch_ratio, hit (its
// video was in the list) and, on a hit, abs_err. So a preference change
// moves the drifted users' weights away from their lists (fewer hits) and
// their watch ratios away from the predictions; a popularity shift moves
// exposure and quality; a new-video burst adds heavily promoted videos to
// the rest of the app. At a new-video burst the new videos
// are registered when they are released (the catalogue grows and the lists
// are recomputed with them, as an item tower would embed them), so coverage
// and the item-bias popularity of what is served move. The served popularity
// signal is eval.LivePopularity over the last PopWindow interactions; the
// window metric popularity_pct is the rank by the frozen model's item bias
// (the generator's video quality before the change), as the API's
// IndexPopularity ranks by the model's item bias.
//
// Every Window interactions (default 10,000: the API's count window) close a window, whose series are computed as the
// online evaluator defines them (internal/online/eval) for lists that each
// receive one interaction: hit_rate; precision_2 (1/25 for a hit with a
// watch ratio above 2); ndcg_graded (on a hit with a positive watch ratio,
// 1/log2(rank+1), over those lists); popularity_pct (the mean bias
// percentile of the served slots); coverage (distinct videos served over the
// catalogue). live_twin_abs_err_ratio is not simulated (the frozen model is
// its own twin).
package driftsim

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"

	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/online/drift"
	"github.com/streamrec/streamrec/internal/online/eval"
	"github.com/streamrec/streamrec/internal/synth"
)

// Scale is the generated folder's size: 300,000 big-matrix rows over the 62
// days (about 4,800 a day), enough for 140,000 interactions around a change
// at day 40.
var Scale = synth.Scale{Name: "drift", Users: 5000, Videos: 2000, SmallUsers: 500, SmallVideos: 500, BigRows: 1000000, SocialUsers: 20}

// ChangeMS is when the drift is injected: day 40 of the span.
var ChangeMS = synth.SpanStartMS + 40*86400000

// Stationary is the Kind of a run without drift.
const Stationary synth.DriftKind = "none"

// SlotWeight is how much more likely a user is to watch a video shown on the
// served list than the same video elsewhere in the app: with it, about a
// third of the interactions are hits before a change.
const SlotWeight = 20

// Config is one run.
type Config struct {
	// Kind of drift: synth.DriftPrefs (half the users), DriftPopularity
	// (half the videos), DriftNewVideos (150 videos), or Stationary.
	Kind synth.DriftKind
	// Seed of the generator.
	Seed uint64
	// Window is the interactions of a window. Default: 10,000 (the API's
	// --eval-count-window).
	Window int
	// Before and After are the interactions streamed before and from the
	// change. Defaults: 100,000 and 40,000 (the window detectors warm up on 8
	// windows). A Stationary run (no drift is
	// injected) streams the whole big matrix (about a million interactions)
	// after the first PopWindow.
	Before, After int
	// PopWindow is the live popularity's window. Default: 5,000.
	PopWindow int
	// Dir is where the folder is generated ("": a temporary folder,
	// removed after the run).
	Dir string
	// Progress, if not nil, receives the generator's progress bar.
	Progress io.Writer
	// Specs override drift.DefaultSpecs when not nil.
	Specs func() ([]drift.DetectorSpec, []drift.DistSpec)
}

// Result is a run's alerts, by interaction index: the change is at index
// Change (the first interaction at or after the change time).
type Result struct {
	Kind          synth.DriftKind
	Seed          uint64
	Window        int
	Change, Total int
	// First is each detector's or check's first alert (absent: none).
	First map[string]int
	// Alerts counts the alert episodes of each, over the whole run, and
	// Before those that started before the change.
	Alerts, Before map[string]int
	// Windows holds the per-window series, in order.
	Windows []map[string]float64
	after   map[string]int // each one's first alert at or after the change

	// Stats holds each detector's and check's statistic at each window's
	// close (drift.Monitor.State), in order.
	Stats []map[string]float64
}

// Delay is the first alert of name at or after the change, in interactions
// after it; ok is false when it never fired from the change on.
func (r *Result) Delay(name string) (n int, ok bool) {
	at, ok := r.after[name]
	if !ok {
		return 0, false
	}
	return at - r.Change, true
}

func (c *Config) defaults() {
	if c.Window == 0 {
		c.Window = 10000
	}
	if c.Before == 0 {
		c.Before = 100000
	}
	if c.After == 0 {
		c.After = 40000
	}
	if c.PopWindow == 0 {
		c.PopWindow = 5000
	}
	if c.Specs == nil {
		c.Specs = drift.DefaultSpecs
	}
}

// Run generates the folder and streams it.
func Run(cfg Config) (*Result, error) {
	cfg.defaults()
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "driftsim")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	gc := synth.GenConfig{Scale: Scale, Seed: cfg.Seed, Progress: cfg.Progress}
	switch cfg.Kind {
	case synth.DriftPrefs:
		gc.Drifts = []synth.Drift{{Kind: synth.DriftPrefs, AtMS: ChangeMS, Share: 0.5}}
	case synth.DriftPopularity:
		gc.Drifts = []synth.Drift{{Kind: synth.DriftPopularity, AtMS: ChangeMS, Share: 0.5}}
	case synth.DriftNewVideos:
		gc.Drifts = []synth.Drift{{Kind: synth.DriftNewVideos, AtMS: ChangeMS, Count: 150}}
	case Stationary:
	default:
		return nil, fmt.Errorf("driftsim: unknown drift kind %q", cfg.Kind)
	}
	if _, err := synth.Generate(dir, gc); err != nil {
		return nil, err
	}
	tr, err := synth.LoadTruth(dir)
	if err != nil {
		return nil, err
	}
	ds, _, err := kuairec.Load(dir, kuairec.Options{SkipSmall: true, SkipDaily: true})
	if err != nil {
		return nil, err
	}
	return stream(cfg, tr, ds.Big)
}

// sim is a run's frozen model and window sums.
type sim struct {
	tr       *synth.Truth
	before   int64
	cat      []uint32 // the catalogue, by id
	inCat    []bool
	lists    [][]uint32 // by user; built on first use
	biasPct  []float64  // by video: the rank by the frozen item bias
	userNorm []float64

	mass map[massKey][2]float64 // a and b by user and regime
	w    []float64

	liveSum, errSum                                       float64
	hits, n, lists2, slots, prec2, ndcgSum, ndcgN, popSum float64
	served                                                map[uint32]bool
}

func stream(cfg Config, tr *synth.Truth, big *kuairec.Interactions) (*Result, error) {
	order := big.Order
	c, _ := slices.BinarySearchFunc(order, ChangeMS, func(i uint32, t int64) int {
		switch {
		case big.TimeMS[i] < t:
			return -1
		case big.TimeMS[i] > t:
			return 1
		}
		return 0
	})
	for c > 0 && big.TimeMS[order[c-1]] >= ChangeMS {
		c--
	}
	from, to := c-cfg.Before, c+cfg.After
	if cfg.Kind == Stationary {
		from, to = cfg.PopWindow, len(order) // the whole matrix, after the live popularity's warm-up
	}
	if from < 0 || to > len(order) {
		return nil, fmt.Errorf("driftsim: %d interactions before and %d from the change at index %d of %d", cfg.Before, cfg.After, c, len(order))
	}
	s := &sim{tr: tr, before: ChangeMS - 86400000, served: map[uint32]bool{}, mass: map[massKey][2]float64{}}
	rnd := rand.New(rand.NewPCG(cfg.Seed, 0xd51f7))
	s.catalogue(s.before)
	live, err := eval.NewLivePopularity(cfg.PopWindow, 500, func() int { return len(s.cat) })
	if err != nil {
		return nil, err
	}
	res := &Result{Kind: cfg.Kind, Seed: cfg.Seed, Window: cfg.Window, Change: c - from, Total: to - from,
		First: map[string]int{}, Alerts: map[string]int{}, Before: map[string]int{}, after: map[string]int{}}
	if cfg.Kind == Stationary {
		res.Change = res.Total
	}
	var n int
	dets, dists := cfg.Specs()
	m, err := drift.NewMonitor(dets, dists, nil, func(a drift.Alert) {
		if _, ok := res.First[a.Detector]; !ok {
			res.First[a.Detector] = n
		}
		res.Alerts[a.Detector]++
		if n < res.Change {
			res.Before[a.Detector]++
		} else if _, ok := res.after[a.Detector]; !ok {
			res.after[a.Detector] = n
		}
	})
	if err != nil {
		return nil, err
	}
	// Warm the live popularity with the interactions before the streamed span.
	for _, i := range order[max(0, from-cfg.PopWindow):from] {
		live.Add(big.Video[i])
	}
	for n = 0; n < to-from; n++ {
		i := order[from+n]
		u, v, wr, t := big.User[i], big.Video[i], big.WatchRatio[i], big.TimeMS[i]
		if s.grow(t) {
			live.Percentile(0) // the catalogue changed: re-rank
		}
		list := s.list(u)
		for _, sv := range list {
			key := uint64(u)<<32 | uint64(sv)
			m.ObserveKeyed(drift.SignalServedScore, key, s.pred(u, sv))
			lp := live.Percentile(sv)
			m.ObserveKeyed(drift.SignalServedPopularity, key, lp)
			s.liveSum += lp
			s.popSum += s.biasPct[sv]
			s.served[sv] = true
		}
		m.ObserveKeyed(drift.SignalServedNorm, uint64(u), s.userNorm[u])
		s.lists2++
		s.slots += float64(len(list))
		if sv, ok := s.choose(rnd, u, t, list); ok {
			v, wr = sv, tr.SampleWatchRatio(rnd, u, sv, t)
		}
		m.Observe(drift.SignalWatchRatio, wr)
		hit := 0.0
		if r := slices.Index(list, v); r >= 0 {
			hit = 1
			ae := math.Abs(s.pred(u, v) - wr)
			m.Observe(drift.SignalAbsErr, ae)
			s.errSum += ae
			if wr > 2 {
				s.prec2 += 1 / float64(len(list))
			}
			if wr > 0 {
				s.ndcgSum += 1 / math.Log2(float64(r)+2)
				s.ndcgN++
			}
		}
		m.Observe(drift.SignalHit, hit)
		s.hits += hit
		s.n++
		live.Add(v)
		if (n+1)%cfg.Window == 0 {
			w := s.closeWindow()
			res.Windows = append(res.Windows, w)
			st := map[string]float64{}
			for _, d := range m.State() {
				st[d.Name] = d.Statistic
			}
			res.Stats = append(res.Stats, st)
			for _, name := range drift.WindowMetrics {
				if x, ok := w[name]; ok {
					m.Observe(drift.WindowPrefix+name, x)
				}
			}
		}
	}
	return res, nil
}

// catalogue sets the videos released by tMS and their bias percentiles.
func (s *sim) catalogue(tMS int64) {
	s.cat = s.cat[:0]
	s.inCat = make([]bool, len(s.tr.Videos))
	for i := range s.tr.Videos {
		if v := &s.tr.Videos[i]; v.ReleaseMS == 0 || v.ReleaseMS <= tMS {
			s.cat = append(s.cat, v.ID)
			s.inCat[v.ID] = true
		}
	}
	byBias := slices.Clone(s.cat)
	slices.SortFunc(byBias, func(a, b uint32) int {
		qa, qb := s.tr.Videos[a].Quality, s.tr.Videos[b].Quality
		switch {
		case qa < qb:
			return -1
		case qa > qb:
			return 1
		}
		return int(a) - int(b)
	})
	s.biasPct = make([]float64, len(s.tr.Videos))
	for r, v := range byBias {
		if len(byBias) > 1 {
			s.biasPct[v] = float64(r) / float64(len(byBias)-1)
		}
	}
	s.lists = make([][]uint32, len(s.tr.Users))
	if s.userNorm == nil {
		s.userNorm = make([]float64, len(s.tr.Users))
		for u := range s.tr.Users {
			var n2 float64
			for _, x := range s.tr.Users[u].Factor {
				n2 += x * x
			}
			s.userNorm[u] = math.Sqrt(n2)
		}
	}
}

// grow registers the videos released by tMS; it reports whether any was.
func (s *sim) grow(tMS int64) bool {
	for i := range s.tr.Videos {
		if v := &s.tr.Videos[i]; !s.inCat[v.ID] && v.ReleaseMS <= tMS {
			s.catalogue(tMS)
			return true
		}
	}
	return false
}

type massKey struct {
	user  uint32
	after bool
	cat   int
}

// choose draws whether user u watches from its list at tMS, and which video.
func (s *sim) choose(r *rand.Rand, u uint32, tMS int64, list []uint32) (uint32, bool) {
	k := massKey{u, tMS >= ChangeMS, len(s.cat)}
	ab, ok := s.mass[k]
	if !ok {
		for _, v := range list {
			ab[0] += SlotWeight * s.tr.Exposure(u, v, tMS)
		}
		for _, v := range s.cat {
			ab[1] += s.tr.Exposure(u, v, tMS)
		}
		s.mass[k] = ab
	}
	if r.Float64()*(ab[0]+ab[1]) >= ab[0] {
		return 0, false
	}
	x := r.Float64() * ab[0] / SlotWeight
	for _, v := range list[:len(list)-1] {
		if x -= s.tr.Exposure(u, v, tMS); x < 0 {
			return v, true
		}
	}
	return list[len(list)-1], true
}

func (s *sim) list(u uint32) []uint32 {
	if s.lists[u] == nil {
		s.lists[u] = s.tr.TopK(u, s.cat, 25, s.before)
	}
	return s.lists[u]
}

func (s *sim) pred(u, v uint32) float64 { return s.tr.ExpectedWatchRatio(u, v, s.before) }

func (s *sim) closeWindow() map[string]float64 {
	w := map[string]float64{
		"hit_rate":               s.hits / s.n,
		"precision_2":            s.prec2 / s.lists2,
		"popularity_pct":         s.popSum / s.slots,
		"served_live_popularity": s.liveSum / s.slots, // not a window metric of the API: the mean served_popularity
		"coverage":               float64(len(s.served)) / float64(len(s.cat)),
	}
	if s.ndcgN > 0 {
		w["ndcg_graded"] = s.ndcgSum / s.ndcgN
	}
	if s.hits > 0 {
		w["abs_err"] = s.errSum / s.hits
	}
	s.errSum, s.liveSum = 0, 0
	s.hits, s.n, s.lists2, s.slots, s.prec2, s.ndcgSum, s.ndcgN, s.popSum = 0, 0, 0, 0, 0, 0, 0, 0
	clear(s.served)
	return w
}
