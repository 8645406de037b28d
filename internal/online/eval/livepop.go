package eval

import (
	"fmt"
	"slices"
	"sync"
)

// LivePopularity is a video's popularity percentile among what users watch
// now: its rank by the number of interactions on it among the last Window
// interactions, over a catalogue of Catalogue() videos (the videos not among
// them count 0). Ties are spread by a hash of the video id: a percentile is
// (the videos with a smaller count + h x those with the same count) / the
// catalogue, h in [0, 1) fixed per video (a randomised probability integral
// transform). Counts are discrete, so without the spread the percentiles
// would be a few atoms that move a little at every re-rank, and a quantile
// histogram's edges, which sit on atoms, would see every move as a shift
// (measured: PSI about 0.4 between stationary blocks). The videos with no
// interaction share (h x their number) / the catalogue. The ranks are
// recomputed every Every additions (and at the first query after a
// catalogue change), so a query costs one map look-up.
//
// It is the drift monitor's served_popularity signal
// (Config.ServedPopularity): a model's item biases only move with a new
// version, so a percentile by bias (the window metric popularity_pct) does
// not see a shift of what users watch until the served lists change; this
// one does. It is not part of the exactly-once window increments: it lives
// in memory, is shared by the replica's partitions and starts empty. Safe
// for concurrent use.
type LivePopularity struct {
	window, every int
	catalogue     func() int

	mu     sync.Mutex
	ring   []uint32
	pos    int
	full   bool
	counts map[uint32]int32
	since  int
	pct    map[uint32]float64
	zero   float64 // the zeros' share of the catalogue
	catN   int     // the catalogue size pct was computed for
	ranked []videoCount
}

type videoCount struct {
	video uint32
	n     int32
}

// NewLivePopularity counts the last window interactions, re-ranks every
// every additions, over a catalogue of catalogue() videos (nil: the videos
// seen in the window).
func NewLivePopularity(window, every int, catalogue func() int) (*LivePopularity, error) {
	if window < 1 || every < 1 {
		return nil, fmt.Errorf("eval: live popularity window %d and re-rank interval %d must be >= 1", window, every)
	}
	return &LivePopularity{window: window, every: every, catalogue: catalogue,
		ring: make([]uint32, window), counts: map[uint32]int32{}, zero: 1, catN: -1}, nil
}

// Add records an interaction on video.
func (p *LivePopularity) Add(video uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.full {
		old := p.ring[p.pos]
		if p.counts[old]--; p.counts[old] == 0 {
			delete(p.counts, old)
		}
	}
	p.ring[p.pos] = video
	p.counts[video]++
	if p.pos++; p.pos == p.window {
		p.pos, p.full = 0, true
	}
	if p.since++; p.since >= p.every {
		p.rerank()
	}
}

// Percentile is video's percentile in [0, 1) (towards 1: the most watched).
func (p *LivePopularity) Percentile(video uint32) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pct == nil || (p.catalogue != nil && p.catalogue() != p.catN) {
		p.rerank()
	}
	if x, ok := p.pct[video]; ok {
		return x
	}
	return p.zero * spread(video)
}

// spread is the video's fixed place in [0, 1) within its tie (splitmix64).
func spread(video uint32) float64 {
	z := uint64(video) + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

// rerank recomputes the percentiles from the counts; p.mu is held.
func (p *LivePopularity) rerank() {
	p.since = 0
	p.ranked = p.ranked[:0]
	for v, n := range p.counts {
		p.ranked = append(p.ranked, videoCount{v, n})
	}
	slices.SortFunc(p.ranked, func(a, b videoCount) int { return int(a.n - b.n) })
	total := len(p.ranked)
	p.catN = -1
	if p.catalogue != nil {
		p.catN = p.catalogue()
		total = max(total, p.catN)
	}
	if p.pct == nil {
		p.pct = make(map[uint32]float64, len(p.ranked))
	}
	clear(p.pct)
	if total == 0 {
		p.zero = 1
		return
	}
	zeros := total - len(p.ranked)
	p.zero = float64(zeros) / float64(total)
	below := zeros
	for i := 0; i < len(p.ranked); {
		j := i
		for j < len(p.ranked) && p.ranked[j].n == p.ranked[i].n {
			j++
		}
		for _, vc := range p.ranked[i:j] {
			p.pct[vc.video] = (float64(below) + spread(vc.video)*float64(j-i)) / float64(total)
		}
		below += j - i
		i = j
	}
}
