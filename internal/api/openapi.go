package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPIDoc is the OpenAPI 3 document of every route, as written
// (openapi_test.go checks it against the routes registered in Echo, and
// validates every handler test's request and answer against the document
// the server serves).
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI document as written (read-only); a Server
// serves it with its own bounds (see renderOpenAPI).
func OpenAPI() []byte { return openAPIDoc }

func (s *Server) openapi(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.doc)
}

// renderOpenAPI returns the document with this configuration's bounds: the
// maximum and default of k (--max-k, --default-k), the batch's maxItems
// (--max-batch), and without /metrics when it is served elsewhere.
func renderOpenAPI(cfg Config) ([]byte, error) {
	var d map[string]any
	if err := json.Unmarshal(openAPIDoc, &d); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	get := func(v any, path ...string) map[string]any {
		for _, p := range path {
			m, _ := v.(map[string]any)
			v = m[p]
		}
		m, _ := v.(map[string]any)
		return m
	}
	paths := get(d, "paths")
	recs := get(paths, "/v1/users/{id}/recommendations", "get")
	params, _ := recs["parameters"].([]any)
	found := false
	for _, p := range params {
		if m, _ := p.(map[string]any); m["name"] == "k" {
			sch := get(m, "schema")
			sch["maximum"], sch["default"] = cfg.MaxK, cfg.DefaultK
			found = true
		}
	}
	batch := get(paths, "/v1/interactions:batch", "post", "requestBody", "content", "application/json", "schema")
	if !found || batch == nil {
		return nil, fmt.Errorf("openapi.json: the k parameter or the batch body schema is missing")
	}
	batch["maxItems"] = cfg.MaxBatch
	if cfg.MetricsElsewhere {
		delete(paths, "/metrics")
	}
	return json.MarshalIndent(d, "", "  ")
}
