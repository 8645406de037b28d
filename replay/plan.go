package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"

	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/stream"
)

// plan is the replayable view of a cleaned big matrix: its global order and
// the event at each position.
type plan struct {
	m     *kuairec.Interactions
	order []uint32
}

func newPlan(m *kuairec.Interactions) *plan { return &plan{m: m, order: m.Order} }

// Len is the number of positions (timed rows) in the global order.
func (p *plan) Len() int { return len(p.order) }

// timeAt is the event time in Unix ms of position i.
func (p *plan) timeAt(i int) int64 { return p.m.TimeMS[p.order[i]] }

// userAt is the user of position i.
func (p *plan) userAt(i int) uint32 { return p.m.User[p.order[i]] }

// sameGroup reports whether positions i and j are the same user in the same ms.
func (p *plan) sameGroup(i, j int) bool {
	a, b := p.order[i], p.order[j]
	return p.m.TimeMS[a] == p.m.TimeMS[b] && p.m.User[a] == p.m.User[b]
}

// seqAt is the tiebreak of position i: how many of the same user's events in the
// same millisecond come before it in the global order. Such events are adjacent
// in the order (it sorts by time, then user), so this looks back only within
// the group. It is a pure function of the order, not of where a run starts.
func (p *plan) seqAt(i int) uint32 {
	var s uint32
	for j := i - 1; j >= 0 && p.sameGroup(j, i); j-- {
		s++
	}
	return s
}

// nextSeq is the tiebreak of position i given the tiebreak prev of i-1, in O(1)
// (i > 0).
func (p *plan) nextSeq(i int, prev uint32) uint32 {
	if p.sameGroup(i-1, i) {
		return prev + 1
	}
	return 0
}

// event fills e with the event at position i and tiebreak seq (ProducedAtUs is
// left 0: the writer stamps it). It returns an error if seq overflows the event
// id's tiebreak bits.
func (p *plan) event(i int, seq uint32, e *stream.Event) error {
	r := p.order[i]
	m := p.m
	if seq > stream.MaxEventSeq {
		return fmt.Errorf("position %d: user %d has more than %d events at %d ms", i, m.User[r], stream.MaxEventSeq+1, m.TimeMS[r])
	}
	t := m.TimeMS[r]
	if t <= 0 {
		return fmt.Errorf("position %d: non-positive event time %d", i, t)
	}
	*e = stream.Event{
		EventID:         stream.MakeEventID(t, seq),
		UserID:          m.User[r],
		VideoID:         m.Video[r],
		PlayDurationMs:  int64(m.PlayMS[r]),
		VideoDurationMs: int64(m.DurMS[r]),
		EventTimeMs:     t,
		WatchRatio:      m.WatchRatio[r],
		Source:          stream.SourceReplay,
	}
	return nil
}

// searchTime returns the first position whose event time is >= t (Len if none).
func (p *plan) searchTime(t int64) int {
	return sort.Search(len(p.order), func(i int) bool { return p.timeAt(i) >= t })
}

// window is the range of positions [Start, End) selected by the time bounds;
// zero bounds mean none. cut and from are inclusive lower bounds, until is an
// exclusive upper bound, all in Unix ms.
func (p *plan) window(cutMs, fromMs, untilMs int64) (start, end int) {
	lo := max(cutMs, fromMs)
	start, end = 0, p.Len()
	if lo > 0 {
		start = p.searchTime(lo)
	}
	if untilMs > 0 {
		end = max(start, p.searchTime(untilMs))
	}
	return start, end
}

// runID identifies what a replay publishes: every event at or after the cut
// (position, user, video, durations, time and watch ratio) and the cut itself.
// Two runs with the same ID publish the same events at the same positions.
func (p *plan) runID(cutMs int64) string {
	h := newHash64()
	h.word(uint64(cutMs))
	start := 0
	if cutMs > 0 {
		start = p.searchTime(cutMs)
	}
	h.word(uint64(start))
	h.word(uint64(p.Len()))
	m := p.m
	for i := start; i < p.Len(); i++ {
		r := p.order[i]
		h.word(uint64(m.User[r])<<32 | uint64(m.Video[r]))
		h.word(uint64(uint32(m.PlayMS[r]))<<32 | uint64(uint32(m.DurMS[r])))
		h.word(uint64(m.TimeMS[r]))
		h.word(math.Float64bits(m.WatchRatio[r]))
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h.sum())
	return fmt.Sprintf("%x", b)
}

// hash64 is a small word-at-a-time hash (a multiply-xorshift mix per word): stable
// across processes and machines, fast on 12.5M rows, not cryptographic.
type hash64 struct{ h uint64 }

func newHash64() *hash64 { return &hash64{h: 0x9E3779B97F4A7C15} }

func (h *hash64) word(w uint64) {
	x := h.h ^ w
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 31
	x *= 0x94D049BB133111EB
	x ^= x >> 29
	h.h = x + 0x9E3779B97F4A7C15
}

func (h *hash64) sum() uint64 { return h.h }

// partitioner maps users to partitions with murmur2 (stream.PartitionFor),
// memoised per user id.
type partitioner struct {
	n     int
	table []int16 // user id -> partition+1 (0: not computed), for small ids
	other map[uint32]int
}

func newPartitioner(partitions int) *partitioner {
	return &partitioner{n: partitions, table: make([]int16, 1<<16), other: map[uint32]int{}}
}

func (pt *partitioner) of(user uint32) int {
	if int(user) < len(pt.table) {
		if v := pt.table[user]; v != 0 {
			return int(v) - 1
		}
		p := stream.PartitionFor(user, pt.n)
		pt.table[user] = int16(p + 1)
		return p
	}
	if p, ok := pt.other[user]; ok {
		return p
	}
	p := stream.PartitionFor(user, pt.n)
	pt.other[user] = p
	return p
}
