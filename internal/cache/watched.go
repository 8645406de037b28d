package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// maxWatched bounds a decoded watch history (a corrupt value).
const maxWatched = 1 << 16

func appendWatched(dst []byte, ids []uint32) []byte {
	for _, id := range ids {
		dst = binary.LittleEndian.AppendUint32(dst, id)
	}
	return dst
}

func decodeWatched(v string) ([]uint32, error) {
	if len(v)%4 != 0 || len(v) > 4*maxWatched {
		return nil, fmt.Errorf("%w: watch history of %d bytes", ErrCorrupt, len(v))
	}
	out := make([]uint32, len(v)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32([]byte(v[4*i : 4*i+4]))
	}
	return out, nil
}

// GetUserWatched is GetUser and the user's watch history (see
// UserRecord.Watched) in one round trip (a pipeline of two GETs). A user
// without a history (or with one that does not decode) has watched nil;
// the history is returned even when the user has no record under version.
// The record's errors are GetUser's.
func (s *Store) GetUserWatched(ctx context.Context, version string, userID uint32) (UserRecord, bool, []uint32, error) {
	if err := checkVersion(version); err != nil {
		return UserRecord{}, false, nil, err
	}
	pipe := s.rdb.Pipeline()
	rc := pipe.Get(ctx, s.k.user(version, userID))
	wc := pipe.Get(ctx, s.k.watched(userID))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return UserRecord{}, false, nil, fmt.Errorf("reading user %d and its watch history under version %s: %w", userID, version, err)
	}
	var watched []uint32
	if v, err := wc.Result(); err == nil {
		watched, _ = decodeWatched(v) // a corrupt history excludes nothing
	}
	v, err := rc.Result()
	if errors.Is(err, redis.Nil) {
		return UserRecord{}, false, watched, nil
	}
	if err != nil {
		return UserRecord{}, false, nil, fmt.Errorf("reading user %d under version %s: %w", userID, version, err)
	}
	rec := UserRecord{UserID: userID}
	if err := decodeUserRecord(v, &rec); err != nil {
		return UserRecord{}, false, watched, fmt.Errorf("decoding user %d under version %s: %w", userID, version, err)
	}
	if rec.ModelVersion != version {
		return UserRecord{}, false, watched, fmt.Errorf("%w: user %d under version %s holds version %q", ErrCorrupt, userID, version, rec.ModelVersion)
	}
	return rec, true, watched, nil
}
