package api

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPIDoc is the OpenAPI 3 document of every route (openapi_test.go checks
// it against the routes registered in Echo).
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI document (read-only).
func OpenAPI() []byte { return openAPIDoc }

func (s *Server) openapi(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPIDoc)
}
