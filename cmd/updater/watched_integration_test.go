package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/api"
	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/online"
	"github.com/streamrec/streamrec/internal/stream"
)

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, []stream.Event) error { return nil }

// TestIntegrationSharedWatchHistory: events of a user, more than a ring
// holds, reach the updater through real Kafka (replay, as the simulator's
// and the API's do); the updater writes the ring's videos, and appends
// every video to the long history, in Redis with the user's record; two API
// servers that accepted none of them (each with its own in-process state,
// as two replicas, or one restarted) exclude all of them with
// exclude_watched.
func TestIntegrationSharedWatchHistory(t *testing.T) {
	e := newEnv(t, "")
	publishModel(t, e)
	const uid = 5
	var watched []uint32 // ascending, as GetUserWatched returns them
	for v := uint32(11); v < 11+2*online.RingSize+8; v++ {
		watched = append(watched, v)
	}
	watched = append(watched, testItems+3) // a cold item
	var evs []stream.Event
	for i, v := range watched {
		ts := int64(1593878903438 + 1000*i)
		evs = append(evs, stream.Event{EventID: stream.MakeEventID(ts, 0), UserID: uid, VideoID: v, PlayDurationMs: 500,
			VideoDurationMs: 1000, EventTimeMs: ts, WatchRatio: 0.5, Source: stream.SourceReplay})
	}
	publishEvents(t, e, evs)
	stop := runInProcess(t, e)
	defer stop()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, _, got, err := e.store.GetUserWatched(t.Context(), "v1", uid)
		if err == nil && len(got) == len(watched) {
			if !slices.Equal(got, watched) {
				t.Fatalf("history %v, want %v", got, watched)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history not written: %v %v", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for replica := range 2 {
		items := &cache.ItemCache{}
		if _, err := items.Refresh(t.Context(), e.store); err != nil {
			t.Fatal(err)
		}
		cfg := api.DefaultConfig()
		cfg.MaxK = testItems // the whole catalogue: without the exclusion every known watched video is listed
		srv, err := api.New(cfg, api.Deps{Items: items, Store: e.store, Publisher: nopPublisher{}})
		if err != nil {
			t.Fatal(err)
		}
		for _, exclude := range []bool{false, true} {
			w := httptest.NewRecorder()
			target := "/v1/users/5/recommendations?k=300&exclude_watched=false"
			if exclude {
				target = "/v1/users/5/recommendations?k=300&exclude_watched=true"
			}
			srv.Echo().ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
			var r api.Recommendations
			if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || w.Code != 200 || r.Fallback != "" {
				t.Fatalf("replica %d: %d %s", replica, w.Code, w.Body.String())
			}
			in := 0
			for _, it := range r.Items {
				if slices.Contains(watched, it.VideoID) {
					in++
				}
			}
			switch {
			case exclude && (in != 0 || r.Excluded != len(watched)):
				t.Fatalf("replica %d: %d watched videos served, excluded %d", replica, in, r.Excluded)
			case !exclude && in != len(watched)-1: // the cold video has no embedding
				t.Fatalf("replica %d: without the exclusion %d watched videos listed, want %d", replica, in, len(watched)-1)
			}
		}
	}
}

func jsonDecode(b []byte, v any) error { return json.Unmarshal(b, v) }
