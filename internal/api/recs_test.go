package api

import (
	"context"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/streamrec/streamrec/internal/cache"
)

type ranked struct {
	id    uint32
	score float64
}

// bruteForce ranks every item of m for query q in float64, best first, ties
// to the lower id, skipping exclude.
func bruteForce(m cache.Model, q []float32, exclude []uint32) []ranked {
	d := m.Dim
	var out []ranked
	for i, id := range m.Items.IDs {
		if slices.Contains(exclude, id) {
			continue
		}
		var s float64
		for j := range d {
			s += float64(q[j]) * float64(m.Items.Vectors[i*d+j])
		}
		out = append(out, ranked{id, s})
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].score != out[b].score {
			return out[a].score > out[b].score
		}
		return out[a].id < out[b].id
	})
	return out
}

// checkRanking compares a served list with the brute-force ranking: same ids
// in the same order, up to swaps of items whose exact scores differ by less
// than float32 rounding.
func checkRanking(t *testing.T, got []RecItem, want []ranked, k int, predOffset float64) {
	t.Helper()
	if len(got) != min(k, len(want)) {
		t.Fatalf("%d items, want %d", len(got), min(k, len(want)))
	}
	byID := map[uint32]float64{}
	for _, w := range want {
		byID[w.id] = w.score
	}
	for i, g := range got {
		ws, ok := byID[g.VideoID]
		if !ok {
			t.Fatalf("item %d: video %d not eligible", i, g.VideoID)
		}
		if g.VideoID != want[i].id && math.Abs(ws-want[i].score) > 1e-5 {
			t.Fatalf("rank %d: video %d (score %v), brute force has %d (score %v)", i, g.VideoID, ws, want[i].id, want[i].score)
		}
		if math.Abs(float64(g.Score)-ws) > 1e-4 {
			t.Errorf("rank %d: score %v, brute force %v", i, g.Score, ws)
		}
		if p := predOffset + ws; math.Abs(float64(g.PredictedWatchRatio)-p) > 1e-4 {
			t.Errorf("rank %d: predicted %v, want mu + bias + score = %v", i, g.PredictedWatchRatio, p)
		}
	}
}

func TestRecommendationsEqualBruteForce(t *testing.T) {
	f := newFixture(t, 500, 16, 20, DefaultConfig())
	for u := uint32(1); u <= 20; u++ {
		for _, k := range []int{1, 25, 100} {
			w := f.do(http.MethodGet, "/v1/users/"+strconv.Itoa(int(u))+"/recommendations?k="+strconv.Itoa(k), "")
			if w.Code != http.StatusOK {
				t.Fatalf("user %d: %d %s", u, w.Code, w.Body.String())
			}
			r := decode[Recommendations](t, w)
			rec := f.users[u]
			if r.Fallback != "" || r.ModelVersion != "v1" || r.UserID != u || r.K != k {
				t.Fatalf("user %d: %+v", u, r)
			}
			if r.EmbeddingAgeMs == nil || *r.EmbeddingAgeMs != 90_000 || *r.EmbeddingUpdatedAtMs != rec.UpdatedAtMs {
				t.Fatalf("user %d: embedding age %v updated %v", u, r.EmbeddingAgeMs, r.EmbeddingUpdatedAtMs)
			}
			if r.InputPosition == nil || *r.InputPosition != (InputPosition{rec.InputPartition, rec.InputNext - 1}) {
				t.Fatalf("input_position %+v, want %d/%d", r.InputPosition, rec.InputPartition, rec.InputNext-1)
			}
			checkRanking(t, r.Items, bruteForce(f.model, rec.Embedding, nil), k, testMu+float64(rec.Bias))
		}
	}
}

func TestRecommendationsDefaultKAndServedList(t *testing.T) {
	f := newFixture(t, 100, 8, 3, DefaultConfig())
	w := f.do(http.MethodGet, "/v1/users/2/recommendations", "")
	r := decode[Recommendations](t, w)
	if r.K != 25 || len(r.Items) != 25 {
		t.Fatalf("k %d, %d items", r.K, len(r.Items))
	}
	f.drainServed() // the list is written off the request path (servedlast.go)
	sl, ok, err := f.store.GetServed(context.Background(), 2)
	if err != nil || !ok {
		t.Fatalf("served list: %v %v", ok, err)
	}
	if sl.ModelVersion != "v1" || sl.ServedAtMs != f.now.UnixMilli() || len(sl.Items) != 25 {
		t.Fatalf("served list %+v", sl)
	}
	for i, it := range r.Items {
		if sl.Items[i] != it.VideoID || sl.Scores[i] != it.Score || sl.Predicted[i] != it.PredictedWatchRatio {
			t.Fatalf("served list item %d: %d/%v/%v, answer %+v", i, sl.Items[i], sl.Scores[i], sl.Predicted[i], it)
		}
	}
}

// popularityRanking is the documented fallback: items by their last
// coordinate (the learned item bias), i.e. the query [0,...,0,1].
func popularityRanking(m cache.Model, exclude []uint32) []ranked {
	q := make([]float32, m.Dim)
	q[m.Dim-1] = 1
	return bruteForce(m, q, exclude)
}

func TestRecommendationsFallback(t *testing.T) {
	t.Run("unknown user", func(t *testing.T) {
		f := newFixture(t, 300, 8, 3, DefaultConfig())
		w := f.do(http.MethodGet, "/v1/users/4294967295/recommendations?k=30", "")
		if w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body.String())
		}
		r := decode[Recommendations](t, w)
		if r.Fallback != FallbackPopularity || r.FallbackReason != ReasonNoEmbedding || r.EmbeddingAgeMs != nil || r.InputPosition != nil {
			t.Fatalf("%+v", r)
		}
		checkRanking(t, r.Items, popularityRanking(f.model, nil), 30, testMu)
		f.drainServed()
		if _, ok, _ := f.store.GetServed(context.Background(), 4294967295); !ok {
			t.Fatal("fallback list not remembered")
		}
	})
	t.Run("redis down", func(t *testing.T) {
		f := newFixture(t, 300, 8, 3, DefaultConfig())
		f.mr.Close()
		w := f.do(http.MethodGet, "/v1/users/1/recommendations", "")
		if w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body.String())
		}
		r := decode[Recommendations](t, w)
		if r.Fallback != FallbackPopularity || r.FallbackReason != ReasonRedisError {
			t.Fatalf("%+v", r)
		}
		checkRanking(t, r.Items, popularityRanking(f.model, nil), 25, testMu)
		m := f.metricsText()
		for _, want := range []string{`streamrec_api_fallbacks_total{reason="redis_error"} 1`,
			`streamrec_api_served_lists_stored_total{result="skipped"} 1`} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
	t.Run("invalid embedding", func(t *testing.T) {
		f := newFixture(t, 50, 8, 0, DefaultConfig())
		nan := make([]float32, 8)
		nan[3] = float32(math.NaN())
		if err := f.store.PutUsers(context.Background(), "v1", []cache.UserRecord{
			{UserID: 9, Embedding: make([]float32, 5)},
			{UserID: 10, Embedding: nan},
			{UserID: 11, Embedding: make([]float32, 8), Bias: float32(math.Inf(1))},
		}); err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"9", "10", "11"} {
			w := f.do(http.MethodGet, "/v1/users/"+u+"/recommendations", "")
			if w.Code != http.StatusOK {
				t.Fatalf("user %s: %d %s", u, w.Code, w.Body.String())
			}
			if r := decode[Recommendations](t, w); r.Fallback != FallbackPopularity || r.FallbackReason != ReasonInvalidEmbedding {
				t.Fatalf("user %s: %+v", u, r)
			}
		}
	})
	t.Run("user of another version only", func(t *testing.T) {
		f := newFixture(t, 50, 8, 0, DefaultConfig())
		e := make([]float32, 8)
		e[7] = 1
		if err := f.store.PutUsers(context.Background(), "v0", []cache.UserRecord{{UserID: 9, Embedding: e}}); err != nil {
			t.Fatal(err)
		}
		r := decode[Recommendations](t, f.do(http.MethodGet, "/v1/users/9/recommendations", ""))
		if r.Fallback != FallbackPopularity || r.FallbackReason != ReasonNoEmbedding || r.ModelVersion != "v1" {
			t.Fatalf("a v0 embedding was used against v1 items: %+v", r)
		}
	})
}

func TestRecommendationsNoModel(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	f.items.Swap(nil)
	wantError(t, f.do(http.MethodGet, "/v1/users/1/recommendations", ""), http.StatusServiceUnavailable, CodeNoModel)
}

func TestExcludeWatched(t *testing.T) {
	f := newFixture(t, 200, 8, 3, DefaultConfig())
	get := func(q string) Recommendations {
		return decode[Recommendations](t, f.do(http.MethodGet, "/v1/users/1/recommendations?k=10"+q, ""))
	}
	first := get("")
	// The user watches the top 3 through the API.
	var watched []uint32
	for _, it := range first.Items[:3] {
		watched = append(watched, it.VideoID)
		body := `{"user_id":1,"video_id":` + strconv.Itoa(int(it.VideoID)) + `,"play_duration_ms":5000,"video_duration_ms":10000,"event_time_ms":1700000000000}`
		if w := f.do(http.MethodPost, "/v1/interactions", body); w.Code != http.StatusAccepted {
			t.Fatalf("%d %s", w.Code, w.Body.String())
		}
	}
	ex := get("&exclude_watched=true")
	if !ex.ExcludeWatched || ex.Excluded != 3 {
		t.Fatalf("exclude_watched %v excluded %d", ex.ExcludeWatched, ex.Excluded)
	}
	checkRanking(t, ex.Items, bruteForce(f.model, f.users[1].Embedding, watched), 10, testMu+float64(f.users[1].Bias))
	if same := get("&exclude_watched=false"); same.Items[0] != first.Items[0] || same.Excluded != 0 {
		t.Fatalf("exclude_watched=false changed the list")
	}
	// The fallback excludes too.
	for _, it := range decode[Recommendations](t, f.do(http.MethodGet, "/v1/users/77/recommendations", "")).Items[:2] {
		body := `{"user_id":77,"video_id":` + strconv.Itoa(int(it.VideoID)) + `,"play_duration_ms":1,"video_duration_ms":2}`
		f.do(http.MethodPost, "/v1/interactions", body)
	}
	fb := decode[Recommendations](t, f.do(http.MethodGet, "/v1/users/77/recommendations?exclude_watched=true", ""))
	pop := popularityRanking(f.model, nil)
	checkRanking(t, fb.Items, popularityRanking(f.model, []uint32{pop[0].id, pop[1].id}), 25, testMu)
}

func TestRecommendationsBadInput(t *testing.T) {
	f := newFixture(t, 20, 4, 1, DefaultConfig())
	for _, tc := range []struct{ name, target, code string }{
		{"non-numeric id", "/v1/users/abc/recommendations", CodeInvalidUserID},
		{"negative id", "/v1/users/-1/recommendations", CodeInvalidUserID},
		{"signed id", "/v1/users/+1/recommendations", CodeInvalidUserID},
		{"id above uint32", "/v1/users/4294967296/recommendations", CodeInvalidUserID},
		{"fractional id", "/v1/users/1.5/recommendations", CodeInvalidUserID},
		{"id with space", "/v1/users/1%20/recommendations", CodeInvalidUserID},
		{"k zero", "/v1/users/1/recommendations?k=0", CodeInvalidK},
		{"k above max", "/v1/users/1/recommendations?k=101", CodeInvalidK},
		{"k negative", "/v1/users/1/recommendations?k=-5", CodeInvalidK},
		{"k non-numeric", "/v1/users/1/recommendations?k=ten", CodeInvalidK},
		{"k empty", "/v1/users/1/recommendations?k=", CodeInvalidK},
		{"k twice", "/v1/users/1/recommendations?k=1&k=2", CodeInvalidK},
		{"k huge", "/v1/users/1/recommendations?k=99999999999999999999", CodeInvalidK},
		{"exclude_watched not a bool", "/v1/users/1/recommendations?exclude_watched=yes", CodeInvalidParameter},
		{"exclude_watched empty", "/v1/users/1/recommendations?exclude_watched=", CodeInvalidParameter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, f.do(http.MethodGet, tc.target, ""), http.StatusBadRequest, tc.code)
		})
	}
	t.Run("k at max", func(t *testing.T) {
		if w := f.do(http.MethodGet, "/v1/users/1/recommendations?k=100", ""); w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body.String())
		}
	})
	t.Run("unknown route", func(t *testing.T) {
		wantError(t, f.do(http.MethodGet, "/v1/nope", ""), http.StatusNotFound, CodeNotFound)
	})
	t.Run("wrong method", func(t *testing.T) {
		wantError(t, f.do(http.MethodDelete, "/v1/users/1/recommendations", ""), http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	})
}

// TestMergeWatched: this process's recent videos merged into the shared
// history (ascending, distinct), each once.
func TestMergeWatched(t *testing.T) {
	got := mergeWatched([]uint32{5, 900, 3, 0}, []uint32{1, 3, 5, 7})
	if !slices.Equal(got, []uint32{1, 3, 5, 7, 900, 0}) {
		t.Fatalf("merge: %v", got)
	}
	if got := mergeWatched(nil, []uint32{2}); !slices.Equal(got, []uint32{2}) {
		t.Fatalf("no local: %v", got)
	}
	if got := mergeWatched([]uint32{4, 2}, nil); !slices.Equal(got, []uint32{4, 2}) {
		t.Fatalf("no shared: %v", got)
	}
}
