package cache

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// putIfNewerScript writes ARGV[1] (an encoded user record, format 2) at
// KEYS[1] unless the stored record is format 2, on the same input partition,
// with a greater input next offset (equal rewrites: idempotent). It compares the
// little-endian fields at the fixed offsets byte by byte, the offset from its
// most significant byte, because Lua numbers cannot hold a uint64. A stored
// value of another format or length (a corrupt record), or of another
// partition, is overwritten. ARGV[2]
// is the TTL in ms (0: none). With KEYS[2] (the user's watch-history key),
// ARGV[3] is written there too, when the record is (same TTL). Returns 1 if
// written.
var putIfNewerScript = redis.NewScript(`
local old = redis.call('GET', KEYS[1])
local new = ARGV[1]
if old and string.len(old) >= 2 and string.byte(old, 1) == 2 then
  local o = 3 + string.byte(old, 2)
  local n = 3 + string.byte(new, 2)
  local dim = -1
  if string.len(old) >= o + 35 then
    dim = string.byte(old, o + 32) + 256 * (string.byte(old, o + 33) + 256 * (string.byte(old, o + 34) + 256 * string.byte(old, o + 35)))
  end
  if string.len(old) == o + 35 + 4 * dim and string.sub(old, o, o + 3) == string.sub(new, n, n + 3) then
    for i = 11, 4, -1 do
      local a, b = string.byte(old, o + i), string.byte(new, n + i)
      if a > b then return 0 end
      if a < b then break end
    end
  end
end
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS do
  local v = new
  if i == 2 then v = ARGV[3] end
  if ttl > 0 then
    redis.call('SET', KEYS[i], v, 'PX', ttl)
  else
    redis.call('SET', KEYS[i], v)
  end
end
return 1
`)

// PutUsersIfNewer is PutUsers with a per-user guard, applied atomically in
// Redis: a record is written only if the stored record of the same user and
// version, on the same input partition, has an InputNext no greater than
// the new one's (or there is none).
// It protects Redis from a stale writer (for example an updater instance
// that lost its partitions but still flushes) overwriting a fresher vector.
// One pipeline of EVALSHA (one extra round trip when the script is not yet
// cached by the server). It returns how many records were skipped as older.
// A record with Watched not nil also writes them to the user's
// watch-history key, in the same script (so only when the record is
// written). Same argument rules, ownership and retry advice as PutUsers.
func (s *Store) PutUsersIfNewer(ctx context.Context, version string, recs []UserRecord) (skipped int, err error) {
	if err := s.checkUsers(version, recs); err != nil {
		return 0, err
	}
	if len(recs) == 0 {
		return 0, nil
	}
	keys := make([][]string, len(recs))
	vals := make([][]byte, len(recs))
	hist := make([][]byte, len(recs))
	buf := make([]byte, 0, (userRecordFixed+len(version)+4*len(recs[0].Embedding))*len(recs))
	for i := range recs {
		start := len(buf)
		buf = appendUserRecord(buf, version, &recs[i])
		keys[i], vals[i] = []string{s.k.user(version, recs[i].UserID)}, buf[start:len(buf):len(buf)]
		if w := recs[i].Watched; w != nil {
			keys[i] = append(keys[i], s.k.watched(recs[i].UserID))
			hist[i] = appendWatched(make([]byte, 0, 4*len(w)), w)
		}
	}
	ttl := strconv.FormatInt(s.cfg.UserTTL.Milliseconds(), 10)
	for attempt := 0; ; attempt++ {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(recs))
		for i := range recs {
			if len(keys[i]) == 2 {
				cmds[i] = putIfNewerScript.EvalSha(ctx, pipe, keys[i], vals[i], ttl, hist[i])
			} else {
				cmds[i] = putIfNewerScript.EvalSha(ctx, pipe, keys[i], vals[i], ttl)
			}
		}
		_, err := pipe.Exec(ctx)
		if err != nil && attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
			if err := putIfNewerScript.Load(ctx, s.rdb).Err(); err != nil {
				return 0, fmt.Errorf("loading the user write script: %w", err)
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("writing %d user records if newer under version %s: %w", len(recs), version, err)
		}
		for _, c := range cmds {
			if n, _ := c.Int(); n == 0 {
				skipped++
			}
		}
		return skipped, nil
	}
}
