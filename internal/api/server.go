package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
)

// ItemSource gives the item index of the current model version, or nil before
// the first load. *cache.ItemCache implements it. The index is immutable: a
// request takes it once and uses that one version throughout.
type ItemSource interface {
	Index() *cache.ItemIndex
}

// UserStore is what the API reads and writes in Redis; *cache.Store implements
// it. GetUser returns (zero, false, nil) for a user with no record under
// version. Slices passed in are only read during the call.
type UserStore interface {
	GetUser(ctx context.Context, version string, userID uint32) (cache.UserRecord, bool, error)
	PutServed(ctx context.Context, userID uint32, l cache.ServedList) error
}

// WatchedStore is a UserStore that also keeps the users' shared watch
// history (every video the updater processed for the user, and its ring of
// recent events, under keys of no model version); *cache.Store implements
// it. GetUserWatched reads the record and the history in one round trip;
// the history is distinct and ascending. When Deps.Store implements it,
// exclude_watched uses the history (with this process's recent intake).
type WatchedStore interface {
	GetUserWatched(ctx context.Context, version string, userID uint32) (cache.UserRecord, bool, []uint32, error)
}

// Publisher writes events to the interactions topic; *stream.Producer
// implements it. Publish returns nil only once the broker acknowledged every
// event (acks=all); it must be safe for concurrent use and must not keep
// events after it returns.
type Publisher interface {
	Publish(ctx context.Context, events []stream.Event) error
}

// IntakeStore keeps the intake idempotency records (per client and
// Idempotency-Key); *cache.Store implements it.
type IntakeStore interface {
	BeginIntake(ctx context.Context, client, key string, bodyHash []byte, now time.Time, lease, ttl time.Duration) (cache.IntakeState, []byte, error)
	FinishIntake(ctx context.Context, client, key string, bodyHash, answer []byte, ttl time.Duration) error
	FailIntake(ctx context.Context, client, key string, bodyHash []byte, ttl time.Duration) error
}

// Check is one readiness check; Fn returns nil when the dependency is ready.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Observer is told about every served list and every accepted batch of
// interactions, after the fact; it is where online metrics on served lists and
// drift detectors attach (not built yet). Methods are called from request
// goroutines concurrently, must be fast, and must not keep the slices.
type Observer interface {
	Served(userID uint32, l *cache.ServedList, fallback string)
	Accepted(events []stream.Event)
}

// Config configures a Server. Start from DefaultConfig; New calls Validate.
type Config struct {
	// DefaultK is the list length when the request gives no k. Default: 25.
	DefaultK int
	// MaxK bounds k. Default: 100.
	MaxK int
	// MaxBodyBytes bounds a request body. Default: 1 MiB.
	MaxBodyBytes int64
	// MaxBatch bounds the events of one batch POST. Default: 1000.
	MaxBatch int
	// RedisTimeout bounds each Redis call of a recommendation request (read of
	// the user, write of the served list); past it the request falls back.
	// Default: 100ms.
	RedisTimeout time.Duration
	// PublishTimeout bounds the Kafka acknowledgement of an intake request.
	// Default: 10s.
	PublishTimeout time.Duration
	// ReadyTimeout bounds each readiness check. Default: 2s.
	ReadyTimeout time.Duration
	// WatchedUsers bounds how many users' recent-watched sets are kept
	// (least recently updated evicted first). Default: 100000.
	WatchedUsers int
	// WatchedPerUser bounds each user's recent-watched set (oldest evicted).
	// Default: 200.
	WatchedPerUser int
	// BenchReference registers the load harness's reference endpoint
	// (BenchReferencePath; see benchref.go). Default: false.
	BenchReference bool
	// IdempotencyTTL is how long an intake idempotency record (per client and
	// Idempotency-Key) is kept after its last change. Default: 24h.
	IdempotencyTTL time.Duration
	// ExploreRate is the share of a model list's slots filled from a uniform
	// sample of the candidates, with their propensity (explore.go).
	// Default: 0 (off).
	ExploreRate float64
	// RateLimit is each client's (ClientHeader) sustained rate on the public
	// routes, in requests a second, with bursts of RateBurst; past it 429
	// rate_limited. 0: no limit. Default: 0.
	RateLimit float64
	// RateBurst is the size of each client's token bucket. Default: 100.
	RateBurst int
	// RateClients bounds the clients whose buckets are kept. Default: 100000.
	RateClients int
	// AdminToken is the bearer token of the admin routes (/v1/admin/...);
	// empty: they answer 403 admin_disabled. Never logged. Default: empty.
	AdminToken string
	// MetricsElsewhere leaves /metrics off the API's routes: the caller
	// serves MetricsHandler on its own listener. Default: false.
	MetricsElsewhere bool
	// ServedQueue bounds the last-list records (without Deps.Online)
	// waiting for RunServedLog to write them; a full queue drops and
	// counts (servedlast.go). Default: 4096.
	ServedQueue int
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{DefaultK: 25, MaxK: 100, MaxBodyBytes: 1 << 20, MaxBatch: 1000,
		RedisTimeout: 100 * time.Millisecond, PublishTimeout: 10 * time.Second, ReadyTimeout: 2 * time.Second,
		WatchedUsers: 100_000, WatchedPerUser: 200, IdempotencyTTL: 24 * time.Hour,
		RateBurst: 100, RateClients: 100_000, ServedQueue: 4096}
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.MaxK < 1 || c.MaxK > 65536 {
		errs = append(errs, fmt.Errorf("max-k %d: want 1..65536", c.MaxK))
	}
	if c.DefaultK < 1 || c.DefaultK > c.MaxK {
		errs = append(errs, fmt.Errorf("default k %d: want 1..max-k (%d)", c.DefaultK, c.MaxK))
	}
	if c.MaxBodyBytes < 64 {
		errs = append(errs, fmt.Errorf("max-body-bytes %d: want >= 64", c.MaxBodyBytes))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, fmt.Errorf("max-batch %d: want >= 1", c.MaxBatch))
	}
	if !(c.ExploreRate >= 0 && c.ExploreRate <= 1) {
		errs = append(errs, fmt.Errorf("explore-rate %v: want in [0, 1]", c.ExploreRate))
	}
	if c.RedisTimeout <= 0 || c.PublishTimeout <= 0 || c.ReadyTimeout <= 0 {
		errs = append(errs, errors.New("redis, publish and ready timeouts must be positive"))
	}
	if c.IdempotencyTTL < c.PublishTimeout+5*time.Second {
		errs = append(errs, fmt.Errorf("idempotency ttl %v: want at least the publish timeout + 5s", c.IdempotencyTTL))
	}
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) || c.RateBurst < 1 || c.RateClients < 1 {
		errs = append(errs, fmt.Errorf("rate limit %v, burst %d, clients %d: want a finite rate >= 0 (0: off), burst and clients >= 1", c.RateLimit, c.RateBurst, c.RateClients))
	}
	if c.WatchedUsers < 1 || c.WatchedPerUser < 1 {
		errs = append(errs, errors.New("watched-users and watched-per-user must be positive"))
	}
	if c.ServedQueue < 1 {
		errs = append(errs, fmt.Errorf("served queue %d: want >= 1", c.ServedQueue))
	}
	return errors.Join(errs...)
}

// Deps are the Server's dependencies. Items, Store and Publisher are required.
type Deps struct {
	Items     ItemSource
	Store     UserStore
	Publisher Publisher
	// Intake keeps the intake idempotency records. Nil: none (a retry with
	// the same Idempotency-Key is published again with the same ids, which
	// the updater drops as duplicates).
	Intake IntakeStore
	// Checks are run in order by /readyz.
	Checks []Check
	// Models lists and rolls back model versions (GET /v1/models and the
	// admin routes); nil: those answer 503 model_store_unavailable.
	Models ModelStore
	// Videos registers videos that appear after training (POST
	// /v1/admin/videos); nil: that route answers 409 no_item_tower.
	Videos ItemRegistry
	// Reload refreshes the item index now (the admin reload and rollback);
	// *cache.ItemCache's Refresh does. Nil: nothing to do.
	Reload func(ctx context.Context) (swapped bool, err error)
	// Canary, if set, serves the running canary's share of the users from
	// the canary version (cache.Canary); nil: everyone the current version.
	Canary *Canaries
	// Retrain starts a retrain from the log (POST /v1/admin/retrain); nil:
	// that route answers 409 retrain_off.
	Retrain Retrainer
	// Observer may be nil.
	Observer Observer
	// Online, if not nil, writes every served list to the served-list log
	// (run Server.RunServedLog) and serves the online evaluator's windows.
	Online *Online
	// Registry receives the API's metrics and is served on /metrics. Nil: a
	// fresh registry.
	Registry *prometheus.Registry
	// Logger may be nil (discard).
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Server is the HTTP API. Build it with New and serve Echo().
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	now     func() time.Time
	e       *echo.Echo
	metrics *metrics
	watched *watchedSet
	ids     *idAssigner
	fb      fallbackCache
	online  *onlineState // nil: the online evaluation is off
	limiter *rateLimiter // nil: no rate limit
	// last queues the last-list records without online (servedlast.go).
	last chan cache.UserServed
	doc  []byte // the OpenAPI document served (renderOpenAPI)
	// routePaths maps each registered Echo path to its OpenAPI template (the
	// metrics' route label); read-only after New.
	routePaths map[string]string
}

// New builds a Server and registers its routes and metrics.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Items == nil || deps.Store == nil || deps.Publisher == nil {
		return nil, errors.New("api: Items, Store and Publisher are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	m, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Logger.With("component", "api"), now: deps.Now, metrics: m,
		watched: newWatchedSet(cfg.WatchedUsers, cfg.WatchedPerUser), ids: newIDAssigner()}
	if s.doc, err = renderOpenAPI(cfg); err != nil {
		return nil, err
	}
	if cfg.RateLimit > 0 {
		s.limiter = newRateLimiter(cfg.RateLimit, cfg.RateBurst, cfg.RateClients)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.instrument, s.recoverPanics)

	// pub are the middlewares of the public routes: the rate limit.
	var pub []echo.MiddlewareFunc
	if s.limiter != nil {
		pub = append(pub, s.limit)
	}
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if !cfg.MetricsElsewhere {
		e.GET("/metrics", echo.WrapHandler(s.MetricsHandler()))
	}
	e.GET("/v1/openapi.json", s.openapi)
	e.GET("/v1/users/:id/recommendations", s.recommendations, pub...)
	e.POST("/v1/interactions", s.postInteraction, pub...)
	// "\:" is Echo's escape for a literal colon (Google API style custom method).
	e.POST(`/v1/interactions\:batch`, s.postInteractionBatch, pub...)
	e.GET("/v1/metrics/online", s.onlineMetrics, pub...)
	e.GET("/v1/models", s.publicModels, pub...)
	e.GET("/v1/drift", s.driftReport, pub...)
	e.GET("/v1/status", s.status, pub...)
	e.GET("/dashboard", s.dashboard)
	e.GET("/dashboard/:file", s.dashboardAsset)
	e.GET("/v1/admin/models", s.adminModels, s.requireAdmin)
	e.POST(`/v1/admin/models\:rollback`, s.adminRollback, s.requireAdmin)
	e.POST(`/v1/admin/models\:reload`, s.adminReload, s.requireAdmin)
	e.POST("/v1/admin/videos", s.adminRegisterVideo, s.requireAdmin)
	e.POST("/v1/admin/retrain", s.adminRetrain, s.requireAdmin)
	e.POST("/v1/admin/canary", s.adminStartCanary, s.requireAdmin)
	e.POST(`/v1/admin/drift\:pin`, s.adminDriftPin(true), s.requireAdmin)
	e.POST(`/v1/admin/drift\:unpin`, s.adminDriftPin(false), s.requireAdmin)
	if deps.Online != nil {
		if deps.Online.Log == nil || deps.Online.Windows == nil || deps.Online.Partitions < 1 || deps.Online.Window <= 0 {
			return nil, errors.New("api: Online needs Log, Windows, Partitions >= 1 and Window > 0")
		}
		s.online = newOnlineState(deps.Online)
		if err := deps.Registry.Register(&onlineCollector{s: s, desc: prometheus.NewDesc("streamrec_online_last_window",
			"The online evaluator's metrics over the last closed produce-time window (two windows back), by metric (see GET /v1/metrics/online).",
			[]string{"metric"}, nil)}); err != nil {
			return nil, err
		}
		if deps.Online.Drift != nil {
			if err := deps.Registry.Register(newDriftCollector(deps.Online.Drift)); err != nil {
				return nil, err
			}
		}
	}
	if s.online == nil {
		s.last = make(chan cache.UserServed, cfg.ServedQueue)
	}
	if cfg.BenchReference {
		e.GET(BenchReferencePath, s.benchReference)
	}
	s.e = e
	s.routePaths = map[string]string{}
	for _, r := range e.Routes() {
		s.routePaths[r.Path] = openAPIPath(r.Path)
	}
	return s, nil
}

// Echo returns the Echo instance (an http.Handler). Start it, and stop it with
// its Shutdown.
func (s *Server) Echo() *echo.Echo { return s.e }

// MetricsHandler serves the registry's metrics (Prometheus text): on the
// API's /metrics, or on a listener of its own (Config.MetricsElsewhere).
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.deps.Registry, promhttp.HandlerOpts{})
}

// Routes returns the registered routes as "METHOD /path" with OpenAPI path
// templates ("{id}", literal ':').
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.e.Routes() {
		out = append(out, r.Method+" "+openAPIPath(r.Path))
	}
	return out
}

// openAPIPath turns an Echo path ("/v1/users/:id", `/a\:b`) into an OpenAPI
// template ("/v1/users/{id}", "/a:b").
func openAPIPath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch {
		case p[i] == '\\' && i+1 < len(p) && p[i+1] == ':':
			b.WriteByte(':')
			i++
		case p[i] == ':':
			j := i + 1
			for j < len(p) && p[j] != '/' {
				j++
			}
			b.WriteString("{" + p[i+1:j] + "}")
			i = j - 1
		default:
			b.WriteByte(p[i])
		}
	}
	return b.String()
}

// recoverPanics turns a handler panic into a logged 500 with the JSON body.
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				err = fmt.Errorf("panic in handler: %v", r)
			}
		}()
		return next(c)
	}
}
