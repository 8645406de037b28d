package api

import (
	"context"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/labstack/echo/v4"

	"github.com/streamrec/streamrec/internal/cache"
)

// Fallback reasons (the "fallback_reason" field and the fallbacks metric label).
const (
	ReasonNoEmbedding      = "no_embedding"      // no record for the user under the index's model version (unknown user)
	ReasonRedisError       = "redis_error"       // Redis failed or timed out
	ReasonInvalidEmbedding = "invalid_embedding" // the stored embedding has the wrong length, or a NaN/Inf in it or in the bias
	// FallbackPopularity is the fallback of a user with neither a usable
	// embedding nor features (see FallbackFeatureTower).
	FallbackPopularity = "popularity"
)

// Recommendations is the JSON answer of GET /v1/users/{id}/recommendations.
type Recommendations struct {
	UserID       uint32 `json:"user_id"`
	ModelVersion string `json:"model_version"`
	// Canary: the user is in the running canary's share, served by the
	// canary version (ModelVersion).
	Canary bool `json:"canary,omitempty"`
	K      int  `json:"k"`
	// Candidates is the candidate set the list was restricted to (absent: the
	// whole catalogue).
	Candidates string `json:"candidates,omitempty"`
	// Fallback is "feature_tower" or "popularity" when the list does not
	// come from the user's embedding, with FallbackReason (why the embedding
	// was not used); both are absent otherwise.
	Fallback       string `json:"fallback,omitempty"`
	FallbackReason string `json:"fallback_reason,omitempty"`
	// EmbeddingUpdatedAtMs and EmbeddingAgeMs describe the user embedding
	// (absent on a fallback).
	EmbeddingUpdatedAtMs *int64 `json:"embedding_updated_at_ms,omitempty"`
	EmbeddingAgeMs       *int64 `json:"embedding_age_ms,omitempty"`
	// InputPosition is the freshness of the embedding: the interactions
	// topic position of the last event applied to it (absent for an
	// embedding straight from offline training, and on a fallback). A user's
	// events all come from one partition, so a larger offset is a fresher
	// embedding; event ids say nothing of order.
	InputPosition  *InputPosition `json:"input_position,omitempty"`
	ExcludeWatched bool           `json:"exclude_watched"`
	// Excluded is how many recently watched videos were excluded.
	Excluded   int       `json:"excluded"`
	ServedAtMs int64     `json:"served_at_ms"`
	Items      []RecItem `json:"items"`
}

// InputPosition is a partition and offset of the interactions topic.
type InputPosition struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}

// RecItem is one recommended video.
type RecItem struct {
	VideoID uint32 `json:"video_id"`
	// Score is the ranking score: the inner product <e_u, e_i> (+ the stored
	// item bias, zero for models of the ingestor).
	Score float32 `json:"score"`
	// PredictedWatchRatio = calibration global mean + user bias + score.
	PredictedWatchRatio float32 `json:"predicted_watch_ratio"`
	// Explored and Propensity: with --explore-rate e, whether the slot was
	// drawn uniformly from the M eligible candidates, and the probability
	// that the logging policy put this video in this slot (e/M explored,
	// 1 - e kept from the model). See explore.go.
	Explored   bool     `json:"explored,omitempty"`
	Propensity *float32 `json:"propensity,omitempty"`
}

var scoredPool = sync.Pool{New: func() any { return new([]cache.Scored) }}

func (s *Server) recommendations(c echo.Context) error {
	uid, err := parseUserID(c.Param("id"))
	if err != nil {
		return err
	}
	q := c.QueryParams()
	k := s.cfg.DefaultK
	if vs, ok := q["k"]; ok {
		if k, err = parseK(vs, s.cfg.MaxK); err != nil {
			return err
		}
	}
	exclude := false
	if vs, ok := q["exclude_watched"]; ok {
		if len(vs) != 1 || (vs[0] != "true" && vs[0] != "false") {
			return errorf(http.StatusBadRequest, CodeInvalidParameter, "exclude_watched", "exclude_watched: want true or false")
		}
		exclude = vs[0] == "true"
	}
	idx := s.deps.Items.Index()
	if idx == nil {
		return errorf(http.StatusServiceUnavailable, CodeNoModel, "", "no model version is loaded yet; retry later")
	}
	canary := false
	if cx := s.deps.Canary.For(uid); cx != nil && cx.Dim() == idx.Dim() {
		idx, canary = cx, true // the canary's share: its version, its records
	}
	// scoreIdx is what the list is ranked over: the catalogue, or a candidate
	// set's sub-index (the same scores, restricted).
	scoreIdx, cands := idx, ""
	if vs, ok := q["candidates"]; ok {
		sub, found := (*cache.ItemIndex)(nil), false
		if len(vs) == 1 {
			sub, found = idx.Candidates(vs[0])
		}
		if !found {
			return errorf(http.StatusBadRequest, CodeInvalidParameter, "candidates", "candidates: want one of the candidate sets of model version %s: %v",
				idx.Version(), idx.CandidateSetNames())
		}
		scoreIdx, cands = sub, vs[0]
	}
	now := s.now()
	resp := Recommendations{UserID: uid, ModelVersion: idx.Version(), K: k, Candidates: cands, ExcludeWatched: exclude,
		ServedAtMs: now.UnixMilli(), Canary: canary}
	meta := idx.Meta()
	mu := float32(meta.Calibration.GlobalMean)

	// The user's record, and with exclude_watched its shared watch history,
	// in one round trip.
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout)
	var (
		rec     cache.UserRecord
		found   bool
		shared  []uint32
		watched []uint32
	)
	if ws, ok := s.deps.Store.(WatchedStore); ok && exclude {
		rec, found, shared, err = ws.GetUserWatched(ctx, idx.Version(), uid)
	} else {
		rec, found, err = s.deps.Store.GetUser(ctx, idx.Version(), uid)
	}
	cancel()
	if exclude {
		watched = mergeWatched(s.watched.Get(uid, nil), shared)
		resp.Excluded = len(watched)
	}
	reason := ""
	var propensity []float32 // per slot, with exploration
	switch {
	case err != nil:
		reason = ReasonRedisError
		s.log.Debug("reading a user embedding", "user", uid, "err", err)
	case !found:
		reason = ReasonNoEmbedding
	case len(rec.Embedding) != idx.Dim() || !finite(rec.Bias) || !allFinite(rec.Embedding):
		reason = ReasonInvalidEmbedding
		s.log.Warn("unusable user embedding", "user", uid, "dim", len(rec.Embedding), "model_dim", idx.Dim(), "version", idx.Version())
	}
	// A user without a usable embedding but with features gets the
	// version's user tower on them; a user with neither, popularity.
	emb, bias, kind := rec.Embedding, rec.Bias, "model"
	if reason != "" {
		kind = FallbackPopularity
		v := make([]float32, idx.Dim())
		if b, ok := coldStartOf(idx).userEmbedding(uid, v); ok {
			emb, bias, kind = v, b, FallbackFeatureTower
		}
	}
	if kind != FallbackPopularity {
		bufp := scoredPool.Get().(*[]cache.Scored)
		top := scoreIdx.TopK((*bufp)[:0], emb, k, cache.TopKOptions{UseBias: true, Exclude: watched})
		resp.Items = make([]RecItem, len(top))
		for i, t := range top {
			resp.Items[i] = RecItem{VideoID: t.ID, Score: t.Score, PredictedWatchRatio: mu + bias + t.Score}
		}
		*bufp = top
		scoredPool.Put(bufp)
		if kind == "model" { // fallback lists are never explored
			propensity = explore(resp.Items, scoreIdx, emb, mu, bias, s.cfg.ExploreRate, watched)
		}
	} else {
		resp.Items = s.fb.popular(idx, k, watched, mu, scoreIdx)
	}
	if reason == "" {
		upd, age := rec.UpdatedAtMs, rec.Age(now).Milliseconds()
		resp.EmbeddingUpdatedAtMs, resp.EmbeddingAgeMs = &upd, &age
		if rec.InputNext > 0 {
			resp.InputPosition = &InputPosition{Partition: rec.InputPartition, Offset: rec.InputNext - 1}
		}
	} else {
		resp.Fallback, resp.FallbackReason = kind, reason
		s.metrics.fallbacks.WithLabelValues(reason).Inc()
	}
	s.metrics.recs.WithLabelValues(kind).Inc()
	s.metrics.recItems.Observe(float64(len(resp.Items)))

	served := cache.ServedList{ModelVersion: idx.Version(), ServedAtMs: resp.ServedAtMs,
		Items: make([]uint32, len(resp.Items)), Scores: make([]float32, len(resp.Items)), Predicted: make([]float32, len(resp.Items))}
	for i, it := range resp.Items {
		served.Items[i], served.Scores[i], served.Predicted[i] = it.VideoID, it.Score, it.PredictedWatchRatio
	}
	switch {
	case s.online != nil:
		// The served-list log (version 2) is written off the request path
		// below; the last-list record is not needed.
	case reason == ReasonRedisError:
		// Redis just failed or timed out: do not queue a write to it.
		s.metrics.servedStore.WithLabelValues("skipped").Inc()
	default:
		s.offerLast(uid, served) // written by RunServedLog (servedlast.go)
	}
	if s.online != nil {
		r := &cache.ServedRecord{User: uid, Version: idx.Version(), Fallback: resp.Fallback, K: k, Candidates: cands,
			LastPartition: -1, LastOffset: -1, ServedMS: resp.ServedAtMs, Slots: make([]cache.ServedSlot, len(resp.Items))}
		if reason == "" {
			r.UserVec, r.UserBias, r.LastProducedMS = slices.Clone(rec.Embedding), rec.Bias, rec.EventProducedAtMs
			if rec.InputNext > 0 {
				r.LastPartition, r.LastOffset = rec.InputPartition, rec.InputNext-1
			}
		}
		for i, it := range resp.Items {
			r.Slots[i] = cache.ServedSlot{Video: it.VideoID, Score: it.Score, PredictedWatchRatio: it.PredictedWatchRatio, Propensity: 1}
			if propensity != nil {
				r.Slots[i].Propensity = propensity[i]
			}
		}
		s.offerServed(r)
	}
	if s.deps.Observer != nil {
		s.deps.Observer.Served(uid, &served, resp.Fallback)
	}
	return writeRecommendations(c, &resp)
}

// mergeWatched returns the distinct videos of local (this process's recent
// intake: distinct, at most Config.WatchedPerUser) and shared (the user's
// history from Redis: distinct and ascending, possibly thousands), reusing
// shared: a binary search per local video.
func mergeWatched(local, shared []uint32) []uint32 {
	n := len(shared)
	for _, v := range local {
		if _, found := slices.BinarySearch(shared[:n], v); !found {
			shared = append(shared, v)
		}
	}
	return shared
}

// parseUserID parses a path user id: decimal digits, no sign, no leading
// zero (the OpenAPI document's pattern), at most 4294967295.
func parseUserID(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || s[0] == '+' || (s[0] == '0' && len(s) > 1) {
		return 0, errorf(http.StatusBadRequest, CodeInvalidUserID, "id", "user id %q: want a decimal integer in [0, 4294967295]", truncate(s, 32))
	}
	return uint32(v), nil
}

func parseK(vs []string, maxK int) (int, error) {
	bad := errorf(http.StatusBadRequest, CodeInvalidK, "k", "k: want one integer in [1, %d]", maxK)
	if len(vs) != 1 {
		return 0, bad
	}
	k, err := strconv.Atoi(vs[0])
	if err != nil || k < 1 || k > maxK {
		return 0, bad
	}
	return k, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// fallbackCache holds the popularity ranking of one item index, computed once
// per model version.
//
// The popularity fallback ranks every item by the score the model gives it for
// a user with a zero preference vector and zero bias: the query [0, ..., 0, 1]
// picks each item embedding's last coordinate, which the ingestor's model uses
// as the learned item bias (see cmd/ingestor/train_publish.go), plus any stored
// Items.Biases. That is the model's prediction of each video's watch ratio for
// an "average" user (mu + item bias), a popularity measured in expected watch
// ratio rather than in view counts, computable from the index alone.
type fallbackCache struct {
	cur atomic.Pointer[fallbackRanking]
}

type fallbackRanking struct {
	idx    *cache.ItemIndex
	ranked []cache.Scored // every item, best first
}

func (f *fallbackCache) ranking(idx *cache.ItemIndex) []cache.Scored {
	if cs := coldStartOf(idx); cs != nil {
		return cs.popular
	}
	if r := f.cur.Load(); r != nil && r.idx == idx {
		return r.ranked
	}
	ranked := itemBiasRanking(idx)
	// Concurrent first requests may each compute it; the results are equal.
	f.cur.Store(&fallbackRanking{idx: idx, ranked: ranked})
	return ranked
}

// itemBiasRanking ranks every item of idx by its score for the query
// [0, ..., 0, 1] (see fallbackCache).
func itemBiasRanking(idx *cache.ItemIndex) []cache.Scored {
	d := idx.Dim()
	if d <= 0 {
		return nil
	}
	q := make([]float32, d)
	q[d-1] = 1
	return idx.TopK(make([]cache.Scored, 0, idx.Len()), q, idx.Len(), cache.TopKOptions{UseBias: true})
}

// popular returns the k most popular items of idx not in exclude, and in
// only when only is not idx itself (a candidate set's sub-index).
func (f *fallbackCache) popular(idx *cache.ItemIndex, k int, exclude []uint32, mu float32, only *cache.ItemIndex) []RecItem {
	ranked := f.ranking(idx)
	var ex []uint32
	if len(exclude) > 0 {
		ex = slices.Clone(exclude)
		slices.Sort(ex)
	}
	out := make([]RecItem, 0, min(k, len(ranked)))
	for _, r := range ranked {
		if len(out) == k {
			break
		}
		if ex != nil {
			if _, found := slices.BinarySearch(ex, r.ID); found {
				continue
			}
		}
		if only != idx {
			if _, _, in := only.Item(r.ID); !in {
				continue
			}
		}
		out = append(out, RecItem{VideoID: r.ID, Score: r.Score, PredictedWatchRatio: mu + r.Score})
	}
	return out
}

func finite(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }

func allFinite(v []float32) bool {
	for _, f := range v {
		if !finite(f) {
			return false
		}
	}
	return true
}
