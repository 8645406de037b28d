package api

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
)

// BenchReferencePath is the route of the load harness's reference endpoint,
// registered only with Config.BenchReference (bench/api). It is not part of
// the public API and not in the OpenAPI document.
const BenchReferencePath = "/v1/bench/reference/users/:id"

// benchReferenceK is the length of the reference's fixed list.
const benchReferenceK = 25

// benchReference is the floor the load harness measures the recommendations
// endpoint against, in the same process: the same request parsing, the same
// Redis GET of the user's record under the index's version, and a JSON
// answer of the same shape with a fixed list of 25 (the index's first 25
// videos, score 0) instead of the top-K, and no served-list write.
func (s *Server) benchReference(c echo.Context) error {
	uid, err := parseUserID(c.Param("id"))
	if err != nil {
		return err
	}
	idx := s.deps.Items.Index()
	if idx == nil {
		return errorf(http.StatusServiceUnavailable, CodeNoModel, "", "no model version is loaded yet; retry later")
	}
	now := s.now()
	resp := Recommendations{UserID: uid, ModelVersion: idx.Version(), K: benchReferenceK, ServedAtMs: now.UnixMilli()}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout)
	rec, found, err := s.deps.Store.GetUser(ctx, idx.Version(), uid)
	cancel()
	if err != nil || !found {
		resp.Fallback, resp.FallbackReason = FallbackPopularity, ReasonNoEmbedding
		if err != nil {
			resp.FallbackReason = ReasonRedisError
		}
	} else {
		upd, age := rec.UpdatedAtMs, rec.Age(now).Milliseconds()
		resp.EmbeddingUpdatedAtMs, resp.EmbeddingAgeMs = &upd, &age
		if rec.InputNext > 0 {
			resp.InputPosition = &InputPosition{Partition: rec.InputPartition, Offset: rec.InputNext - 1}
		}
	}
	ids := idx.IDs()
	resp.Items = make([]RecItem, min(benchReferenceK, len(ids)))
	for i := range resp.Items {
		resp.Items[i] = RecItem{VideoID: ids[i]}
	}
	return writeRecommendations(c, &resp)
}
