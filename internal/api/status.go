package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"
)

// StatusSource reads the status records processes publish (*cache.Store
// implements it).
type StatusSource interface {
	Statuses(ctx context.Context, kind string) (map[string][]byte, error)
}

// StatusReport is the body of GET /v1/status: every live updater's status
// record (cmd/updater publishes one a second, with a 10 s TTL: a stopped
// updater drops out), sorted by member.
type StatusReport struct {
	Updaters []json.RawMessage `json:"updaters"`
}

func (s *Server) status(c echo.Context) error {
	for k := range c.QueryParams() {
		return errorf(http.StatusBadRequest, CodeInvalidParameter, k, "unknown query parameter %q", truncate(k, 32))
	}
	src, ok := s.deps.Store.(StatusSource)
	if !ok {
		return errorf(http.StatusServiceUnavailable, CodeModelStoreDown, "", "this server has no status store")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ReadyTimeout)
	defer cancel()
	m, err := src.Statuses(ctx, "updater")
	if err != nil {
		s.log.Warn("reading the updaters' status", "err", err)
		return errorf(http.StatusServiceUnavailable, CodeModelStoreDown, "", "the status store is unavailable")
	}
	members := make([]string, 0, len(m))
	for k := range m {
		members = append(members, k)
	}
	slices.Sort(members)
	rep := StatusReport{Updaters: make([]json.RawMessage, 0, len(m))}
	for _, k := range members {
		if json.Valid(m[k]) {
			rep.Updaters = append(rep.Updaters, m[k])
		}
	}
	return c.JSON(http.StatusOK, &rep)
}
