package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzRecommendationQuery fuzzes the path id and the query string of the
// recommendations route: never a 5xx, and the request and answer agree
// with the served OpenAPI document (checkAgainstDoc).
func FuzzRecommendationQuery(f *testing.F) {
	for _, s := range [][2]string{{"1", "k=5"}, {"999", "k=100&exclude_watched=true"}, {"05", "k=0"}, {"+1", "k=+5"},
		{"4294967296", "k=5.0"}, {"1", "k=1&k=2"}, {"2", "candidates=small_matrix"}, {"3", "exclude_watched=TRUE"},
		{"1", "k=%20"}, {"0", "candidates=..&k=101"}, {"1", "k=+5"}, {"1", "k=05"}, {"1", "k=5.0"}, {"1", "k=1e1"}, {"1", "k=-0"}, {"1", "exclude_watched="}} {
		f.Add(s[0], s[1])
	}
	fx := newFixture(f, 40, 4, 3, DefaultConfig())
	f.Fuzz(func(t *testing.T, id, rawQuery string) {
		if id == "" || strings.ContainsAny(id, "/?#%") {
			t.Skip()
		}
		fx.t = t
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL = &url.URL{Path: "/v1/users/" + id + "/recommendations", RawQuery: rawQuery}
		req.RequestURI = req.URL.RequestURI()
		w := httptest.NewRecorder()
		fx.srv.Echo().ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s: %d %s", req.URL, w.Code, w.Body.String())
		}
		check := httptest.NewRequest(http.MethodGet, "/", nil)
		check.URL, check.RequestURI = req.URL, req.RequestURI
		checkAgainstDoc(t, fx.srv, check, nil, w)
	})
}

// FuzzInteractionBody fuzzes the JSON bodies of both intake routes: never a
// 5xx, nothing published unless 202 (and then every event), and agreement
// with the served OpenAPI document.
func FuzzInteractionBody(f *testing.F) {
	for _, s := range []string{okEvent, "[" + okEvent + "]", `{"user_id":1,"video_id":2,"play_duration_ms":0,"video_duration_ms":1}`,
		`{"user_id":1,"video_id":2,"play_duration_ms":3,"video_duration_ms":4,"watch_ratio":null}`,
		`{"user_id":1,"video_id":2,"play_duration_ms":3,"video_duration_ms":4,"event_time_ms":null}`,
		`{"user_id":-1}`, `[]`, `[{},{}]`, `{"user_id":1e2,"video_id":2,"play_duration_ms":3,"video_duration_ms":4}`,
		okEvent + " ", `{"user_id":1,"user_id":2,"video_id":2,"play_duration_ms":3,"video_duration_ms":4}`} {
		f.Add(s, false)
		f.Add(s, true)
	}
	cfg := DefaultConfig()
	cfg.MaxBatch = 5
	fx := newFixture(f, 10, 4, 1, cfg)
	f.Fuzz(func(t *testing.T, body string, batch bool) {
		fx.t = t
		path := "/v1/interactions"
		if batch {
			path += ":batch"
		}
		before := len(fx.pub.events)
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		fx.srv.Echo().ServeHTTP(w, req)
		published := len(fx.pub.events) - before
		switch {
		case w.Code >= 500:
			t.Fatalf("%q: %d %s", body, w.Code, w.Body.String())
		case w.Code == http.StatusAccepted:
			if a := decode[Accepted](t, w); a.Accepted != published || published == 0 {
				t.Fatalf("%q: accepted %d, published %d", body, a.Accepted, published)
			}
		case published != 0:
			t.Fatalf("%q: %d, yet %d events published", body, w.Code, published)
		}
		check := httptest.NewRequest(http.MethodPost, path, bytes.NewReader([]byte(body)))
		check.Header = req.Header.Clone()
		checkAgainstDoc(t, fx.srv, check, []byte(body), w)
	})
}
