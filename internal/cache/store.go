package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config configures a Store. Start from DefaultConfig; NewStore calls Validate.
type Config struct {
	// Namespace prefixes every key and channel ("<ns>:..."). Letters, digits,
	// '.', '_' and '-' only. Tests use a random namespace to isolate themselves.
	// Default: "streamrec".
	Namespace string
	// ServedTTL is how long a served list lives after PutServed. Must be > 0.
	// Default: 24h.
	ServedTTL time.Duration
	// UserTTL, if > 0, expires each user record that long after its last
	// PutUsers. 0 keeps user records until their model version is garbage
	// collected. Default: 0.
	UserTTL time.Duration
	// ChunkBytes is the target size of one item chunk value written by
	// Publish (at least one item per chunk). Must be >= 1024. Default: 512 KiB.
	ChunkBytes int
	// PipelineBytes bounds the payload of one pipeline written by Publish and
	// GC, so that one round trip never buffers the whole model. Must be >=
	// ChunkBytes. Default: 8 MiB.
	PipelineBytes int
}

// DefaultConfig returns the production defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Namespace:     DefaultNamespace,
		ServedTTL:     24 * time.Hour,
		UserTTL:       0,
		ChunkBytes:    512 << 10,
		PipelineBytes: 8 << 20,
	}
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if !namePattern.MatchString(c.Namespace) {
		errs = append(errs, fmt.Errorf("namespace %q: want 1-64 of [A-Za-z0-9._-]", c.Namespace))
	}
	if c.ServedTTL <= 0 {
		errs = append(errs, fmt.Errorf("served TTL %v: must be > 0", c.ServedTTL))
	}
	if c.UserTTL < 0 {
		errs = append(errs, fmt.Errorf("user TTL %v: must be >= 0", c.UserTTL))
	}
	if c.ChunkBytes < 1024 {
		errs = append(errs, fmt.Errorf("chunk bytes %d: must be >= 1024", c.ChunkBytes))
	}
	if c.PipelineBytes < c.ChunkBytes {
		errs = append(errs, fmt.Errorf("pipeline bytes %d: must be >= chunk bytes %d", c.PipelineBytes, c.ChunkBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: cache config: %w", ErrInvalid, err)
	}
	return nil
}

// Store is the Redis-backed embedding store. It does not own the client:
// the caller closes it after the last use of the Store.
//
// All methods are safe for concurrent use by multiple goroutines (the
// go-redis client is). Slices passed in are only read during the call and
// may be reused by the caller once it returns; slices returned are freshly
// allocated and owned by the caller, who may keep and mutate them.
type Store struct {
	rdb *redis.Client
	cfg Config
	k   keys
}

// NewStore returns a Store over rdb with cfg (see DefaultConfig).
func NewStore(rdb *redis.Client, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrInvalid)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Store{rdb: rdb, cfg: cfg, k: keys{ns: cfg.Namespace}}, nil
}

// Namespace returns the key namespace of the store.
func (s *Store) Namespace() string { return s.cfg.Namespace }

// Ping checks that Redis answers (for readiness probes).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("pinging redis: %w", err)
	}
	return nil
}

func checkVersion(v string) error {
	if !namePattern.MatchString(v) {
		return fmt.Errorf("%w: model version %q: want 1-64 of [A-Za-z0-9._-]", ErrInvalid, v)
	}
	return nil
}
