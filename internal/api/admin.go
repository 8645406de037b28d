package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/streamrec/streamrec/internal/cache"
)

// ModelStore lists and rolls back model versions; *cache.Store implements it.
type ModelStore interface {
	ListVersions(ctx context.Context) ([]cache.VersionInfo, error)
	Rollback(ctx context.Context) (cache.ModelUpdate, error)
	// ModelEvents is the kept history of version flips (the timeline).
	ModelEvents(ctx context.Context) ([]cache.ModelUpdate, error)
}

// ModelVersion is one version of GET /v1/models and GET /v1/admin/models.
type ModelVersion struct {
	Version       string `json:"version"`
	CreatedAtMs   int64  `json:"created_at_ms"`
	PublishedAtMs int64  `json:"published_at_ms"`
	Items         int    `json:"item_count"`
	Dim           int    `json:"dim"`
	// Live is the current version (what every replica serves once it has
	// loaded it); Previous the one kept for rollback.
	Live     bool `json:"live"`
	Previous bool `json:"previous"`
	// RetrainedFromLog: the version was trained on the interactions log too
	// (ingestor train --from-log; its metadata records the offsets).
	RetrainedFromLog bool `json:"retrained_from_log"`
	// Admin only: the calibration, the candidate sets' names and the tower
	// blob's size.
	Calibration   *cache.Calibration `json:"calibration,omitempty"`
	CandidateSets []string           `json:"candidate_sets,omitempty"`
	TowerBytes    *int               `json:"tower_bytes,omitempty"`
}

// ModelList is the answer of GET /v1/models.
type ModelList struct {
	// ServingVersion is the version this replica's item index holds ("" before
	// the first load).
	ServingVersion string         `json:"serving_version"`
	Versions       []ModelVersion `json:"versions"`
	// Events are the version flips, oldest first (at most the last 1,000;
	// lost with a Redis flush): each publish, rollback and restore, and each
	// canary's start and end.
	Events []ModelEvent `json:"events"`
	// Canary is the running canary, if any.
	Canary *CanaryInfo `json:"canary,omitempty"`
}

// ModelEvent is one flip of the version pointers.
type ModelEvent struct {
	AtMs int64 `json:"at_ms"`
	// Reason is "publish", "rollback", "restore", "canary_start",
	// "canary_promoted" or "canary_rolled_back".
	Reason   string `json:"reason"`
	Current  string `json:"current"`
	Previous string `json:"previous"`
}

func (s *Server) listModels(c echo.Context, admin bool) error {
	if s.deps.Models == nil {
		return errorf(http.StatusServiceUnavailable, CodeModelStoreDown, "", "this server has no model store")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ReadyTimeout)
	defer cancel()
	vs, err := s.deps.Models.ListVersions(ctx)
	if err != nil {
		s.log.Warn("listing model versions", "err", err)
		return errorf(http.StatusServiceUnavailable, CodeModelStoreDown, "", "the model store (Redis) did not answer; retry later")
	}
	out := ModelList{Versions: make([]ModelVersion, 0, len(vs))}
	if idx := s.deps.Items.Index(); idx != nil {
		out.ServingVersion = idx.Version()
	}
	for _, v := range vs {
		m := ModelVersion{Version: v.Meta.Version, CreatedAtMs: v.Meta.CreatedAtMs, PublishedAtMs: v.Meta.PublishedAtMs,
			Items: v.Meta.ItemCount, Dim: v.Meta.Dim, Live: v.Current, Previous: v.Previous, RetrainedFromLog: len(v.Meta.TrainedOffsets) > 0}
		if admin {
			cal, tb := v.Meta.Calibration, v.Meta.TowerBytes
			m.Calibration, m.TowerBytes = &cal, &tb
			for name := range v.Meta.CandidateSets {
				m.CandidateSets = append(m.CandidateSets, name)
			}
		}
		out.Versions = append(out.Versions, m)
	}
	if cs, ok := s.deps.Store.(CanaryStore); ok {
		if c, err := cs.CurrentCanary(ctx); err == nil {
			out.Canary = canaryInfo(c)
		}
	}
	out.Events = []ModelEvent{}
	if evs, err := s.deps.Models.ModelEvents(ctx); err != nil {
		s.log.Warn("reading the model events", "err", err) // the versions still answer
	} else {
		for _, e := range evs {
			out.Events = append(out.Events, ModelEvent{AtMs: e.AtMs, Reason: e.Reason, Current: e.Current, Previous: e.Previous})
		}
	}
	return c.JSON(http.StatusOK, &out)
}

func (s *Server) publicModels(c echo.Context) error { return s.listModels(c, false) }
func (s *Server) adminModels(c echo.Context) error  { return s.listModels(c, true) }

// AdminModelChange is the answer of the rollback and reload endpoints.
type AdminModelChange struct {
	// Current and Previous are the version pointers after a rollback.
	Current  string `json:"current,omitempty"`
	Previous string `json:"previous,omitempty"`
	// Swapped: this replica's item index changed; ServingVersion is the
	// version it holds now.
	Swapped        bool   `json:"swapped"`
	ServingVersion string `json:"serving_version"`
}

func (s *Server) adminRollback(c echo.Context) error {
	if s.deps.Models == nil {
		return errorf(http.StatusServiceUnavailable, CodeModelStoreDown, "", "this server has no model store")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ReadyTimeout)
	defer cancel()
	u, err := s.deps.Models.Rollback(ctx)
	switch {
	case errors.Is(err, cache.ErrNoPrevious):
		return errorf(http.StatusConflict, CodeNoPrevious, "", "there is no previous model version to roll back to")
	case err != nil && !errors.Is(err, cache.ErrAfterFlip):
		s.log.Warn("rolling back the model version", "err", err)
		return errorf(http.StatusServiceUnavailable, CodeModelStoreDown, "", "the model store (Redis) did not answer; retry later")
	}
	s.log.Info("model version rolled back by an admin request", "current", u.Current, "previous", u.Previous)
	out := AdminModelChange{Current: u.Current, Previous: u.Previous}
	// This replica follows at once; the others on the notice or their poll.
	out.Swapped, out.ServingVersion = s.reload(ctx)
	return c.JSON(http.StatusOK, &out)
}

func (s *Server) adminReload(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ReadyTimeout)
	defer cancel()
	var out AdminModelChange
	out.Swapped, out.ServingVersion = s.reload(ctx)
	return c.JSON(http.StatusOK, &out)
}

// reload refreshes the item index now (Deps.Reload) and returns whether it
// swapped and the version served.
func (s *Server) reload(ctx context.Context) (bool, string) {
	swapped := false
	if s.deps.Reload != nil {
		var err error
		if swapped, err = s.deps.Reload(ctx); err != nil {
			s.log.Warn("reloading the model version", "err", err)
		}
	}
	if idx := s.deps.Items.Index(); idx != nil {
		return swapped, idx.Version()
	}
	return swapped, ""
}

// requireAdmin guards the admin routes: "Authorization: Bearer <token>"
// with Config.AdminToken (compared in constant time; never logged). Without
// a configured token the admin routes answer 403 admin_disabled.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	var want [32]byte
	if s.cfg.AdminToken != "" {
		want = sha256.Sum256([]byte(s.cfg.AdminToken))
	}
	return func(c echo.Context) error {
		if s.cfg.AdminToken == "" {
			return errorf(http.StatusForbidden, CodeAdminDisabled, "", "the admin endpoints are off: no admin token is configured (--admin-token)")
		}
		h := c.Request().Header.Values(echo.HeaderAuthorization)
		tok, ok := "", len(h) == 1
		if ok {
			tok, ok = strings.CutPrefix(h[0], "Bearer ")
		}
		got := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="streamrec-admin"`)
			return errorf(http.StatusUnauthorized, CodeUnauthorized, "Authorization", "admin endpoints need the header Authorization: Bearer <admin token>")
		}
		return next(c)
	}
}
