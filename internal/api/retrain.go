package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Retrainer starts a retrain from the log (`ingestor train --from-log`) as a
// process of its own; cmd/api implements it with --retrain-cmd.
type Retrainer interface {
	Start(ctx context.Context, reason string) (RetrainStarted, error)
}

// ErrRetrainRunning is returned by a Retrainer when a retrain is running
// (here or on any host: the retrain lease in Redis is held).
var ErrRetrainRunning = errors.New("a retrain is running")

// RetrainStarted is the answer of POST /v1/admin/retrain.
type RetrainStarted struct {
	PID         int    `json:"pid"`
	Reason      string `json:"reason"`
	StartedAtMs int64  `json:"started_at_ms"`
	// Log is the file the retrain's output goes to.
	Log string `json:"log"`
}

func (s *Server) adminRetrain(c echo.Context) error {
	if s.deps.Retrain == nil {
		return errorf(http.StatusConflict, CodeRetrainOff, "", "this server has no retrain command (api --retrain-cmd)")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ReadyTimeout)
	defer cancel()
	out, err := s.deps.Retrain.Start(ctx, "admin call")
	switch {
	case errors.Is(err, ErrRetrainRunning):
		return errorf(http.StatusConflict, CodeRetrainRunning, "", "%s", err.Error())
	case err != nil:
		s.log.Warn("starting a retrain", "err", err)
		return errorf(http.StatusServiceUnavailable, CodeRetrainFailed, "", "the retrain could not be started; see the server's log")
	}
	return c.JSON(http.StatusAccepted, &out)
}
