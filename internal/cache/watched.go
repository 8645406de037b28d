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

// MaxHistory is how many of a user's most recent events the long watch
// history holds (UserRecord.Seen): 64 KiB of video ids a user. The key is
// trimmed back to them once it holds twice as many (trimSeen).
const MaxHistory = 1 << 14

// historyTrimScript keeps the last ARGV[1] bytes of the history at KEYS[1]
// when it holds more (atomic, so that no concurrent APPEND is lost).
var historyTrimScript = redis.NewScript(`
local n = tonumber(ARGV[1])
if redis.call('STRLEN', KEYS[1]) > n then
  local ttl = redis.call('PTTL', KEYS[1])
  redis.call('SET', KEYS[1], redis.call('GETRANGE', KEYS[1], -n, -1))
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
end
return 1
`)

// queueSeen queues on pipe, for each record recs[i] (i in idx) with Seen,
// one APPEND of its videos (uint32 little endian) to the user's long
// history and, with Config.UserTTL, the key's PEXPIRE. It returns the
// APPENDs by user id (nil: none), whose lengths trimSeen reads.
func (s *Store) queueSeen(ctx context.Context, pipe redis.Pipeliner, recs []UserRecord, idx []int) map[uint32]*redis.IntCmd {
	var cmds map[uint32]*redis.IntCmd
	for _, i := range idx {
		r := &recs[i]
		if len(r.Seen) == 0 {
			continue
		}
		if cmds == nil {
			cmds = make(map[uint32]*redis.IntCmd)
		}
		key := s.k.seen(r.UserID)
		cmds[r.UserID] = pipe.Append(ctx, key, string(appendWatched(make([]byte, 0, 4*len(r.Seen)), r.Seen)))
		if s.cfg.UserTTL > 0 {
			pipe.PExpire(ctx, key, s.cfg.UserTTL)
		}
	}
	return cmds
}

// trimSeen trims, in one more round trip, the histories that the APPENDs
// of cmds grew past twice MaxHistory events (about once per MaxHistory
// events of a user).
func (s *Store) trimSeen(ctx context.Context, cmds map[uint32]*redis.IntCmd) error {
	var long []uint32
	for uid, c := range cmds {
		if n, err := c.Result(); err == nil && n > 8*MaxHistory {
			long = append(long, uid)
		}
	}
	if len(long) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, uid := range long {
		historyTrimScript.Eval(ctx, pipe, []string{s.k.seen(uid)}, 4*MaxHistory)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("trimming %d long watch histories: %w", len(long), err)
	}
	return nil
}

// decodeHistory appends to dst the distinct videos of the long history v
// (its last MaxHistory events, each once) and of ring, ascending. A
// history whose length is not a multiple of 4 is corrupt: only its
// aligned tail is read (the error says so).
func decodeHistory(dst []uint32, v string, ring []uint32) ([]uint32, error) {
	var err error
	if len(v)%4 != 0 {
		err = fmt.Errorf("%w: long watch history of %d bytes", ErrCorrupt, len(v))
		v = v[len(v)%4:]
	}
	if len(v) > 4*MaxHistory {
		v = v[len(v)-4*MaxHistory:]
	}
	if len(v) == 0 && len(ring) == 0 {
		return dst, err
	}
	start := len(dst)
	hi := uint32(0)
	for i := 0; i < len(v); i += 4 {
		id := binary.LittleEndian.Uint32([]byte(v[i : i+4]))
		dst = append(dst, id)
		hi = max(hi, id)
	}
	for _, id := range ring {
		dst = append(dst, id)
		hi = max(hi, id)
	}
	ids := dst[start:]
	if hi >= 1<<22 { // sparse ids: a sort instead of a bitset of hi bits
		slices.Sort(ids)
		return slices.Compact(dst), err
	}
	set := make([]uint64, hi/64+1)
	for _, id := range ids {
		set[id>>6] |= 1 << (id & 63)
	}
	dst = dst[:start] // the distinct ids, ascending, over the decoded ones
	for w, word := range set {
		for word != 0 {
			dst = append(dst, uint32(64*w+bits.TrailingZeros64(word)))
			word &= word - 1
		}
	}
	return dst, err
}

// GetUserWatched is GetUser and the user's watch history in one round trip
// (a pipeline of three GETs): the videos of the long history's last
// MaxHistory events (see UserRecord.Seen) and those of the ring
// (UserRecord.Watched), each once, ascending. A user without a history (or
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
	var ring []uint32
	if v, err := wc.Result(); err == nil {
		ring, _ = decodeWatched(v) // a corrupt ring excludes nothing
	}
	hist, _ := sc.Result()
	watched, _ := decodeHistory(nil, hist, ring) // a corrupt history: its aligned tail
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
