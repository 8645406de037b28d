package api

import (
	"embed"
	"net/http"
	"path"

	"github.com/labstack/echo/v4"
)

// The dashboard (GET /dashboard): a page and its script and style sheet,
// embedded in the binary. The script reads only documented endpoints
// (/v1/metrics/online, /v1/drift, /v1/models, /v1/status) and draws its charts as SVG
// with its own code: no chart library, nothing fetched from elsewhere.
//
//go:embed dashboard/index.html dashboard/app.js dashboard/style.css
var dashboardFS embed.FS

var dashboardTypes = map[string]string{
	"index.html": "text/html; charset=utf-8",
	"app.js":     "text/javascript; charset=utf-8",
	"style.css":  "text/css; charset=utf-8",
}

func (s *Server) dashboard(c echo.Context) error { return serveDashboard(c, "index.html") }

func (s *Server) dashboardAsset(c echo.Context) error {
	return serveDashboard(c, path.Base(c.Param("file")))
}

func serveDashboard(c echo.Context, name string) error {
	ct, ok := dashboardTypes[name]
	if !ok {
		return errorf(http.StatusNotFound, CodeNotFound, "file", "no dashboard file %q", truncate(name, 32))
	}
	b, err := dashboardFS.ReadFile("dashboard/" + name)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.Blob(http.StatusOK, ct, b)
}
