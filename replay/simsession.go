package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/streamrec/streamrec/internal/api"
	"github.com/streamrec/streamrec/internal/cache"
)

// simTwin scores the frozen twin from Redis: the model version's item index
// restricted to the candidate set, and its offline user vectors.
type simTwin struct {
	store      *cache.Store
	candidates string
	log        *slog.Logger

	mu      sync.Mutex
	version string
	ix      *cache.ItemIndex
	row     map[uint32]int
	off     cache.OfflineUsers
	failed  map[string]bool
}

// session runs one session of u. It stops walking the list once stop ends;
// the requests themselves are not cut short (an interaction in flight is
// completed, bounded by the client's timeout).
func (s *simulator) session(stop context.Context, u *simUser, rng *rand.Rand) {
	ctx := context.WithoutCancel(stop)
	vt := s.clock.now()
	q := "?k=" + strconv.Itoa(s.o.K)
	if s.o.Candidates != "" {
		q += "&candidates=" + s.o.Candidates
	}
	if s.o.ExcludeWatched {
		q += "&exclude_watched=true"
	}
	var rec api.Recommendations
	status, err := getJSON(ctx, s.client, s.o.API+"/v1/users/"+strconv.FormatUint(uint64(u.id), 10)+"/recommendations"+q, s.o.ClientID, &rec)
	if err != nil {
		s.fail(errKind("recommendations", status, err))
		return
	}
	items := make([]uint32, len(rec.Items))
	for i, it := range rec.Items {
		items[i] = it.VideoID
	}
	ratio := func(v uint32) (float64, bool) { return s.tr.Ratio(u.id, v, vt) }
	u.mu.Lock()
	var exclude []uint32
	if s.o.ExcludeWatched {
		exclude = slices.Clone(u.watched)
	}
	u.mu.Unlock()
	if s.o.ExcludeWatched {
		exclude = s.withHistory(ctx, rec.ModelVersion, u.id, exclude)
	}
	ideal := s.ideal.ideal(u.id, vt, exclude)
	liveRatio, reserved := unwatched(ratio, exclude, items, s.o.K)
	live := exactMetrics(items, s.o.K, liveRatio, ideal)
	twinItems, twinOK := s.twin.list(ctx, rec.ModelVersion, u.id, s.o.K, exclude)
	var twin exact
	if twinOK {
		twinRatio, _ := unwatched(ratio, exclude, twinItems, s.o.K)
		twin = exactMetrics(twinItems, s.o.K, twinRatio, ideal)
	}
	s.lists.Add(1)
	s.mu.Lock()
	w := s.window(rec.ServedAtMs)
	w.Lists++
	w.VirtualFrom, w.VirtualTo = min(w.VirtualFrom, vt), max(w.VirtualTo, vt)
	if rec.Fallback != "" {
		w.Fallbacks++
		s.fallbacks.Add(1)
	}
	w.Rewatched += reserved
	w.LiveNDCG += live.NDCG
	w.LiveP08 += live.P08
	w.LiveP2 += live.P2
	if twinOK {
		w.TwinLists++
		w.TwinNDCG += twin.NDCG
		w.TwinP08 += twin.P08
		w.TwinP2 += twin.P2
		w.PairedLiveNDCG += live.NDCG
		w.PairedLiveP08 += live.P08
		w.PairedLiveP2 += live.P2
	}
	s.mu.Unlock()

	// Walk the list from the top.
	watched := 0
	seen := map[uint32]float64{} // watched in this session: true ratio
	reached := 0                 // slots the walk reached
	defer func() { s.addIPS(rec, twinItems, twinOK, seen, reached) }()
	for _, v := range items {
		if watched == s.o.SessionVideos || stop.Err() != nil {
			break
		}
		t := s.clock.now()
		reached++
		r, ok := s.tr.Ratio(u.id, v, t)
		if !ok {
			continue // unknown pair (real small matrix): skipped
		}
		if err := s.post(ctx, u.id, v, r, t); err != nil {
			s.fail(err.Error())
			break
		}
		watched++
		seen[v] = r
		s.interactions.Add(1)
		s.mu.Lock()
		s.window(time.Now().UnixMilli()).Interactions++
		s.mu.Unlock()
		u.mu.Lock()
		u.watched = append(u.watched, v)
		u.mu.Unlock()
		if rng.Float64() < s.o.Leave*math.Exp(-r) {
			break
		}
	}
}

// withHistory adds to watched (the videos this run posted for the user) the
// user's watch history as the API reads it from Redis (cache.Store.
// GetUserWatched: the other traffic's events, the replay's, and earlier
// runs' on the same namespace), each once: the videos the user has
// watched, which the ideal and the twin's list leave out and a live list
// scores no gain for. A failed read keeps watched alone (counted in the
// summary's errors).
func (s *simulator) withHistory(ctx context.Context, version string, uid uint32, watched []uint32) []uint32 {
	_, _, hist, err := s.twin.store.GetUserWatched(ctx, version, uid)
	if err != nil {
		s.fail(errKind("watch history", 0, err))
		return watched
	}
	seen := make(map[uint32]bool, len(watched))
	for _, v := range watched {
		seen[v] = true
	}
	for _, v := range hist {
		if !seen[v] {
			watched = append(watched, v)
		}
	}
	return watched
}

// addIPS adds a list's walk and its shown twin videos to its window (see
// ips); lists served without exploration (no propensity below 1) are not
// counted.
func (s *simulator) addIPS(rec api.Recommendations, twin []uint32, twinOK bool, seen map[uint32]float64, reached int) {
	if !twinOK || len(rec.Items) == 0 || rec.Items[0].Propensity == nil {
		return
	}
	items := rec.Items[:min(len(rec.Items), s.o.K)]
	eps, m := 0.0, 0.0
	for _, it := range items {
		if p := float64(*it.Propensity); it.Explored {
			if m == 0 && p > 0 {
				m = -1 // from eps below
			}
		} else if eps == 0 {
			eps = 1 - p
		}
	}
	for _, it := range items {
		if it.Explored && eps > 0 {
			m = eps / float64(*it.Propensity)
			break
		}
	}
	if eps <= 0 {
		return // every slot explored, or no exploration: nothing to weigh
	}
	if m <= 0 {
		m = float64(max(1, len(s.tr.Videos())-len(items)))
	}
	in := make(map[uint32]bool, len(twin))
	for _, v := range twin {
		in[v] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.window(rec.ServedAtMs)
	w.grow(s.o.K)
	w.ExpLists++
	for i := range min(reached, s.o.K) {
		w.Reach[i]++
	}
	for i, it := range items {
		if it.Explored {
			w.Explored++
			w.ExpN[i]++
		}
		r, watched := seen[it.VideoID]
		if i >= reached || !watched || !in[it.VideoID] {
			continue
		}
		pi := 1 - eps
		if it.Explored {
			pi = min(1, float64(s.o.K)*eps/m)
		}
		if relevant08(r) {
			w.ExpS08[i] += 1 / pi
		}
		if relevant2(r) {
			w.ExpS2[i] += 1 / pi
		}
	}
}

func errKind(what string, status int, err error) string {
	if status != 0 {
		return what + " " + strconv.Itoa(status)
	}
	return what + ": " + strings.SplitN(err.Error(), ":", 2)[0]
}

// post sends one watch through the API intake (source simulator).
func (s *simulator) post(ctx context.Context, user, video uint32, ratio float64, eventMS int64) error {
	dur := s.tr.DurationMS(video)
	body, _ := json.Marshal(map[string]any{"user_id": user, "video_id": video, "video_duration_ms": dur,
		"play_duration_ms": int64(math.Round(ratio * float64(dur))), "watch_ratio": ratio, "event_time_ms": eventMS, "source": "simulator"})
	return postInteraction(ctx, s.client, s.o.API, s.o.ClientID, body)
}

func postInteraction(ctx context.Context, client *http.Client, base, clientID string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/interactions", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.ClientHeader, clientID)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("interactions: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("interactions %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

// getJSON GETs url as clientID ("" for no X-Client-Id) and decodes a 200
// answer into v; another status is an error with the answer's body.
func getJSON(ctx context.Context, client *http.Client, url, clientID string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if clientID != "" {
		req.Header.Set(api.ClientHeader, clientID)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(body))
	}
	return resp.StatusCode, json.Unmarshal(body, v)
}
