package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// randomItems returns n items of dim with shuffled, possibly sparse ids.
func randomItems(r *rand.Rand, n, dim int, sparseIDs bool) Items {
	it := Items{IDs: make([]uint32, n), Biases: randVec(r, n), Vectors: randVec(r, n*dim)}
	for i := range it.IDs {
		it.IDs[i] = uint32(i)
		if sparseIDs {
			it.IDs[i] = uint32(i)*7919 + 1<<30
		}
	}
	r.Shuffle(n, func(i, j int) { it.IDs[i], it.IDs[j] = it.IDs[j], it.IDs[i] })
	return it
}

// refScore scores one row-major row by the kernel's definition (kernel.go),
// alone and without the tiled layout: the reference must agree bit for bit
// with TopK's tiled scoring.
func refScore(q, row []float32) float32 {
	var a0, a1 float32
	for j := range q {
		if j%2 == 0 {
			a0 = fma32(q[j], row[j], a0)
		} else {
			a1 = fma32(q[j], row[j], a1)
		}
	}
	return a0 + a1
}

// bruteTopK is the reference: score everything, sort, cut.
func bruteTopK(it Items, dim int, q []float32, k int, opts TopKOptions) []Scored {
	excl := map[uint32]bool{}
	for _, id := range opts.Exclude {
		excl[id] = true
	}
	var all []Scored
	for i, id := range it.IDs {
		if excl[id] {
			continue
		}
		s := refScore(q, it.Vectors[i*dim:(i+1)*dim])
		if opts.UseBias {
			s += it.Biases[i]
		}
		if s != s {
			continue
		}
		all = append(all, Scored{ID: id, Score: s})
	}
	slices.SortFunc(all, func(a, b Scored) int {
		switch {
		case better(a.Score, a.ID, b):
			return -1
		case better(b.Score, b.ID, a):
			return 1
		}
		return 0
	})
	return all[:min(k, len(all))]
}

func TestTopKMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	tests := []struct {
		n, dim, k int
		sparse    bool
		bias      bool
		nExclude  int
	}{
		{1, 1, 1, false, false, 0},
		{3, 5, 10, false, true, 0},
		{10, 8, 3, false, false, 2},
		{1000, 64, 25, false, true, 0},
		{1000, 64, 25, false, true, 100},
		{1001, 63, 25, true, false, 50},
		{2000, 16, 1, true, true, 1999},
		{500, 7, 500, false, true, 37},
		{333, 64, 0, false, false, 0},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("n=%d/dim=%d/k=%d/sparse=%v/bias=%v/excl=%d", tc.n, tc.dim, tc.k, tc.sparse, tc.bias, tc.nExclude), func(t *testing.T) {
			it := randomItems(r, tc.n, tc.dim, tc.sparse)
			ref := Items{IDs: slices.Clone(it.IDs), Biases: slices.Clone(it.Biases), Vectors: slices.Clone(it.Vectors)}
			x, err := NewItemIndex(ModelMeta{Version: "v", Dim: tc.dim}, it)
			if err != nil {
				t.Fatal(err)
			}
			opts := TopKOptions{UseBias: tc.bias}
			for _, i := range r.Perm(tc.n)[:tc.nExclude] {
				opts.Exclude = append(opts.Exclude, ref.IDs[i])
			}
			opts.Exclude = append(opts.Exclude, 1<<31+5) // unknown ids are ignored
			var dst []Scored
			for range 3 { // reuse dst and the pooled bitset
				q := randVec(r, tc.dim)
				dst = x.TopK(dst, q, tc.k, opts)
				want := bruteTopK(ref, tc.dim, q, tc.k, opts)
				if !slices.Equal(dst, want) {
					t.Fatalf("TopK differs from brute force\n got %v\nwant %v", dst, want)
				}
			}
		})
	}
}

func TestTopKTiesAndNaN(t *testing.T) {
	it := Items{IDs: []uint32{9, 3, 7, 1, 5}, Vectors: []float32{1, 1, 1, 2, -1}}
	x, err := NewItemIndex(ModelMeta{Version: "v", Dim: 1}, it)
	if err != nil {
		t.Fatal(err)
	}
	got := x.TopK(nil, []float32{1}, 3, TopKOptions{})
	want := []Scored{{1, 2}, {3, 1}, {7, 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v (ties to the lower id)", got, want)
	}
	if got := x.TopK(nil, []float32{float32(math.NaN())}, 3, TopKOptions{}); len(got) != 0 {
		t.Fatalf("NaN query returned %v", got)
	}
}

func TestTopKDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	r := rand.New(rand.NewPCG(13, 14))
	x, err := NewItemIndex(ModelMeta{Version: "v", Dim: 64}, randomItems(r, 5000, 64, false))
	if err != nil {
		t.Fatal(err)
	}
	q := randVec(r, 64)
	dst := make([]Scored, 0, 25)
	exclude := []uint32{1, 2, 3, 4000}
	x.TopK(dst, q, 25, TopKOptions{Exclude: exclude}) // warm the pool
	allocs := testing.AllocsPerRun(100, func() {
		dst = x.TopK(dst, q, 25, TopKOptions{UseBias: true, Exclude: exclude})
	})
	if allocs != 0 {
		t.Fatalf("TopK allocates %v times per call with cap(dst) >= k", allocs)
	}
}

func TestTopKPanicsOnDimMismatch(t *testing.T) {
	x, err := NewItemIndex(ModelMeta{Version: "v", Dim: 2}, Items{IDs: []uint32{1}, Vectors: []float32{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a query of the wrong dim")
		}
	}()
	x.TopK(nil, []float32{1, 2, 3}, 1, TopKOptions{})
}

func TestNewItemIndexRejects(t *testing.T) {
	tests := []struct {
		name  string
		meta  ModelMeta
		items Items
	}{
		{"zero dim", ModelMeta{}, Items{}},
		{"shape", ModelMeta{Dim: 2}, Items{IDs: []uint32{1}, Vectors: []float32{1}}},
		{"biases", ModelMeta{Dim: 1}, Items{IDs: []uint32{1}, Vectors: []float32{1}, Biases: []float32{1, 2}}},
		{"count", ModelMeta{Dim: 1, ItemCount: 2}, Items{IDs: []uint32{1}, Vectors: []float32{1}}},
		{"duplicate dense", ModelMeta{Dim: 1}, Items{IDs: []uint32{1, 1}, Vectors: []float32{1, 2}}},
		{"duplicate sparse", ModelMeta{Dim: 1}, Items{IDs: []uint32{1 << 30, 1 << 30}, Vectors: []float32{1, 2}}},
		{"NaN vector", ModelMeta{Dim: 2}, Items{IDs: []uint32{1, 2}, Vectors: []float32{1, 2, 3, float32(math.NaN())}}},
		{"+Inf vector", ModelMeta{Dim: 1}, Items{IDs: []uint32{1}, Vectors: []float32{float32(math.Inf(1))}}},
		{"-Inf vector", ModelMeta{Dim: 1}, Items{IDs: []uint32{1}, Vectors: []float32{float32(math.Inf(-1))}}},
		{"NaN bias", ModelMeta{Dim: 1}, Items{IDs: []uint32{1}, Vectors: []float32{1}, Biases: []float32{float32(math.NaN())}}},
		{"Inf bias", ModelMeta{Dim: 1}, Items{IDs: []uint32{1}, Vectors: []float32{1}, Biases: []float32{float32(math.Inf(1))}}},
	}
	for _, tc := range tests {
		if _, err := NewItemIndex(tc.meta, tc.items); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, err)
		}
	}
}

func TestItemLookup(t *testing.T) {
	for _, sparse := range []bool{false, true} {
		r := rand.New(rand.NewPCG(15, 16))
		it := randomItems(r, 100, 4, sparse)
		id, row := it.IDs[42], slices.Clone(it.Vectors[42*4:43*4])
		bias := it.Biases[42]
		x, err := NewItemIndex(ModelMeta{Version: "v", Dim: 4}, it)
		if err != nil {
			t.Fatal(err)
		}
		v, b, ok := x.Item(id)
		if !ok || !slices.Equal(v, row) || b != bias {
			t.Fatalf("sparse=%v: Item(%d) = %v %v %v", sparse, id, v, b, ok)
		}
		if _, _, ok := x.Item(1<<31 + 3); ok {
			t.Fatalf("sparse=%v: unknown id found", sparse)
		}
		q := []float32{1, 2, 3, 4}
		if s, ok := x.Score(q, id, true); !ok || s != refScore(q, row)+bias {
			t.Fatalf("Score = %v %v", s, ok)
		}
	}
}

// fakeSource serves a fixed set of versions from memory.
type fakeSource struct {
	mu      sync.Mutex
	current string
	models  map[string]Items
	dim     int
	loads   int
}

func (f *fakeSource) CurrentVersion(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current == "" {
		return "", ErrNoModel
	}
	return f.current, nil
}

func (f *fakeSource) ItemEmbeddings(_ context.Context, v string) (ModelMeta, Items, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	it, ok := f.models[v]
	if !ok {
		return ModelMeta{}, Items{}, ErrVersionNotFound
	}
	f.loads++
	return ModelMeta{Version: v, Dim: f.dim, ItemCount: len(it.IDs)},
		Items{IDs: slices.Clone(it.IDs), Biases: slices.Clone(it.Biases), Vectors: slices.Clone(it.Vectors)}, nil
}

func TestItemCacheRefreshAndConcurrentReaders(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	src := &fakeSource{dim: 8, models: map[string]Items{
		"v1": randomItems(r, 300, 8, false),
		"v2": randomItems(r, 500, 8, false),
	}}
	var c ItemCache
	ctx := context.Background()
	if _, err := c.Refresh(ctx, src); !errors.Is(err, ErrNoModel) {
		t.Fatalf("Refresh with no model: %v", err)
	}
	if c.Index() != nil {
		t.Fatal("index before any load")
	}
	src.current = "v1"
	if swapped, err := c.Refresh(ctx, src); err != nil || !swapped {
		t.Fatalf("Refresh = %v, %v", swapped, err)
	}
	if swapped, err := c.Refresh(ctx, src); err != nil || swapped || src.loads != 1 {
		t.Fatalf("second Refresh reloaded: %v %v loads=%d", swapped, err, src.loads)
	}

	// Readers keep querying while the index is swapped under them; each one
	// must see a whole index (length matching its version).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			q := randVec(rand.New(rand.NewPCG(uint64(g), 1)), 8)
			dst := make([]Scored, 0, 25)
			for {
				select {
				case <-stop:
					return
				default:
				}
				x := c.Index()
				want := map[string]int{"v1": 300, "v2": 500}[x.Version()]
				if x.Len() != want {
					t.Errorf("version %s with %d items", x.Version(), x.Len())
					return
				}
				dst = x.TopK(dst, q, 25, TopKOptions{UseBias: true})
				if len(dst) != 25 {
					t.Errorf("TopK returned %d", len(dst))
					return
				}
			}
		})
	}
	for i := range 20 {
		src.mu.Lock()
		src.current = []string{"v2", "v1"}[i%2]
		src.mu.Unlock()
		if _, err := c.Refresh(ctx, src); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}
