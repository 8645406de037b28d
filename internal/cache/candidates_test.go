package cache

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// A candidate set's sub-index ranks its items exactly as the full index
// does: its top-K is the full ranking restricted to the set, scores equal.
func TestCandidateSetSubIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 5))
	const n, dim = 3000, 16
	items := randomItems(r, n, dim, true)
	set := make([]uint32, 0, 500)
	for i := 0; i < n; i += 6 {
		set = append(set, items.IDs[i])
	}
	x, err := NewItemIndex(ModelMeta{Version: "v", Dim: dim, CandidateSets: map[string][]uint32{"small_matrix": set}}, items)
	if err != nil {
		t.Fatal(err)
	}
	sub, ok := x.Candidates("small_matrix")
	if !ok || sub.Len() != len(set) || !slices.Equal(x.CandidateSetNames(), []string{"small_matrix"}) {
		t.Fatalf("sub-index: %v, %d items", ok, sub.Len())
	}
	if _, ok := x.Candidates("nope"); ok {
		t.Error("an unknown set was found")
	}
	in := map[uint32]bool{}
	for _, id := range set {
		in[id] = true
	}
	q := make([]float32, dim)
	for trial := range 20 {
		for i := range q {
			q[i] = float32(r.NormFloat64())
		}
		full := x.TopK(nil, q, n, TopKOptions{UseBias: true})
		var want []Scored
		for _, s := range full {
			if in[s.ID] {
				want = append(want, s)
			}
		}
		got := sub.TopK(nil, q, 25, TopKOptions{UseBias: true})
		if !slices.Equal(got, want[:25]) {
			t.Fatalf("trial %d: the sub-index's top-25 is not the full ranking restricted to the set:\n%v\n%v", trial, got, want[:25])
		}
	}
	bad := randomItems(r, 10, dim, false)
	if _, err := NewItemIndex(ModelMeta{Version: "v", Dim: dim, CandidateSets: map[string][]uint32{"s": {999999}}}, bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("a set with an unknown id: %v", err)
	}
}

func testCandidateSetsPublished(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, smallChunks())
	r := rand.New(rand.NewPCG(6, 7))
	m := testModel(r, "cs1", 200, 8)
	m.CandidateSets = map[string][]uint32{"small_matrix": {m.Items.IDs[3], m.Items.IDs[7], m.Items.IDs[100]}}
	mustPublish(t, s, m)
	x, err := LoadItemIndex(t.Context(), s, "cs1")
	if err != nil {
		t.Fatal(err)
	}
	if sub, ok := x.Candidates("small_matrix"); !ok || sub.Len() != 3 {
		t.Fatalf("published set: %v", ok)
	}
	m2 := testModel(r, "cs2", 20, 8)
	id0 := m2.Items.IDs[0]
	for _, sets := range []map[string][]uint32{{"bad:name": {id0}}, {"x": {424242}}, {"x": {id0, id0}}, {"x": {}}} {
		m2.CandidateSets = sets
		if _, err := s.Publish(t.Context(), m2); !errors.Is(err, ErrInvalid) {
			t.Errorf("candidate sets %v published: %v", sets, err)
		}
	}
}
