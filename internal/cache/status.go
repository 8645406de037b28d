package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Status records: a process's small, self-describing JSON status under
// ns:status:kind:member with a TTL, so that a process that stopped drops out
// by itself (the updater publishes one a second; the API serves them at
// GET /v1/status for the dashboard).

func (k keys) statusKey(kind, member string) string {
	return k.ns + keySep + "status" + keySep + kind + keySep + member
}

// PutStatus stores member's status record of kind for ttl.
func (s *Store) PutStatus(ctx context.Context, kind, member string, js []byte, ttl time.Duration) error {
	if !namePattern.MatchString(kind) || !namePattern.MatchString(member) || ttl <= 0 {
		return fmt.Errorf("%w: status %q/%q with ttl %v", ErrInvalid, kind, member, ttl)
	}
	if err := s.rdb.Set(ctx, s.k.statusKey(kind, member), js, ttl).Err(); err != nil {
		return fmt.Errorf("writing the %s status of %s: %w", kind, member, err)
	}
	return nil
}

// Statuses returns every live status record of kind, by member.
func (s *Store) Statuses(ctx context.Context, kind string) (map[string][]byte, error) {
	if !namePattern.MatchString(kind) {
		return nil, fmt.Errorf("%w: status kind %q", ErrInvalid, kind)
	}
	prefix := s.k.statusKey(kind, "")
	var keys []string
	it := s.rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("listing %s statuses: %w", kind, err)
	}
	out := make(map[string][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading %s statuses: %w", kind, err)
	}
	for i, v := range vals {
		if str, ok := v.(string); ok { // nil: expired between SCAN and MGET
			out[keys[i][len(prefix):]] = []byte(str)
		}
	}
	return out, nil
}
