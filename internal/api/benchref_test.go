package api

import (
	"encoding/json"
	"net/http"
	"testing"
)

func TestBenchReferenceOnlyBehindTheFlag(t *testing.T) {
	f := newFixture(t, 40, 4, 3, DefaultConfig())
	if w := f.do(http.MethodGet, "/v1/bench/reference/users/1", ""); w.Code != http.StatusNotFound {
		t.Fatalf("reference endpoint without the flag: %d", w.Code)
	}
	cfg := DefaultConfig()
	cfg.BenchReference = true
	f = newFixture(t, 40, 4, 3, cfg)
	w := f.do(http.MethodGet, "/v1/bench/reference/users/1", "")
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var got Recommendations
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	ids := f.items.Index().IDs()
	if len(got.Items) != 25 || got.Fallback != "" || got.EmbeddingAgeMs == nil || got.ModelVersion != f.model.Version {
		t.Fatalf("reference answer %+v", got)
	}
	for i, it := range got.Items {
		if it.VideoID != ids[i] {
			t.Fatalf("item %d: video %d, want the fixed list's %d", i, it.VideoID, ids[i])
		}
	}
	// An unknown user: the GET finds nothing; the list is the same.
	w = f.do(http.MethodGet, "/v1/bench/reference/users/999", "")
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != http.StatusOK || got.FallbackReason != ReasonNoEmbedding || len(got.Items) != 25 {
		t.Fatalf("unknown user: %d %+v %v", w.Code, got, err)
	}
	if w := f.do(http.MethodGet, "/v1/bench/reference/users/x", ""); w.Code != http.StatusBadRequest {
		t.Fatalf("bad id: %d", w.Code)
	}
}
