package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// SetMarker writes a named marker holding value, expiring after ttl (0: never).
// A writer that rebuilds Redis from a durable source (the updater, from its
// Kafka changelog) sets a marker after a rebuild and polls it with Marker: a
// marker that is gone means Redis lost its data (a flush or a restart without
// persistence), so rebuild again. A live writer re-sets its marker well within
// the ttl, so that the markers of writers that are gone expire.
func (s *Store) SetMarker(ctx context.Context, name string, value int64, ttl time.Duration) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%w: marker name %q", ErrInvalid, name)
	}
	if ttl < 0 {
		return fmt.Errorf("%w: marker ttl %v", ErrInvalid, ttl)
	}
	if err := s.rdb.Set(ctx, s.k.marker(name), value, ttl).Err(); err != nil {
		return fmt.Errorf("setting marker %q: %w", name, err)
	}
	return nil
}

// Marker reads a marker: (value, true, nil) if present, (0, false, nil) if not.
func (s *Store) Marker(ctx context.Context, name string) (int64, bool, error) {
	if !namePattern.MatchString(name) {
		return 0, false, fmt.Errorf("%w: marker name %q", ErrInvalid, name)
	}
	v, err := s.rdb.Get(ctx, s.k.marker(name)).Result()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading marker %q: %w", name, err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%w: marker %q holds %q", ErrCorrupt, name, v)
	}
	return n, true, nil
}

// TouchMarker extends a marker's life to ttl from now and reports whether it
// existed, in one atomic command (EXPIRE): a marker that a flush removed is
// never recreated by a touch.
func (s *Store) TouchMarker(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	if !namePattern.MatchString(name) {
		return false, fmt.Errorf("%w: marker name %q", ErrInvalid, name)
	}
	if ttl <= 0 {
		return false, fmt.Errorf("%w: marker ttl %v", ErrInvalid, ttl)
	}
	ok, err := s.rdb.Expire(ctx, s.k.marker(name), ttl).Result()
	if err != nil {
		return false, fmt.Errorf("touching marker %q: %w", name, err)
	}
	return ok, nil
}
