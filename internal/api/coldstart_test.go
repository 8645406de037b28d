package api

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/towers"
)

const (
	csItems, csDim, csUsers = 60, 6, 2 // users 1 and 2 have embeddings
	csFeatDim, csHidden     = 5, 7
)

// csTower is a random user tower csFeatDim -> csHidden (ReLU) -> csDim.
func csTower(r *rand.Rand) []towers.LayerWeights {
	l := func(in, out int, relu bool) towers.LayerWeights {
		w := towers.LayerWeights{In: in, Out: out, ReLU: relu, W: make([]float32, in*out), B: make([]float32, out)}
		for i := range w.W {
			w.W[i] = float32(r.NormFloat64() * 0.5)
		}
		for i := range w.B {
			w.B[i] = float32(r.NormFloat64() * 0.1)
		}
		return w
	}
	return []towers.LayerWeights{l(csFeatDim, csHidden, true), l(csHidden, csDim, false)}
}

// csFeatures are features of users 1..5 (3, 4 and 5 have no embedding).
func csFeatures(r *rand.Rand) cache.UserFeatures {
	f := cache.UserFeatures{Dim: csFeatDim, IDs: []uint32{1, 2, 3, 4, 5}}
	for range len(f.IDs) * csFeatDim {
		f.Feats = append(f.Feats, float32(r.NormFloat64()))
	}
	return f
}

// towerEmbedding is the feature tower's user embedding computed here in
// float64, independently of towers.ApplyTower: [s a[:D-1], 1] and bias
// a[D-1], a = T_u(x).
func towerEmbedding(layers []towers.LayerWeights, x []float32, scale float64) ([]float32, float64) {
	in := make([]float64, len(x))
	for i, v := range x {
		in[i] = float64(v)
	}
	for _, l := range layers {
		out := make([]float64, l.Out)
		for j := range l.Out {
			s := float64(l.B[j])
			for i := range l.In {
				s += in[i] * float64(l.W[i*l.Out+j])
			}
			if l.ReLU && s < 0 {
				s = 0
			}
			out[j] = s
		}
		in = out
	}
	d := len(in)
	e := make([]float32, d)
	for j := 0; j < d-1; j++ {
		e[j] = float32(scale * in[j])
	}
	e[d-1] = 1
	return e, in[d-1]
}

// coldStartCase runs the cold-start checks on rdb (miniredis or a real
// Redis); stop makes Redis fail.
func coldStartCase(t *testing.T, rdb *redis.Client, stop func()) {
	r := rand.New(rand.NewPCG(7, 8))
	tower, feats := csTower(r), csFeatures(r)
	var popIDs []uint32
	f := newFixtureOn(t, rdb, csItems, csDim, csUsers, DefaultConfig(), func(st *cache.Store, m *cache.Model) {
		ctx := context.Background()
		m.TowerWeights = towers.EncodeTowers([]towers.NamedTower{{Name: "user", Layers: tower}})
		if err := st.PutUserFeatures(ctx, m.Version, feats); err != nil {
			t.Fatal(err)
		}
		// Counts for three items; 5 and 2 tie (then the item-bias order).
		popIDs = []uint32{m.Items.IDs[5], m.Items.IDs[17], m.Items.IDs[2]}
		if err := st.PutPopularity(ctx, m.Version, cache.Popularity{Label: "watch_ratio>=0.8", IDs: popIDs, Counts: []uint32{9, 30, 9}}); err != nil {
			t.Fatal(err)
		}
	})
	scale := f.model.Calibration.Scale

	// A user with features and no embedding: the user tower on them.
	for _, u := range []uint32{3, 5} {
		w := f.do(http.MethodGet, "/v1/users/"+itoa(u)+"/recommendations?k=10", "")
		if w.Code != http.StatusOK {
			t.Fatalf("user %d: %d %s", u, w.Code, w.Body.String())
		}
		got := decode[Recommendations](t, w)
		if got.Fallback != FallbackFeatureTower || got.FallbackReason != ReasonNoEmbedding || got.EmbeddingAgeMs != nil {
			t.Fatalf("user %d: fallback %q reason %q age %v", u, got.Fallback, got.FallbackReason, got.EmbeddingAgeMs)
		}
		row := slices.Index(feats.IDs, u)
		e, bias := towerEmbedding(tower, feats.Feats[row*csFeatDim:(row+1)*csFeatDim], scale)
		checkRanking(t, got.Items, bruteForce(f.model, e, nil), 10, testMu+bias)
	}

	// A user with neither: the popularity counts, then the item-bias order.
	w := f.do(http.MethodGet, "/v1/users/999/recommendations?k=6", "")
	got := decode[Recommendations](t, w)
	if w.Code != http.StatusOK || got.Fallback != FallbackPopularity || got.FallbackReason != ReasonNoEmbedding {
		t.Fatalf("user 999: %d %s", w.Code, w.Body.String())
	}
	q := make([]float32, csDim)
	q[csDim-1] = 1
	biasOrder := bruteForce(f.model, q, nil)
	pos := func(id uint32) int {
		return slices.IndexFunc(biasOrder, func(x ranked) bool { return x.id == id })
	}
	want := []uint32{popIDs[1], popIDs[0], popIDs[2]}
	if pos(popIDs[2]) < pos(popIDs[0]) {
		want[1], want[2] = popIDs[2], popIDs[0]
	}
	for _, b := range biasOrder {
		if len(want) == 6 {
			break
		}
		if !slices.Contains(popIDs, b.id) {
			want = append(want, b.id)
		}
	}
	var ids []uint32
	for _, it := range got.Items {
		ids = append(ids, it.VideoID)
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("popularity list %v, want %v", ids, want)
	}
	// exclude_watched applies to it.
	f.srv.watched.Add(999, popIDs[1])
	got = decode[Recommendations](t, f.do(http.MethodGet, "/v1/users/999/recommendations?k=6&exclude_watched=true", ""))
	if len(got.Items) != 6 || got.Items[0].VideoID == popIDs[1] || got.Excluded != 1 {
		t.Fatalf("popularity list excluding %d: %+v", popIDs[1], got)
	}

	// A user with an embedding is served from it.
	got = decode[Recommendations](t, f.do(http.MethodGet, "/v1/users/1/recommendations?k=5", ""))
	if got.Fallback != "" || got.FallbackReason != "" || got.EmbeddingAgeMs == nil {
		t.Fatalf("user 1: %+v", got)
	}
	// Redis down: the features are in memory, so a user with features
	// still gets the feature tower, one without popularity.
	stop()
	got = decode[Recommendations](t, f.do(http.MethodGet, "/v1/users/1/recommendations?k=5", ""))
	if got.Fallback != FallbackFeatureTower || got.FallbackReason != ReasonRedisError || len(got.Items) != 5 {
		t.Fatalf("user 1, Redis down: %+v", got)
	}
	got = decode[Recommendations](t, f.do(http.MethodGet, "/v1/users/999/recommendations?k=5", ""))
	if got.Fallback != FallbackPopularity || got.FallbackReason != ReasonRedisError || got.Items[0].VideoID != popIDs[1] {
		t.Fatalf("user 999, Redis down: %+v", got)
	}
}

func itoa(u uint32) string { return strconv.FormatUint(uint64(u), 10) }

func TestColdStart(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	coldStartCase(t, rdb, mr.Close)
}

// TestIntegrationColdStartRealRedis: the same on a real Redis; "Redis down"
// is a client closed under the server.
func TestIntegrationColdStartRealRedis(t *testing.T) {
	rdb := realRedis(t)
	ro := cache.DefaultClientOptions()
	ro.Addr = rdb.Options().Addr
	own := ro.NewClient()
	coldStartCase(t, own, func() { _ = own.Close() })
}

// A version whose tower does not fit (or has none) serves popularity to a
// user with features, and never a 5xx.
func TestColdStartUnusableTower(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	tower, feats := csTower(r), csFeatures(r)
	tower[1].Out, tower[1].W, tower[1].B = csDim+1, make([]float32, csHidden*(csDim+1)), make([]float32, csDim+1)
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	f := newFixtureOn(t, rdb, csItems, csDim, csUsers, DefaultConfig(), func(st *cache.Store, m *cache.Model) {
		m.TowerWeights = towers.EncodeTowers([]towers.NamedTower{{Name: "user", Layers: tower}})
		if err := st.PutUserFeatures(context.Background(), m.Version, feats); err != nil {
			t.Fatal(err)
		}
	})
	w := f.do(http.MethodGet, "/v1/users/3/recommendations?k=4", "")
	got := decode[Recommendations](t, w)
	if w.Code != http.StatusOK || got.Fallback != FallbackPopularity || len(got.Items) != 4 {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	if cs := coldStartOf(f.items.Index()); cs == nil || cs.tower != nil || cs.label != "" {
		t.Fatalf("cold start %+v", cs)
	}
	if math.IsNaN(float64(got.Items[0].Score)) {
		t.Fatal("NaN score")
	}
}
