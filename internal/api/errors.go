package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Stable error codes of the JSON error body. They are part of the API: add new
// ones, never rename one.
const (
	CodeInvalidUserID        = "invalid_user_id"        // path id not a decimal uint32
	CodeInvalidParameter     = "invalid_parameter"      // a query parameter is malformed
	CodeInvalidK             = "invalid_k"              // k not an integer in [1, max-k]
	CodeInvalidJSON          = "invalid_json"           // body is not well-formed JSON of the right shape
	CodeUnknownField         = "unknown_field"          // body has a field the schema does not define
	CodeInvalidField         = "invalid_field"          // a field has the wrong type or is out of range
	CodeMissingField         = "missing_field"          // a required field is absent or null
	CodeInvalidEvent         = "invalid_event"          // the event breaks a rule of schema v1
	CodeBodyTooLarge         = "body_too_large"         // body exceeds --max-body-bytes
	CodeBatchTooLarge        = "batch_too_large"        // batch exceeds --max-batch events
	CodeEmptyBatch           = "empty_batch"            // batch holds no event
	CodeUnsupportedMediaType = "unsupported_media_type" // Content-Type is not application/json
	CodeInvalidIdempotency   = "invalid_idempotency_key"
	CodeInvalidClientID      = "invalid_client_id"
	// 409: a request with the same client and Idempotency-Key is being published.
	CodeIdempotencyInProgress = "idempotency_in_progress"
	// 409: the client's Idempotency-Key was used with another body.
	CodeIdempotencyKeyReused = "idempotency_key_reused"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeNoModel              = "no_model"                 // 503: no model version loaded yet
	CodePublishFailed        = "publish_failed"           // 503: Kafka did not acknowledge the events
	CodeNotReady             = "not_ready"                // 503 from /readyz
	CodeInternal             = "internal"                 // 500: a bug; logged
	CodeOnlineOff            = "online_evaluation_off"    // 503: this API does not run the online evaluation
	CodeOnlineStoreDown      = "online_store_unavailable" // 503: the windows' store (Redis) did not answer
	CodeDriftOff             = "drift_monitoring_off"     // 503: this API does not run drift monitoring
	CodeRateLimited          = "rate_limited"             // 429: the client is over its rate limit (Retry-After)
	CodeUnauthorized         = "unauthorized"             // 401: an admin route without the right bearer token
	CodeAdminDisabled        = "admin_disabled"           // 403: no admin token is configured
	CodeModelStoreDown       = "model_store_unavailable"  // 503: the model versions could not be read or changed in Redis
	CodeNoPrevious           = "no_previous_version"      // 409: a rollback without a previous version
	CodeNoItemTower          = "no_item_tower"            // 409: the model version has no item tower to embed a registered video with
	CodeVideoExists          = "video_exists"             // 409: the registered video is a published item of the version
	CodeRetrainOff           = "retrain_off"              // 409: this API has no retrain command (--retrain-cmd)
	CodeRetrainRunning       = "retrain_running"          // 409: a retrain is running (the retrain lease is held)
	CodeRetrainFailed        = "retrain_failed"           // 503: the retrain process could not be started
	CodeCanaryRejected       = "canary_rejected"          // 409: a canary cannot start (one runs, the version is current or missing, bad share)
)

// Error is an API error: an HTTP status and the stable JSON error body.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string // the offending field or parameter, when there is one
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func errorf(status int, code, field, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON shape of every 4xx and 5xx answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// handleError is Echo's HTTPErrorHandler: it turns every error into the stable
// JSON error body.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var ae *Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		ae = &Error{Status: he.Code, Code: codeForStatus(he.Code), Message: fmt.Sprint(he.Message)}
		if he.Code == http.StatusNotFound {
			ae.Message = "no route " + c.Request().Method + " " + c.Request().URL.Path
		}
	default:
		s.log.Error("unhandled error", "err", err, "method", c.Request().Method, "path", c.Request().URL.Path)
		ae = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
	}
	body := errorBody{Error: errorDetail{Code: ae.Code, Message: ae.Message, Field: ae.Field}}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(ae.Status)
	} else {
		err = c.JSON(ae.Status, body)
	}
	if err != nil {
		s.log.Debug("writing an error response", "err", err)
	}
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return CodeBodyTooLarge
	case http.StatusUnsupportedMediaType:
		return CodeUnsupportedMediaType
	case http.StatusServiceUnavailable:
		return CodeNotReady
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusUnauthorized:
		return CodeUnauthorized
	}
	if status >= 500 {
		return CodeInternal
	}
	return CodeInvalidParameter
}
