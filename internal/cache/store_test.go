package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// envRedis names the environment variable that opts in to the real-Redis runs.
const envRedis = "STREAMREC_TEST_REDIS"

func redisZ(score int64, member string) redis.Z {
	return redis.Z{Score: float64(score), Member: member}
}

// randomNamespace isolates one test's keys on a shared server.
func randomNamespace() string { return fmt.Sprintf("test-%016x", rand.Uint64()) }

// newMiniredisStore: one in-process miniredis per test.
func newMiniredisStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	cfg.Namespace = randomNamespace()
	s, err := NewStore(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// realRedisClient connects to $STREAMREC_TEST_REDIS, or skips.
func realRedisClient(tb testing.TB) *redis.Client {
	tb.Helper()
	addr := os.Getenv(envRedis)
	if addr == "" {
		tb.Skipf("real Redis not configured: set %s=host:port to run against a real server", envRedis)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		tb.Fatalf("%s=%s: %v", envRedis, addr, err)
	}
	return rdb
}

// newRealRedisStore: a random namespace on the shared server, whose keys are
// deleted at the end of the test (never FLUSHALL a shared server).
func newRealRedisStore(tb testing.TB, cfg Config) *Store {
	tb.Helper()
	rdb := realRedisClient(tb)
	cfg.Namespace = randomNamespace()
	s, err := NewStore(rdb, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.unlinkMatching(ctx, s.k.namespacePattern()); err != nil {
			tb.Errorf("cleaning up namespace %s: %v", s.Namespace(), err)
		}
		_ = rdb.Close()
	})
	return s
}

func TestStoreMiniredis(t *testing.T) {
	runStoreSuite(t, newMiniredisStore)
}

func TestStoreRealRedis(t *testing.T) {
	realRedisClient(t).Close() // skip early, naming the variable
	runStoreSuite(t, func(t *testing.T, cfg Config) *Store { return newRealRedisStore(t, cfg) })
}

// TestRealRedisCleanup checks the test helper itself: nothing of a test's
// namespace survives it.
func TestRealRedisCleanup(t *testing.T) {
	rdb := realRedisClient(t)
	defer rdb.Close()
	var ns string
	t.Run("inner", func(t *testing.T) {
		s := newRealRedisStore(t, DefaultConfig())
		ns = s.Namespace()
		r := rand.New(rand.NewPCG(1, 1))
		mustPublish(t, s, testModel(r, "v1", 100, 8))
		if err := s.PutUsers(t.Context(), "v1", []UserRecord{{UserID: 1}}); err != nil {
			t.Fatal(err)
		}
	})
	keys, err := rdb.Keys(context.Background(), ns+keySep+"*").Result()
	if err != nil || len(keys) != 0 {
		t.Fatalf("%d keys of %s left after the test: %v", len(keys), ns, err)
	}
}

func TestServedExpiresMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	cfg := DefaultConfig()
	cfg.ServedTTL = time.Minute
	s, err := NewStore(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutServed(t.Context(), 1, ServedList{ModelVersion: "v1", Items: []uint32{1}}); err != nil {
		t.Fatal(err)
	}
	mr.FastForward(61 * time.Second)
	if _, ok, err := s.GetServed(t.Context(), 1); err != nil || ok {
		t.Fatalf("served list after its TTL: %v %v", ok, err)
	}
}

func TestRedisErrorsAreWrapped(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	s, err := NewStore(rdb, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	mr.SetError("LOADING simulated failure")
	_, _, err = s.GetUser(t.Context(), "v1", 1)
	if err == nil || errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetUser with a failing server: %v", err)
	}
	var re redis.Error
	if !errors.As(err, &re) {
		t.Fatalf("error %v does not wrap the redis error", err)
	}
	if err := s.PutUsers(t.Context(), "v1", []UserRecord{{UserID: 1}}); err == nil {
		t.Fatal("PutUsers with a failing server succeeded")
	}
	if _, err := s.Publish(t.Context(), testModel(rand.New(rand.NewPCG(1, 2)), "v1", 10, 2)); err == nil {
		t.Fatal("Publish with a failing server succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []func(c *Config){
		func(c *Config) { c.Namespace = "" },
		func(c *Config) { c.Namespace = "a:b" },
		func(c *Config) { c.Namespace = "a*" },
		func(c *Config) { c.ServedTTL = 0 },
		func(c *Config) { c.UserTTL = -1 },
		func(c *Config) { c.ChunkBytes = 10 },
		func(c *Config) { c.PipelineBytes = c.ChunkBytes - 1 },
	}
	for i, mutate := range tests {
		c := DefaultConfig()
		mutate(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d: %v, want ErrInvalid", i, err)
		}
	}
	if _, err := NewStore(nil, DefaultConfig()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NewStore(nil): %v", err)
	}
}
