// Package api is streamrec's HTTP API (Echo v4): recommendations from the
// in-memory item index and the user embeddings in Redis, interaction intake to
// Kafka, the OpenAPI document, health, readiness and Prometheus metrics.
//
// Every route is versioned under /v1 except the operational ones (/healthz,
// /readyz, /metrics). Every 4xx and 5xx answer has the same JSON body:
//
//	{"error": {"code": "invalid_k", "message": "k: must be an integer in [1, 100]", "field": "k"}}
//
// where code is a stable, documented identifier (see the Code* constants) and
// message is for humans. The document served at /v1/openapi.json lists every
// route and every code.
//
// The Server depends on small interfaces declared here (ItemSource, UserStore,
// Publisher, Check), which *cache.ItemCache, *cache.Store and *stream.Producer
// implement and tests fake. Online metrics on served lists and drift detectors
// are not built yet; they will attach through Observer, which the server
// calls after every served list and every accepted batch of interactions.
package api
