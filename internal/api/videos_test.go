package api

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/towers"
)

const vidFeatDim = 3

// videoFixture: a model whose tower blob has an item tower vidFeatDim ->
// csDim, the admin token "video-admin-token-1", users 1 and 2.
func videoFixture(t *testing.T) (*fixture, []towers.LayerWeights) {
	r := rand.New(rand.NewPCG(5, 6))
	item := []towers.LayerWeights{{In: vidFeatDim, Out: csDim, W: make([]float32, vidFeatDim*csDim), B: make([]float32, csDim)}}
	for i := range item[0].W {
		item[0].W[i] = float32(r.NormFloat64())
	}
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	cfg := DefaultConfig()
	cfg.AdminToken = "video-admin-token-1"
	f := newFixtureOn(t, rdb, csItems, csDim, csUsers, cfg, func(st *cache.Store, m *cache.Model) {
		m.TowerWeights = towers.EncodeTowers([]towers.NamedTower{{Name: "item", Layers: item}})
	})
	f.mr = mr
	return f, item
}

func TestRegisterVideo(t *testing.T) {
	f, item := videoFixture(t)
	auth := []string{"Authorization", "Bearer video-admin-token-1"}
	post := func(body string, hdr ...string) (int, string) {
		w := f.do(http.MethodPost, "/v1/admin/videos", body, append(append([]string{}, auth...), hdr...)...)
		return w.Code, w.Body.String()
	}
	ok := `{"video_id":777777,"features":[0.5,-1,2]}`
	for _, tc := range []struct {
		name, body string
		hdr        []string
		status     int
		code       string
	}{
		{"no token", ok, []string{"Authorization", ""}, 401, CodeUnauthorized},
		{"text body", ok, []string{"Content-Type", "text/plain"}, 415, CodeUnsupportedMediaType},
		{"malformed", `{"video_id":`, nil, 400, CodeInvalidJSON},
		{"trailing data", ok + "{}", nil, 400, CodeInvalidJSON},
		{"unknown field", `{"video_id":1,"features":[1,2,3],"tags":[]}`, nil, 400, CodeUnknownField},
		{"a field's name in another case", `{"Video_ID":1,"features":[1,2,3]}`, nil, 400, CodeUnknownField},
		{"missing id", `{"features":[1,2,3]}`, nil, 400, CodeMissingField},
		{"missing features", `{"video_id":777777}`, nil, 400, CodeMissingField},
		{"null features", `{"video_id":777777,"features":null}`, nil, 400, CodeMissingField},
		{"negative id", `{"video_id":-1,"features":[1,2,3]}`, nil, 400, CodeInvalidField},
		{"string feature", `{"video_id":777777,"features":[1,"2",3]}`, nil, 400, CodeInvalidField},
		{"too few features", `{"video_id":777777,"features":[1,2]}`, nil, 400, CodeInvalidField},
		{"float32 overflow", `{"video_id":777777,"features":[1,2,1e39]}`, nil, 400, CodeInvalidField},
		{"a published item", fmt.Sprintf(`{"video_id":%d,"features":[1,2,3]}`, f.model.Items.IDs[3]), nil, 409, CodeVideoExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := tc.hdr
			if tc.status == 401 {
				hdr = nil
				w := f.do(http.MethodPost, "/v1/admin/videos", tc.body)
				wantError(t, w, tc.status, tc.code)
				return
			}
			w := f.do(http.MethodPost, "/v1/admin/videos", tc.body, append(append([]string{}, auth...), hdr...)...)
			wantError(t, w, tc.status, tc.code)
			if f.items.Index().Len() != csItems {
				t.Fatal("registered despite the error")
			}
		})
	}
	code, body := post(ok)
	if code != http.StatusCreated {
		t.Fatalf("%d %s", code, body)
	}
	got := decode[RegisteredVideo](t, f.do(http.MethodPost, "/v1/admin/videos", ok, auth...)) // again: replaces, same answer
	if got.VideoID != 777777 || !got.Servable || got.ModelVersion != "v1" || got.Dim != csDim {
		t.Fatalf("%+v", got)
	}
	idx := f.items.Index()
	vec, _, in := idx.Item(777777)
	if !in || idx.Len() != csItems+1 || !idx.IsRegistered(777777) {
		t.Fatalf("index: %d items, registered %v", idx.Len(), in)
	}
	want := make([]float32, csDim)
	towers.ApplyTower(want, item, []float32{0.5, -1, 2}, make([]float32, 2*csDim))
	for j := range want {
		if vec[j] != want[j] {
			t.Fatalf("embedding %v, want the item tower's %v", vec, want)
		}
	}
	// A user whose vector points at it gets it first.
	e := make([]float32, csDim)
	for j := range e {
		e[j] = 10 * want[j]
	}
	if err := f.store.PutUsers(context.Background(), "v1", []cache.UserRecord{{UserID: 50, Embedding: e}}); err != nil {
		t.Fatal(err)
	}
	r := decode[Recommendations](t, f.do(http.MethodGet, "/v1/users/50/recommendations?k=3", ""))
	if r.Fallback != "" || len(r.Items) == 0 || r.Items[0].VideoID != 777777 {
		t.Fatalf("user 50: %+v", r)
	}
	// Another replica (its own item cache) loads it from Redis.
	other := &cache.ItemCache{}
	if _, err := other.Refresh(context.Background(), f.store); err != nil {
		t.Fatal(err)
	}
	if _, _, in := other.Index().Item(777777); !in {
		t.Fatal("another replica does not see the registered video")
	}
	if strings.Contains(body, "video-admin-token-1") {
		t.Fatal("token in the answer")
	}
}

func TestRegisterVideoWithoutItemTower(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AdminToken = "video-admin-token-1"
	f := newFixture(t, 10, 4, 1, cfg)
	wantError(t, f.do(http.MethodPost, "/v1/admin/videos", `{"video_id":5,"features":[1]}`, "Authorization", "Bearer video-admin-token-1"),
		http.StatusConflict, CodeNoItemTower)
}
