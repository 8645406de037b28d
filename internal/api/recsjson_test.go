package api

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// The hand-written encoder writes exactly what encoding/json writes (as
// Echo's c.JSON did), on random answers with every optional field on or
// off, strings that need escaping, and floats across the exponent cutoffs.
func TestRecommendationsJSONMatches(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	strs := []string{"", "v1", "small_matrix", `a"b\c`, "<&>", "é✓", "\x01tab\t", "popularity"}
	floats := []float32{0, -0.0, 1, -1, 0.1, 1e-6, 9.99999e-7, 1e-7, 1e21, 9.9999e20, 3.4028235e38, math.SmallestNonzeroFloat32, 123456.78, -2.5e-9}
	f32 := func() float32 {
		if r.IntN(3) == 0 {
			return floats[r.IntN(len(floats))]
		}
		return float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(30)-15)))
	}
	for i := range 2000 {
		rec := Recommendations{UserID: r.Uint32(), ModelVersion: strs[r.IntN(len(strs))], K: r.IntN(101), Canary: r.IntN(2) == 0,
			Candidates: strs[r.IntN(len(strs))], Fallback: strs[r.IntN(len(strs))], FallbackReason: strs[r.IntN(len(strs))],
			ExcludeWatched: r.IntN(2) == 0, Excluded: r.IntN(300), ServedAtMs: r.Int64()}
		if r.IntN(2) == 0 {
			a, b := r.Int64()-r.Int64(), -r.Int64N(1000)
			rec.EmbeddingUpdatedAtMs, rec.EmbeddingAgeMs = &a, &b
		}
		if r.IntN(2) == 0 {
			rec.InputPosition = &InputPosition{Partition: r.Int32N(64), Offset: r.Int64()}
		}
		if i%50 != 7 {
			rec.Items = make([]RecItem, r.IntN(30))
		}
		for j := range rec.Items {
			it := RecItem{VideoID: r.Uint32(), Score: f32(), PredictedWatchRatio: f32(), Explored: r.IntN(4) == 0}
			if r.IntN(2) == 0 {
				p := f32()
				it.Propensity = &p
			}
			rec.Items[j] = it
		}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(&rec); err != nil {
			t.Fatal(err)
		}
		got, ok := appendRecommendations(nil, &rec)
		if !ok || !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("case %d (ok %v):\n got %s\nwant %s", i, ok, got, want.Bytes())
		}
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		rec := Recommendations{Items: []RecItem{{Score: 1, PredictedWatchRatio: bad}}}
		if _, ok := appendRecommendations(nil, &rec); ok {
			t.Errorf("%v encoded", bad)
		}
	}
}

func BenchmarkRecommendationsJSON(b *testing.B) {
	rec := Recommendations{UserID: 7175, ModelVersion: "bench", K: 25, ServedAtMs: 1764180005523, Items: make([]RecItem, 25)}
	a, g := int64(1764180000123), int64(5400)
	rec.EmbeddingUpdatedAtMs, rec.EmbeddingAgeMs = &a, &g
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rec.Items {
		rec.Items[i] = RecItem{VideoID: r.Uint32N(10728), Score: float32(r.NormFloat64()), PredictedWatchRatio: float32(r.NormFloat64())}
	}
	b.Run("encoder=own", func(b *testing.B) {
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			buf, _ = appendRecommendations(buf[:0], &rec)
		}
	})
	b.Run("encoder=encoding-json", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			_ = json.NewEncoder(&buf).Encode(&rec)
		}
	})
}
