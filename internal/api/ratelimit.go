package api

import (
	"hash/maphash"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// rateLimiter keeps one token bucket per client (ClientHeader; requests
// without it share AnonymousClient's): rate tokens a second, at most burst;
// a request takes one. Buckets of at most maxClients clients are kept; a
// bucket idle long enough to be full again is the same as a new one and is
// dropped first; past the bound an arbitrary bucket is dropped (its client
// starts again with a full bucket). Safe for concurrent use; sharded.
type rateLimiter struct {
	rate, burst float64
	perShard    int
	seed        maphash.Seed
	shards      [rateShards]rateShard
}

const rateShards = 32

type rateShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst, maxClients int) *rateLimiter {
	l := &rateLimiter{rate: rate, burst: float64(burst), perShard: max(1, maxClients/rateShards), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = map[string]*bucket{}
	}
	return l
}

// take takes a token of client's bucket at now; when there is none it
// returns false and how long until there is one.
func (l *rateLimiter) take(client string, now time.Time) (bool, time.Duration) {
	sh := &l.shards[maphash.String(l.seed, client)%rateShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b, ok := sh.buckets[client]
	if !ok {
		if len(sh.buckets) >= l.perShard {
			l.evict(sh, now)
		}
		b = &bucket{tokens: l.burst, last: now}
		sh.buckets[client] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(l.burst, b.tokens+dt*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// evict drops the shard's full buckets, or one arbitrary bucket if none is.
func (l *rateLimiter) evict(sh *rateShard, now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	n := len(sh.buckets)
	for c, b := range sh.buckets {
		if now.Sub(b.last) >= full {
			delete(sh.buckets, c)
		}
	}
	if len(sh.buckets) == n {
		for c := range sh.buckets {
			delete(sh.buckets, c)
			break
		}
	}
}

// limit is the middleware of the rate-limited (public) routes: a request
// whose client has no token gets 429 rate_limited with Retry-After (whole
// seconds, at least 1); a malformed ClientHeader is 400 invalid_client_id.
func (s *Server) limit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		client, err := clientID(c.Request().Header.Values(ClientHeader))
		if err != nil {
			return err
		}
		ok, wait := s.limiter.take(client, s.now())
		if !ok {
			s.metrics.rateLimited.WithLabelValues(s.routePaths[c.Path()]).Inc()
			c.Response().Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
			return errorf(http.StatusTooManyRequests, CodeRateLimited, "",
				"client %q is over its rate limit of %g requests/s (burst %g); retry after the Retry-After header's seconds",
				truncate(client, 64), s.limiter.rate, s.limiter.burst)
		}
		return next(c)
	}
}
