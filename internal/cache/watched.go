package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"

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

// appendSeen packs the ids of seen below MaxSeenVideoID (uint32 little
// endian), for the write scripts' setbits.
func appendSeen(dst []byte, seen []uint32) []byte {
	for _, id := range seen {
		if id < MaxSeenVideoID {
			dst = binary.LittleEndian.AppendUint32(dst, id)
		}
	}
	return dst
}

// decodeSeen appends the ids whose bit is set in a long-history bitmap
// (Redis's bit order: offset o is bit 7 - o%8 of byte o/8), ascending.
func decodeSeen(dst []uint32, v string) ([]uint32, error) {
	if len(v) > MaxSeenVideoID/8 {
		return dst, fmt.Errorf("%w: long watch history of %d bytes", ErrCorrupt, len(v))
	}
	for i := 0; i < len(v); i++ {
		for b := v[i]; b != 0; {
			lz := bits.LeadingZeros8(b)
			dst = append(dst, uint32(8*i+lz))
			b &^= 0x80 >> lz
		}
	}
	return dst, nil
}

// seenHas reports whether id's bit is set in bitmap v.
func seenHas(v string, id uint32) bool {
	i := int(id >> 3)
	return i < len(v) && v[i]&(0x80>>(id&7)) != 0
}

// GetUserWatched is GetUser and the user's watch history in one round trip
// (a pipeline of three GETs): the videos of the long history's bitmap (see
// UserRecord.Seen) and those of the ring (UserRecord.Watched), each once,
// ascending. A user without a history (or
// with parts that do not decode: those parts are left out) has watched
// nil; the history is returned even when the user has no record under
// version. The record's errors are GetUser's.
func (s *Store) GetUserWatched(ctx context.Context, version string, userID uint32) (UserRecord, bool, []uint32, error) {
	if err := checkVersion(version); err != nil {
		return UserRecord{}, false, nil, err
	}
	pipe := s.rdb.Pipeline()
	rc := pipe.Get(ctx, s.k.user(version, userID))
	wc := pipe.Get(ctx, s.k.watched(userID))
	sc := pipe.Get(ctx, s.k.seen(userID))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return UserRecord{}, false, nil, fmt.Errorf("reading user %d and its watch history under version %s: %w", userID, version, err)
	}
	var watched []uint32
	bitmap, _ := sc.Result()
	if len(bitmap) > 0 {
		var err error
		if watched, err = decodeSeen(nil, bitmap); err != nil {
			watched, bitmap = nil, "" // a corrupt history excludes nothing
		}
	}
	if v, err := wc.Result(); err == nil {
		ring, _ := decodeWatched(v) // a corrupt history excludes nothing
		n := len(watched)
		for _, id := range ring {
			if !seenHas(bitmap, id) && !slices.Contains(watched[n:], id) {
				watched = append(watched, id)
			}
		}
		if len(watched) > n {
			slices.Sort(watched) // ring videos the bitmap lacks (ids past its bound, or an older writer's)
		}
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
