package api

import (
	"math"
	"testing"

	"github.com/streamrec/streamrec/internal/cache"
)

func exploreIndex(t *testing.T, n, dim int) *cache.ItemIndex {
	t.Helper()
	items := cache.Items{IDs: make([]uint32, n), Biases: make([]float32, n), Vectors: make([]float32, n*dim)}
	for i := range items.IDs {
		items.IDs[i] = uint32(100 + i)
		items.Vectors[i*dim] = float32(i)
	}
	ix, err := cache.NewItemIndex(cache.ModelMeta{Version: "v1", Dim: dim, ItemCount: n}, items)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// Every explored slot is a distinct eligible candidate (not in the list, not
// excluded) with propensity rate/M; the model's slots carry 1 - rate; the
// share of explored slots follows the rate.
func TestExplore(t *testing.T) {
	ix := exploreIndex(t, 50, 2)
	vec := []float32{1, 0}
	list := func() []RecItem {
		out := make([]RecItem, 5)
		for i := range out {
			out[i] = RecItem{VideoID: uint32(100 + i)}
		}
		return out
	}
	exclude := []uint32{105, 106, 9999} // 9999 is not an item: ignored
	if p := explore(list(), ix, vec, 1, 0, 0, exclude); p != nil {
		t.Fatal("rate 0 explored")
	}
	for range 200 {
		items := list()
		p := explore(items, ix, vec, 1, 0.5, 1, exclude)
		seen := map[uint32]bool{}
		for i, it := range items {
			if !it.Explored || it.VideoID == 105 || it.VideoID == 106 || seen[it.VideoID] || it.VideoID < 100 || it.VideoID >= 150 {
				t.Fatalf("slot %d: %+v (seen %v)", i, it, seen)
			}
			seen[it.VideoID] = true
			// M = 50 items - the 4 other slots - 2 excluded.
			if want := float32(1.0 / 44); p[i] != want || *it.Propensity != want {
				t.Fatalf("slot %d propensity %v, want 1/44", i, p[i])
			}
			if want := 1 + 0.5 + float32(it.VideoID-100); it.PredictedWatchRatio != want || it.Score != float32(it.VideoID-100) {
				t.Fatalf("slot %d: score %v predicted %v, want the item's own", i, it.Score, it.PredictedWatchRatio)
			}
		}
	}
	explored, slots := 0, 0
	for range 4000 {
		items := list()
		p := explore(items, ix, vec, 0, 0, 0.2, nil)
		for i, it := range items {
			slots++
			if it.Explored {
				explored++
			} else if p != nil && p[i] != float32(1-0.2) {
				t.Fatalf("a model slot with propensity %v", p[i])
			}
		}
	}
	if share := float64(explored) / float64(slots); math.Abs(share-0.2) > 0.01 {
		t.Fatalf("explored share %.4f of %d slots, want 0.2 +- 0.01", share, slots)
	}
}
