package eval

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/streamrec/streamrec/internal/online/drift"
)

// Fallback kinds of a list (List.Fallback).
const (
	FallbackNone         = ""
	FallbackFeatureTower = "feature_tower"
	FallbackPopularity   = "popularity"
)

// Slot is one served video; its rank is its index in List.Slots plus one.
type Slot struct {
	Video                        uint32
	Score, Predicted, Propensity float32
}

// List is a served list as the evaluator sees it.
type List struct {
	ID       string
	User     uint32
	Version  string
	Fallback string
	ServedMS int64
	// Candidates is the candidate set the list was ranked over ("" for the
	// whole catalogue): the frozen twin ranks among the same videos.
	Candidates string
	// InputPartition and InputNext are the input position of the user
	// embedding that was scored: the offset after the last event applied to
	// it (0: none) in its partition of the interactions topic. An interaction
	// at an offset below InputNext is included in the list's embedding.
	InputPartition int32
	InputNext      int64
	Slots          []Slot
	// UserVec and UserBias are the user vector that was scored (nil for a
	// fallback list); they give the prequential error of the user's later
	// interactions that find no open list.
	UserVec  []float32
	UserBias float32
}

// Interaction is one event of the interactions topic.
type Interaction struct {
	User, Video uint32
	EventID     uint64
	WatchRatio  float64
	ProducedMS  int64
	Source      string
	// Partition and Offset are the interaction's position in the
	// interactions topic (Partition.Process sets them): the feedback-to-effect
	// latency waits for a list whose InputNext is above Offset.
	Partition int32
	Offset    int64
}

// Scorer scores videos under a user vector, for the prequential metrics.
type Scorer interface {
	// Predict is the predicted watch ratio of video for (vec, bias).
	Predict(vec []float32, bias float32, video uint32) (float64, bool)
	// Rank is the video's rank (1 = top) under vec among the videos of the
	// candidate set ("" for the whole catalogue).
	Rank(vec []float32, video uint32, candidates string) (int, bool)
}

// Twin scores the frozen twin: a model version as it was published, with
// its offline user vectors, never updated online.
type Twin interface {
	// Predict is the twin's predicted watch ratio of video for user under
	// model version.
	Predict(version string, user, video uint32) (float64, bool)
	// Rank is the video's rank (1 = top) among the candidate set ("" for the
	// catalogue) under the user's offline vector of version.
	Rank(version string, user, video uint32, candidates string) (int, bool)
}

// Config configures an Evaluator. Zero fields take the documented defaults.
type Config struct {
	// OpenFor is how long a list stays open without a next list. Default: 30 min.
	OpenFor time.Duration
	// Grace is how long an interaction waits for a list written late, and how
	// long a closed list waits for late interactions. Default: 2 s.
	Grace time.Duration
	// Window is the span of a produce-time window. Default: 1 min.
	Window time.Duration
	// CountWindow is the number of interactions of a count window. Default: 10,000.
	CountWindow int
	// RankEvery samples the prequential rank 1 in RankEvery no-list
	// interactions (each costs a scan). Default: 100.
	RankEvery int
	// DedupRing is the number of recent event ids per user kept to drop
	// duplicates (those produced within Keep of the watermark). Default: 64.
	DedupRing int
	// PreqHorizon: the prequential metrics of an interaction with no open
	// list use the user's last list with a vector served within PreqHorizon
	// before it. Default: OpenFor.
	PreqHorizon time.Duration
	// Popularity, if not nil, gives a video's popularity percentile in [0, 1]
	// for the window metric popularity_pct (exactly once: a function of the
	// model version, such as the API's rank by item bias).
	Popularity func(video uint32) float64
	// ServedPopularity, if not nil, gives the percentile the drift monitor's
	// served_popularity signal receives (Observe); nil: Popularity. The API
	// gives a LivePopularity, which Watched feeds.
	ServedPopularity func(video uint32) float64
	// Watched, if not nil, is called with the video of every interaction
	// processed (not the duplicates), on the evaluator's goroutine.
	Watched func(video uint32)
	// Scorer, if not nil, gives the prequential metrics.
	Scorer Scorer
	// Twin, if not nil (with Scorer), gives the frozen twin's metrics beside
	// the live model's on the same joined interactions.
	Twin Twin
	// Observe, if not nil, receives the per-interaction and per-list values
	// the drift monitor watches (signal names in internal/online/drift):
	// hit and abs_err per joined interaction, watch_ratio per interaction
	// (the served lists' values go to ObserveKeyed). Called on the
	// evaluator's goroutine; it must not block.
	Observe func(signal string, x float64)
	// ObserveKeyed, if not nil, receives the per-list and per-slot values
	// (served_score and served_popularity keyed by user and video,
	// served_norm by user: drift.Monitor.ObserveKeyed); the same rules.
	ObserveKeyed func(signal string, key uint64, x float64)
}

// Validate fills the defaults and checks c.
func (c *Config) Validate() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defi := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.OpenFor, 30*time.Minute)
	def(&c.Grace, 2*time.Second)
	def(&c.Window, time.Minute)
	defi(&c.CountWindow, 10000)
	defi(&c.RankEvery, 100)
	defi(&c.DedupRing, 64)
	def(&c.PreqHorizon, c.OpenFor)
	var errs []error
	if c.OpenFor < time.Millisecond || c.Window < time.Millisecond || c.Grace < 0 {
		errs = append(errs, fmt.Errorf("eval: open-for %v and window %v must be >= 1 ms, grace %v >= 0", c.OpenFor, c.Window, c.Grace))
	}
	if c.CountWindow < 1 || c.RankEvery < 1 || c.DedupRing < 1 || c.PreqHorizon < 0 {
		errs = append(errs, fmt.Errorf("eval: count window %d, rank-every %d and dedup ring %d must be >= 1, prequential horizon %v >= 0", c.CountWindow, c.RankEvery, c.DedupRing, c.PreqHorizon))
	}
	return errors.Join(errs...)
}

// WindowKind tells a produce-time window from a count window.
type WindowKind byte

// Window kinds.
const (
	ByTime  WindowKind = 't'
	ByCount WindowKind = 'n'
)

// WindowKey names one window: its kind and index (produce time / Window, or
// interaction number / CountWindow).
type WindowKey struct {
	Kind  WindowKind
	Index int64
}

// Increment adds Delta to Field in Window; when Distinct is set, it instead
// adds Video to the set Field of the window (a count of distinct members).
type Increment struct {
	Window   WindowKey
	Field    string
	Delta    int64
	Distinct bool
	Video    uint32
}

// Keep is how far behind the clock (in produce time) an arriving interaction
// still counts: OpenFor + 2 Grace. An older one is counted as stale and not
// joined; a duplicate is an event id seen for the user within Keep before.
func (c *Config) Keep() time.Duration { return c.OpenFor + 2*c.Grace }

// Micro converts a real value to the integer micro-units of the sums.
func Micro(x float64) int64 { return int64(math.Round(x * 1e6)) }

type openList struct {
	List
	closeMS   int64
	finalised bool
	hasVec    bool               // served with a user vector (UserVec may be dropped later)
	watched   map[uint32]float64 // first observed watch ratio per served video
}

type userState struct {
	lists []*openList // by ServedMS
	ring  []ringEntry
	next  int
	// unseen: the user's interactions no list's embedding included yet
	// (feedback-to-effect), oldest first, at most maxUnseen.
	unseen []effectWait
}

type ringEntry struct{ id, ms int64 }

// Evaluator joins interactions to served lists. It is not safe for concurrent
// use; one goroutine owns it.
type Evaluator struct {
	cfg       Config
	users     map[uint32]*userState
	pend      pendingHeap
	closes    closingHeap
	seq       uint64
	processed int64 // interactions processed (count windows)
	nowMS     int64
	out       []Increment
	// returned: out was handed to the caller; the next increment starts anew.
	returned bool
	names    map[[2]string]string // field, tag -> "field|tag", so that emit does not allocate
	rates    rateCounter
}

// New returns an Evaluator; cfg is validated.
func New(cfg Config) (*Evaluator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Evaluator{cfg: cfg, users: map[uint32]*userState{}, names: map[[2]string]string{}}, nil
}

func (e *Evaluator) user(u uint32) *userState {
	s := e.users[u]
	if s == nil {
		s = &userState{}
		e.users[u] = s
	}
	return s
}

func (e *Evaluator) timeWindow(ms int64) WindowKey {
	w := e.cfg.Window.Milliseconds()
	i := ms / w
	if ms < 0 && ms%w != 0 {
		i--
	}
	return WindowKey{ByTime, i}
}

func (e *Evaluator) countWindow() WindowKey {
	return WindowKey{ByCount, e.processed / int64(e.cfg.CountWindow)}
}

// put appends increments to the output.
func (e *Evaluator) put(incs ...Increment) {
	if e.returned {
		e.out, e.returned = e.out[:0], false
	}
	e.out = append(e.out, incs...)
}

// emit adds delta to field in both windows, plain and per tag.
func (e *Evaluator) emit(tw WindowKey, field string, delta int64, tags ...string) {
	cw := e.countWindow()
	if e.returned {
		e.out, e.returned = e.out[:0], false
	}
	e.out = append(e.out, Increment{Window: tw, Field: field, Delta: delta}, Increment{Window: cw, Field: field, Delta: delta})
	for _, t := range tags {
		f, ok := e.names[[2]string{field, t}]
		if !ok {
			f = field + "|" + t
			e.names[[2]string{field, t}] = f
		}
		e.out = append(e.out, Increment{Window: tw, Field: f, Delta: delta}, Increment{Window: cw, Field: f, Delta: delta})
	}
}

func sourceTag(s string) string {
	switch s {
	case "replay":
		return "source=replay"
	case "api":
		return "source=api"
	case "simulator":
		return "source=simulator"
	}
	return "source=" + s
}

// versionTag tags the fields the canary compares (joined, hits, abs_err)
// with the served list's model version: "version=<v>".
func (e *Evaluator) versionTag(v string) string {
	t, ok := e.names[[2]string{"", v}]
	if !ok {
		t = "version=" + v
		e.names[[2]string{"", v}] = t
	}
	return t
}

func fallbackTag(f string) string {
	switch f {
	case FallbackNone:
		return "fallback=none"
	case FallbackFeatureTower:
		return "fallback=feature_tower"
	case FallbackPopularity:
		return "fallback=popularity"
	}
	return "fallback=" + f
}

// AddList records a served list. A list reaching the evaluator more than
// Grace after its serve time is counted as late_lists.
func (e *Evaluator) AddList(l List) {
	s := e.user(l.User)
	ol := &openList{List: l, closeMS: l.ServedMS + e.cfg.OpenFor.Milliseconds()}
	if e.nowMS > l.ServedMS+e.cfg.Grace.Milliseconds() {
		e.emit(e.timeWindow(l.ServedMS), "late_lists", 1, fallbackTag(l.Fallback))
	}
	i, _ := slices.BinarySearchFunc(s.lists, l.ServedMS, func(x *openList, t int64) int {
		switch {
		case x.ServedMS < t:
			return -1
		case x.ServedMS > t:
			return 1
		}
		return 0
	})
	// Equal serve times: the later arrival goes after (and closes the earlier).
	for i < len(s.lists) && s.lists[i].ServedMS == l.ServedMS {
		i++
	}
	s.lists = slices.Insert(s.lists, i, ol)
	if i+1 < len(s.lists) {
		ol.closeMS = min(ol.closeMS, s.lists[i+1].ServedMS)
	}
	if i > 0 && !s.lists[i-1].finalised && l.ServedMS < s.lists[i-1].closeMS {
		s.lists[i-1].closeMS = l.ServedMS
		heap.Push(&e.closes, closing{s.lists[i-1].closeMS + e.cfg.Grace.Milliseconds(), s.lists[i-1]})
	}
	heap.Push(&e.closes, closing{ol.closeMS + e.cfg.Grace.Milliseconds(), ol})
	ol.hasVec = ol.UserVec != nil
	if obs := e.cfg.ObserveKeyed; obs != nil {
		pop := e.cfg.ServedPopularity
		if pop == nil {
			pop = e.cfg.Popularity
		}
		for _, sl := range l.Slots {
			key := uint64(l.User)<<32 | uint64(sl.Video)
			obs(drift.SignalServedScore, key, float64(sl.Score))
			if pop != nil {
				obs(drift.SignalServedPopularity, key, pop(sl.Video))
			}
		}
		if l.UserVec != nil {
			var n2 float64
			for _, v := range l.UserVec {
				n2 += float64(v) * float64(v)
			}
			obs(drift.SignalServedNorm, uint64(l.User), math.Sqrt(n2))
		}
	}
	e.dropVectors(s)
	if ol.InputNext > 0 {
		// The user's waiting interactions this list's embedding includes.
		kept := s.unseen[:0]
		for _, w := range s.unseen {
			if w.partition == ol.InputPartition && w.offset < ol.InputNext {
				e.effect(w.ms, ol.ServedMS, w.src)
			} else {
				kept = append(kept, w)
			}
		}
		s.unseen = kept
	}
}

// AddInteraction queues x; Advance joins it once Grace has passed after its
// produce time. An interaction produced more than Keep before the clock is
// counted as stale_interactions and not joined.
func (e *Evaluator) AddInteraction(x Interaction) {
	if x.ProducedMS < e.nowMS-e.cfg.Keep().Milliseconds() {
		e.emit(e.timeWindow(x.ProducedMS), "stale_interactions", 1, sourceTag(x.Source))
		return
	}
	e.seq++
	heap.Push(&e.pend, pending{x, e.seq})
}

// Advance moves the evaluator's clock to nowMS (Unix ms; it never goes back):
// it joins every queued interaction produced at or before nowMS - Grace, in
// produce-time order, and finalises every list closed at or before that
// time. It returns the increments produced since the last call (AddList's
// included); the slice is reused after the call.
func (e *Evaluator) Advance(nowMS int64) []Increment {
	e.nowMS = max(e.nowMS, nowMS)
	limit := e.nowMS - e.cfg.Grace.Milliseconds()
	if e.returned {
		e.out, e.returned = e.out[:0], false
	}
	for {
		// Interleave in time order: an interaction produced before a list's
		// close is joined before the list is finalised.
		nextX, nextC := int64(math.MaxInt64), int64(math.MaxInt64)
		if len(e.pend) > 0 && e.pend[0].x.ProducedMS <= limit {
			nextX = e.pend[0].x.ProducedMS
		}
		if len(e.closes) > 0 && e.closes[0].at <= e.nowMS {
			nextC = e.closes[0].at - e.cfg.Grace.Milliseconds()
		}
		switch {
		case nextX == math.MaxInt64 && nextC == math.MaxInt64:
			e.returned = true
			return e.out
		case nextX < nextC:
			p := heap.Pop(&e.pend).(pending)
			e.process(p.x)
		default:
			c := heap.Pop(&e.closes).(closing)
			if !c.l.finalised && c.l.closeMS+e.cfg.Grace.Milliseconds() == c.at {
				e.finalise(c.l)
			}
		}
	}
}

// Pending is the number of interactions waiting for their grace period.
func (e *Evaluator) Pending() int { return len(e.pend) }

// seen reports whether id was processed for the user with a produce time at
// or after since, and records it.
func (s *userState) seen(id uint64, ms, since int64, ring int) bool {
	for _, r := range s.ring {
		if r.id == int64(id) && r.ms >= since {
			return true
		}
	}
	if len(s.ring) < ring {
		s.ring = append(s.ring, ringEntry{int64(id), ms})
	} else {
		s.ring[s.next] = ringEntry{int64(id), ms}
		s.next = (s.next + 1) % ring
	}
	return false
}

func (e *Evaluator) process(x Interaction) {
	s := e.user(x.User)
	tw := e.timeWindow(x.ProducedMS)
	src := sourceTag(x.Source)
	if s.seen(x.EventID, x.ProducedMS, x.ProducedMS-e.cfg.Keep().Milliseconds(), e.cfg.DedupRing) {
		e.emit(tw, "duplicates", 1, src)
		return
	}
	e.emit(tw, "interactions", 1, src)
	defer func() { e.processed++ }()
	e.waitEffect(s, x)
	if e.cfg.Watched != nil {
		e.cfg.Watched(x.Video)
	}
	obs := e.cfg.Observe
	if obs != nil {
		obs(drift.SignalWatchRatio, x.WatchRatio)
		e.rates.add(obs, x.Source, x.ProducedMS)
	}
	// The list open at p: the last served at or before p, if p is before its
	// close; last: the last list at or before p with a user vector.
	var open, last *openList
	first := true
	for i := len(s.lists) - 1; i >= 0 && (first || last == nil); i-- {
		l := s.lists[i]
		if l.ServedMS > x.ProducedMS {
			continue
		}
		if first {
			first = false
			if x.ProducedMS < l.closeMS {
				open = l
			}
		}
		if last == nil && l.UserVec != nil && l.ServedMS >= x.ProducedMS-e.cfg.PreqHorizon.Milliseconds() {
			last = l
		}
	}
	if open != nil {
		fb := fallbackTag(open.Fallback)
		vt := e.versionTag(open.Version)
		e.emit(tw, "joined", 1, src, fb, vt)
		// The engagement the canary compares: the observed watch ratio of
		// each joined interaction, by the served version only.
		e.emit(tw, "joined_wr_u", Micro(x.WatchRatio), vt)
		hit := 0.0
		for _, sl := range open.Slots {
			if sl.Video != x.Video {
				continue
			}
			hit = 1
			ae := math.Abs(float64(sl.Predicted) - x.WatchRatio)
			e.emit(tw, "hits", 1, src, fb, vt)
			e.emit(tw, "abs_err_u", Micro(ae), src, fb, vt)
			e.emit(tw, "abs_err_n", 1, src, fb, vt)
			if obs != nil {
				obs(drift.SignalAbsErr, ae)
			}
			break
		}
		if obs != nil {
			obs(drift.SignalHit, hit)
		}
		e.compareTwin(tw, open, x, src, fb)
		if open.finalised {
			e.emit(tw, "late_interactions", 1, src, fb)
		} else if _, ok := open.watched[x.Video]; !ok {
			if open.watched == nil {
				open.watched = map[uint32]float64{}
			}
			open.watched[x.Video] = x.WatchRatio
		}
		return
	}
	e.emit(tw, "no_list", 1, src)
	if last == nil || e.cfg.Scorer == nil {
		return
	}
	if pred, ok := e.cfg.Scorer.Predict(last.UserVec, last.UserBias, x.Video); ok {
		e.emit(tw, "preq_n", 1, src)
		e.emit(tw, "preq_abs_err_u", Micro(math.Abs(pred-x.WatchRatio)), src)
	}
	if sampled(x.User, x.EventID, e.cfg.RankEvery) {
		if r, ok := e.cfg.Scorer.Rank(last.UserVec, x.Video, ""); ok {
			e.emit(tw, "preq_rank_n", 1, src)
			e.emit(tw, "preq_rank_sum", int64(r), src)
		}
	}
}

// SetCount makes the count windows of the next increments those of n (the
// input offset being processed: see Partition); without it, count windows
// follow the number of interactions processed.
func (e *Evaluator) SetCount(n int64) { e.processed = n }
