package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyBody is the 200 answer of /readyz, and the 503 answer's "checks".
type readyBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// readyz runs every check (each under ReadyTimeout); 503 names the failing
// checks, and "checks" holds every check's result: "ok" or "failed", never
// the error's text (it may hold addresses); the error is logged.
func (s *Server) readyz(c echo.Context) error {
	checks := map[string]string{}
	var failed []string
	for _, ch := range s.deps.Checks {
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ReadyTimeout)
		err := ch.Fn(ctx)
		cancel()
		if err == nil {
			checks[ch.Name] = "ok"
			continue
		}
		checks[ch.Name] = "failed"
		failed = append(failed, ch.Name)
		s.log.Warn("readiness check failed", "check", ch.Name, "err", err)
	}
	if failed != nil {
		failed := errorf(http.StatusServiceUnavailable, CodeNotReady, failed[0], "not ready: %s failed", strings.Join(failed, ", "))
		return c.JSON(failed.Status, struct {
			errorBody
			Checks map[string]string `json:"checks"`
		}{errorBody{errorDetail{Code: failed.Code, Message: failed.Message, Field: failed.Field}}, checks})
	}
	return c.JSON(http.StatusOK, readyBody{Status: "ready", Checks: checks})
}
