package cache

import (
	"context"
	"errors"
	"fmt"
)

// VersionInfo is one stored model version of ListVersions.
type VersionInfo struct {
	Meta ModelMeta
	// Current and Previous: the version is the current (live) one, or the
	// one kept for rollback.
	Current, Previous bool
}

// ListVersions returns the complete model versions in registration order
// (oldest first): the current and previous ones, and any that garbage
// collection has not deleted yet. A version registered but not complete (a
// publish in progress or crashed) is left out.
func (s *Store) ListVersions(ctx context.Context) ([]VersionInfo, error) {
	cur, prev, err := s.Versions(ctx)
	if err != nil {
		return nil, err
	}
	names, err := s.rdb.ZRange(ctx, s.k.versions(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("listing model versions: %w", err)
	}
	var out []VersionInfo
	for _, v := range names {
		if checkVersion(v) != nil {
			continue
		}
		m, err := s.Meta(ctx, v)
		if errors.Is(err, ErrVersionNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, VersionInfo{Meta: m, Current: v == cur, Previous: v == prev})
	}
	return out, nil
}
