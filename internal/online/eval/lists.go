package eval

import (
	"math"
	"slices"
)

type pending struct {
	x   Interaction
	seq uint64
}

type pendingHeap []pending

func (h pendingHeap) Len() int { return len(h) }

func (h pendingHeap) Less(i, j int) bool {
	if h[i].x.ProducedMS != h[j].x.ProducedMS {
		return h[i].x.ProducedMS < h[j].x.ProducedMS
	}
	return h[i].seq < h[j].seq
}

func (h pendingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }

func (h *pendingHeap) Push(x any) { *h = append(*h, x.(pending)) }

func (h *pendingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type closing struct {
	at int64 // closeMS + grace
	l  *openList
}

type closingHeap []closing

func (h closingHeap) Len() int { return len(h) }

func (h closingHeap) Less(i, j int) bool { return h[i].at < h[j].at }

func (h closingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }

func (h *closingHeap) Push(x any) { *h = append(*h, x.(closing)) }

func (h *closingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// dropVectors drops the user vectors no interaction can use any more
// (memory): a finalised list's vector serves only the prequential metrics of
// interactions with no open list, and a later list served with a vector
// within OpenFor of it takes that role.
func (e *Evaluator) dropVectors(s *userState) {
	open := e.cfg.OpenFor.Milliseconds()
	for j, l := range s.lists {
		if !l.finalised || l.UserVec == nil {
			continue
		}
		for _, y := range s.lists[j+1:] {
			if y.ServedMS > l.ServedMS+open {
				break
			}
			if y.hasVec {
				l.UserVec = nil
				break
			}
		}
	}
}

// Labels of the list metrics: the seed's (>= 0.8) and KuaiRec's (> 2).
var labels = []struct {
	name string
	rel  func(wr float64) bool
}{
	{"08", func(wr float64) bool { return wr >= 0.8 }},
	{"2", func(wr float64) bool { return wr > 2 }},
}

func (e *Evaluator) finalise(l *openList) {
	l.finalised = true
	tw := e.timeWindow(l.ServedMS)
	fb := fallbackTag(l.Fallback)
	k := len(l.Slots)
	e.emit(tw, "lists", 1, fb)
	if k > 0 {
		e.emit(tw, "served_slots", int64(k), fb)
		cw := e.countWindow()
		for _, sl := range l.Slots {
			e.put(Increment{Window: tw, Field: "served_videos", Distinct: true, Video: sl.Video},
				Increment{Window: cw, Field: "served_videos", Distinct: true, Video: sl.Video})
			if e.cfg.Popularity != nil {
				e.emit(tw, "pop_pct_u", Micro(e.cfg.Popularity(sl.Video)), fb)
			}
		}
		for _, lb := range labels {
			var dcg, idcg float64
			rel := 0
			for i, sl := range l.Slots {
				if wr, ok := l.watched[sl.Video]; ok && lb.rel(wr) {
					dcg += 1 / math.Log2(float64(i+2))
					rel++
				}
			}
			for i := range rel {
				idcg += 1 / math.Log2(float64(i+2))
			}
			e.emit(tw, "prec"+lb.name+"_u", Micro(float64(rel)/float64(k)), fb)
			if rel == 0 {
				e.emit(tw, "ndcg"+lb.name+"_none", 1, fb)
			} else {
				e.emit(tw, "ndcg"+lb.name+"_u", Micro(dcg/idcg), fb)
				e.emit(tw, "ndcg"+lb.name+"_n", 1, fb)
			}
		}
		var dcg float64
		gains := make([]float64, 0, len(l.watched))
		for i, sl := range l.Slots {
			if wr, ok := l.watched[sl.Video]; ok && wr > 0 {
				dcg += wr / math.Log2(float64(i+2))
				gains = append(gains, wr)
			}
		}
		if len(gains) > 0 {
			slices.Sort(gains)
			slices.Reverse(gains)
			var idcg float64
			for i, g := range gains {
				idcg += g / math.Log2(float64(i+2))
			}
			e.emit(tw, "ndcg_graded_u", Micro(dcg/idcg), fb)
			e.emit(tw, "ndcg_graded_n", 1, fb)
		}
	}
	l.watched = nil
	e.dropVectors(e.users[l.User])
	// Drop the user's finalised lists that no interaction can reach any more.
	s := e.users[l.User]
	old := e.nowMS - e.cfg.Keep().Milliseconds() - e.cfg.PreqHorizon.Milliseconds()
	i := 0
	for i < len(s.lists) && s.lists[i].finalised && s.lists[i].ServedMS < old {
		i++
	}
	if i > 0 {
		s.lists = append(s.lists[:0], s.lists[i:]...)
	}
}
