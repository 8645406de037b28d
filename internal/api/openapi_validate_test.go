package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The agreement of the served OpenAPI document and the server, checked on
// every request a handler test sends through doOn (kin-openapi's
// openapi3filter):
//
//   - every answer validates against the document (status, headers, body);
//   - a request the document refuses gets a 4xx;
//   - a request the document allows gets no input error (400, 413 or 415),
//     unless it breaks one of the rules the document cannot express:
//     an unknown candidate set (the sets depend on the loaded version), a
//     body over --max-body-bytes (the document bounds events, not bytes),
//     a query parameter or header given twice (OpenAPI has no "exactly
//     once"; the server refuses the ambiguity), a query parameter the
//     operation does not define (OpenAPI 3.0 cannot close the set; GET
//     /v1/metrics/online refuses them, as its description says), and
//     mutually exclusive parameters (source and fallback, likewise), and
//     the number of a registered video's features (the loaded version's).
func outsideDoc(route *routers.Route, req *http.Request, code, field string) bool {
	q := req.URL.Query()
	for name, vs := range q {
		if len(vs) > 1 || route.Operation.Parameters.GetByInAndName("query", name) == nil {
			return true
		}
	}
	if q.Has("source") && q.Has("fallback") {
		return true
	}
	for _, h := range []string{ClientHeader, IdempotencyHeader} {
		if len(req.Header.Values(h)) > 1 {
			return true
		}
	}
	// The number of a registered video's features is the loaded version's
	// item-tower width.
	if route.Path == "/v1/admin/videos" && code == CodeInvalidField && field == "features" {
		return true
	}
	return code == CodeBodyTooLarge || (code == CodeInvalidParameter && field == "candidates")
}

type docValidator struct {
	router routers.Router
}

var validators sync.Map // string(document) -> *docValidator

func validatorFor(t testing.TB, srv *Server) *docValidator {
	t.Helper()
	if v, ok := validators.Load(string(srv.doc)); ok {
		return v.(*docValidator)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(srv.doc)
	if err != nil {
		t.Fatalf("loading the served OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the served OpenAPI document is invalid: %v", err)
	}
	// The router matches paths only: no servers entry needed.
	doc.Servers = nil
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("routing the OpenAPI document: %v", err)
	}
	v := &docValidator{router: r}
	validators.Store(string(srv.doc), v)
	return v
}

// checkAgainstDoc validates req (whose body is body) and the recorded answer
// w against srv's document. Routes outside the document (the bench
// reference, unknown paths) are only checked for a 4xx on unknown paths.
func checkAgainstDoc(t testing.TB, srv *Server, req *http.Request, body []byte, w *httptest.ResponseRecorder) {
	t.Helper()
	v := validatorFor(t, srv)
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		if w.Code < 400 && !strings.HasPrefix(req.URL.Path, "/v1/bench/reference/") {
			t.Errorf("%s %s: not in the document, but answered %d", req.Method, req.URL, w.Code)
		}
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: func(context.Context, *openapi3filter.AuthenticationInput) error { return nil },
		MultiError: false, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	req.Body = io.NopCloser(bytes.NewReader(body))
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	// kin-openapi decodes the first JSON value of a body and ignores what
	// follows; application/json is one value.
	if reqErr == nil && len(body) > 0 && !json.Valid(body) {
		reqErr = errors.New("the body is not one JSON value")
	}
	var b errorBody
	if w.Code >= 400 {
		_ = jsonUnmarshal(w.Body.Bytes(), &b)
	}
	switch {
	case reqErr != nil && w.Code < 400:
		t.Errorf("%s %s: the document refuses the request (%v) but the server answered %d", req.Method, req.URL, reqErr, w.Code)
	case reqErr == nil && (w.Code == 400 || w.Code == 413 || w.Code == 415) && !outsideDoc(route, req, b.Error.Code, b.Error.Field):
		t.Errorf("%s %s: the document allows the request but the server refused it: %d %s", req.Method, req.URL, w.Code, w.Body.String())
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: w.Code, Header: w.Header(), Options: opts}
	out.SetBodyBytes(w.Body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s: the answer %d does not match the document: %v\nbody %s", req.Method, req.URL, w.Code, err, truncate(w.Body.String(), 400))
	}
}
