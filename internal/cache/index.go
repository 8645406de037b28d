package cache

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
)

// Scored is an item and its score.
type Scored struct {
	ID    uint32
	Score float32
}

// better reports whether (s, id) ranks before b: higher score first, then
// lower id (a deterministic tie-break).
func better(s float32, id uint32, b Scored) bool {
	return s > b.Score || (s == b.Score && id < b.ID)
}

// ItemIndex is one model version's items in memory: one contiguous
// row-major []float32 (n x dim), the ids and the biases. It is immutable
// after construction, so any number of goroutines may call its methods
// concurrently without locking.
type ItemIndex struct {
	meta   ModelMeta
	dim    int
	ids    []uint32
	biases []float32
	vecs   []float32 // row-major, for Item
	// tiles is the scoring layout of vecs (kernel.go); biasPad is biases
	// padded with zeros to ntiles*tileRows.
	tiles   []float32
	biasPad []float32
	ntiles  int
	// pre is the int16 or int8 copy for the pre-scan (prescan.go); nil for small
	// catalogues or without the assembly kernels.
	pre *prescanIndex
	// id -> row: dense (rowPlus1[id]-1, 0 = absent) when ids are small, else sparse.
	rowPlus1 []int32
	sparse   map[uint32]int32
	// sets are the sub-indexes of the version's candidate sets.
	sets map[string]*ItemIndex
	// extra is what ItemCache.Extend attached before the index was installed.
	extra any
}

// Candidates returns the sub-index of the candidate set name (see
// Model.CandidateSets): the same items, vectors and biases, scored by the
// same kernels, so a list over it is the full catalogue's ranking restricted
// to the set.
func (x *ItemIndex) Candidates(name string) (*ItemIndex, bool) {
	s, ok := x.sets[name]
	return s, ok
}

// CandidateSetNames lists the version's candidate sets.
func (x *ItemIndex) CandidateSetNames() []string {
	names := make([]string, 0, len(x.sets))
	for n := range x.sets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ItemSource provides a model version's items; *Store implements it.
type ItemSource interface {
	// ItemEmbeddings returns the version's meta and items; the returned
	// slices are owned by the caller.
	ItemEmbeddings(ctx context.Context, version string) (ModelMeta, Items, error)
}

// LoadItemIndex loads version from src into a new ItemIndex.
func LoadItemIndex(ctx context.Context, src ItemSource, version string) (*ItemIndex, error) {
	meta, items, err := src.ItemEmbeddings(ctx, version)
	if err != nil {
		return nil, fmt.Errorf("loading item index of model version %s: %w", version, err)
	}
	return NewItemIndex(meta, items)
}

// NewItemIndex builds an index over items and takes ownership of its slices:
// the caller must not modify them afterwards. meta.Dim gives the dimension;
// meta.ItemCount, if non-zero, must equal len(items.IDs). Biases may be nil
// (all zero). Ids must be unique, and every vector value and bias finite
// (NaN or Inf is rejected: a score is then NaN only for a non-finite query).
func NewItemIndex(meta ModelMeta, items Items) (*ItemIndex, error) {
	n, dim := len(items.IDs), meta.Dim
	switch {
	case dim <= 0:
		return nil, fmt.Errorf("%w: item index: dim %d", ErrInvalid, dim)
	case meta.ItemCount != 0 && meta.ItemCount != n:
		return nil, fmt.Errorf("%w: item index: meta says %d items, got %d", ErrInvalid, meta.ItemCount, n)
	case len(items.Vectors) != n*dim:
		return nil, fmt.Errorf("%w: item index: %d vector values for %d items x dim %d", ErrInvalid, len(items.Vectors), n, dim)
	case items.Biases != nil && len(items.Biases) != n:
		return nil, fmt.Errorf("%w: item index: %d biases for %d items", ErrInvalid, len(items.Biases), n)
	case int64(n) > 1<<31-1:
		return nil, fmt.Errorf("%w: item index: %d items", ErrInvalid, n)
	}
	for i, v := range items.Vectors {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("%w: item index: item %d (id %d) has a non-finite value %v", ErrInvalid, i/dim, items.IDs[i/dim], v)
		}
	}
	for i, b := range items.Biases {
		if math.IsNaN(float64(b)) || math.IsInf(float64(b), 0) {
			return nil, fmt.Errorf("%w: item index: item %d (id %d) has a non-finite bias %v", ErrInvalid, i, items.IDs[i], b)
		}
	}
	if items.Biases == nil {
		items.Biases = make([]float32, n)
	}
	meta.ItemCount = n
	x := &ItemIndex{meta: meta, dim: dim, ids: items.IDs, biases: items.Biases, vecs: items.Vectors}
	x.tiles, x.ntiles = buildTiles(items.Vectors, n, dim)
	x.biasPad = make([]float32, x.ntiles*tileRows)
	copy(x.biasPad, items.Biases)
	if useFMA && n >= prescanMinRows {
		x.pre = buildPrescan(items.Vectors, items.Biases, n, dim, x.ntiles, prescanWidth(n, dim))
	}
	var maxID uint32
	for _, id := range items.IDs {
		maxID = max(maxID, id)
	}
	if n > 0 && uint64(maxID) < 4*uint64(n)+1024 {
		x.rowPlus1 = make([]int32, maxID+1)
		for i, id := range items.IDs {
			if x.rowPlus1[id] != 0 {
				return nil, fmt.Errorf("%w: item index: duplicate item id %d", ErrInvalid, id)
			}
			x.rowPlus1[id] = int32(i + 1)
		}
	} else {
		x.sparse = make(map[uint32]int32, n)
		for i, id := range items.IDs {
			if _, dup := x.sparse[id]; dup {
				return nil, fmt.Errorf("%w: item index: duplicate item id %d", ErrInvalid, id)
			}
			x.sparse[id] = int32(i)
		}
	}
	for name, ids := range meta.CandidateSets {
		sub := Items{IDs: make([]uint32, 0, len(ids)), Biases: make([]float32, 0, len(ids)), Vectors: make([]float32, 0, len(ids)*dim)}
		for _, id := range ids {
			r, ok := x.row(id)
			if !ok {
				return nil, fmt.Errorf("%w: item index: candidate set %s: id %d is not an item", ErrInvalid, name, id)
			}
			sub.IDs = append(sub.IDs, id)
			sub.Biases = append(sub.Biases, items.Biases[r])
			sub.Vectors = append(sub.Vectors, items.Vectors[r*dim:(r+1)*dim]...)
		}
		subMeta := meta
		subMeta.ItemCount, subMeta.CandidateSets = 0, nil
		si, err := NewItemIndex(subMeta, sub)
		if err != nil {
			return nil, fmt.Errorf("item index: candidate set %s: %w", name, err)
		}
		if x.sets == nil {
			x.sets = map[string]*ItemIndex{}
		}
		x.sets[name] = si
	}
	return x, nil
}

// Version returns the model version of the index.
func (x *ItemIndex) Version() string { return x.meta.Version }

// Meta returns the model meta of the index (its Calibration.Extra map is
// shared: do not modify it).
func (x *ItemIndex) Meta() ModelMeta { return x.meta }

// Dim returns the embedding dimension.
func (x *ItemIndex) Dim() int { return x.dim }

// Len returns the number of items.
func (x *ItemIndex) Len() int { return len(x.ids) }

// IDs returns the item ids in row order. Read-only: shared by all readers.
func (x *ItemIndex) IDs() []uint32 { return x.ids }

func (x *ItemIndex) row(id uint32) (int, bool) {
	if x.rowPlus1 != nil {
		if int64(id) >= int64(len(x.rowPlus1)) || x.rowPlus1[id] == 0 {
			return 0, false
		}
		return int(x.rowPlus1[id] - 1), true
	}
	r, ok := x.sparse[id]
	return int(r), ok
}

// Item returns the embedding and bias of video id. The vector is a view
// into the index: read-only, shared by all readers, valid as long as the
// caller holds the index.
func (x *ItemIndex) Item(id uint32) (vec []float32, bias float32, ok bool) {
	r, ok := x.row(id)
	if !ok {
		return nil, 0, false
	}
	return x.vecs[r*x.dim : (r+1)*x.dim : (r+1)*x.dim], x.biases[r], true
}

// Score returns the score of video id for query, as TopK computes it.
func (x *ItemIndex) Score(query []float32, id uint32, useBias bool) (float32, bool) {
	x.checkQuery(query)
	r, ok := x.row(id)
	if !ok {
		return 0, false
	}
	s := scoreRowGeneric(query, x.tiles, x.dim, r)
	if useBias {
		s += x.biases[r]
	}
	return s, true
}

// TopKOptions tune TopK.
type TopKOptions struct {
	// UseBias adds each item's bias to its inner product.
	UseBias bool
	// Exclude lists video ids never to return (already watched). Ids not in
	// the index are ignored. Only read during the call.
	Exclude []uint32
	// Exact skips the int16 pre-scan and scans the float32 copy. The
	// result is the same either way (the pre-scan re-ranks exactly); this
	// is for benchmarks and tests.
	Exact bool
}

// chunkTiles is how many tiles TopK scores per kernel call (256 rows: the
// scores stay in L1 for the selection that follows).
const chunkTiles = 8

// topKScratch is TopK's per-call working memory, recycled through a pool so
// that TopK does not allocate.
type topKScratch struct {
	excl   []uint64  // bitset over rows: excluded
	scores []float32 // scores of one block of rows
	pre    *prescanScratch
}

var scratchPool = sync.Pool{New: func() any {
	return &topKScratch{scores: make([]float32, chunkTiles*tileRows)}
}}

func (x *ItemIndex) checkQuery(q []float32) {
	if len(q) != x.dim {
		panic(fmt.Sprintf("cache: query of dim %d for an item index of dim %d", len(q), x.dim))
	}
}

// TopK returns the min(k, eligible items) items with the highest score
// dot(query, item) (+ item bias with opts.UseBias), exact over all items,
// best first; ties go to the lower id. Items in opts.Exclude and items whose
// score is NaN are never returned. The score is the float32 one defined in
// kernel.go, the same bit for bit whichever kernel runs (and whether the
// int16 pre-scan served the call or not).
//
// The result is written into dst's backing array from index 0 (dst's length
// is ignored) and returned; with cap(dst) >= k, TopK does not allocate. The
// caller owns the result and may reuse it as dst of the next call. TopK
// panics if len(query) != Dim(). Safe for concurrent use.
func (x *ItemIndex) TopK(dst []Scored, query []float32, k int, opts TopKOptions) []Scored {
	x.checkQuery(query)
	h := dst[:0]
	if k <= 0 {
		return h
	}
	if cap(h) < min(k, len(x.ids)) {
		h = make([]Scored, 0, min(k, len(x.ids)))
	}
	sc := scratchPool.Get().(*topKScratch)
	defer scratchPool.Put(sc)
	var excl []uint64
	if len(opts.Exclude) > 0 {
		words := (len(x.ids) + 63) / 64
		if cap(sc.excl) < words {
			sc.excl = make([]uint64, words)
		}
		excl = sc.excl[:words]
		for _, id := range opts.Exclude {
			if r, ok := x.row(id); ok {
				excl[r>>6] |= 1 << (r & 63)
			}
		}
		defer func() {
			for _, id := range opts.Exclude { // clear only what was set
				if r, ok := x.row(id); ok {
					excl[r>>6] = 0
				}
			}
		}()
	}

	dim, n := x.dim, len(x.ids)
	var bias []float32
	if opts.UseBias {
		bias = x.biasPad
	}
	sel := selector{h: h, k: k, th: float32(math.Inf(-1)), excl: excl, nexcl: len(opts.Exclude), ids: x.ids}
	if x.pre != nil && useFMA && !opts.Exact && k <= prescanMaxK && k <= n/8 {
		if sc.pre == nil {
			sc.pre = newPrescanScratch()
		}
		if x.topKPrescan(&sel, query, bias, sc.pre) {
			return sel.sorted()
		}
	}
	for t0 := 0; t0 < x.ntiles; t0 += chunkTiles {
		nt := min(chunkTiles, x.ntiles-t0)
		lo := t0 * tileRows
		var b []float32
		if bias != nil {
			b = bias[lo : lo+nt*tileRows]
		}
		scores := sc.scores[:nt*tileRows]
		scoreTiles(scores, query, x.tiles[lo*dim:(lo+nt*tileRows)*dim], b, dim, nt)
		sel.add(scores[:min(len(scores), n-lo)], lo) // without the padding rows
	}
	return sel.sorted()
}

// selector keeps the k best (score, id) of the rows it is shown in a
// bounded min-heap by rank (h[0] is the worst kept).
type selector struct {
	h  []Scored
	k  int
	th float32 // the score to reach to enter: -Inf until the heap is full, then h[0].Score
	// excl is a bitset over rows (nil: none excluded).
	excl []uint64
	// nexcl bounds the rows set in excl (len(TopKOptions.Exclude)).
	nexcl int
	ids   []uint32
}

// add offers rows lo, lo+1, ... with scores. The test "!(s >= th)" rejects
// almost every row with one predictable branch, and NaN too.
func (sel *selector) add(scores []float32, lo int) {
	h, k, th, excl, ids := sel.h, sel.k, sel.th, sel.excl, sel.ids
	for i, s := range scores {
		if !(s >= th) {
			continue
		}
		r := lo + i
		if excl != nil && excl[r>>6]&(1<<(r&63)) != 0 {
			continue
		}
		id := ids[r]
		if len(h) < k {
			h = append(h, Scored{ID: id, Score: s})
			siftUp(h, len(h)-1)
			if len(h) == k {
				th = h[0].Score
			}
		} else if better(s, id, h[0]) {
			h[0] = Scored{ID: id, Score: s}
			siftDown(h, 0, len(h))
			th = h[0].Score
		}
	}
	sel.h, sel.th = h, th
}

// offer offers row r with score s.
func (sel *selector) offer(s float32, r int) {
	if !(s >= sel.th) {
		return
	}
	if sel.excl != nil && sel.excl[r>>6]&(1<<(r&63)) != 0 {
		return
	}
	id := sel.ids[r]
	if len(sel.h) < sel.k {
		sel.h = append(sel.h, Scored{ID: id, Score: s})
		siftUp(sel.h, len(sel.h)-1)
		if len(sel.h) == sel.k {
			sel.th = sel.h[0].Score
		}
	} else if better(s, id, sel.h[0]) {
		sel.h[0] = Scored{ID: id, Score: s}
		siftDown(sel.h, 0, len(sel.h))
		sel.th = sel.h[0].Score
	}
}

// sorted heap-sorts the kept items best first and returns them.
func (sel *selector) sorted() []Scored {
	h := sel.h
	// Heap sort: repeatedly move the worst to the end, leaving h best first.
	for end := len(h) - 1; end > 0; end-- {
		h[0], h[end] = h[end], h[0]
		siftDown(h, 0, end)
	}
	return h
}

// h is a min-heap by rank: h[0] is the worst kept item.
func worse(a, b Scored) bool { return better(b.Score, b.ID, a) }

func siftUp(h []Scored, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !worse(h[i], h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func siftDown(h []Scored, i, n int) {
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && worse(h[r], h[l]) {
			m = r
		}
		if !worse(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
