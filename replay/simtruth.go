package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/synth"
)

// simTruth is what the closed-loop simulator knows that the recommender
// does not: the true watch ratio of every pair of the fully observed small
// matrix.
type simTruth interface {
	// Ratio is the true watch ratio of user watching video at event time
	// tMS; false for a pair the truth does not know (never on synthetic data).
	Ratio(user, video uint32, tMS int64) (float64, bool)
	// DurationMS is the video's duration (for the play_duration_ms sent).
	DurationMS(video uint32) int64
	// Users and Videos are the small matrix's users and videos, sorted.
	Users() []uint32
	Videos() []uint32
	// Phase changes when the user's true ratios change (a drift taking
	// effect); the ideal lists are cached per (user, phase).
	Phase(user uint32, tMS int64) int
	// Describe says where the truth comes from (for the summary).
	Describe() string
}

// loadSimTruth reads the truth of the folder dir: the generator's truth when
// dir has one (DIR/truth, synthetic data), else the real small matrix.
func loadSimTruth(dir string) (simTruth, error) {
	root := filepath.Dir(filepath.Dir(dir)) // DIR/KuaiRec 2.0/data -> DIR
	if _, err := os.Stat(filepath.Join(root, "truth", "manifest.json")); err == nil {
		tr, err := synth.LoadTruth(root)
		if err != nil {
			return nil, err
		}
		return &synthTruth{tr: tr}, nil
	}
	ds, _, err := kuairec.Load(dir, kuairec.Options{SkipBig: true, SkipDaily: true})
	if err != nil {
		return nil, fmt.Errorf("loading the small matrix of %s: %w", dir, err)
	}
	return newSmallTruth(ds.Small), nil
}

// synthTruth: the generator's expected watch ratio E[watch_ratio | u, v, t]
// (synth.Truth.ExpectedWatchRatio), which follows the injected drifts.
type synthTruth struct{ tr *synth.Truth }

func (s *synthTruth) Ratio(user, video uint32, tMS int64) (float64, bool) {
	if int(user) >= len(s.tr.Users) || int(video) >= len(s.tr.Videos) {
		return 0, false
	}
	return s.tr.ExpectedWatchRatio(user, video, tMS), true
}

func (s *synthTruth) DurationMS(video uint32) int64 {
	if int(video) >= len(s.tr.Videos) {
		return 10000
	}
	return int64(s.tr.Videos[video].DurationMS)
}

func (s *synthTruth) Users() []uint32 { return sortedCopy(s.tr.Manifest.SmallUsers) }

func (s *synthTruth) Videos() []uint32 { return sortedCopy(s.tr.Manifest.SmallVideos) }

func (s *synthTruth) Phase(user uint32, tMS int64) int {
	m := &s.tr.Manifest
	p := 0
	if m.PrefsDriftMS != 0 && tMS >= m.PrefsDriftMS && int(user) < len(s.tr.Users) && s.tr.Users[user].Drifted {
		p |= 1
	}
	if m.PopDriftMS != 0 && tMS >= m.PopDriftMS {
		p |= 2
	}
	return p
}

func (s *synthTruth) Describe() string {
	m := &s.tr.Manifest
	d := "synthetic (" + m.Scale + ", seed " + fmt.Sprint(m.Seed) + "): the generator's expected watch ratio"
	if m.PrefsDriftMS != 0 {
		d += ", preference drift at " + fmtMs(m.PrefsDriftMS)
	}
	if m.PopDriftMS != 0 {
		d += ", popularity drift at " + fmtMs(m.PopDriftMS)
	}
	return d
}

// smallTruth: the real small matrix's observed watch ratios (about 99.6%
// of its pairs are observed; a pair observed more than once takes its last
// row). An unobserved pair is unknown: the simulated user skips it (no
// interaction is sent) and the exact metrics count it as gain 0, not
// relevant.
type smallTruth struct {
	ratio  map[uint64]float64
	dur    map[uint32]int64
	users  []uint32
	videos []uint32
}

func newSmallTruth(m *kuairec.Interactions) *smallTruth {
	t := &smallTruth{ratio: make(map[uint64]float64, len(m.User)), dur: map[uint32]int64{}}
	us, vs := map[uint32]bool{}, map[uint32]bool{}
	for i := range m.User {
		t.ratio[uint64(m.User[i])<<32|uint64(m.Video[i])] = m.WatchRatio[i]
		t.dur[m.Video[i]] = int64(m.DurMS[i])
		us[m.User[i]], vs[m.Video[i]] = true, true
	}
	for u := range us {
		t.users = append(t.users, u)
	}
	for v := range vs {
		t.videos = append(t.videos, v)
	}
	slices.Sort(t.users)
	slices.Sort(t.videos)
	return t
}

func (t *smallTruth) Ratio(user, video uint32, _ int64) (float64, bool) {
	r, ok := t.ratio[uint64(user)<<32|uint64(video)]
	return r, ok
}

func (t *smallTruth) DurationMS(video uint32) int64 {
	if d, ok := t.dur[video]; ok && d > 0 {
		return d
	}
	return 10000
}

func (t *smallTruth) Users() []uint32         { return t.users }
func (t *smallTruth) Videos() []uint32        { return t.videos }
func (t *smallTruth) Phase(uint32, int64) int { return 0 }
func (t *smallTruth) Describe() string {
	return "the real KuaiRec small matrix's observed watch ratios"
}
func sortedCopy(ids []uint32) []uint32 { s := slices.Clone(ids); slices.Sort(s); return s }
func relevant08(r float64) bool        { return r >= 0.8 }
func relevant2(r float64) bool         { return r > 2 }
func discount(i int) float64           { return 1 / math.Log2(float64(i+2)) }

// exact are the exact metrics of one served list, from the truth.
type exact struct {
	NDCG, P08, P2 float64
}

// idealCache holds, per (user, phase), the candidates' true ratios sorted
// best first; the ideal DCG's gains are the K best of them not excluded.
type idealCache struct {
	tr     simTruth
	videos []uint32
	k      int
	mu     sync.Mutex
	m      map[[2]uint32][]rated
}

type rated struct {
	v uint32
	r float64
}

func newIdealCache(tr simTruth, videos []uint32, k int) *idealCache {
	return &idealCache{tr: tr, videos: videos, k: k, m: map[[2]uint32][]rated{}}
}

// ideal is the K best true ratios among the candidates not in exclude
// (the videos a list could hold), best first.
func (c *idealCache) ideal(user uint32, tMS int64, exclude []uint32) []float64 {
	key := [2]uint32{user, uint32(c.tr.Phase(user, tMS))}
	c.mu.Lock()
	all, ok := c.m[key]
	c.mu.Unlock()
	if !ok {
		all = make([]rated, 0, len(c.videos))
		for _, v := range c.videos {
			if r, ok := c.tr.Ratio(user, v, tMS); ok {
				all = append(all, rated{v, r})
			}
		}
		slices.SortFunc(all, func(a, b rated) int {
			switch {
			case a.r > b.r:
				return -1
			case a.r < b.r:
				return 1
			}
			return int(a.v) - int(b.v)
		})
		c.mu.Lock()
		c.m[key] = all
		c.mu.Unlock()
	}
	var ex map[uint32]bool
	if len(exclude) > 0 {
		ex = make(map[uint32]bool, len(exclude))
		for _, v := range exclude {
			ex[v] = true
		}
	}
	g := make([]float64, 0, c.k)
	for _, x := range all {
		if len(g) == c.k {
			break
		}
		if !ex[x.v] {
			g = append(g, x.r)
		}
	}
	return g
}

// exactMetrics scores a list of K slots against the truth at tMS:
//   - NDCG@K graded by the true watch ratios of all K videos, watched or not:
//     DCG = sum_i r(v_i) / log2(i + 2), over the ideal DCG of the K best true
//     ratios among the candidates (ideal, best first);
//   - precision@K at both labels: the share of the K slots whose true ratio
//     is relevant (>= 0.8, > 2). A list shorter than K counts its missing
//     slots as not relevant.
//
// unwatched is ratio without the videos of watched: a video the user has
// already watched scores no gain and is not relevant when a list serves it
// again. The ideal is taken without them (idealCache.ideal's exclude), so a
// list that re-serves them cannot score above it: with exclude_watched, the
// API excludes what the user's history in Redis holds (the videos of the
// last cache.MaxHistory events the updater has written for the user) and
// what its own intake took; watched is the simulator's own posts and that
// same history, read after the list was served (simulator.withHistory), so
// a re-served slot is one the API's read missed (an update in between). It also returns how many of list's first k slots
// are watched.
func unwatched(ratio func(v uint32) (float64, bool), watched []uint32, list []uint32, k int) (func(v uint32) (float64, bool), int) {
	if len(watched) == 0 {
		return ratio, 0
	}
	seen := make(map[uint32]bool, len(watched))
	for _, v := range watched {
		seen[v] = true
	}
	n := 0
	for _, v := range list[:min(len(list), k)] {
		if seen[v] {
			n++
		}
	}
	return func(v uint32) (float64, bool) {
		if seen[v] {
			return 0, false
		}
		return ratio(v)
	}, n
}

func exactMetrics(list []uint32, k int, ratio func(v uint32) (float64, bool), ideal []float64) exact {
	var dcg, idcg float64
	var n08, n2 int
	for i, v := range list[:min(len(list), k)] {
		r, ok := ratio(v)
		if !ok {
			continue
		}
		dcg += r * discount(i)
		if relevant08(r) {
			n08++
		}
		if relevant2(r) {
			n2++
		}
	}
	for i, g := range ideal {
		idcg += g * discount(i)
	}
	out := exact{P08: float64(n08) / float64(k), P2: float64(n2) / float64(k)}
	if idcg > 0 {
		out.NDCG = dcg / idcg
	}
	return out
}
