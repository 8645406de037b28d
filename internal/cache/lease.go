package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RetrainLease is the lease that keeps retrains from the log (ingestor train
// --from-log) one at a time across hosts; the API checks it before starting
// one.
const RetrainLease = "retrain"

// ErrLeaseHeld is returned by AcquireLease when another owner holds the lease.
var ErrLeaseHeld = errors.New("cache: lease held by another owner")

// ErrLeaseLost is returned by Renew when the lease expired or another owner
// took it.
var ErrLeaseLost = errors.New("cache: lease lost")

// Lease is a named lock with a time to live in Redis (ns:lease:name holds
// the owner): one holder at a time across processes and hosts, released
// when its holder dies, after the TTL. A holder renews it well within the
// TTL (Renew) and releases it when done; a renewal that finds another owner
// means the lease was lost (the holder stalled past its TTL) and the holder
// must stop.
type Lease struct {
	s     *Store
	key   string
	owner string
	ttl   time.Duration
}

func (k keys) lease(name string) string { return k.ns + keySep + "lease" + keySep + name }

// renewScript sets the TTL (ARGV[2] ms) if KEYS[1] still holds ARGV[1].
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// releaseScript deletes KEYS[1] if it still holds ARGV[1].
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// AcquireLease takes the lease name for owner, for ttl, if no one holds it;
// otherwise it returns an error wrapping ErrLeaseHeld that names the holder
// and how long its lease still runs.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (*Lease, error) {
	if err := checkVersion(name); err != nil {
		return nil, err
	}
	if owner == "" || ttl < time.Millisecond {
		return nil, fmt.Errorf("%w: lease %s: owner %q, ttl %v", ErrInvalid, name, owner, ttl)
	}
	key := s.k.lease(name)
	ok, err := s.rdb.SetNX(ctx, key, owner, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("acquiring the lease %s: %w", name, err)
	}
	if !ok {
		holder, left, _ := s.LeaseHolder(ctx, name)
		return nil, fmt.Errorf("%w: lease %s is held by %q for another %v", ErrLeaseHeld, name, holder, left.Round(time.Millisecond))
	}
	return &Lease{s: s, key: key, owner: owner, ttl: ttl}, nil
}

// LeaseHolder returns the current holder of a lease and the time left ("" and
// 0 when free).
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, time.Duration, error) {
	key := s.k.lease(name)
	pipe := s.rdb.Pipeline()
	get, ttl := pipe.Get(ctx, key), pipe.PTTL(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return "", 0, fmt.Errorf("reading the lease %s: %w", name, err)
	}
	return get.Val(), max(ttl.Val(), 0), nil
}

// Renew extends the lease by its TTL; it fails when the lease was lost.
func (l *Lease) Renew(ctx context.Context) error {
	n, err := renewScript.Run(ctx, l.s.rdb, []string{l.key}, l.owner, l.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("renewing the lease %s: %w", l.key, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s expired, or another owner took it", ErrLeaseLost, l.key)
	}
	return nil
}

// Release gives the lease up if this owner still holds it.
func (l *Lease) Release(ctx context.Context) error {
	if err := releaseScript.Run(ctx, l.s.rdb, []string{l.key}, l.owner).Err(); err != nil {
		return fmt.Errorf("releasing the lease %s: %w", l.key, err)
	}
	return nil
}

// Keep renews the lease every third of its TTL until ctx ends; it calls lost
// (once) if a renewal finds the lease gone, and returns then.
func (l *Lease) Keep(ctx context.Context, lost func(error)) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := l.Renew(ctx); errors.Is(err, ErrLeaseLost) {
			lost(err)
			return
		}
		// Any other error is a Redis hiccup: the next tick tries again (the
		// TTL covers two more).
	}
}
