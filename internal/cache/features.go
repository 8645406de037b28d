package cache

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// UserFeatures are the model input features of users under one version (the
// reduced feature rows the user tower was trained on): what an updater needs to
// fine-tune the dense user tower online.
type UserFeatures struct {
	Dim   int
	IDs   []uint32
	Feats []float32 // len(IDs) x Dim, row-major
}

// PutUserFeatures stores the user features of a version, in one value. Write
// them before Publish makes the version current, so that a reader of the
// current version finds them. The version's garbage collection deletes them.
func (s *Store) PutUserFeatures(ctx context.Context, version string, f UserFeatures) error {
	if !namePattern.MatchString(version) {
		return fmt.Errorf("%w: version %q", ErrInvalid, version)
	}
	if f.Dim <= 0 || len(f.Feats) != len(f.IDs)*f.Dim {
		return fmt.Errorf("%w: user features: %d ids x dim %d vs %d values", ErrInvalid, len(f.IDs), f.Dim, len(f.Feats))
	}
	b := appendItemChunk(nil, f.Dim, f.IDs, make([]float32, len(f.IDs)), f.Feats)
	if err := s.rdb.Set(ctx, s.k.userFeatures(version), b, 0).Err(); err != nil {
		return fmt.Errorf("writing user features of model version %s: %w", version, err)
	}
	return nil
}

// GetUserFeatures reads the user features of a version; found is false when
// the version has none. The slices belong to the caller.
func (s *Store) GetUserFeatures(ctx context.Context, version string) (f UserFeatures, found bool, err error) {
	v, err := s.rdb.Get(ctx, s.k.userFeatures(version)).Result()
	if errors.Is(err, redis.Nil) {
		return f, false, nil
	}
	if err != nil {
		return f, false, fmt.Errorf("reading user features of model version %s: %w", version, err)
	}
	if len(v) < itemChunkFixed {
		return f, false, fmt.Errorf("%w: user features of %s: short value", ErrCorrupt, version)
	}
	n := int(le32(v, 5))
	f.Dim = int(le32(v, 1))
	if f.Dim <= 0 || n < 0 || n > len(v) {
		return f, false, fmt.Errorf("%w: user features of %s: bad header", ErrCorrupt, version)
	}
	f.IDs, f.Feats = make([]uint32, n), make([]float32, n*f.Dim)
	if err := decodeItemChunk(v, f.Dim, f.IDs, make([]float32, n), f.Feats); err != nil {
		return UserFeatures{}, false, err
	}
	return f, true, nil
}
