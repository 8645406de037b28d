package eval

import (
	"math"
	"slices"
	"strconv"
)

type effectWait struct {
	partition int32
	offset    int64
	ms        int64
	src       string
}

// maxUnseen bounds the interactions per user waiting for a list that
// includes them; the oldest is dropped first.
const maxUnseen = 64

// F2EBucketsMS are the upper bounds (ms) of the feedback-to-effect latency
// histogram; its fields are f2e_le_<bound> and f2e_le_inf, not cumulative.
var F2EBucketsMS = []int64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 30000, 60000}

var f2eFields = func() []string {
	out := make([]string, 0, len(F2EBucketsMS)+1)
	for _, b := range F2EBucketsMS {
		out = append(out, "f2e_le_"+strconv.FormatInt(b, 10))
	}
	return append(out, "f2e_le_inf")
}()

// F2EField is the histogram field of bucket i (len(F2EBucketsMS): +Inf).
func F2EField(i int) string { return f2eFields[i] }

// effect records the feedback-to-effect latency of an interaction produced
// at ms whose first including list was served at servedMS, in the window of
// its produce time. A latency beyond Keep is not counted (a restarted
// evaluator could not rebuild it).
func (e *Evaluator) effect(ms, servedMS int64, src string) {
	lat := max(0, servedMS-ms)
	if lat > e.cfg.Keep().Milliseconds() {
		return
	}
	b, _ := slices.BinarySearch(F2EBucketsMS, lat)
	tw := e.timeWindow(ms)
	tag := sourceTag(src)
	e.emit(tw, "f2e_n", 1, tag)
	e.emit(tw, "f2e_sum_ms", lat, tag)
	e.emit(tw, f2eFields[b], 1, tag)
}

// waitEffect records x's feedback-to-effect latency if a list already added
// includes it, or queues it for the next list that does.
func (e *Evaluator) waitEffect(s *userState, x Interaction) {
	for _, l := range s.lists {
		if l.InputNext > 0 && l.InputPartition == x.Partition && x.Offset < l.InputNext {
			e.effect(x.ProducedMS, l.ServedMS, x.Source)
			return
		}
	}
	old := e.nowMS - e.cfg.Keep().Milliseconds()
	i := 0
	for i < len(s.unseen) && (s.unseen[i].ms < old || len(s.unseen)-i >= maxUnseen) {
		i++
	}
	if i > 0 {
		s.unseen = append(s.unseen[:0], s.unseen[i:]...)
	}
	s.unseen = append(s.unseen, effectWait{x.Partition, x.Offset, x.ProducedMS, x.Source})
}

// sampled picks 1 in every interactions by a hash of (user, event id), so
// that processing again after a restart samples the same ones.
func sampled(user uint32, id uint64, every int) bool {
	if every <= 1 {
		return true
	}
	h := (uint64(user)<<32 | uint64(user)) ^ id
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h%uint64(every) == 0
}

// compareTwin scores a joined interaction under the live model (the open
// list's user vector) and under the frozen twin (the list version's offline
// vector): both absolute errors on every such interaction, and, 1 in
// RankEvery, both ranks of the watched video among the list's candidates
// and whether each is within the list's length.
func (e *Evaluator) compareTwin(tw WindowKey, l *openList, x Interaction, tags ...string) {
	if e.cfg.Twin == nil || e.cfg.Scorer == nil || l.UserVec == nil {
		return
	}
	live, ok := e.cfg.Scorer.Predict(l.UserVec, l.UserBias, x.Video)
	twin, ok2 := e.cfg.Twin.Predict(l.Version, x.User, x.Video)
	if ok && ok2 {
		e.emit(tw, "twin_n", 1, tags...)
		e.emit(tw, "live_abs_err_u", Micro(math.Abs(live-x.WatchRatio)), tags...)
		e.emit(tw, "twin_abs_err_u", Micro(math.Abs(twin-x.WatchRatio)), tags...)
	}
	if !sampled(x.User, x.EventID, e.cfg.RankEvery) {
		return
	}
	lr, ok := e.cfg.Scorer.Rank(l.UserVec, x.Video, l.Candidates)
	tr, ok2 := e.cfg.Twin.Rank(l.Version, x.User, x.Video, l.Candidates)
	if !ok || !ok2 {
		return
	}
	k := len(l.Slots)
	e.emit(tw, "twin_rank_n", 1, tags...)
	e.emit(tw, "live_rank_sum", int64(lr), tags...)
	e.emit(tw, "twin_rank_sum", int64(tr), tags...)
	if lr <= k {
		e.emit(tw, "live_rank_top", 1, tags...)
	}
	if tr <= k {
		e.emit(tw, "twin_rank_top", 1, tags...)
	}
}
