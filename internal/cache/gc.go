package cache

import (
	"context"
	"fmt"
)

// scanBatch is the SCAN COUNT hint and the UNLINK batch size of deletions.
const scanBatch = 1000

// CollectGarbage deletes every registered version that is neither current
// nor previous and was registered before the current version (so a version
// that another publisher is still writing is left alone), with its item
// chunks, tower, meta and user records. Publish calls it after each flip. It
// returns the versions deleted. Safe to call at any time and to repeat:
// deletion removes the meta first (the version stops being complete) and the
// registration last (a crashed collection is retried by the next one).
//
// User records that a lagging writer puts under a version after it was
// collected are not found again (set Config.UserTTL to bound them).
func (s *Store) CollectGarbage(ctx context.Context) ([]string, error) {
	cur, prev, err := s.Versions(ctx)
	if err != nil {
		return nil, err
	}
	if cur == "" {
		return nil, nil
	}
	all, err := s.rdb.ZRangeWithScores(ctx, s.k.versions(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("listing model versions: %w", err)
	}
	curSeq, ok := 0.0, false
	for _, z := range all {
		if z.Member == cur {
			curSeq, ok = z.Score, true
		}
	}
	if !ok {
		return nil, nil // current not registered (should not happen): delete nothing
	}
	var deleted []string
	for _, z := range all {
		v, _ := z.Member.(string)
		if v == cur || v == prev || z.Score >= curSeq {
			continue
		}
		if err := s.deleteVersion(ctx, v); err != nil {
			return deleted, err
		}
		deleted = append(deleted, v)
	}
	return deleted, nil
}

func (s *Store) deleteVersion(ctx context.Context, v string) error {
	if err := checkVersion(v); err != nil {
		return fmt.Errorf("collecting model version: %w", err) // never build a pattern from it
	}
	if err := s.rdb.Unlink(ctx, s.k.meta(v)).Err(); err != nil {
		return fmt.Errorf("deleting meta of model version %s: %w", v, err)
	}
	for _, pattern := range []string{s.k.modelPattern(v), s.k.userPattern(v)} {
		if err := s.unlinkMatching(ctx, pattern); err != nil {
			return fmt.Errorf("deleting keys of model version %s: %w", v, err)
		}
	}
	if err := s.rdb.ZRem(ctx, s.k.versions(), v).Err(); err != nil {
		return fmt.Errorf("unregistering model version %s: %w", v, err)
	}
	return nil
}

// unlinkMatching UNLINKs every key matching pattern, SCANning in batches.
func (s *Store) unlinkMatching(ctx context.Context, pattern string) error {
	var cursor uint64
	for {
		batch, next, err := s.rdb.Scan(ctx, cursor, pattern, scanBatch).Result()
		if err != nil {
			return fmt.Errorf("scanning %s: %w", pattern, err)
		}
		if len(batch) > 0 {
			if err := s.rdb.Unlink(ctx, batch...).Err(); err != nil {
				return fmt.Errorf("unlinking %d keys of %s: %w", len(batch), pattern, err)
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
