package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
)

// Canary is a model version serving a share of the users (by a hash of the
// user id, InCanary) beside the current version, its baseline, until it is
// promoted (it becomes current) or rolled back. Stored as JSON at
// ns:model:canary.
type Canary struct {
	Version  string  `json:"version"`
	Baseline string  `json:"baseline"`
	Share    float64 `json:"share"`
	// Windows is how many closed windows of both arms are compared before
	// the decision; Threshold the relative margin by which the canary's
	// mean absolute error may exceed the baseline's before it is rolled back.
	Windows     int     `json:"windows"`
	Threshold   float64 `json:"threshold"`
	StartedAtMs int64   `json:"started_at_ms"`
}

// ErrNoCanary is returned when no canary runs.
var ErrNoCanary = errors.New("cache: no canary")

func (k keys) canary() string { return k.ns + keySep + segModel + keySep + "canary" }

// InCanary reports whether user uid is in a canary's share: a SplitMix64
// hash of the id below share x 2^64 (the same users for every share, the
// smaller share's users inside the larger's).
func InCanary(uid uint32, share float64) bool {
	if share <= 0 {
		return false
	}
	if share >= 1 {
		return true
	}
	x := uint64(uid) + 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x) < share*math.Exp2(64)
}

// StartCanary starts c: its version must be complete and not current, the
// share in (0, 0.5], at least one window; the baseline is the current
// version. One canary at a time.
func (s *Store) StartCanary(ctx context.Context, c Canary) (Canary, error) {
	if err := checkVersion(c.Version); err != nil {
		return c, err
	}
	if !(c.Share > 0 && c.Share <= 0.5) || c.Windows < 1 || !(c.Threshold >= 0 && c.Threshold < 10) {
		return c, fmt.Errorf("%w: canary of %s: share %v (want (0, 0.5]), windows %d (want >= 1), threshold %v (want [0, 10))", ErrInvalid, c.Version, c.Share, c.Windows, c.Threshold)
	}
	if _, err := s.Meta(ctx, c.Version); err != nil {
		return c, err
	}
	cur, err := s.CurrentVersion(ctx)
	if err != nil {
		return c, err
	}
	if cur == c.Version {
		return c, fmt.Errorf("%w: canary of %s: it is the current version", ErrInvalid, c.Version)
	}
	c.Baseline, c.StartedAtMs = cur, time.Now().UnixMilli()
	js, _ := json.Marshal(c)
	ok, err := s.rdb.SetNX(ctx, s.k.canary(), js, 0).Result()
	if err != nil {
		return c, fmt.Errorf("starting the canary: %w", err)
	}
	if !ok {
		return c, fmt.Errorf("%w: a canary is running already", ErrInvalid)
	}
	return c, s.notify(ctx, ModelUpdate{Current: cur, Previous: c.Version, Reason: "canary_start"})
}

// CurrentCanary returns the running canary, or ErrNoCanary.
func (s *Store) CurrentCanary(ctx context.Context) (Canary, error) {
	var c Canary
	b, err := s.rdb.Get(ctx, s.k.canary()).Bytes()
	if errors.Is(err, redis.Nil) {
		return c, ErrNoCanary
	}
	if err != nil {
		return c, fmt.Errorf("reading the canary: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: canary record: %v", ErrCorrupt, err)
	}
	return c, nil
}

// EndCanary ends the running canary of version: promoted, it becomes the
// current version (the baseline previous); otherwise it is rolled back (the
// current version stays). Either is kept in the model events.
func (s *Store) EndCanary(ctx context.Context, version string, promote bool) error {
	c, err := s.CurrentCanary(ctx)
	if err != nil {
		return err
	}
	if c.Version != version {
		return fmt.Errorf("%w: the canary is %s, not %s", ErrInvalid, c.Version, version)
	}
	if promote {
		if err := flipScript.Run(ctx, s.rdb, []string{s.k.pointers(), s.k.meta(version)}, version).Err(); err != nil {
			return fmt.Errorf("promoting the canary %s: %w", version, err)
		}
	}
	if err := s.rdb.Del(ctx, s.k.canary()).Err(); err != nil {
		return fmt.Errorf("ending the canary: %w", err)
	}
	reason, cur, prev := "canary_rolled_back", c.Baseline, version
	if promote {
		reason, cur, prev = "canary_promoted", version, c.Baseline
	}
	return s.notify(ctx, ModelUpdate{Current: cur, Previous: prev, Reason: reason})
}
