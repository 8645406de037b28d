package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
)

// TestOpenAPIMatchesRoutes: every route registered in Echo is in the served
// document and vice versa, and the document is OpenAPI 3 JSON.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	w := f.do(http.MethodGet, "/v1/openapi.json", "")
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s", w.Code, w.Header().Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Info    struct{ Title, Version string }       `json:"info"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
		Comps   map[string]json.RawMessage            `json:"components"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Info.Title == "" || doc.Info.Version == "" || len(doc.Paths) == 0 {
		t.Fatalf("missing top-level fields: openapi %q info %+v paths %d", doc.OpenAPI, doc.Info, len(doc.Paths))
	}
	var documented []string
	for p, ops := range doc.Paths {
		for m, op := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
			var o struct {
				Responses map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(op, &o); err != nil || len(o.Responses) == 0 {
				t.Errorf("%s %s: no responses", m, p)
			}
		}
	}
	registered := f.srv.Routes()
	slices.Sort(documented)
	slices.Sort(registered)
	if !slices.Equal(documented, registered) {
		t.Fatalf("routes and document differ:\nregistered %q\ndocumented %q", registered, documented)
	}
	// Every $ref resolves.
	var all any
	_ = json.Unmarshal(w.Body.Bytes(), &all)
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
				var cur any = all
				for _, p := range parts {
					m, _ := cur.(map[string]any)
					cur = m[p]
				}
				if cur == nil {
					t.Errorf("dangling $ref %s", ref)
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(all)
	// The intake endpoints document their identity and idempotency headers
	// and the 409 answers.
	for _, p := range []string{"/v1/interactions", "/v1/interactions:batch"} {
		op := string(doc.Paths[p]["post"])
		for _, want := range []string{"#/components/parameters/ClientId", "#/components/parameters/IdempotencyKey", `"409"`} {
			if !strings.Contains(op, want) {
				t.Errorf("POST %s: %s not documented", p, want)
			}
		}
	}
	// Every error code constant of errors.go is in the document's enum, and
	// every code of the enum is a constant.
	var errDoc struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Error struct {
							Properties struct {
								Code struct{ Enum []string }
							}
						}
					}
				}
			}
		}
	}
	if err := json.Unmarshal(openAPIDoc, &errDoc); err != nil {
		t.Fatal(err)
	}
	enum := errDoc.Components.Schemas.Error.Properties.Error.Properties.Code.Enum
	consts := errorCodeConstants(t)
	slices.Sort(enum)
	slices.Sort(consts)
	if !slices.Equal(enum, consts) || len(consts) < 20 {
		t.Errorf("error codes: document %q, errors.go %q", enum, consts)
	}
}

// errorCodeConstants returns the values of errors.go's Code* constants.
func errorCodeConstants(t *testing.T) []string {
	fs := token.NewFileSet()
	file, err := parser.ParseFile(fs, "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range file.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			vs := sp.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && strings.HasPrefix(n.Name, "Code") {
					v, _ := strconv.Unquote(lit.Value)
					out = append(out, v)
				}
			}
		}
	}
	return out
}

func TestOpenAPIPath(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/users/:id/recommendations": "/v1/users/{id}/recommendations",
		`/v1/interactions\:batch`:       "/v1/interactions:batch",
		"/a/:x/:y":                      "/a/{x}/{y}",
		"/healthz":                      "/healthz",
	} {
		if got := openAPIPath(in); got != want {
			t.Errorf("openAPIPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	if w := f.do(http.MethodGet, "/healthz", ""); w.Code != http.StatusOK {
		t.Fatalf("healthz %d", w.Code)
	}
	w := f.do(http.MethodGet, "/readyz", "")
	if w.Code != http.StatusOK {
		t.Fatalf("readyz %d %s", w.Code, w.Body.String())
	}
	f.srv.deps.Checks = append(f.srv.deps.Checks,
		Check{Name: "model", Fn: func(context.Context) error { return errors.New("no model index loaded") }},
		Check{Name: "kafka", Fn: func(context.Context) error { return errors.New("metadata unreachable") }})
	w = f.do(http.MethodGet, "/readyz", "")
	d := wantError(t, w, http.StatusServiceUnavailable, CodeNotReady)
	if d.Field != "model" || !strings.Contains(d.Message, "model, kafka") {
		t.Fatalf("%+v", d)
	}
	// The checks by name, never the errors' text (it may hold addresses).
	if strings.Contains(w.Body.String(), "no model index loaded") || strings.Contains(w.Body.String(), "unreachable") {
		t.Fatalf("raw error text in %s", w.Body.String())
	}
	var b struct{ Checks map[string]string }
	_ = json.Unmarshal(w.Body.Bytes(), &b)
	if b.Checks["redis"] != "ok" || b.Checks["kafka"] != "failed" || b.Checks["model"] != "failed" {
		t.Fatalf("checks %v", b.Checks)
	}
}

func TestRequestMetrics(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	f.do(http.MethodGet, "/v1/users/1/recommendations", "")
	f.do(http.MethodGet, "/v1/users/999/recommendations", "")
	f.do(http.MethodGet, "/v1/users/x/recommendations", "")
	f.do(http.MethodGet, "/no/such/path/12345", "")
	f.do(http.MethodPost, "/v1/interactions:batch", "["+okEvent+"]")
	f.drainServed()
	m := f.metricsText()
	for _, want := range []string{
		`streamrec_api_requests_total{code="200",method="GET",route="/v1/users/{id}/recommendations"} 2`,
		`streamrec_api_requests_total{code="400",method="GET",route="/v1/users/{id}/recommendations"} 1`,
		`streamrec_api_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`streamrec_api_requests_total{code="202",method="POST",route="/v1/interactions:batch"} 1`,
		`streamrec_api_request_duration_seconds_bucket{method="GET",route="/v1/users/{id}/recommendations",le="2.5e-05"}`,
		`streamrec_api_recommendations_total{kind="model"} 1`,
		`streamrec_api_recommendations_total{kind="popularity"} 1`,
		`streamrec_api_fallbacks_total{reason="no_embedding"} 1`,
		`streamrec_api_served_lists_stored_total{result="ok"} 2`,
		`streamrec_api_interactions_accepted_total 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, "12345") {
		t.Error("a raw request path leaked into a label")
	}
}

func TestWatchedSetBounds(t *testing.T) {
	w := newWatchedSet(watchedShards, 3) // one user per shard
	for v := uint32(1); v <= 5; v++ {
		w.Add(7, v)
		w.Add(7, v) // duplicates are kept once
	}
	got := w.Get(7, nil)
	slices.Sort(got)
	if !slices.Equal(got, []uint32{3, 4, 5}) {
		t.Fatalf("got %v, want the 3 most recent", got)
	}
	// A second user in the same shard evicts the first.
	other := uint32(8)
	for w.shard(other) != w.shard(7) {
		other++
	}
	w.Add(other, 1)
	if got := w.Get(7, nil); len(got) != 0 {
		t.Fatalf("user 7 not evicted: %v", got)
	}
}

func TestPanicIsA500WithTheErrorBody(t *testing.T) {
	f := newFixture(t, 10, 4, 1, DefaultConfig())
	f.srv.e.GET("/boom", func(echo.Context) error { panic("bug") })
	wantError(t, f.do(http.MethodGet, "/boom", ""), http.StatusInternalServerError, CodeInternal)
}

type recordingObserver struct {
	mu       sync.Mutex
	served   []string
	accepted int
}

func (o *recordingObserver) Served(u uint32, l *cache.ServedList, fallback string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.served = append(o.served, fmt.Sprintf("%d:%d:%s", u, len(l.Items), fallback))
}

func (o *recordingObserver) Accepted(events []stream.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.accepted += len(events)
}

func TestObserverSeesServedListsAndAcceptedEvents(t *testing.T) {
	f := newFixture(t, 30, 4, 1, DefaultConfig())
	obs := &recordingObserver{}
	f.srv.deps.Observer = obs
	f.do(http.MethodGet, "/v1/users/1/recommendations?k=5", "")
	f.do(http.MethodGet, "/v1/users/2/recommendations?k=3", "")
	f.do(http.MethodPost, "/v1/interactions:batch", "["+okEvent+","+okEvent+"]")
	f.do(http.MethodPost, "/v1/interactions", `{"x":1}`) // rejected: not observed
	if !slices.Equal(obs.served, []string{"1:5:", "2:3:popularity"}) || obs.accepted != 2 {
		t.Fatalf("served %v accepted %d", obs.served, obs.accepted)
	}
}

// The document's bound of event_time_ms is the intake's (the fuzz target
// found a document bound of 2^42 - 1 while the server accepted up to 2^52 - 1).
func TestOpenAPIEventTimeBound(t *testing.T) {
	var d struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Maximum *float64 `json:"maximum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &d); err != nil {
		t.Fatal(err)
	}
	m := d.Components.Schemas["Interaction"].Properties["event_time_ms"].Maximum
	if m == nil || int64(*m) != maxEventTimeMs {
		t.Fatalf("document's event_time_ms maximum %v, the intake's %d", m, int64(maxEventTimeMs))
	}
}
