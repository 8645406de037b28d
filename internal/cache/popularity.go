package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Popularity is a model version's popularity: per video, the number of
// positive interactions in the data the version was trained on. Label names
// what counts as positive (the ingestor: "watch_ratio>=0.8", the relevance
// threshold of its offline metrics and popularity baseline). Videos without a
// positive interaction may be left out.
type Popularity struct {
	Label  string   `json:"label"`
	IDs    []uint32 `json:"ids"`
	Counts []uint32 `json:"counts"`
}

// PutPopularity stores the popularity of a version, in one value. Write it
// before Publish makes the version current; the version's garbage
// collection deletes it.
func (s *Store) PutPopularity(ctx context.Context, version string, p Popularity) error {
	if err := checkVersion(version); err != nil {
		return err
	}
	if len(p.IDs) != len(p.Counts) || p.Label == "" {
		return fmt.Errorf("%w: popularity: %d ids, %d counts, label %q", ErrInvalid, len(p.IDs), len(p.Counts), p.Label)
	}
	js, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding the popularity of model version %s: %w", version, err)
	}
	if err := s.rdb.Set(ctx, s.k.popularity(version), js, 0).Err(); err != nil {
		return fmt.Errorf("writing the popularity of model version %s: %w", version, err)
	}
	return nil
}

// GetPopularity reads the popularity of a version; found is false when the
// version has none (a version published before popularity was).
func (s *Store) GetPopularity(ctx context.Context, version string) (p Popularity, found bool, err error) {
	if err := checkVersion(version); err != nil {
		return p, false, err
	}
	js, err := s.rdb.Get(ctx, s.k.popularity(version)).Bytes()
	if errors.Is(err, redis.Nil) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("reading the popularity of model version %s: %w", version, err)
	}
	if err := json.Unmarshal(js, &p); err != nil || len(p.IDs) != len(p.Counts) {
		return Popularity{}, false, fmt.Errorf("%w: popularity of model version %s", ErrCorrupt, version)
	}
	return p, true, nil
}
