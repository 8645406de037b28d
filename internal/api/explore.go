package api

import (
	"math/rand/v2"
	"sync"

	"github.com/streamrec/streamrec/internal/cache"
)

// Exploration (Config.ExploreRate = e > 0): each slot of a list from the
// user's embedding is, with probability e, replaced by a video drawn
// uniformly from the eligible candidates (the list's candidate set, without
// the list's other videos and the excluded ones). Every slot carries its
// propensity, the probability that the logging policy put that video in that
// slot: e/M for an explored slot (M eligible candidates; it says "explored":
// true), 1 - e for a slot that kept the model's video. With those, a log of
// served lists and what was watched gives an inverse-propensity estimate of
// another policy's precision@K (the simulator reports the frozen twin's):
// each of the other policy's videos that was shown and seen counts
// relevant(v) / P(v in the list), with P = 1 - e for a model slot and about
// K e / M for a video the model did not pick (any slot may draw it).
// Fallback lists are never explored.

var exploreRand = sync.Pool{New: func() any { return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())) }}

// explore replaces slots of items in place; it returns the propensity of
// every slot (nil when nothing was explored).
func explore(items []RecItem, idx *cache.ItemIndex, vec []float32, mu, bias float32, rate float64, exclude []uint32) []float32 {
	if rate <= 0 || len(items) == 0 {
		return nil
	}
	r := exploreRand.Get().(*rand.Rand)
	defer exploreRand.Put(r)
	var slots []int
	for i := range items {
		if r.Float64() < rate {
			slots = append(slots, i)
		}
	}
	if len(slots) == 0 {
		return nil
	}
	taken := make(map[uint32]bool, len(items)+len(exclude))
	for _, it := range items {
		taken[it.VideoID] = true
	}
	for _, v := range exclude {
		if _, _, ok := idx.Item(v); ok {
			taken[v] = true
		}
	}
	ids := idx.IDs()
	prop := make([]float32, len(items))
	for i := range prop {
		prop[i] = float32(1 - rate)
	}
	for _, i := range slots {
		// The slot's own video goes back to the pool it is drawn from.
		delete(taken, items[i].VideoID)
		m := len(ids) - len(taken)
		if m <= 0 {
			taken[items[i].VideoID] = true
			continue
		}
		// A uniform draw among the eligible: rejection from the catalogue
		// (the excluded share is small), or a scan when it is not.
		var v uint32
		if 2*m >= len(ids) {
			for {
				if v = ids[r.IntN(len(ids))]; !taken[v] {
					break
				}
			}
		} else {
			n := r.IntN(m)
			for _, id := range ids {
				if !taken[id] {
					if n == 0 {
						v = id
						break
					}
					n--
				}
			}
		}
		sc, _ := idx.Score(vec, v, true)
		items[i] = RecItem{VideoID: v, Score: sc, PredictedWatchRatio: mu + bias + sc, Explored: true}
		prop[i] = float32(rate / float64(m))
		taken[v] = true
	}
	for i := range items {
		p := prop[i]
		items[i].Propensity = &p
	}
	return prop
}
